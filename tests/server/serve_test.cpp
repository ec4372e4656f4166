// `llmerge serve` over loopback: the security rules (docs/serve.md,
// docs/RELIABILITY.md rows 90-97) and the API a browser uses. Every wait is
// bounded: a stream read stops at a deadline, not at "done" alone.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "llmerge/synth.h"
#include "server/server.h"
#include "test_util.h"

namespace fs = std::filesystem;
using llmerge::testing::TempDir;
using llmerge::testing::write_text;
using nlohmann::json;

namespace {

constexpr const char* k_token = "0123456789abcdef0123456789abcdef";

class Serve : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.path() / "root";
    fs::create_directories(root_);
    fs::create_directories(tmp_.path() / "outside");
    start();
  }
  void TearDown() override { stop(); }

  void start() {
    llmerge::server::ServeOptions o;
    o.roots = {root_.string()};
    o.port = 0;
    o.token = k_token;
    o.state_dir = (tmp_.path() / "state").string();
    o.hf_cache = "";
    server_ = std::make_unique<llmerge::server::WebServer>(o);
    port_ = server_->bind();
    thread_ = std::thread([this] { server_->serve(); });
  }
  void stop() {
    if (!server_) return;
    server_->stop();
    thread_.join();
    server_.reset();
  }

  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30, 0);
    c.set_connection_timeout(5, 0);
    return c;
  }
  static httplib::Headers auth() { return {{"Authorization", std::string("token ") + k_token}}; }

  httplib::Result get(const std::string& path) { return client().Get(path.c_str(), auth()); }
  httplib::Result post(const std::string& path, const json& body) {
    return client().Post(path.c_str(), auth(), body.dump(), "application/json");
  }

  void synth_model(const std::string& name, std::uint64_t seed, int layers = 2, int hidden = 64,
                   int vocab = 128) {
    llmerge::SynthSpec spec;
    spec.layers = layers;
    spec.hidden = hidden;
    spec.intermediate = hidden * 2;
    spec.vocab = vocab;
    spec.seed = seed;
    llmerge::synth((root_ / name).string(), spec);
  }

  // Reads a run's event stream until its terminal event or the deadline;
  // returns the event names in order.
  std::vector<std::pair<std::string, json>> events(
      const std::string& id, const std::function<void(const std::string&, const json&)>& on = {}) {
    std::vector<std::pair<std::string, json>> out;
    std::string buffer;
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::seconds(60 * llmerge::testing::k_sanitizer_slowdown);
    auto c = client();
    c.Get(("/api/runs/" + id + "/events").c_str(), auth(), [&](const char* data, size_t n) {
      buffer.append(data, n);
      for (std::size_t end; (end = buffer.find("\n\n")) != std::string::npos;) {
        const std::string block = buffer.substr(0, end);
        buffer.erase(0, end + 2);
        if (block.rfind("event: ", 0) != 0) continue;  // a keep-alive comment
        const auto nl = block.find('\n');
        const std::string name = block.substr(7, nl - 7);
        const json data_json = json::parse(block.substr(nl + 7));  // "\ndata: "
        out.emplace_back(name, data_json);
        if (on) on(name, data_json);
      }
      return std::chrono::steady_clock::now() < deadline;
    });
    return out;
  }

  TempDir tmp_;
  fs::path root_;
  int port_ = 0;
  std::unique_ptr<llmerge::server::WebServer> server_;
  std::thread thread_;
};

std::string linear_yaml(const std::string& a, const std::string& b) {
  return "merge_method: linear\nmodels:\n  - model: " + a +
         "\n    parameters:\n      weight: 0.5\n" + "  - model: " + b +
         "\n    parameters:\n      weight: 0.5\ndtype: float32\n";
}

