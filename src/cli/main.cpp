// llmerge: merge large language models. Entry point and error boundary.
#include <unistd.h>
#include <csignal>
#include <cstdio>

#include <algorithm>
#include <vector>

#include <fmt/core.h>

#include "command.h"
#include "llmerge/llmerge.h"
#include "llmerge/text.h"
#include "parse_errors.h"
#include "signals.h"

namespace llmerge::cli {

namespace {

std::vector<Command>& command_table() {
  static std::vector<Command> table;
  return table;
}

}  // namespace

bool register_command(Command command) {
  command_table().push_back(std::move(command));
  return true;
}

const CancelToken& run_cancel_token() {
  static const CancelToken token;
  return token;
}

bool stderr_is_tty() {
  return isatty(STDERR_FILENO) != 0;
}

}  // namespace llmerge::cli

int main(int argc, char** argv) {
  using namespace llmerge;
  cli::ensure_standard_fds();
  cli::install_signal_handlers();  // cli/signals.h: which signals, which exit codes

  CLI::App app{"llmerge: merge large language models, natively (mergekit YAML compatible)"};
  app.set_version_flag("--version", std::string("llmerge ") + version());
  app.require_subcommand(1);

  auto& table = cli::command_table();
  std::sort(table.begin(), table.end(),
            [](const cli::Command& a, const cli::Command& b) { return a.order < b.order; });
  std::function<int()> action;
  for (auto& command : table) {
    CLI::App* sub = app.add_subcommand(command.name, command.help);
    auto run = command.setup(*sub);
    sub->callback([&action, run] { action = run; });
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli::report_parse_error(app, e, argc, argv);
  }
  try {
    const int rc = action ? action() : 0;
    // Buffered stdout is written here; its reader may have gone (SIGPIPE).
    if (std::fflush(stdout) != 0 && cli::received_signal() != 0) {
      return cli::interrupted_exit_code();
    }
    return rc;
  } catch (const Error& e) {
    cli::print_best_effort(stderr, fmt::format("llmerge: error: {}\n", terminal_safe(e.what())));
    return e.kind() == ErrorKind::interrupted ? cli::interrupted_exit_code()
                                              : exit_code_for(e.kind());
  } catch (const std::exception& e) {
    // A write that failed after SIGPIPE (stdout's reader went away) is the signal's doing.
    if (cli::received_signal() != 0) return cli::interrupted_exit_code();
    cli::print_best_effort(stderr,
                           fmt::format("llmerge: internal error: {}\n", terminal_safe(e.what())));
    return 1;
  }
}
