// llmerge: merge large language models. Entry point and error boundary.
#include <unistd.h>
#include <csignal>
#include <cstdio>

#include <algorithm>
#include <vector>

#include <fmt/core.h>

#include "command.h"
#include "llmerge/llmerge.h"
#include "parse_errors.h"

namespace llmerge::cli {

namespace {

std::vector<Command>& command_table() {
  static std::vector<Command> table;
  return table;
}

// The flag of this process's run, set before the handlers are installed.
std::atomic<bool>* g_cancel_flag = nullptr;

extern "C" void on_signal(int signum) {
  if (g_cancel_flag->load(std::memory_order_relaxed)) {
    // Second signal: the user insists. Default action, immediately.
    std::signal(signum, SIG_DFL);
    std::raise(signum);
    return;
  }
  g_cancel_flag->store(true, std::memory_order_relaxed);
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
  cli::g_cancel_flag = cli::run_cancel_token().flag();
  std::signal(SIGINT, cli::on_signal);
  std::signal(SIGTERM, cli::on_signal);
  // Past a file size limit (ulimit -f) a write should fail with EFBIG, which
  // the writer reports and cleans up after, rather than kill the process.
  std::signal(SIGXFSZ, SIG_IGN);

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
    return action ? action() : 0;
  } catch (const Error& e) {
    fmt::print(stderr, "llmerge: error: {}\n", e.what());
    return exit_code_for(e.kind());
  } catch (const std::exception& e) {
    fmt::print(stderr, "llmerge: internal error: {}\n", e.what());
    return 1;
  }
}
