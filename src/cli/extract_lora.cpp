// `llmerge extract-lora --model FT --base BASE -o OUT --rank R`:
// mergekit-extract-lora's job (llmerge::extract_lora), with its flags
// (--base-model, --out-path, --max-rank, --sv-epsilon, --distribute-scale,
// --embed-lora, --save-module, -i/-e, --skip-undecomposable) and
// --format peft|mlx.
#include <memory>

#include <fmt/core.h>

#include "command.h"
#include "llmerge/lora.h"
#include "llmerge/text.h"
#include "run.h"
#include "signals.h"

namespace llmerge::cli {

namespace {

struct ExtractCommand {
  std::string model;
  std::string base;
  std::string out;
  std::string format = "peft";
  ExtractLoraOptions options;
  bool quiet = false;
};

int run_extract(ExtractCommand& c) {
  if (c.model.empty() || c.base.empty() || c.out.empty())
    throw Error(ErrorKind::config, "give --model FT, --base BASE and -o OUT");
  if (c.format != "peft" && c.format != "mlx")
    throw Error(ErrorKind::config, fmt::format("--format takes peft or mlx, not '{}'", c.format));
  c.options.format = c.format == "mlx" ? AdapterFileFormat::mlx : AdapterFileFormat::peft;
  c.options.cancel = run_cancel_token();
  if (!c.quiet) {
    // Best effort and escaped, as every CLI message (docs/RELIABILITY.md rows 16, 19); a
    // counter redrawn in place only on a terminal, else just the last line.
    c.options.note = [](const std::string& n) {
      print_best_effort(stderr, fmt::format("note: {}\n", terminal_safe(n)));
    };
    c.options.progress = [tty = stderr_is_tty()](std::size_t done, std::size_t all,
                                                 const std::string&) {
      if (!tty && done != all) return;
      print_best_effort(stderr, fmt::format("{}extract-lora: {}/{} tensors{}", tty ? "\r" : "",
                                            done, all, done == all ? "\n" : ""));
    };
  }
  const ExtractLoraResult r = extract_lora(c.model, c.base, c.out, c.options);
  if (!c.quiet) {
    fmt::print(
        "{}: {} LoRA modules (rank {} at most{}), {} saved whole, {} left out; {}, "
        "relative error {:.3g}, {:.1f} s\n",
        r.output, r.lora_modules, r.rank,
        r.randomized ? fmt::format(", {} by randomized SVD", r.randomized) : "", r.whole_modules,
        r.skipped, human_bytes(r.bytes), r.relative_error, r.seconds);
  }
  return 0;
}

const bool registered = register_command(
    {"extract-lora",
     "Extract a LoRA adapter (PEFT or mlx-lm) from a fine-tune and its base, as "
     "mergekit-extract-lora",
     46, [](CLI::App& app) {
       auto c = std::make_shared<ExtractCommand>();
       auto& o = c->options;
       app.add_option("--model", c->model, "the fine-tuned model")->required();
       app.add_option("--base,--base-model", c->base, "its base model")->required();
       app.add_option("-o,--output,--out-path", c->out, "output adapter folder")->required();
       app.add_option("--rank,--max-rank,-r", o.max_rank, "largest rank of a module")
           ->default_val(128);
       app.add_option("--sv-epsilon", o.sv_epsilon,
                      "drop singular values at or below this (0: keep all)")
           ->default_val(0);
       app.add_flag("--distribute-scale,!--no-distribute-scale", o.distribute_scale,
                    "split the singular values between A and B (sqrt each); else all in A")
           ->default_val(true);
       app.add_flag("--embed-lora,!--no-embed-lora", o.embed_lora,
                    "decompose embeddings too (lora_embedding_A/B) instead of saving them whole");
       app.add_option("--save-module", o.save_modules, "save this module whole (repeatable)");
       app.add_option("-i,--include-regex", o.include_regexes,
                      "only modules matching this (repeatable)");
       app.add_option("-e,--exclude-regex", o.exclude_regexes,
                      "leave out modules matching this (repeatable)");
       app.add_flag("--skip-undecomposable", o.skip_undecomposable,
                    "leave out norms and other non-matrices instead of saving them whole");
       app.add_option("--format", c->format, "peft (the default) or mlx")->default_val("peft");
       app.add_flag("--force", o.force, "replace an earlier output");
       app.add_flag("--quiet", c->quiet, "no notes or progress output");
       return [c] { return run_extract(*c); };
     }});

}  // namespace

}  // namespace llmerge::cli
