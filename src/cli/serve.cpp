// `llmerge serve [--root DIR]... [--port N] [--host H]`: the local web UI
// (src/server/, docs/serve.md). Ctrl-C stops the server and cancels its merges.
#include <chrono>
#include <memory>
#include <thread>

#include <fmt/core.h>

#include "command.h"
#include "llmerge/llmerge.h"
#include "llmerge/text.h"
#include "server/server.h"
#include "signals.h"

namespace llmerge::cli {

namespace {

struct ServeArgs {
  server::ServeOptions options;
  std::string token;
};

int run_serve(ServeArgs& args) {
  if (args.options.roots.empty()) args.options.roots.push_back(".");
  server::WebServer web(args.options);
  web.bind();
  print_best_effort(stdout, fmt::format("llmerge serve: open {}\n", terminal_safe(web.url())));
  std::fflush(stdout);
  // The signal handlers cancel the run token; the server stops when it is.
  std::thread watcher([&web] {
    while (!run_cancel_token().cancelled())
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    web.stop();
  });
  web.serve();
  run_cancel_token().cancel();  // the server ended on its own: stop the watcher
  watcher.join();
  return run_cancel_token().cancelled() && received_signal() != 0 ? interrupted_exit_code() : 0;
}

const bool registered = register_command({
    .name = "serve",
    .help = "A local web UI: browse models, build and check configs, run and follow merges",
    .order = 90,
    .setup =
        [](CLI::App& app) {
          auto args = std::make_shared<ServeArgs>();
          app.add_option("--root", args->options.roots,
                         "A folder the UI may browse, read models from and write merges into "
                         "(repeatable; default: the current folder)");
          app.add_option("--port", args->options.port, "TCP port (0: any free port)")
              ->capture_default_str();
          app.add_option("--host", args->options.host,
                         "Address to listen on; anything but loopback exposes the UI (the token "
                         "still guards it)")
              ->capture_default_str();
          app.add_option("--state", args->options.state_dir,
                         "Folder for the run history (default: ~/.local/state/llmerge)");
          app.add_option("--token", args->options.token,
                         "Use this token instead of a random one (for scripts)");
          return std::function<int()>([args] { return run_serve(*args); });
        },
});

}  // namespace

}  // namespace llmerge::cli
