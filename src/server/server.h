// `llmerge serve`: a local web UI over the public API (include/llmerge/).
//
// A front end like the CLI and the Python package: it sees only the public
// API, catches llmerge::Error at one place (each route's JSON error body) and
// never exits. Security follows Jupyter's server (docs/serve.md): loopback by
// default, a token on every request, Host and Origin checks, every path
// confined to the roots after symlinks are resolved, bounded request sizes,
// one merge at a time per output.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace llmerge::server {

struct ServeOptions {
  std::vector<std::string> roots;  // folders the UI may browse, read and write under
  std::string host = "127.0.0.1";
  int port = 8765;        // 0: any free port
  std::string state_dir;  // run history; "" = $XDG_STATE_HOME/llmerge or ~/.local/state/llmerge
  std::string token;      // "" = a fresh random token
  std::string hf_cache =
      "auto";  // read-only model root; "auto" = huggingface_hub's rule, "" = none
  std::size_t request_bytes_max = 1 << 20;  // largest request body (configs are a few KB)
};

class WebServer {
 public:
  explicit WebServer(ServeOptions options);  // throws Error for a bad root or state folder
  ~WebServer();                              // stops, cancels running merges, joins them
  WebServer(const WebServer&) = delete;
  WebServer& operator=(const WebServer&) = delete;

  int bind();               // binds host:port; returns the port. Throws Error(io)
  void serve();             // answers requests until stop() (call bind() first)
  void stop();              // from any thread
  std::string url() const;  // http://host:port/?token=...
  const std::string& token() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace llmerge::server
