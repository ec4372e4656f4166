#include "runs.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "config_refs.h"
#include "llmerge/llmerge.h"

namespace llmerge::server {

namespace fs = std::filesystem;
using nlohmann::json;

// Messages and paths need not be UTF-8 (a shard named in Latin-1): such bytes
// are written as U+FFFD, where json::dump() would throw.
std::string json_text(const json& j, int indent = -1) {
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

std::string sse_event(const std::string& event, const json& data) {
  // json_text() never contains a raw newline, so one data: line holds it.
  return "event: " + event + "\ndata: " + json_text(data) + "\n\n";
}

struct RunManager::State {
  std::string id;
  RunRequest request;
  fs::path output;
  std::string created;  // ISO 8601 UTC
  CancelToken cancel;
  std::thread thread;

  // Guarded by RunManager::mu_.
  std::vector<std::string> log;
  std::string progress;  // the latest snapshot, framed
  std::uint64_t progress_seq = 0;
  bool finished = false;
  std::string outcome = "running";  // running, done, error, cancelled
  json result;                      // done: the RunResult; error: problems_json
  std::condition_variable changed;
};

namespace {

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Writes `text` to `path` through a temporary sibling and a rename, so a
// reader (or a crash) never sees half a record.
void write_atomically(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) return;  // the history is best effort: a full disk must not stop the server
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
}

bool valid_id(const std::string& id) {
  return !id.empty() && id.size() < 64 &&
         std::all_of(id.begin(), id.end(), [](char c) { return std::isalnum(c) || c == '-'; });
}

}  // namespace

double measure_disk_floor(const fs::path& dir) {
  constexpr std::size_t k_block = 1 << 20, k_blocks = 32;
  const fs::path scratch = dir / (".llmerge-disk-floor-" + std::to_string(::getpid()));
  const int fd = ::open(scratch.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return 0;
  // Not zeros: a compressing or deduplicating file system would flatter them.
  std::vector<unsigned char> block(k_block);
  std::uint32_t x = 2463534242u;
  for (auto& b : block) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;  // xorshift32
    b = static_cast<unsigned char>(x);
  }
  const auto start = std::chrono::steady_clock::now();
  bool ok = true;
  for (std::size_t i = 0; i < k_blocks && ok; ++i) {
    block[0] = static_cast<unsigned char>(i);
    ok = ::write(fd, block.data(), block.size()) == static_cast<ssize_t>(block.size());
  }
  ok = ok && ::fsync(fd) == 0;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ::close(fd);
  ::unlink(scratch.c_str());
  return ok && s > 0 ? static_cast<double>(k_block * k_blocks) / s : 0;
}

std::uint64_t resident_bytes() {
#ifdef __linux__
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  if (statm >> size >> resident) {
    return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  }
#endif
  // Elsewhere the peak, which getrusage gives in bytes on macOS.
  rusage usage{};
  if (::getrusage(RUSAGE_SELF, &usage) != 0) return 0;
#ifdef __APPLE__
  return static_cast<std::uint64_t>(usage.ru_maxrss);
#else
  return static_cast<std::uint64_t>(usage.ru_maxrss) * 1024;
#endif
}

RunManager::RunManager(const Roots& roots, fs::path state_dir)
    : roots_(roots), runs_dir_(std::move(state_dir) / "runs") {
  std::error_code ec;
  fs::create_directories(runs_dir_, ec);
  if (ec) {
    throw Error(ErrorKind::io,
                "cannot create the state folder " + runs_dir_.string() + ": " + ec.message());
  }
}

RunManager::~RunManager() {
  std::vector<std::shared_ptr<State>> all;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, s] : runs_)
      all.push_back(s);
  }
  for (auto& s : all) {
    s->cancel.cancel();
    if (s->thread.joinable()) s->thread.join();
  }
}

void RunManager::reap_finished() {
  for (auto& [id, s] : runs_) {
    if (s->finished && s->thread.joinable()) s->thread.join();
  }
}

