// LoRA adapters: PEFT and mlx-lm folders, read from their config and their
// safetensors header only (docs/lora.md).
//
// A LoRA adapter changes a base weight W of shape [rows, cols] into
//
//   W' = W + scale * L * R^T,   L: [rows, rank], R: [cols, rank]
//
// (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models",
// arXiv:2106.09685). Both formats store two factors whose layout depends on
// the format and the kind of module:
//
//   PEFT Linear      lora_A.weight [r, in]   lora_B.weight [out, r]   W [out, in]
//                    L = B, R = A^T
//   PEFT fan_in_fan_out (GPT-2 Conv1D, W stored [in, out]): L = A^T, R = B
//   PEFT Embedding   lora_embedding_A [r, vocab]  lora_embedding_B [dim, r]
//                    W [vocab, dim]: L = A^T, R = B
//   mlx-lm Linear    lora_a [in, r]  lora_b [r, out]: L = b^T, R = a
//   mlx-lm Embedding lora_a [vocab, r]  lora_b [r, dim]: L = a, R = b^T
//
// The scale is PEFT's lora_alpha / r (lora_alpha / sqrt(r) with use_rslora,
// Kalajdzievski 2023, arXiv:2312.03732), with r and lora_alpha taken per
// module from rank_pattern / alpha_pattern where a key matches; mlx-lm's is
// lora_parameters.scale as written (an absolute factor, not alpha / r).
//
// PEFT also saves whole tensors next to the factors: modules_to_save (e.g.
// lm_head.weight) and trained biases (bias "all" / "lora_only"). They replace
// the base's tensor of the same name. Everything else (DoRA magnitudes,
// lora_B biases, other adapter types, conv or MoE LoRA) is Error(unsupported).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "io/safetensors.h"

namespace llmerge {

enum class AdapterFormat { peft, mlx };

// How the two stored factors map onto L and R (see the table above).
enum class LoraLayout {
  peft_linear,          // L = B, R = A^T
  peft_fan_in_fan_out,  // L = A^T, R = B
  peft_embedding,       // L = A^T, R = B
  mlx_linear,           // L = b^T, R = a
  mlx_embedding,        // L = a, R = b^T
};

// One module's low-rank update of the base tensor `target`.
struct LoraModule {
  std::string target;             // base tensor name, e.g. "model.layers.0.mlp.up_proj.weight"
  const TensorInfo* a = nullptr;  // lora_A / lora_embedding_A / lora_a, as stored
  const TensorInfo* b = nullptr;  // lora_B / lora_embedding_B / lora_b, as stored
  LoraLayout layout = LoraLayout::peft_linear;
  std::int64_t rank = 0;
  double scale = 1;
  std::int64_t rows = 0;  // the shape of the update, which must be the target's
  std::int64_t cols = 0;
};

// Move-only: modules point into the adapter's own file.
class Adapter {
 public:
  Adapter(Adapter&&) = default;
  Adapter& operator=(Adapter&&) = default;
  Adapter(const Adapter&) = delete;
  Adapter& operator=(const Adapter&) = delete;

  // Opens the adapter folder `path` (adapter_config.json plus
  // adapter_model.safetensors for PEFT, adapters.safetensors for mlx-lm).
  // Error(io) if files are missing, Error(format) if the config or the
  // tensors are malformed or inconsistent (a factor's rank differs from the
  // config's), Error(unsupported) for DoRA and every other adapter type.
  static Adapter open(const std::filesystem::path& path, std::string display_name);

  AdapterFormat format() const { return format_; }
  const std::filesystem::path& path() const { return path_; }
  const std::string& display_name() const { return display_name_; }
  const SafetensorsFile& file() const { return *file_; }
  // Low-rank updates by target tensor name.
  const std::map<std::string, LoraModule, std::less<>>& modules() const { return modules_; }
  // Whole tensors that replace the base's, by name.
  const std::map<std::string, const TensorInfo*, std::less<>>& replacements() const {
    return replacements_;
  }

 private:
  Adapter() = default;
  void open_peft(const std::filesystem::path& config_path);
  void open_mlx(const std::filesystem::path& config_path);
  void add_module(LoraModule m);
  AdapterFormat format_ = AdapterFormat::peft;
  std::filesystem::path path_;
  std::string display_name_;
  std::unique_ptr<SafetensorsFile> file_;  // TensorInfo addresses stay put when moved
  std::map<std::string, LoraModule, std::less<>> modules_;
  std::map<std::string, const TensorInfo*, std::less<>> replacements_;
};

// Splits a model reference "base+adapter" (each part a path or
// org/name[@revision], as mergekit's ModelReference) at its one '+'.
// An empty adapter part means there is no adapter.
struct ModelAndAdapter {
  std::string model;
  std::string adapter;
};
ModelAndAdapter split_adapter_reference(std::string_view reference);

// The update of `m` for elements (row, col) of its target:
// left[row * rank + k], right[col * rank + k].
struct LoraFactors {
  std::vector<float> left;   // [rows, rank]
  std::vector<float> right;  // [cols, rank]
};
// Bytes the two factors of `m` take in f32 (what a source holds per tensor).
std::uint64_t lora_factor_bytes(const LoraModule& m);

}  // namespace llmerge
