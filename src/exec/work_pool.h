// A fixed set of worker threads that take items 0..count-1 off an atomic
// counter, for the executor (one item: one output tensor) and the compare
// engine (one item: one tensor of every model).
//
// Each worker holds a CoreBudget slot while it works on an item, so parallel
// runs in one process share the cores. The first error of any worker stops
// the others at their next check_stop() and is rethrown by run() after every
// thread is joined; so is an exception from the progress callback (Python's
// KeyboardInterrupt). Nothing is left running when run() returns or throws.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <string>

#include "llmerge/cancel.h"

namespace llmerge {

struct WorkPoolOptions {
  int threads = 0;     // 0: one per core
  CancelToken cancel;  // installed on every worker (CancelScope)
  // Called on the calling thread about every `progress_interval_s`, and once
  // after the last item. It may throw: the workers are stopped and joined.
  std::function<void()> progress;
  double progress_interval_s = 0.5;
  std::string activity = "the run";  // for messages: "out of memory during <activity>"
};

class WorkPool {
 public:
  // A worker's function for item i. make_worker() runs once on each worker
  // thread, so what the returned function captures (its buffers) is that
  // thread's own.
  using ItemFn = std::function<void(std::size_t)>;

  explicit WorkPool(WorkPoolOptions options) : options_(std::move(options)) {}

  // Runs every item once. Throws the first worker's error, Error(io) when a
  // thread cannot start or a worker runs out of memory.
  void run(std::size_t count, const std::function<ItemFn()>& make_worker);

  // Between chunks of an item: throws Error(interrupted) when this run was
  // cancelled or another worker failed.
  void check_stop() const;

 private:
  void work(std::size_t count, const std::function<ItemFn()>& make_worker);
  void record(std::exception_ptr e);

  WorkPoolOptions options_;
  std::atomic<std::size_t> next_{0};
  std::atomic<bool> failed_{false};
  std::mutex mutex_;
  std::condition_variable done_cv_;
  int started_ = 0;
  int running_ = 0;
  std::exception_ptr error_;
};

int default_thread_count();

}  // namespace llmerge
