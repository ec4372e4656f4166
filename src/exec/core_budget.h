// The process's worker slots, shared by every run in it.
//
// Each run starts the worker threads it was asked for, but a worker holds one
// of the process's slots (one per core) while it computes a tensor. Two runs in
// parallel threads therefore share the cores instead of oversubscribing them;
// a run alone uses them all. Which thread computes a tensor never changes the
// bytes (one tensor is always computed by one thread, in chunk order).
#pragma once

#include <condition_variable>
#include <mutex>

namespace llmerge {

class CoreBudget {
 public:
  explicit CoreBudget(int slots);
  // The process-wide budget: one slot per hardware thread.
  static CoreBudget& process();

  void acquire();
  void release();

 private:
  std::mutex mutex_;
  std::condition_variable available_;
  int free_;
};

// Holds one slot for its lifetime.
class CoreSlot {
 public:
  explicit CoreSlot(CoreBudget& budget) : budget_(budget) { budget_.acquire(); }
  ~CoreSlot() { budget_.release(); }
  CoreSlot(const CoreSlot&) = delete;
  CoreSlot& operator=(const CoreSlot&) = delete;

 private:
  CoreBudget& budget_;
};

}  // namespace llmerge
