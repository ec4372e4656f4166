// The HTTP side of `llmerge serve`: the request checks (security.h), then the
// routes. Every route answers JSON; an llmerge::Error becomes its
// problems_json() body (400, or 409 for a busy output), the one place this
// front end catches it.
#include "server.h"

#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "assets.h"
#include "config_refs.h"
#include "llmerge/llmerge.h"
#include "roots.h"
#include "runs.h"
#include "security.h"

namespace llmerge::server {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string default_state_dir() {
  if (const char* x = std::getenv("XDG_STATE_HOME"); x && *x) return fs::path(x) / "llmerge";
  if (const char* h = std::getenv("HOME"); h && *h) {
    return fs::path(h) / ".local" / "state" / "llmerge";
  }
  return fs::temp_directory_path() / "llmerge-state";
}

void send_json(httplib::Response& res, const std::string& body, int status = 200) {
  res.status = status;
  res.set_content(body, "application/json");
}

// Folder names need not be UTF-8 (a Latin-1 name from another system), and
// json::dump() throws on such bytes: they are sent as U+FFFD instead.
void send_json(httplib::Response& res, const json& body, int status = 200) {
  send_json(res, body.dump(-1, ' ', false, json::error_handler_t::replace), status);
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, json{{"kind", "forbidden"}, {"message", message}, {"problems", json::array()}},
            status);
}

// A model folder: config.json next to safetensors weights (or an index).
bool looks_like_model(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_regular_file(dir / "config.json", ec)) return false;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".safetensors") return true;
  }
  return false;
}

json request_body(const httplib::Request& req) {
  json j = json::parse(req.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    throw Error(ErrorKind::config, "the request body is not a JSON object");
  }
  return j;
}

std::string string_field(const json& j, const char* key) {
  if (!j.contains(key)) return "";
  if (!j[key].is_string())
    throw Error(ErrorKind::config, std::string("'") + key + "' must be a string");
  return j[key].get<std::string>();
}

std::map<std::string, std::string> options_field(const json& j) {
  std::map<std::string, std::string> out;
  if (!j.contains("options")) return out;
  if (!j["options"].is_object()) throw Error(ErrorKind::config, "'options' must be an object");
  for (const auto& [k, v] : j["options"].items()) {
    // Values are text, as every door passes them to set_option().
    out[k] = v.is_string() ? v.get<std::string>() : v.dump();
  }
  return out;
}

}  // namespace

struct WebServer::Impl {
  ServeOptions options;
  Roots roots;
  std::string token;
  std::string cookie_name;
  std::unique_ptr<HostCheck> host_check;
  RunManager runs;
  httplib::Server http;
  std::atomic<bool> stopping{false};
  CancelToken compare_cancel;  // cancelled when the server stops
  int port = 0;

  explicit Impl(ServeOptions o)
      : options(std::move(o)),
        roots(options.roots, options.hf_cache == "auto" ? default_hf_cache() : options.hf_cache),
        token(options.token.empty() ? random_token() : options.token),
        runs(roots, options.state_dir.empty() ? default_state_dir() : options.state_dir) {}

  // ---------------------------------------------------------------- checks

  std::string token_of(const httplib::Request& req) const {
    if (req.has_param("token")) return req.get_param_value("token");
    const std::string auth = req.get_header_value("Authorization");
    if (auth.rfind("token ", 0) == 0) return auth.substr(6);
    if (auth.rfind("Bearer ", 0) == 0) return auth.substr(7);
    return cookie_value(req.get_header_value("Cookie"), cookie_name);
  }

