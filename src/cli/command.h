// Subcommands register themselves here; main.cpp builds the CLI from the table.
// The CLI is the only place that turns an llmerge::Error into an exit code.
// It sees only the public API (llmerge/llmerge.h).
#pragma once

#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "llmerge/cancel.h"

namespace llmerge::cli {

struct Command {
  std::string name;
  std::string help;
  int order = 0;  // position in --help
  // Adds the subcommand's options to `app` and returns the action that runs
  // it (called after parsing); the action returns the exit code.
  std::function<std::function<int()>(CLI::App& app)> setup;
};

// Call from a namespace-scope initializer in the subcommand's file.
bool register_command(Command command);

// True when stderr is a terminal (progress bars) -- shared by subcommands.
bool stderr_is_tty();

// The token of this process's run: SIGINT and SIGTERM cancel it.
const CancelToken& run_cancel_token();

}  // namespace llmerge::cli
