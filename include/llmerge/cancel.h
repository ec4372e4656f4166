// Per-run cancellation.
//
// A CancelToken is a shared flag: copies refer to the same flag. Give one to
// a run (RunOptions::cancel, or the planning calls); calling cancel() from any
// thread, or from a signal handler, makes that run stop at its next check
// (between chunks, and between tensors while planning: well under a second)
// and throw Error(interrupted) after removing its temporary output. Other runs
// in the same process, with other tokens, are not affected, and a run started
// after a cancelled one works normally.
#pragma once

#include <atomic>
#include <memory>

namespace llmerge {

class CancelToken {
 public:
  CancelToken() : flag_(std::make_shared<std::atomic<bool>>(false)) {}

  // Async-signal-safe (a lock-free atomic store): a signal handler may call it.
  void cancel() const noexcept { flag_->store(true, std::memory_order_relaxed); }
  bool cancelled() const noexcept { return flag_->load(std::memory_order_relaxed); }

  // The flag itself, for a signal handler that must not touch shared_ptr.
  std::atomic<bool>* flag() const noexcept { return flag_.get(); }

 private:
  static_assert(std::atomic<bool>::is_always_lock_free, "cancel() is called from signal handlers");
  std::shared_ptr<std::atomic<bool>> flag_;
};

}  // namespace llmerge
