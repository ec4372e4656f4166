// `llmerge eval MODEL TEXT... [--parents P...] [--backend mlx|torch] [--json]`:
// the Python quality probe (python/llmerge/quality.py: perplexity per text
// file, next-token KL against parents). The model runs in Python (mlx-lm or
// transformers), so this command hands its arguments to
// `python -m llmerge.quality` and returns its exit code. The interpreter is
// $LLMERGE_PYTHON, else python3 on PATH; it needs the llmerge package.
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include <fmt/core.h>

#include "command.h"
#include "llmerge/error.h"

namespace llmerge::cli {

namespace {

struct EvalArgs {
  std::vector<std::string> args;
};

int run_python(const std::vector<std::string>& args) {
  const char* env = std::getenv("LLMERGE_PYTHON");
  const std::string python = env && *env ? env : "python3";
  std::vector<std::string> argv = {python, "-c",
                                   "import sys\n"
                                   "try:\n"
                                   "    import llmerge.quality as q\n"
                                   "except ImportError as e:\n"
                                   "    sys.exit(f'llmerge: error: eval needs the llmerge Python "
                                   "package ({e}); pip install . from the clone, or set "
                                   "LLMERGE_PYTHON')\n"
                                   "sys.exit(q.main(sys.argv[1:]))\n"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> c_argv;
  for (auto& a : argv)
    c_argv.push_back(a.data());
  c_argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0)
    throw Error(ErrorKind::io, fmt::format("eval: cannot fork: {}", std::strerror(errno)));
  if (pid == 0) {
    ::execvp(c_argv[0], c_argv.data());
    fmt::print(stderr, "llmerge: error: eval needs Python: cannot run {}: {}\n", python,
               std::strerror(errno));
    std::_Exit(2);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw Error(ErrorKind::io, "eval: lost the Python process");
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

const bool registered = register_command({
    .name = "eval",
    .help = "Perplexity per text file and next-token KL against parents (Python: mlx-lm or "
            "torch); `llmerge eval --help` for its options",
    .order = 46,
    .setup =
        [](CLI::App& app) {
          auto args = std::make_shared<EvalArgs>();
          // Python parses the arguments (argparse); pass them all through.
          app.allow_extras();
          app.set_help_flag();
          app.prefix_command();
          return std::function<int()>([&app, args] {
            args->args = app.remaining();
            return run_python(args->args);
          });
        },
});

}  // namespace

}  // namespace llmerge::cli
