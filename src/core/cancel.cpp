#include "core/cancel.h"

#include "core/error.h"

namespace llmerge {

namespace {
std::atomic<bool> g_cancel{false};
static_assert(std::atomic<bool>::is_always_lock_free, "needed in a signal handler");
}  // namespace

void request_cancel() noexcept {
  g_cancel.store(true, std::memory_order_relaxed);
}
bool cancel_requested() noexcept {
  return g_cancel.load(std::memory_order_relaxed);
}
void reset_cancel() noexcept {
  g_cancel.store(false, std::memory_order_relaxed);
}

void throw_if_cancelled() {
  if (cancel_requested()) throw Error(ErrorKind::interrupted, "interrupted; no output was written");
}

}  // namespace llmerge
