// Cooperative cancellation. The CLI's SIGINT/SIGTERM handler calls
// request_cancel(); long loops (the executor, the synth writer) call
// throw_if_cancelled() between chunks, so a merge stops within a fraction of a
// second and unwinds normally: destructors remove temporary output.
#pragma once

#include <atomic>

namespace llmerge {

void request_cancel() noexcept;  // async-signal-safe
bool cancel_requested() noexcept;
void reset_cancel() noexcept;  // for tests
// Throws Error(interrupted) if a cancel was requested.
void throw_if_cancelled();

}  // namespace llmerge
