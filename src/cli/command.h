// Subcommands register themselves here; main.cpp builds the CLI from the table.
// The CLI is the only place that turns an llmerge::Error into an exit code.
#pragma once

#include <functional>
#include <string>

#include <CLI/CLI.hpp>

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

}  // namespace llmerge::cli