  httplib::Server::HandlerResponse check(const httplib::Request& req, httplib::Response& res) {
    const std::string host = req.get_header_value("Host");
    if (!host_check->host_ok(host)) {
      send_error(res, 403, "Host header '" + host + "' is not this server (DNS rebinding?)");
      return httplib::Server::HandlerResponse::Handled;
    }
    const std::string site = req.get_header_value("Sec-Fetch-Site");
    if (!host_check->origin_ok(req.get_header_value("Origin"), host) || site == "cross-site" ||
        site == "same-site") {
      send_error(res, 403, "cross-origin requests are refused");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (!tokens_equal(token_of(req), token)) {
      send_error(res, 403,
                 "this llmerge server needs its token: open the URL `llmerge serve` printed "
                 "(…/?token=…)");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.method != "GET" && req.method != "HEAD") {
      // A cross-site <form> can only send form or text bodies; JSON needs a
      // CORS preflight, which this server never grants.
      if (req.method != "POST" ||
          req.get_header_value("Content-Type").rfind("application/json", 0) != 0) {
        send_error(res, 415, "state-changing requests are POSTs with a JSON body");
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    if (req.has_param("token")) {
      // As Jupyter does: the URL's token becomes a cookie (this port's only),
      // so it need not stay in the address bar or in links.
      res.set_header("Set-Cookie",
                     cookie_name + "=" + token + "; Path=/; HttpOnly; SameSite=Strict");
    }
    return httplib::Server::HandlerResponse::Unhandled;
  }

  // A route body: an llmerge::Error becomes its problems JSON.
  template <class F>
  httplib::Server::Handler guarded(F f) {
    return [f](const httplib::Request& req, httplib::Response& res) {
      try {
        f(req, res);
      } catch (const RunManager::Busy& e) {
        send_json(res, json{{"kind", "busy"}, {"message", e.what()}, {"problems", json::array()}},
                  409);
      } catch (const Error& e) {
        send_json(res, e.problems_json(), e.kind() == ErrorKind::internal ? 500 : 400);
      }
    };
  }

  // ---------------------------------------------------------------- routes

  void routes() {
    http.Get("/", [this](const httplib::Request& req, httplib::Response& res) {
      if (req.has_param("token")) {
        res.status = 303;  // drop the token from the address bar (the cookie is set)
        res.set_header("Location", "/");
        return;
      }
      serve_asset("index.html", res);
    });
    http.Get(R"(/static/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      if (!serve_asset(req.matches[1].str(), res)) send_error(res, 404, "no such file");
    });
    http.Get("/api/info", [this](const httplib::Request&, httplib::Response& res) {
      json roots_json = json::array();
      for (const auto& r : roots.roots())
        roots_json.push_back(r.string());
      send_json(res, json{{"version", version()},
                          {"roots", roots_json},
                          {"hf_cache", roots.hf_cache() ? roots.hf_cache()->string() : ""}});
    });
    http.Get("/api/methods", [](const httplib::Request&, httplib::Response& res) {
      send_json(res, methods_json());
    });
    http.Get("/api/options", [](const httplib::Request&, httplib::Response& res) {
      send_json(res, options_schema_json());
    });
    http.Get("/api/browse", guarded([this](const httplib::Request& req, httplib::Response& res) {
               browse(req.get_param_value("path"), res);
             }));
    http.Get("/api/hf-models", [this](const httplib::Request&, httplib::Response& res) {
      send_json(res, hf_models());
    });
    http.Get("/api/inspect", guarded([this](const httplib::Request& req, httplib::Response& res) {
               const std::string model = req.get_param_value("model");
               if (const auto why = refuse_reference(model, roots)) {
                 send_error(res, 403, *why);
                 return;
               }
               const auto path = roots.readable(model);
               const std::string ref = path ? path->string() : model;
               const ModelInfo info =
                   inspect(ref, req.get_param_value("tensors") == "1", roots.base().string());
               json j = json::parse(info.json);
               // The tokenizer, as the files the merge would copy (names and sizes
               // only: they are not parsed here).
               json tok = json::array();
               std::error_code ec;
               const fs::path dir = j.value("path", "");
               for (const char* f : {"tokenizer.json", "tokenizer_config.json", "tokenizer.model",
                                     "special_tokens_map.json", "vocab.json", "merges.txt",
                                     "chat_template.jinja"}) {
                 if (fs::is_regular_file(dir / f, ec)) {
                   tok.push_back({{"file", f}, {"size", fs::file_size(dir / f, ec)}});
                 }
               }
               j["tokenizer_files"] = tok;
               send_json(res, j);
             }));
    http.Post("/api/yaml-to-json", guarded([](const httplib::Request& req, httplib::Response& res) {
                const json body = request_body(req);
                send_json(res, json{{"config", json::parse(config_to_json(
                                                   string_field(body, "yaml"), "<web>"))}});
              }));
    http.Post("/api/plan", guarded([this](const httplib::Request& req, httplib::Response& res) {
                plan_route(request_body(req), res);
              }));
    http.Post("/api/compare", guarded([this](const httplib::Request& req, httplib::Response& res) {
                compare_route(request_body(req), res);
              }));
    http.Post("/api/runs", guarded([this](const httplib::Request& req, httplib::Response& res) {
                const json body = request_body(req);
                RunRequest r{string_field(body, "yaml"), string_field(body, "output"),
                             options_field(body)};
                send_json(res, json{{"id", runs.start(r)}}, 201);
              }));
    http.Get("/api/runs", [this](const httplib::Request&, httplib::Response& res) {
      send_json(res, runs.history_json());
    });
    http.Get(R"(/api/runs/([A-Za-z0-9-]+))",
             guarded([this](const httplib::Request& req, httplib::Response& res) {
               run_record(req.matches[1].str(), res);
             }));
    http.Get(R"(/api/runs/([A-Za-z0-9-]+)/events)",
             [this](const httplib::Request& req, httplib::Response& res) {
               events(req.matches[1].str(), res);
             });
    http.Post(R"(/api/runs/([A-Za-z0-9-]+)/cancel)",
              [this](const httplib::Request& req, httplib::Response& res) {
                if (!runs.cancel(req.matches[1].str())) {
                  send_error(res, 404, "no such running merge");
                  return;
                }
                send_json(res, json{{"cancelling", true}});
              });
    http.Post(R"(/api/runs/([A-Za-z0-9-]+)/rerun)",
              guarded([this](const httplib::Request& req, httplib::Response& res) {
                auto r = runs.request_of(req.matches[1].str());
                if (!r) {
                  send_error(res, 404, "no such run in the history");
                  return;
                }
                // The earlier run's output is replaced (force only replaces
                // folders llmerge wrote).
                r->options["force"] = "true";
                send_json(res, json{{"id", runs.start(*r)}}, 201);
              }));
  }

  bool serve_asset(const std::string& path, httplib::Response& res) {
    for (const Asset& a : assets()) {
      if (a.path == path) {
        res.set_content(std::string(a.data), std::string(a.mime).c_str());
        return true;
      }
    }
    return false;
  }

  void browse(const std::string& path, httplib::Response& res) {
    json entries = json::array();
    if (path.empty()) {
      for (const auto& r : roots.roots())
        entries.push_back({{"name", r.string()},
                           {"path", r.string()},
                           {"dir", true},
                           {"model", looks_like_model(r)}});
      if (roots.hf_cache()) {
        entries.push_back({{"name", "Hugging Face cache"},
                           {"path", roots.hf_cache()->string()},
                           {"dir", true},
                           {"model", false},
                           {"hf_cache", true}});
      }
      send_json(res, json{{"path", ""}, {"parent", nullptr}, {"entries", entries}});
      return;
    }
    const auto dir = roots.readable(path);
    std::error_code ec;
    if (!dir || !fs::is_directory(*dir, ec)) {
      send_error(res, 403, "'" + path + "' is not a folder under the server's roots");
      return;
    }
    constexpr std::size_t k_entries_max = 2000;
    std::vector<fs::directory_entry> list;
    for (const auto& e : fs::directory_iterator(*dir, ec)) {
      if (e.path().filename().string().front() == '.') continue;
      list.push_back(e);
      if (list.size() >= k_entries_max) break;
    }
    std::sort(list.begin(), list.end(), [](const auto& a, const auto& b) {
      return a.path().filename() < b.path().filename();
    });
    for (const auto& e : list) {
      // A symlink is listed only when its target is readable too.
      const auto target = roots.readable(e.path().string());
      if (!target) continue;
      const bool is_dir = fs::is_directory(*target, ec);
      json j = {{"name", e.path().filename().string()},
                {"path", e.path().string()},
                {"dir", is_dir},
                {"model", is_dir && looks_like_model(*target)}};
      if (!is_dir) j["size"] = fs::file_size(*target, ec);
      entries.push_back(std::move(j));
    }
    json parent = nullptr;
    for (const auto& r : roots.roots())
      if (*dir != r && is_within(*dir, r)) parent = dir->parent_path().string();
    if (roots.hf_cache() && *dir != *roots.hf_cache() && is_within(*dir, *roots.hf_cache()))
      parent = dir->parent_path().string();
    send_json(res, json{{"path", dir->string()}, {"parent", parent}, {"entries", entries}});
  }

  // Models in the HF cache as their hub ids (models--org--name -> org/name).
  json hf_models() const {
    json list = json::array();
    if (!roots.hf_cache()) return list;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(*roots.hf_cache(), ec)) {
      const std::string n = e.path().filename().string();
      if (n.rfind("models--", 0) != 0) continue;
      std::string id = n.substr(8);
      const auto sep = id.find("--");
      if (sep == std::string::npos) continue;
      id.replace(sep, 2, "/");
      list.push_back(id);
    }
    std::sort(list.begin(), list.end());
    return list;
  }

  void plan_route(const json& body, httplib::Response& res) {
    const std::string yaml = string_field(body, "yaml");
    const Config config = Config::parse(yaml, "<web>");
    if (auto problems = check_config_references(yaml, "<web>", roots); !problems.empty()) {
      throw Error(std::move(problems));
    }
    MergeOptions merge;
    for (const auto& [k, v] : options_field(body))
      set_option(merge, k, v);
    merge.plan.base_dir = roots.base().string();
    const Plan p = plan(config, merge.plan);
    send_json(res, json{{"ok", true},
                        {"describe", p.describe(merge.run)},
                        {"tensors", p.tensors().size()},
                        {"layers", p.output_layers()},
                        {"output_bytes", p.output_bytes()},
                        {"memory_estimate", p.memory_estimate(merge.run)},
                        {"notes", p.notes()}});
  }

  // llmerge::compare() on models picked in the browser, each confined to the
  // roots like a config's models. Synchronous: the request waits for the
  // figures (it streams every shared tensor once; seconds for small models),
  // and a stopping server cancels it.
  void compare_route(const json& body, httplib::Response& res) {
    if (!body.contains("models") || !body["models"].is_array()) {
      throw Error(ErrorKind::config, "'models' must be a list of model paths");
    }
    std::vector<std::string> models;
    for (const auto& m : body["models"]) {
      if (!m.is_string()) throw Error(ErrorKind::config, "'models' must be a list of strings");
      models.push_back(m.get<std::string>());
    }
    CompareOptions co;
    co.base = string_field(body, "base");
    if (body.contains("density")) {
      if (!body["density"].is_number())
        throw Error(ErrorKind::config, "'density' must be a number");
      co.density = body["density"].get<double>();
    }
    std::vector<std::string> refs = models;
    if (!co.base.empty()) refs.push_back(co.base);
    for (const auto& ref : refs) {
      if (const auto why = refuse_reference(ref, roots)) {
        send_error(res, 403, *why);
        return;
      }
    }
    co.base_dir = roots.base().string();
    co.cancel = compare_cancel;
    const CompareResult r = compare(models, co);
    send_json(res, r.json());
  }

  void run_record(const std::string& id, httplib::Response& res) {
    const auto rec = runs.record_json(id);
    if (!rec) {
      send_error(res, 404, "no such run");
      return;
    }
    json j = json::parse(*rec, nullptr, false);
    if (j.is_discarded()) {
      send_error(res, 500, "the run's record is not JSON");
      return;
    }
    // The model card of a finished run, read through the same confinement.
    if (j.value("outcome", "") == "done") {
      const auto card = roots.readable((fs::path(j.value("output", "")) / "README.md").string());
      std::error_code ec;
      if (card && fs::is_regular_file(*card, ec) && fs::file_size(*card, ec) < (1u << 20)) {
        std::ifstream in(*card, std::ios::binary);
        std::ostringstream text;
        text << in.rdbuf();
        j["model_card"] = text.str();
      }
    }
    send_json(res, j);
  }

  void events(const std::string& id, httplib::Response& res) {
    struct Cursor {
      std::size_t log = 0;
      std::uint64_t progress = 0;
      bool done = false;
    };
    auto cursor = std::make_shared<Cursor>();
    if (!runs.updates(id, 0, 0, std::chrono::milliseconds(0))) {
      send_error(res, 404, "no such running merge (see /api/runs/<id> for finished ones)");
      return;
    }
    res.set_header("Cache-Control", "no-store");
    res.set_chunked_content_provider(
        "text/event-stream", [this, id, cursor](std::size_t, httplib::DataSink& sink) {
          if (stopping || cursor->done) {
            sink.done();
            return true;
          }
          const auto u = runs.updates(id, cursor->log, cursor->progress, std::chrono::seconds(1));
          if (!u) {
            sink.done();
            return true;
          }
          cursor->log = u->log_next;
          cursor->progress = u->progress_seq;
          // A comment line keeps proxies and the browser from timing out.
          if (u->events.empty() && !sink.write(": idle\n\n", 8)) return false;
          for (const auto& e : u->events) {
            if (!sink.write(e.data(), e.size())) return false;
          }
          if (u->finished) cursor->done = true;
          return true;
        });
  }
};

WebServer::WebServer(ServeOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  Impl& s = *impl_;
  s.http.set_payload_max_length(s.options.request_bytes_max);
  s.http.set_read_timeout(10, 0);
  s.http.set_keep_alive_max_count(100);
  // Each event stream holds a worker while it is open.
  s.http.new_task_queue = [] { return new httplib::ThreadPool(16); };
  s.http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    return impl_->check(req, res);
  });
  s.http.set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("X-Frame-Options", "DENY");
    res.set_header("Referrer-Policy", "no-referrer");
    res.set_header("Content-Security-Policy",
                   "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                   "frame-ancestors 'none'; form-action 'none'; base-uri 'none'");
    if (!res.has_header("Cache-Control")) res.set_header("Cache-Control", "no-store");
  });
  s.routes();
}