std::string RunManager::start(const RunRequest& request) {
  const auto out = roots_.writable(request.output);
  if (!out) {
    throw Error(ErrorKind::config, "output '" + request.output +
                                       "' is not a new folder inside one of the server's roots");
  }
  MergeOptions check;
  for (const auto& [name, value] : request.options)
    set_option(check, name, value);  // throws Error(config) naming the option

  auto state = std::make_shared<State>();
  state->request = request;
  state->output = *out;
  state->created = utc_now();
  {
    std::lock_guard lock(mu_);
    reap_finished();
    if (busy_outputs_.count(out->string())) {
      throw Busy("a merge into " + out->string() + " is already running");
    }
    busy_outputs_.insert(out->string());
    state->id = state->created.substr(0, 10) + "-" +
                std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count()) +
                "-" + std::to_string(++counter_);
    runs_[state->id] = state;
  }
  write_record(*state);
  state->thread = std::thread([this, state] { execute(state); });
  return state->id;
}

bool RunManager::cancel(const std::string& id) {
  std::lock_guard lock(mu_);
  const auto it = runs_.find(id);
  if (it == runs_.end()) return false;
  it->second->cancel.cancel();
  return true;
}

void RunManager::execute(const std::shared_ptr<State>& s) {
  const auto emit = [&](const std::string& event, const json& data) {
    std::lock_guard lock(mu_);
    s->log.push_back(sse_event(event, data));
    s->changed.notify_all();
  };
  std::string outcome = "error";
  json result;
  try {
    emit("status", {{"status", "planning"}});
    const Config config = Config::parse(s->request.yaml, "<web>");
    if (auto problems = check_config_references(s->request.yaml, "<web>", roots_);
        !problems.empty()) {
      throw Error(std::move(problems));
    }
    MergeOptions options;
    for (const auto& [name, value] : s->request.options)
      set_option(options, name, value);
    options.plan.base_dir = roots_.base().string();
    const Plan plan = llmerge::plan(config, options.plan, s->cancel);
    double floor = 0;
    {
      const fs::path parent = s->output.parent_path();
      std::unique_lock lock(mu_);
      const auto it = disk_floor_.find(parent.string());
      if (it != disk_floor_.end()) {
        floor = it->second;
      } else {
        lock.unlock();
        floor = measure_disk_floor(parent);
        lock.lock();
        disk_floor_[parent.string()] = floor;
      }
    }
    const auto tensors = plan.tensors();
    const std::uint64_t estimate = plan.memory_estimate(options.run);
    emit("plan", {{"tensors", tensors.size()},
                  {"output_bytes", plan.output_bytes()},
                  {"layers", plan.output_layers()},
                  {"memory_estimate", estimate},
                  {"disk_floor_bps", floor},
                  {"notes", plan.notes()}});
    emit("status", {{"status", "running"}});
    RunOptions& run = options.run;
    run.cancel = s->cancel;
    run.progress_interval_s = 0.25;
    run.note = [&](const std::string& note) { emit("note", {{"note", note}}); };
    run.progress = [&](const Progress& p) {
      const double rate = p.seconds > 0 ? static_cast<double>(p.bytes_done) / p.seconds : 0;
      json j = {{"tensors_done", p.tensors_done}, {"tensors_total", p.tensors_total},
                {"bytes_done", p.bytes_done},     {"bytes_total", p.bytes_total},
                {"seconds", p.seconds},           {"bytes_per_s", rate},
                {"disk_floor_bps", floor},        {"rss_bytes", resident_bytes()},
                {"memory_estimate", estimate}};
      j["eta_s"] = rate > 0 && p.bytes_total >= p.bytes_done
                       ? json(static_cast<double>(p.bytes_total - p.bytes_done) / rate)
                       : json(nullptr);
      // Workers take tensors in plan order: the next one not yet done is
      // the one being written (with several threads, the oldest in flight).
      j["current_tensor"] = p.tensors_done < tensors.size() ? tensors[p.tensors_done].name : "";
      std::lock_guard lock(mu_);
      s->progress = sse_event("progress", j);
      ++s->progress_seq;
      s->changed.notify_all();
    };
    const RunResult r = llmerge::run(plan, s->output.string(), run);
    outcome = "done";
    result = {{"output", r.output}, {"tensors", r.tensors}, {"bytes", r.bytes},
              {"layers", r.layers}, {"seconds", r.seconds}, {"memory_estimate", r.memory_estimate}};
  } catch (const Error& e) {
    outcome = e.kind() == ErrorKind::interrupted ? "cancelled" : "error";
    result = json::parse(e.problems_json());
  } catch (const std::exception& e) {
    result = {{"kind", "internal"}, {"message", e.what()}, {"problems", json::array()}};
  }
  {
    std::lock_guard lock(mu_);
    s->outcome = outcome;
    s->result = result;
    // "failed", not "error": EventSource uses "error" for a lost connection.
    s->log.push_back(sse_event(outcome == "error" ? "failed" : outcome, result));
    busy_outputs_.erase(s->output.string());
  }
  write_record(*s);
  {
    std::lock_guard lock(mu_);
    s->finished = true;
    s->changed.notify_all();
  }
}

