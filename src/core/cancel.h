// Cooperative cancellation inside the library.
//
// A run's CancelToken (llmerge/cancel.h) is installed for the current thread
// with a CancelScope; long loops (the planner, the executor's workers, the
// synth writer) call throw_if_cancelled() between units of work, so a run
// stops within a fraction of a second and unwinds normally: destructors remove
// temporary output. There is no process-global flag: each run has its own.
#pragma once

#include "llmerge/cancel.h"

namespace llmerge {

// Installs `token` as the current thread's token for the scope's lifetime
// (nestable; the previous one is restored).
class CancelScope {
 public:
  explicit CancelScope(const CancelToken& token);
  ~CancelScope();
  CancelScope(const CancelScope&) = delete;
  CancelScope& operator=(const CancelScope&) = delete;

 private:
  const CancelToken* previous_;
};

// The current thread's token, or nullptr outside any CancelScope.
const CancelToken* current_cancel_token() noexcept;

// Throws Error(interrupted) if the current thread's token was cancelled.
void throw_if_cancelled();

}  // namespace llmerge
