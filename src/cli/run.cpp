// `llmerge run CONFIG -o OUT` (or `llmerge run CONFIG OUT`): the merge.
#include "run.h"

#include <memory>

#include <fmt/core.h>

#include "command.h"
#include "llmerge/text.h"
#include "signals.h"
#include "table_options.h"

namespace llmerge::cli {

std::string human_bytes(std::uint64_t n) {
  static constexpr const char* k_units[] = {"bytes", "KB", "MB", "GB", "TB"};
  double v = static_cast<double>(n);
  int unit = 0;
  while (v >= 1000 && unit < 4) {
    v /= 1000;
    ++unit;
  }
  return unit == 0 ? fmt::format("{} bytes", n) : fmt::format("{:.2f} {}", v, k_units[unit]);
}

namespace {

std::string progress_line(const Progress& p) {
  const double gbps = p.seconds > 0 ? static_cast<double>(p.bytes_done) / 1e9 / p.seconds : 0;
  const double frac =
      p.bytes_total ? static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total) : 1.0;
  std::string eta = "--";
  if (gbps > 0 && frac < 1) {
    eta = fmt::format("{:.0f}s", static_cast<double>(p.bytes_total - p.bytes_done) / 1e9 / gbps);
  }
  return fmt::format("{}/{} tensors  {} / {}  {:.2f} GB/s  ETA {}", p.tensors_done, p.tensors_total,
                     human_bytes(p.bytes_done), human_bytes(p.bytes_total), gbps, eta);
}

}  // namespace

void add_output_args(CLI::App& app, OutputArgs& o) {
  app.add_option("out", o.out_positional, "output directory (or use -o)");
  app.add_option("-o,--output", o.out_option, "output directory");
  app.add_flag("-q,--quiet", o.quiet, "no progress output");
}

std::string output_dir(const OutputArgs& c) {
  if (!c.out_positional.empty() && !c.out_option.empty() && c.out_positional != c.out_option) {
    throw Error(ErrorKind::config, "give the output directory once: as OUT or with -o, not both");
  }
  const std::string out = c.out_option.empty() ? c.out_positional : c.out_option;
  if (out.empty()) throw Error(ErrorKind::config, "no output directory: give one with -o OUT");
  return out;
}

int write_output(const Plan& plan, const OutputArgs& c, MergeOptions options) {
  const std::string out = output_dir(c);
  const auto print_note = [quiet = c.quiet](const std::string& note) {
    if (!quiet) print_best_effort(stderr, fmt::format("note: {}\n", terminal_safe(note)));
  };
  for (const auto& note : plan.notes())
    print_note(note);
  RunOptions& run = options.run;
  run.cancel = run_cancel_token();
  run.note = print_note;
  const bool tty = stderr_is_tty();
  if (!c.quiet) {
    run.progress_interval_s = tty ? 0.2 : 5.0;
    run.progress = [tty](const Progress& p) {
      // Best effort: a full or closed stderr never stops the merge.
      print_best_effort(stderr, tty ? fmt::format("\r\033[K{}", progress_line(p))
                                    : fmt::format("{}\n", progress_line(p)));
    };
  }
  const RunResult r = llmerge::run(plan, out, run);
  if (!c.quiet) {
    if (tty) print_best_effort(stderr, "\n");
    print_best_effort(stdout, fmt::format("wrote {} ({} tensors, {}, {} layers)\n",
                                          terminal_safe(out), r.tensors, human_bytes(r.bytes),
                                          r.layers));
  }
  return 0;
}

namespace {

struct RunCommand {
  std::string config;
  TableOptions table;
  OutputArgs output;
  bool torch_only = false;  // --cuda, --lazy-unpickle, --low-cpu-memory
};

int run_run(const RunCommand& c) {
  if (c.torch_only && !c.output.quiet) {
    print_best_effort(stderr,
                      "note: --cuda, --lazy-unpickle and --low-cpu-memory are mergekit/torch "
                      "options; llmerge always streams on the CPU and ignores them\n");
  }
  const MergeOptions options = c.table.options();
  const Plan p = plan(Config::load(c.config), options.plan, run_cancel_token());
  return write_output(p, c.output, options);
}

const bool registered =
    register_command({"run", "Merge models as a mergekit YAML config says, into a new model folder",
                      10, [](CLI::App& app) {
                        auto c = std::make_shared<RunCommand>();
                        app.add_option("config", c->config, "mergekit YAML config")->required();
                        add_output_args(app, c->output);
                        c->table.add(app, "run");
                        app.add_flag("--cuda,--lazy-unpickle,--low-cpu-memory", c->torch_only,
                                     "accepted for mergekit compatibility; ignored");
                        return [c] { return run_run(*c); };
                      }});

}  // namespace

}  // namespace llmerge::cli
