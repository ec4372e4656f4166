// `llmerge run CONFIG -o OUT` (or `llmerge run CONFIG OUT`): the merge.
#include "run.h"

#include <algorithm>
#include <memory>
#include <utility>

#include <fmt/core.h>

#include "command.h"
#include "compat_flags.h"
#include "llmerge/text.h"
#include "signals.h"
#include "table_options.h"

namespace llmerge::cli {

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

void add_output_args(CLI::App& app, OutputArgs& o, const std::string& output_alias) {
  app.add_option("out", o.out_positional, "output directory (or use -o)");
  std::string names = "-o,--output";
  if (!output_alias.empty()) names += ",--" + output_alias;
  app.add_option(names, o.out_option, "output directory");
  // Spelled out only: -q is mlx_lm.convert's --quantize.
  app.add_flag("--quiet", o.quiet, "no notes or progress output");
}

double bits_per_weight(const Plan& plan) {
  std::uint64_t weights = 0;
  for (const auto& t : plan.tensors()) {
    std::uint64_t n = 1;
    for (const auto d : t.shape)
      n *= static_cast<std::uint64_t>(d);
    weights += n;
  }
  return weights ? static_cast<double>(plan.output_bytes()) * 8 / static_cast<double>(weights) : 0;
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
    // The run reports once more at the end; a log (not a terminal) gets
    // each state once, so the last line is not printed twice.
    auto last = std::make_shared<std::pair<std::size_t, std::uint64_t>>(~std::size_t{0}, 0);
    run.progress = [tty, last](const Progress& p) {
      // Best effort: a full or closed stderr never stops the merge.
      if (tty) {
        print_best_effort(stderr, fmt::format("\r\033[K{}", progress_line(p)));
        return;
      }
      if (*last == std::pair{p.tensors_done, p.bytes_done}) return;
      *last = {p.tensors_done, p.bytes_done};
      print_best_effort(stderr, fmt::format("{}\n", progress_line(p)));
    };
  }
  const RunResult r = llmerge::run(plan, out, run);
  if (!c.quiet) {
    if (tty) print_best_effort(stderr, "\n");
    const auto tensors = plan.tensors();
    const bool quantized = std::any_of(tensors.begin(), tensors.end(),
                                       [](const auto& t) { return t.quantize_bits > 0; });
    // As mlx_lm.convert ends: "Quantized model with 4.501 bits per weight."
    if (quantized) {
      print_best_effort(stderr, fmt::format("quantized model with {:.3f} bits per weight\n",
                                            bits_per_weight(plan)));
    }
    print_best_effort(
        stdout, fmt::format("wrote {} ({} tensors, {}, {} layers) in {:.1f}s\n", terminal_safe(out),
                            r.tensors, human_bytes(r.bytes), r.layers, r.seconds));
  }
  return 0;
}

int run_recipe_command(const Recipe& recipe, const OutputArgs& c, MergeOptions options) {
  const std::string out = output_dir(c);
  options.run.cancel = run_cancel_token();
  options.run.note = [quiet = c.quiet](const std::string& note) {
    if (!quiet) print_best_effort(stderr, fmt::format("note: {}\n", terminal_safe(note)));
  };
  const RecipeResult r = run_recipe(recipe, out, options);
  if (!c.quiet) {
    const std::string how = r.one_pass ? "in one pass, no intermediate model written"
                                       : human_bytes(r.intermediate_bytes) + " intermediate";
    print_best_effort(stdout, fmt::format("wrote {} ({} stage(s) run, {} skipped, {}) in {:.1f}s\n",
                                          terminal_safe(out), r.stages_run.size(),
                                          r.stages_skipped.size(), how, r.seconds));
  }
  return 0;
}

namespace {

struct RunCommand {
  std::string config;
  TableOptions table;
  OutputArgs output;
  CompatFlags mergekit;
};

int run_run(const RunCommand& c) {
  const auto notes = c.mergekit.apply();
  if (!c.output.quiet) print_notes(notes);
  const MergeOptions options = c.table.options();
  // A multi-document file is a mergekit-multi recipe (llmerge/recipe.h).
  if (const Recipe recipe = Recipe::load(c.config); recipe.size() > 1)
    return run_recipe_command(recipe, c.output, options);
  const Plan p = plan(Config::load(c.config), options.plan, run_cancel_token());
  return write_output(p, c.output, options);
}

const bool registered = register_command(
    {"run", "Merge models as a mergekit YAML config says, into a new model folder", 10,
     [](CLI::App& app) {
       auto c = std::make_shared<RunCommand>();
       app.add_option("config", c->config, "mergekit YAML config (or a multi-document recipe)")
           ->required();
       add_output_args(app, c->output);
       c->table.add(app, "run");
       c->mergekit.add(app);
       return [c] { return run_run(*c); };
     }});

}  // namespace

}  // namespace llmerge::cli