// Everything besides `keep` in `dir` (to see what a failed run left).
std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_F(Serve, EveryRequestNeedsTheToken) {
  auto c = client();
  for (const char* path : {"/", "/api/info", "/api/methods", "/static/js/app.js", "/api/runs"}) {
    const auto r = c.Get(path);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 403) << path;
  }
  EXPECT_EQ(c.Get("/api/info", {{"Authorization", "token wrong"}})->status, 403);
  EXPECT_EQ(c.Get("/api/info?token=0123456789abcdef0123456789abcdee")->status, 403);
  // The printed URL's token sets a cookie that works on its own afterwards.
  const auto first = c.Get((std::string("/api/info?token=") + k_token).c_str());
  ASSERT_EQ(first->status, 200);
  const std::string cookie = first->get_header_value("Set-Cookie");
  EXPECT_NE(cookie.find("HttpOnly"), std::string::npos);
  EXPECT_NE(cookie.find("SameSite=Strict"), std::string::npos);
  const std::string pair = cookie.substr(0, cookie.find(';'));
  EXPECT_EQ(c.Get("/api/info", {{"Cookie", pair}})->status, 200);
  EXPECT_EQ(c.Get("/api/info", {{"Cookie", pair + "x"}})->status, 403);
  // The page itself drops the token from the address bar.
  const auto page = c.Get((std::string("/?token=") + k_token).c_str());
  EXPECT_EQ(page->status, 303);
  EXPECT_EQ(c.Get("/", {{"Cookie", pair}})->status, 200);
}

TEST_F(Serve, AForeignHostHeaderIsRefused) {
  auto c = client();
  // What a DNS-rebinding page sends: its own name, resolved to 127.0.0.1.
  httplib::Headers h = auth();
  h.emplace("Host", "evil.example:" + std::to_string(port_));
  EXPECT_EQ(c.Get("/api/info", h)->status, 403);
  httplib::Headers other_port = auth();
  other_port.emplace("Host", "127.0.0.1:1");
  EXPECT_EQ(c.Get("/api/info", other_port)->status, 403);
  httplib::Headers local = auth();
  local.emplace("Host", "localhost:" + std::to_string(port_));
  EXPECT_EQ(c.Get("/api/info", local)->status, 200);
}

TEST_F(Serve, CrossSiteRequestsAreRefused) {
  auto c = client();
  const std::string body = R"({"yaml":"merge_method: linear\n"})";
  httplib::Headers evil = auth();
  evil.emplace("Origin", "http://evil.example");
  EXPECT_EQ(c.Post("/api/plan", evil, body, "application/json")->status, 403);
  httplib::Headers fetch_site = auth();
  fetch_site.emplace("Sec-Fetch-Site", "cross-site");
  EXPECT_EQ(c.Get("/api/info", fetch_site)->status, 403);
  // A form post (no preflight) cannot carry JSON: a text body is refused.
  EXPECT_EQ(c.Post("/api/plan", auth(), body, "text/plain")->status, 415);
  EXPECT_EQ(c.Delete("/api/runs", auth())->status, 415);
  httplib::Headers same = auth();
  same.emplace("Origin", "http://127.0.0.1:" + std::to_string(port_));
  EXPECT_EQ(c.Post("/api/plan", same, body, "application/json")->status,
            400);  // planned: bad config
}

