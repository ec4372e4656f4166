// Synthetic models: folders with a real architecture's tensor names, shapes and
// config.json, and seeded pseudo-random weights (libllmerge_synth). For tests,
// demos and benchmarks; no model download needed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "llmerge/cancel.h"

namespace llmerge {

// Unset fields keep the preset's (or the defaults': llama, 4 layers, hidden 64,
// intermediate 128, 4 heads, 2 kv heads, vocab 128, bf16, seed 0).
struct SynthSpec {
  std::string params;                 // "" or a llama-shaped preset: "1B", "3B", "8B"
  std::optional<std::string> family;  // synth_family_names()
  std::optional<int> layers, hidden, intermediate, heads, kv_heads, vocab;
  bool tied = false;                 // tie lm_head to the embedding
  std::optional<std::string> dtype;  // bf16, f16, f32 (or torch names)
  std::optional<std::uint64_t> seed;
  std::optional<std::string> like;        // perturb this model instead (same tensors and config)
  std::optional<double> delta_scale;      // with like: size relative to each tensor's mean |w|
  std::optional<std::string> shard_size;  // 5B, 500MB, 2GiB, ...
  std::optional<int> threads;
  bool force = false;  // replace an existing output folder
  CancelToken cancel;
};

struct SynthResult {
  std::size_t tensors = 0;
  std::uint64_t parameters = 0;
  std::size_t shards = 0;
  std::uint64_t bytes = 0;
  double seconds = 0;
};

// Writes the model folder atomically. Throws Error (config for bad options).
SynthResult synth(const std::string& out_dir, const SynthSpec& spec);

std::vector<std::string> synth_family_names();

}  // namespace llmerge
