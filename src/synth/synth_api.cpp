// The public synth() (llmerge/synth.h) over write_synth_model.
#include <chrono>

#include <fmt/core.h>

#include "core/error.h"
#include "io/model.h"
#include "llmerge/synth.h"
#include "synth/synth.h"

namespace llmerge {

SynthResult synth(const std::string& out_dir, const SynthSpec& spec) {
  SynthOptions o = spec.params.empty() ? SynthOptions{} : synth_preset(spec.params);
  if (spec.family) o.family = *spec.family;
  if (spec.layers) o.layers = *spec.layers;
  if (spec.hidden) o.hidden = *spec.hidden;
  if (spec.intermediate) o.intermediate = *spec.intermediate;
  if (spec.heads) o.heads = *spec.heads;
  if (spec.kv_heads) o.kv_heads = *spec.kv_heads;
  if (spec.vocab) o.vocab = *spec.vocab;
  if (spec.threads) o.threads = *spec.threads;
  if (spec.tied) o.tied = true;
  o.force = spec.force;
  if (spec.dtype) {
    const auto d = dtype_from_torch_name(*spec.dtype);
    if (!d) {
      throw Error(ErrorKind::config,
                  fmt::format("unknown dtype '{}'; use bf16, f16 or f32", *spec.dtype));
    }
    o.dtype = *d;
  }
  if (spec.seed) o.seed = *spec.seed;
  if (spec.like) o.like = resolve_model_reference(*spec.like);
  if (spec.delta_scale) o.delta_scale = *spec.delta_scale;
  if (spec.shard_size) o.shard_size = parse_shard_size(*spec.shard_size);
  o.cancel = spec.cancel;

  const auto start = std::chrono::steady_clock::now();
  write_synth_model(o, out_dir);
  SynthResult r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const Model written = Model::open(out_dir);
  r.tensors = written.tensor_count();
  r.parameters = written.parameter_count();
  r.shards = written.files().size();
  r.bytes = written.size_on_disk();
  return r;
}

std::vector<std::string> synth_family_names() {
  return synth_families();
}

}  // namespace llmerge