std::optional<RunManager::Update> RunManager::updates(const std::string& id, std::size_t log_from,
                                                      std::uint64_t progress_seen,
                                                      std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  const auto it = runs_.find(id);
  if (it == runs_.end()) return std::nullopt;
  State& s = *it->second;
  const auto fresh = [&] {
    return s.log.size() > log_from || s.progress_seq != progress_seen || s.finished;
  };
  s.changed.wait_for(lock, wait, fresh);
  Update u;
  // Progress first: the terminal event is always the last one sent.
  if (s.progress_seq != progress_seen && !s.progress.empty()) u.events.push_back(s.progress);
  for (std::size_t i = log_from; i < s.log.size(); ++i)
    u.events.push_back(s.log[i]);
  u.log_next = s.log.size();
  u.progress_seq = s.progress_seq;
  u.finished = s.finished;
  return u;
}

void RunManager::write_record(const State& s) const {
  json j;
  {
    std::lock_guard lock(mu_);
    j = {{"id", s.id},
         {"created", s.created},
         {"yaml", s.request.yaml},
         {"output", s.output.string()},
         {"output_as_given", s.request.output},
         {"options", s.request.options},
         {"outcome", s.outcome},
         {"result", s.result}};
  }
  write_atomically(runs_dir_ / (s.id + ".json"), json_text(j, 2));
}

std::string RunManager::history_json() const {
  json list = json::array();
  std::error_code ec;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(runs_dir_, ec)) {
    if (e.path().extension() == ".json") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end(), std::greater<>());
  for (const auto& f : files) {
    if (const auto r = record_json(f.stem().string())) {
      json j = json::parse(*r, nullptr, false);
      if (j.is_discarded()) continue;
      // A run whose server stopped mid-merge never wrote its outcome.
      if (j.value("outcome", "") == "running") {
        std::lock_guard lock(mu_);
        if (!runs_.count(j.value("id", ""))) j["outcome"] = "interrupted";
      }
      j.erase("yaml");
      list.push_back(std::move(j));
    }
  }
  return json_text(list);
}

std::optional<std::string> RunManager::record_json(const std::string& id) const {
  if (!valid_id(id)) return std::nullopt;
  std::ifstream in(runs_dir_ / (id + ".json"), std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::optional<RunRequest> RunManager::request_of(const std::string& id) const {
  const auto r = record_json(id);
  if (!r) return std::nullopt;
  const json j = json::parse(*r, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  RunRequest req;
  req.yaml = j.value("yaml", "");
  req.output = j.value("output", "");
  if (j.contains("options") && j["options"].is_object()) {
    for (const auto& [k, v] : j["options"].items()) {
      if (v.is_string()) req.options[k] = v.get<std::string>();
    }
  }
  return req;
}

}  // namespace llmerge::server