TEST_F(Serve, RequestBodiesAreCapped) {
  const std::string big(2 << 20, 'x');
  const auto r = post("/api/plan", json{{"yaml", big}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
}

TEST_F(Serve, NothingOutsideTheRootsCanBeReadEvenThroughSymlinks) {
  synth_model("a", 1);
  write_text(tmp_.path() / "outside" / "secret.txt", "secret");
  fs::create_directory_symlink(tmp_.path() / "outside", root_ / "link-out");
  fs::create_directory_symlink(root_ / "a", root_ / "link-in");
  // Browsing: the root lists its own folders, not a link that leaves it.
  const auto top = json::parse(get("/api/browse?path=" + root_.string())->body);
  std::vector<std::string> names;
  for (const auto& e : top["entries"])
    names.push_back(e["name"]);
  EXPECT_NE(std::find(names.begin(), names.end(), "a"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "link-in"), names.end());
  EXPECT_EQ(std::find(names.begin(), names.end(), "link-out"), names.end());
  for (const std::string& path :
       {(root_ / "link-out").string(), (root_ / ".." / "outside").string(),
        (tmp_.path() / "outside").string(), std::string("../outside"), std::string("/")}) {
    const auto r = get("/api/browse?path=" + httplib::detail::encode_query_param(path));
    EXPECT_EQ(r->status, 403) << path;
    EXPECT_EQ(r->body.find("secret.txt"), std::string::npos) << path;
  }
  // Inspect follows the same rule; a symlink inside the roots is fine.
  synth_model("../outside/m", 2);
  fs::create_directory_symlink(tmp_.path() / "outside" / "m", root_ / "model-link");
  EXPECT_EQ(get("/api/inspect?model=" + (root_ / "model-link").string())->status, 403);
  EXPECT_EQ(get("/api/inspect?model=../outside/m")->status, 403);
  EXPECT_EQ(get("/api/inspect?model=link-in")->status, 200);
  // Static files are the embedded ones only.
  for (const char* path : {"/static/../../etc/passwd", "/static/%2e%2e/%2e%2e/etc/passwd"}) {
    const auto r = get(path);
    ASSERT_TRUE(r);
    EXPECT_NE(r->status, 200) << path;
    EXPECT_EQ(r->body.find("root:"), std::string::npos) << path;
  }
}

TEST_F(Serve, FolderNamesThatAreNotUtf8AreListedAndInspected) {
  synth_model("caf\xe9", 1);  // Latin-1: json::dump() throws on it
  const auto r = get("/api/browse?path=" + root_.string());
  ASSERT_EQ(r->status, 200) << r->body;
  const auto top = json::parse(r->body);
  ASSERT_EQ(top["entries"].size(), 1u) << r->body;
  EXPECT_EQ(top["entries"][0]["name"], "caf\xef\xbf\xbd");
  EXPECT_EQ(get("/api/inspect?model=" + httplib::detail::encode_query_param("caf\xe9"))->status,
            200);
}

TEST_F(Serve, ConfigsAndOutputsOutsideTheRootsAreRefused) {
  synth_model("a", 1);
  synth_model("../outside/m", 2);
  fs::create_directory_symlink(tmp_.path() / "outside" / "m", root_ / "model-link");
  fs::create_directory_symlink(tmp_.path() / "outside", root_ / "out-link");
  // A model through a symlink that leaves the roots: a plan problem at its line.
  const auto r = post("/api/plan", json{{"yaml", linear_yaml("a", "model-link")}});
  ASSERT_EQ(r->status, 400);
  const json body = json::parse(r->body);
  ASSERT_EQ(body["problems"].size(), 1u) << r->body;
  EXPECT_EQ(body["problems"][0]["line"], 6);
  EXPECT_NE(body["problems"][0]["message"].get<std::string>().find("outside"), std::string::npos);
  EXPECT_EQ(post("/api/plan", json{{"yaml", linear_yaml("a", "../outside/m")}})->status, 400);
  EXPECT_EQ(
      post("/api/plan", json{{"yaml", linear_yaml("a", (tmp_.path() / "outside" / "m").string())}})
          ->status,
      400);
  // Outputs: only new folders inside a root, never through a symlink.
  for (const std::string& out :
       {(tmp_.path() / "outside" / "merged").string(), std::string("../outside/merged"),
        std::string("out-link/merged"), std::string("out-link"), root_.string(), std::string(""),
        std::string("missing-parent/merged")}) {
    const auto run = post("/api/runs", json{{"yaml", linear_yaml("a", "a")}, {"output", out}});
    EXPECT_EQ(run->status, 400) << out << ": " << run->body;
  }
  EXPECT_EQ(entries(tmp_.path() / "outside"), std::vector<std::string>{"m"});
}

// The seed's format names its folders under `path:`, and a `.jinja` chat
// template is a file the library reads: both are held to the roots too.
TEST_F(Serve, SeedPathsAndChatTemplateFilesOutsideTheRootsAreRefused) {
  synth_model("a", 1);
  synth_model("../outside/m", 2);
  write_text(tmp_.path() / "outside" / "t.jinja", "{{ messages }} outside the roots");
  const std::string seed =
      "models:\n  - name: a\n    path: a\n    base_model: true\n"
      "  - name: m\n    path: ../outside/m\n"
      "slices:\n  - sources:\n      - model: a\n        layer_range: [0, 1]\n"
      "      - model: m\n        layer_range: [0, 1]\n    merge_method: linear\n";
  auto r = post("/api/plan", json{{"yaml", seed}});
  ASSERT_EQ(r->status, 400) << r->body;
  json body = json::parse(r->body);
  ASSERT_EQ(body["problems"].size(), 1u) << r->body;
  EXPECT_EQ(body["problems"][0]["line"], 6) << r->body;
  const std::string templated = linear_yaml("a", "a") +
                                "chat_template: " + (tmp_.path() / "outside" / "t.jinja").string() +
                                "\n";
  r = post("/api/plan", json{{"yaml", templated}});
  ASSERT_EQ(r->status, 400) << r->body;
  body = json::parse(r->body);
  EXPECT_NE(body["problems"][0]["message"].get<std::string>().find("outside"), std::string::npos)
      << r->body;
}

TEST_F(Serve, PlanErrorsComeBackWithTheirLines) {
  synth_model("a", 1);
  synth_model("b", 2);
  const std::string yaml =
      "merge_method: ties\n"
      "base_model: a\n"
      "models:\n"
      "  - model: b\n"
      "    parameters:\n"
      "      weight: 0.5\n"
      "      density: 1.5\n"
      "dtype: float32\n";
  const auto r = post("/api/plan", json{{"yaml", yaml}});
  ASSERT_EQ(r->status, 400);
  const json body = json::parse(r->body);
  ASSERT_FALSE(body["problems"].empty()) << r->body;
  EXPECT_EQ(body["problems"][0]["line"], 7) << r->body;
  EXPECT_EQ(body["problems"][0]["file"], "<web>");
  // A YAML syntax error, too.
  const auto bad = post("/api/plan", json{{"yaml", "merge_method: linear\nmodels: [a,\n"}});
  ASSERT_EQ(bad->status, 400);
  EXPECT_GT(json::parse(bad->body)["problems"][0]["line"].get<int>(), 0) << bad->body;
  // And the fixed config plans.
  std::string fixed = yaml;
  fixed.replace(fixed.find("1.5"), 3, "0.5");
  const auto ok = post("/api/plan", json{{"yaml", fixed}});
  ASSERT_EQ(ok->status, 200) << ok->body;
  EXPECT_GT(json::parse(ok->body)["tensors"].get<int>(), 0);
}

TEST_F(Serve, TheFormsYamlRoundTripsThroughJson) {
  const auto r =
      post("/api/yaml-to-json",
           json{{"yaml", "merge_method: slerp\nparameters:\n  t: [0, 0.5, 1]\n  x: '1'\n"}});
  ASSERT_EQ(r->status, 200) << r->body;
  const json c = json::parse(r->body)["config"];
  EXPECT_EQ(c["parameters"]["t"], json({0, 0.5, 1}));
  EXPECT_EQ(c["parameters"]["x"], "1");
  // Aliases that would expand exponentially are refused, quickly.
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x]\n";
  for (char k = 'b'; k <= 'j'; ++k) {
    const std::string prev(1, static_cast<char>(k - 1));
    bomb += std::string(1, k) + ": &" + k + " [*" + prev + ", *" + prev + ", *" + prev + ", *" +
            prev + "]\n";
  }
  EXPECT_EQ(post("/api/yaml-to-json", json{{"yaml", bomb}})->status, 400);
}

TEST_F(Serve, ARunGivesItsEventsThenDoneAndIsKeptInTheHistory) {
  synth_model("a", 1);
  synth_model("b", 2);
  const auto r = post("/api/runs", json{{"yaml", linear_yaml("a", "b")}, {"output", "merged"}});
  ASSERT_EQ(r->status, 201) << r->body;
  const std::string id = json::parse(r->body)["id"];
  const auto ev = events(id);
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev.back().first, "done") << ev.back().second.dump();
  std::vector<std::string> names;
  for (const auto& [n, d] : ev)
    names.push_back(n);
  EXPECT_NE(std::find(names.begin(), names.end(), "plan"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "progress"), names.end());
  for (const auto& [n, d] : ev) {
    if (n != "progress") continue;
    EXPECT_LE(d["bytes_done"].get<double>(), d["bytes_total"].get<double>());
    EXPECT_GT(d["rss_bytes"].get<double>(), 0);
    EXPECT_TRUE(d.contains("current_tensor") && d.contains("eta_s") &&
                d.contains("disk_floor_bps"));
  }
  EXPECT_TRUE(fs::exists(root_ / "merged" / "config.json"));
  // The history has it, with its config and the model card.
  const json history = json::parse(get("/api/runs")->body);
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0]["outcome"], "done");
  const json rec = json::parse(get("/api/runs/" + id)->body);
  EXPECT_EQ(rec["yaml"], linear_yaml("a", "b"));
  EXPECT_NE(rec["model_card"].get<std::string>().find("linear"), std::string::npos);
  // The history survives a restart, and a run can be re-run from it.
  stop();
  start();
  const auto again = post("/api/runs/" + id + "/rerun", json::object());
  ASSERT_EQ(again->status, 201) << again->body;
  const auto ev2 = events(json::parse(again->body)["id"]);
  EXPECT_EQ(ev2.back().first, "done") << ev2.back().second.dump();
  EXPECT_EQ(json::parse(get("/api/runs")->body).size(), 2u);
}

