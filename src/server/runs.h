// Merges started from the browser: one thread each, one merge at a time per
// output folder, followed over server-sent events, cancellable, and recorded
// in the server's state folder (runs/<id>.json) so any run can be re-run.
//
// What a client streams (GET /api/runs/<id>/events) is the run's log (status
// changes, the plan's figures, notes, then exactly one of done / error /
// cancelled), with the latest progress snapshot interleaved: memory stays
// bounded however long the merge runs.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "llmerge/cancel.h"
#include "roots.h"

namespace llmerge::server {

struct RunRequest {
  std::string yaml;
  std::string output;                          // as the user typed it
  std::map<std::string, std::string> options;  // option_table() names -> text values
};

// One server-sent event, already framed ("event: ...\ndata: ...\n\n").
std::string sse_event(const std::string& event, const std::string& json_data);

class RunManager {
 public:
  RunManager(const Roots& roots, std::filesystem::path state_dir);
  ~RunManager();  // cancels every run and joins its thread
  RunManager(const RunManager&) = delete;
  RunManager& operator=(const RunManager&) = delete;

  // Checks the output path and options and starts the merge; returns its id.
  // Throws Error(config) for an output outside the roots or a bad option, and
  // Busy when another merge is writing the same output.
  std::string start(const RunRequest& request);
  struct Busy : std::runtime_error {
    using std::runtime_error::runtime_error;
  };

  bool cancel(const std::string& id);

  // What a stream has not sent yet: log entries from `log_from` and the
  // progress snapshot when newer than `progress_seen`. Waits up to `wait` for
  // something new. nullopt for an unknown id.
  struct Update {
    std::vector<std::string> events;  // framed SSE events
    std::size_t log_next = 0;
    std::uint64_t progress_seq = 0;
    bool finished = false;  // the terminal event is among `events` (or was sent before)
  };
  std::optional<Update> updates(const std::string& id, std::size_t log_from,
                                std::uint64_t progress_seen, std::chrono::milliseconds wait);

  // The history (newest first) and one record, as JSON, from the state folder.
  std::string history_json() const;
  std::optional<std::string> record_json(const std::string& id) const;
  std::optional<RunRequest> request_of(const std::string& id) const;

  const Roots& roots() const { return roots_; }

 private:
  struct State;
  void execute(const std::shared_ptr<State>& state);
  void write_record(const State& state) const;
  void reap_finished();  // joins threads of finished runs (under mu_)

  const Roots& roots_;
  std::filesystem::path runs_dir_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<State>> runs_;
  std::set<std::string> busy_outputs_;
  std::map<std::string, double> disk_floor_;  // bytes/s by output parent
  std::uint64_t counter_ = 0;
};

// Write throughput of the folder `dir` (bytes/s): 32 MiB written in 1 MiB
// blocks and fsync'd to a scratch file there, then removed. The floor a merge
// into that folder cannot beat; 0 when it cannot be measured.
double measure_disk_floor(const std::filesystem::path& dir);

// This process's resident memory in bytes (0 when unknown).
std::uint64_t resident_bytes();

}  // namespace llmerge::server
