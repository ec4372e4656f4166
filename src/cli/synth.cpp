// llmerge synth OUT: writes a synthetic model folder (see synth/synth.h).
#include <chrono>
#include <memory>
#include <string>

#include <fmt/core.h>

#include "command.h"
#include "llmerge/synth.h"

namespace llmerge::cli {

namespace {

struct SynthArgs {
  std::string out;
  std::string params;
  std::string family;
  int layers = 0, hidden = 0, intermediate = 0, heads = 0, kv_heads = 0, vocab = 0, threads = 0;
  bool tied = false;
  bool force = false;
  std::string dtype;
  std::uint64_t seed = 0;
  std::string like;
  double delta_scale = 0;
  std::string shard_size;
};

struct SynthCommand {
  std::shared_ptr<SynthArgs> args = std::make_shared<SynthArgs>();
  // Options whose value replaces the preset's (only when given).
  CLI::Option *family, *layers, *hidden, *intermediate, *heads, *kv_heads, *vocab, *threads, *dtype,
      *seed, *like, *delta_scale, *shard_size, *params;

  int run() const {
    const SynthArgs& a = *args;
    SynthSpec spec;
    if (params->count()) spec.params = a.params;
    if (family->count()) spec.family = a.family;
    if (layers->count()) spec.layers = a.layers;
    if (hidden->count()) spec.hidden = a.hidden;
    if (intermediate->count()) spec.intermediate = a.intermediate;
    if (heads->count()) spec.heads = a.heads;
    if (kv_heads->count()) spec.kv_heads = a.kv_heads;
    if (vocab->count()) spec.vocab = a.vocab;
    if (threads->count()) spec.threads = a.threads;
    spec.tied = a.tied;
    spec.force = a.force;
    if (dtype->count()) spec.dtype = a.dtype;
    if (seed->count()) spec.seed = a.seed;
    if (like->count()) spec.like = a.like;
    if (delta_scale->count()) spec.delta_scale = a.delta_scale;
    if (shard_size->count()) spec.shard_size = a.shard_size;
    spec.cancel = run_cancel_token();
    const SynthResult r = synth(a.out, spec);
    fmt::print("wrote {}: {} tensors, {} parameters, {} shard(s), {:.1f} MB in {:.2f} s\n", a.out,
               r.tensors, r.parameters, r.shards, static_cast<double>(r.bytes) / 1e6, r.seconds);
    return 0;
  }
};

const bool registered = register_command({
    .name = "synth",
    .help = "Write a synthetic model (real architecture names and shapes, seeded random weights)",
    .order = 60,
    .setup =
        [](CLI::App& app) {
          auto cmd = std::make_shared<SynthCommand>();
          SynthArgs& a = *cmd->args;
          std::string families;
          for (const auto& f : synth_family_names())
            families += (families.empty() ? "" : "|") + f;
          app.add_option("out", a.out, "Output folder")->required();
          cmd->params = app.add_option("--params", a.params,
                                       "Llama-shaped size preset: 1B, 3B or 8B (other options "
                                       "override its shapes)");
          cmd->family = app.add_option("--family", a.family, "Architecture: " + families);
          cmd->layers = app.add_option("--layers", a.layers, "Number of layers (default 4)");
          cmd->hidden = app.add_option("--hidden", a.hidden, "Hidden size (default 64)");
          cmd->intermediate =
              app.add_option("--intermediate", a.intermediate, "MLP size (default 128)");
          cmd->heads = app.add_option("--heads", a.heads, "Attention heads (default 4)");
          cmd->kv_heads = app.add_option("--kv-heads", a.kv_heads, "Key/value heads (default 2)");
          cmd->vocab = app.add_option("--vocab", a.vocab, "Vocabulary size (default 128)");
          app.add_flag("--tied", a.tied, "Tie lm_head to the embedding (no lm_head.weight)");
          cmd->dtype = app.add_option("--dtype", a.dtype, "bf16 (default), f16 or f32");
          cmd->seed = app.add_option("--seed", a.seed, "Random seed (default 0)");
          cmd->like = app.add_option("--like", a.like,
                                     "Perturb this model instead: same tensors, dtypes, config");
          cmd->delta_scale = app.add_option(
              "--delta-scale", a.delta_scale,
              "With --like: perturbation size relative to each tensor's mean |w| (default 0.01)");
          cmd->shard_size = app.add_option("--out-shard-size", a.shard_size,
                                           "Maximum shard size, e.g. 5B (default), 500MB, 2GiB");
          cmd->threads = app.add_option("--threads", a.threads, "Writer threads (default 2)");
          app.add_flag("--force", a.force, "Replace OUT if it exists and is not empty");
          return std::function<int()>([cmd] { return cmd->run(); });
        },
});

}  // namespace

}  // namespace llmerge::cli