TEST_F(Serve, ACancelledRunLeavesNothingBehindAndFreesItsOutput) {
  // Big enough that the first progress report comes well before the end:
  // ties with a density sorts every tensor, on one thread.
  synth_model("a", 1, 4, 512, 8192);
  synth_model("b", 2, 4, 512, 8192);
  synth_model("c", 3, 4, 512, 8192);
  const std::string yaml =
      "merge_method: ties\nbase_model: a\nmodels:\n"
      "  - model: b\n    parameters: {weight: 0.5, density: 0.3}\n"
      "  - model: c\n    parameters: {weight: 0.5, density: 0.3}\ndtype: float32\n";
  const auto before = entries(root_);
  const auto r = post("/api/runs",
                      json{{"yaml", yaml}, {"output", "merged"}, {"options", {{"threads", "1"}}}});
  ASSERT_EQ(r->status, 201) << r->body;
  const std::string id = json::parse(r->body)["id"];
  // One merge at a time per output.
  const auto second = post("/api/runs", json{{"yaml", yaml}, {"output", "merged/"}});
  EXPECT_EQ(second->status, 409) << second->body;
  bool cancelled = false;
  const auto ev = events(id, [&](const std::string& name, const json&) {
    if (!cancelled && (name == "progress" || name == "plan")) {
      cancelled = true;
      EXPECT_EQ(post("/api/runs/" + id + "/cancel", json::object())->status, 200);
    }
  });
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev.back().first, "cancelled") << ev.back().second.dump();
  EXPECT_EQ(entries(root_), before);  // no output, no temporary sibling
  EXPECT_EQ(json::parse(get("/api/runs/" + id)->body)["outcome"], "cancelled");
  // The output is free again.
  const auto next = post("/api/runs", json{{"yaml", linear_yaml("a", "b")}, {"output", "merged"}});
  ASSERT_EQ(next->status, 201) << next->body;
  EXPECT_EQ(events(json::parse(next->body)["id"]).back().first, "done");
}

TEST_F(Serve, CompareRunsOnModelsInsideTheRootsOnly) {
  synth_model("a", 1);
  synth_model("b", 2);
  synth_model("../outside/m", 3);
  fs::create_directory_symlink(tmp_.path() / "outside" / "m", root_ / "model-link");
  const auto r = post("/api/compare", json{{"models", {"a", "b"}}, {"density", 0.5}});
  ASSERT_EQ(r->status, 200) << r->body;
  const json doc = json::parse(r->body);
  EXPECT_EQ(doc["schema"], "llmerge.compare");
  ASSERT_EQ(doc["pairs"].size(), 1u);
  EXPECT_LT(doc["pairs"][0]["cosine"].get<double>(), 1.0);  // different seeds
  EXPECT_EQ(doc["layers"].size(), 2u);
  for (const json& models : {json{"a", "model-link"}, json{"a", "../outside/m"}}) {
    EXPECT_EQ(post("/api/compare", json{{"models", models}})->status, 403) << models.dump();
  }
  EXPECT_EQ(post("/api/compare", json{{"models", {"a", "b"}}, {"base", "model-link"}})->status,
            403);
  EXPECT_EQ(post("/api/compare", json{{"models", "a"}})->status, 400);
}