WebServer::~WebServer() {
  stop();
}

int WebServer::bind() {
  Impl& s = *impl_;
  if (s.options.port == 0) {
    s.port = s.http.bind_to_any_port(s.options.host);
    if (s.port <= 0) throw Error(ErrorKind::io, "cannot listen on " + s.options.host);
  } else {
    if (!s.http.bind_to_port(s.options.host, s.options.port)) {
      throw Error(ErrorKind::io, "cannot listen on " + s.options.host + ":" +
                                     std::to_string(s.options.port) + " (in use? try --port 0)");
    }
    s.port = s.options.port;
  }
  s.cookie_name = "llmerge-token-" + std::to_string(s.port);
  s.host_check = std::make_unique<HostCheck>(s.options.host, s.port);
  return s.port;
}

void WebServer::serve() {
  impl_->http.listen_after_bind();
}

void WebServer::stop() {
  impl_->stopping = true;
  impl_->compare_cancel.cancel();
  impl_->http.stop();
}

std::string WebServer::url() const {
  std::string host = impl_->options.host;
  if (host == "0.0.0.0" || host == "::") host = "127.0.0.1";
  if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(impl_->port) + "/?token=" + impl_->token;
}

const std::string& WebServer::token() const {
  return impl_->token;
}

}  // namespace llmerge::server
