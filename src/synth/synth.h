// Synthetic models: small (or 1B-parameter) model folders with the tensor
// names, shapes and config.json of a real Hugging Face transformers
// architecture, filled with seeded pseudo-random weights. Tests, examples and
// benchmarks use them instead of downloading real models.
//
// Values come from a counter-based generator: element i of tensor T is a pure
// function of (seed, hash(T's name), i) -- splitmix64's finaliser applied to a
// counter, 16 bits per element -- so generation is chunked and multithreaded
// and still gives identical bytes for identical options, on any thread count.
//
//   weights, embeddings, biases:  uniform with standard deviation 0.02
//   norm weights:                 1 + uniform(-0.05, 0.05)
//                                 (gemma2 stores norms as an offset from 1: 0 + ...)
//
// With `like`, the tensors, dtypes, config.json and tokenizer files are those of
// an existing model, and every float tensor gets a seeded perturbation:
//
//   w' = w + delta_scale * typical(w) * u,   u ~ uniform(-1, 1)
//
// where typical(w) is the mean |w| over the tensor's first k_like_sample
// elements (a sample, so the base is read only once). Non-float tensors
// (quantized weights, integer buffers) are copied unchanged.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/cancel.h"
#include "core/dtype.h"
#include "output/model_writer.h"

namespace llmerge {

// Elements of each tensor used to estimate typical(w) in --like mode.
inline constexpr std::int64_t k_like_sample = 16384;

struct SynthOptions {
  // "llama", "mistral", "qwen2" (q/k/v biases), "qwen3" (q/k norms), "gemma2" (always tied, four
  // norms per layer), "phi3" (fused qkv_proj and gate_up_proj), "gpt2"
  // (transformer.h.*, Conv1D layout, biases, always tied).
  std::string family = "llama";
  int layers = 4;
  int hidden = 64;
  int intermediate = 128;
  int heads = 4;
  int kv_heads = 2;  // gpt2 ignores it (no grouped-query attention)
  int vocab = 128;   // at least 3: <unk>, <s>, </s>
  // Tie lm_head to the embedding (no lm_head.weight). nullopt: the family's
  // default (tied for gemma2 and gpt2, untied otherwise).
  std::optional<bool> tied;
  DType dtype = DType::BF16;  // BF16, F16 or F32
  std::uint64_t seed = 0;
  // Perturb this model instead of generating one (see the file comment). The
  // shape options above are then ignored.
  std::optional<std::filesystem::path> like;
  double delta_scale = 0.01;
  std::uint64_t shard_size = k_shard_size_default;
  bool force = false;  // replace an existing non-empty out_dir
  int threads = 2;
  CancelToken cancel;  // cancel() stops the write; nothing is left behind
};

// The supported families, in the order --help lists them.
const std::vector<std::string>& synth_families();

// Shape options of a llama-shaped model of about `params` parameters:
// "1B" (Llama-3.2-1B's shapes, tied), "3B" (Llama-3.2-3B's), "8B"
// (Llama-3.1-8B's). Other fields keep their defaults. Throws Error(config)
// for an unknown preset, listing the known ones.
SynthOptions synth_preset(std::string_view params);

// Checks the shape options (positive, heads divide hidden, kv_heads divide
// heads, sizes small enough not to overflow); throws Error(config).
void validate_synth_options(const SynthOptions& options);

// The tensors of a fresh synthetic model, named and shaped as transformers does.
std::vector<TensorSpec> synth_tensor_specs(const SynthOptions& options);

// config.json, tokenizer.json, tokenizer_config.json, generation_config.json.
nlohmann::ordered_json synth_config(const SynthOptions& options);
// A WordLevel tokenizer with exactly `vocab` entries ("<unk>" = 0, "<s>" = 1,
// "</s>" = 2, then single characters and "w<N>" words), whitespace pre-tokenizer.
// A plain (key-sorted) json: ordered_json's linear key lookup is quadratic in
// the vocabulary size.
nlohmann::json synth_tokenizer(int vocab);
nlohmann::ordered_json synth_tokenizer_config();
nlohmann::ordered_json synth_generation_config();

// Writes the model folder through ModelWriter (atomic: nothing appears at
// out_dir unless everything was written). Checks for cancellation between
// chunks. Throws Error(config) for bad options, and whatever Model::open and
// ModelWriter throw.
void write_synth_model(const SynthOptions& options, const std::filesystem::path& out_dir);

}  // namespace llmerge
