// `llmerge run CONFIG -o OUT` (or `llmerge run CONFIG OUT`): the merge.
#include <cmath>
#include <memory>

#include <fmt/core.h>

#include "cli/command.h"
#include "cli/merge_options.h"
#include "cli/run.h"
#include "cli/signals.h"
#include "core/error.h"
#include "core/format.h"
#include "output/run_merge.h"

namespace llmerge::cli {

namespace {

std::string progress_line(const ExecuteProgress& p) {
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

void add_output_options(CLI::App& app, OutputOptions& o) {
  app.add_option("-o,--output", o.out_option, "output directory");
  app.add_flag("--force", o.force, "replace an existing non-empty output directory");
  app.add_flag("-q,--quiet", o.quiet, "no progress output");
  app.add_flag("--copy-tokenizer,!--no-copy-tokenizer", o.copy_tokenizer,
               "copy the tokenizer files of the base (or first) model (default: yes)");
  app.add_flag("--write-model-card,!--no-write-model-card", o.write_model_card,
               "write README.md and mergekit_config.yml (default: yes)");
}

int write_output(const Plan& plan, const OutputOptions& c, const MergeOptions& merge) {
  if (!c.out_positional.empty() && !c.out_option.empty() && c.out_positional != c.out_option) {
    throw Error(ErrorKind::config, "give the output directory once: as OUT or with -o, not both");
  }
  const std::string out = c.out_option.empty() ? c.out_positional : c.out_option;
  if (out.empty()) throw Error(ErrorKind::config, "no output directory: give one with -o OUT");
  const auto print_note = [quiet = c.quiet](const std::string& note) {
    if (!quiet) print_best_effort(stderr, fmt::format("note: {}\n", terminal_safe(note)));
  };
  for (const auto& note : plan.notes)
    print_note(note);
  RunOptions options;
  options.out_dir = out;
  options.writer.shard_size_max = plan.options.shard_size_max;
  options.writer.force = c.force;
  options.writer.note = print_note;
  options.execute.threads = plan.options.threads;
  options.execute.chunk_elements = merge.chunk_elements;
  options.execute.seed = merge.seed;
  options.copy_tokenizer = c.copy_tokenizer;
  options.write_model_card = c.write_model_card;
  const bool tty = stderr_is_tty();
  if (!c.quiet) {
    options.execute.progress_interval_s = tty ? 0.2 : 5.0;
    options.execute.progress = [tty](const ExecuteProgress& p) {
      // Best effort: a full or closed stderr never stops the merge.
      print_best_effort(stderr, tty ? fmt::format("\r\033[K{}", progress_line(p))
                                    : fmt::format("{}\n", progress_line(p)));
    };
  }
  run_merge(plan, options);
  if (!c.quiet) {
    if (tty) print_best_effort(stderr, "\n");
    print_best_effort(stdout, fmt::format("wrote {} ({} tensors, {}, {} layers)\n",
                                          terminal_safe(out), plan.tensors.size(),
                                          human_bytes(plan.output_bytes()), plan.out_layers));
  }
  return 0;
}

namespace {

struct RunCommand {
  MergeOptions merge;
  OutputOptions output;
  bool torch_only = false;  // --cuda, --lazy-unpickle, --low-cpu-memory
};

int run_run(const RunCommand& c) {
  if (c.torch_only && !c.output.quiet) {
    print_best_effort(stderr,
                      "note: --cuda, --lazy-unpickle and --low-cpu-memory are mergekit/torch "
                      "options; llmerge always streams on the CPU and ignores them\n");
  }
  return write_output(plan_from_options(c.merge), c.output, c.merge);
}

const bool registered = register_command(
    {"run", "Merge models as a mergekit YAML config says, into a new model folder", 10,
     [](CLI::App& app) {
       auto c = std::make_shared<RunCommand>();
       add_merge_options(app, c->merge);
       app.add_option("out", c->output.out_positional, "output directory (or use -o)");
       add_output_options(app, c->output);
       app.add_flag("--cuda,--lazy-unpickle,--low-cpu-memory", c->torch_only,
                    "accepted for mergekit compatibility; ignored");
       return [c] { return run_run(*c); };
     }});

}  // namespace

}  // namespace llmerge::cli
