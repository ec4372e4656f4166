// How the llmerge process meets its surroundings: signals, the standard file
// descriptors, and a terminal that may be gone. docs/RELIABILITY.md, classes 15-16.
//
// Signals (exit code 128 + the signal's number, as shells report it):
//   SIGINT (130), SIGHUP (129, the terminal closed), SIGPIPE (141, the reader
//   of our output went away) and SIGTERM (143) request cancellation: long loops
//   stop at their next check and unwind, so the temporary output and the lock
//   are removed. A second SIGINT, SIGHUP or SIGPIPE does not cut that cleanup
//   short (it only says that llmerge is stopping).
//   SIGTERM always ends the process: if the cleanup has not finished
//   k_term_grace_s seconds after it (say, a blocking open of a FIFO), or on a
//   second SIGTERM, the process exits at once with 143. What that leaves
//   behind, the next run for the same output removes (class 14).
//   SIGXFSZ is ignored, so a write past `ulimit -f` fails with EFBIG instead.
#pragma once

#include <cstdio>
#include <string_view>

namespace llmerge::cli {

inline constexpr unsigned k_term_grace_s = 3;

// Opens /dev/null on any of fds 0, 1, 2 that is closed, as git does: else the
// first file llmerge opens would become "stderr" and collect its messages.
void ensure_standard_fds() noexcept;

void install_signal_handlers() noexcept;

// The first signal that asked us to stop, or 0.
int received_signal() noexcept;
// The exit code of an interrupted run: 128 + received_signal(), 130 if none.
int interrupted_exit_code() noexcept;

// Writes to `out`, ignoring failure (stderr on a full disk or a closed pipe):
// messages and progress are best effort and never end the process.
void print_best_effort(std::FILE* out, std::string_view text) noexcept;

}  // namespace llmerge::cli
