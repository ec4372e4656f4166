// `llmerge moe CONFIG -o OUT`: a mixture-of-experts model from dense ones,
// with mergekit-moe's config schema (docs/moe.md).
//
// Prompt gate modes need the base model run on the prompts. That is the
// Python package's job (llmerge.moe_gates, with mlx-lm or transformers): this
// command asks the library what to compute (moe_gate_request), runs
// `python3 -m llmerge.moe_gates` on it (LLMERGE_PYTHON picks another
// interpreter), and plans with the gate file it writes. --gates FILE skips
// that step.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include <fmt/core.h>

#include "command.h"
#include "llmerge/moe.h"
#include "llmerge/text.h"
#include "run.h"
#include "signals.h"
#include "table_options.h"

extern char** environ;

namespace llmerge::cli {

namespace {

namespace fs = std::filesystem;

struct MoeCommand {
  std::string config;
  TableOptions table;
  OutputArgs output;
};

// A temporary folder removed on every exit path.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "llmerge-gates-XXXXXX").string();
    if (!::mkdtemp(t.data()))
      throw Error(ErrorKind::io,
                  fmt::format("cannot create a temporary folder: {}", std::strerror(errno)));
    path = t;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Runs argv; returns its exit status, or -1 if it could not be started.
int spawn_and_wait(const std::vector<std::string>& args, bool quiet_stderr) {
  std::vector<char*> argv;
  for (const auto& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (quiet_stderr) {
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  }
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
    if (run_cancel_token().cancelled()) ::kill(pid, SIGTERM);
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

std::string python_interpreter() {
  const char* p = std::getenv("LLMERGE_PYTHON");
  return p && *p ? p : "python3";
}

// Computes the gates with the Python helper into `dir`; returns the file.
std::string compute_gates(const MoeConfig& config, const MergeOptions& options, const fs::path& dir,
                          bool quiet) {
  const std::string request = moe_gate_request(config, options.plan);  // checks the config first
  const std::string python = python_interpreter();
  const std::string how =
      "pip install llmerge (with mlx-lm, or torch and transformers), set LLMERGE_PYTHON to a "
      "Python that has it, or compute the gates elsewhere with `python -m llmerge.moe_gates "
      "--config CONFIG --out gates.safetensors` and pass --gates";
  if (spawn_and_wait({python, "-c", "import llmerge.moe_gates"}, true) != 0) {
    throw Error(ErrorKind::unsupported,
                fmt::format("gate_mode {} computes the routers from the base model run on the "
                            "prompts, which needs llmerge's Python package, and '{}' cannot "
                            "import it; {}",
                            config.gate_mode(), python, how));
  }
  const fs::path request_file = dir / "request.json";
  const fs::path gates = dir / "gates.safetensors";
  {
    std::ofstream f(request_file);
    f << request;
    if (!f) throw Error(ErrorKind::io, "cannot write " + request_file.string());
  }
  if (!quiet)
    print_best_effort(stderr, fmt::format("computing {} gates with {} -m llmerge.moe_gates\n",
                                          config.gate_mode(), python));
  const int rc =
      spawn_and_wait({python, "-m", "llmerge.moe_gates", "--request", request_file.string(),
                      "--out", gates.string(), "--backend", options.plan.gate_backend},
                     false);
  if (run_cancel_token().cancelled()) throw Error(ErrorKind::interrupted, "interrupted");
  if (rc != 0) {
    throw Error(rc == 3 ? ErrorKind::unsupported : ErrorKind::internal,
                fmt::format("computing the gates failed (llmerge.moe_gates exited with {}); see "
                            "its message above{}",
                            rc, rc == 3 ? "; " + how : ""));
  }
  return gates.string();
}

int run_moe(const MoeCommand& c) {
  MergeOptions options = c.table.options();
  const MoeConfig config = MoeConfig::load(c.config);
  std::unique_ptr<TempDir> temp;
  if (config.needs_prompt_gates() && options.plan.gates.empty()) {
    temp = std::make_unique<TempDir>();
    options.plan.gates = compute_gates(config, options, temp->path, c.output.quiet);
  }
  const Plan p = plan_moe(config, options.plan, run_cancel_token());
  return write_output(p, c.output, options);
}

const bool registered = register_command(
    {"moe", "Build a mixture-of-experts model from dense models (mergekit-moe's config)", 15,
     [](CLI::App& app) {
       auto c = std::make_shared<MoeCommand>();
       app.add_option("config", c->config, "mergekit-moe YAML config")->required();
       add_output_args(app, c->output);
       c->table.add(app, "moe");
       return [c] { return run_moe(*c); };
     }});

}  // namespace

}  // namespace llmerge::cli
