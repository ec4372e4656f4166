// A model folder: config.json plus safetensors weights (one file, or shards
// with model.safetensors.index.json), or a lone .safetensors file.
//
// Opening a model reads config.json and every shard's header, nothing else,
// so it takes milliseconds even for 70B models.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/mlx_quant.h"
#include "io/safetensors.h"

namespace llmerge {

// An MLX-quantized matrix (docs/formats.md §2a): `weight` holds
// packed uint32 codes, `<module>.scales` and `<module>.biases` one value per
// group. The model shows it as one float tensor of its logical shape.
struct QuantizedWeight {
  QuantParams params;
  const SafetensorsFile* scales_file = nullptr;
  const TensorInfo* scales = nullptr;
  const SafetensorsFile* biases_file = nullptr;  // nullptr for mxfp4 (no biases)
  const TensorInfo* biases = nullptr;
  std::vector<std::int64_t> shape;  // logical: [..., words * 32 / bits]
  DType dtype = DType::BF16;  // of the logical values: the scales' dtype (affine), BF16 (mxfp4)
};

// A tensor of a model: the file it lives in and its entry there, and for a
// quantized weight, how to dequantize it.
struct TensorRef {
  const SafetensorsFile* file = nullptr;
  const TensorInfo* info = nullptr;        // the stored tensor (packed codes if quantized)
  const QuantizedWeight* quant = nullptr;  // nullptr for a dense tensor

  // What a merge sees: the logical shape, and the dtype the values come in
  // (the scales' dtype for a quantized weight).
  const std::vector<std::int64_t>& shape() const { return quant ? quant->shape : info->shape; }
  DType dtype() const { return quant ? quant->dtype : info->dtype; }
};

// Layered tensor names look like "<prefix>.<index>.<suffix>", e.g.
// "model.layers.7.mlp.up_proj.weight" has prefix "model.layers", index 7.
struct LayerStructure {
  std::string prefix;      // "" if the model has no layered tensors
  std::int64_t count = 0;  // max index + 1
  // The config.json key that holds the layer count, dotted for nested keys
  // ("num_hidden_layers", "n_layer", "num_layers", "text_config.num_hidden_layers");
  // empty if none found.
  std::string config_key;
};

// MLX quantization detected from config.json "quantization" and/or
// ".scales"/".biases" tensors. Detection only; reading is a later issue.
struct QuantizationInfo {
  bool quantized = false;
  int bits = 0;                             // 0 if unknown
  int group_size = 0;                       // 0 if unknown
  std::string mode;                         // "affine", "mxfp4", ... ("affine" if unspecified)
  std::int64_t quantized_tensor_count = 0;  // number of "<x>.scales" tensors
};

// Move-only: TensorRefs point into the model's own file list.
class Model {
 public:
  Model(Model&&) = default;
  Model& operator=(Model&&) = default;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // Opens a folder or a lone .safetensors file. `display_name` is how errors
  // and `plan` name the model (the config's reference, e.g. "org/name"); it
  // defaults to the path. Throws Error(io) if missing/unreadable,
  // Error(format) if config.json, the index or a shard is malformed, or if
  // the index names a shard that does not exist or a tensor that the shard
  // lacks, or if two shards hold the same tensor.
  static Model open(const std::filesystem::path& path, std::string display_name = {});
  // A model that is not on disk: an earlier recipe stage's planned output
  // (one-pass recipes, docs/recipes.md §3), seen through `header` (a
  // header-only file: SafetensorsFile::parse_header; its data cannot be read)
  // and `config` (its config.json). `side_files` is the folder its tokenizer
  // files would have been copied from, which path() returns.
  static Model stage_output(const std::filesystem::path& side_files, std::string display_name,
                            nlohmann::json config, SafetensorsFile header);

  const std::filesystem::path& path() const { return path_; }
  const std::string& display_name() const { return display_name_; }
  // Parsed config.json, or an empty object for a lone file / missing config.
  const nlohmann::json& config() const { return config_; }
  bool has_config() const { return has_config_; }
  // True for Model::stage_output(): no folder of its own, no readable data.
  bool is_stage_output() const { return stage_output_; }

  // nullptr if the model has no such tensor. A quantized weight is found
  // under "<module>.weight"; its ".scales" and ".biases" are not listed.
  const TensorRef* find(std::string_view name) const;
  // All tensor names, sorted (the logical view: no ".scales"/".biases").
  std::vector<std::string> tensor_names() const;
  std::size_t tensor_count() const { return tensors_.size(); }
  const std::vector<SafetensorsFile>& files() const { return files_; }

  const LayerStructure& layers() const { return layers_; }
  // True if config.json says tie_word_embeddings (default true when the model
  // has an embedding but no lm_head.weight tensor, false otherwise).
  bool tied_embeddings() const { return tied_embeddings_; }
  const QuantizationInfo& quantization() const { return quantization_; }

  std::uint64_t parameter_count() const;  // sum of numel over all tensors
  std::uint64_t size_on_disk() const;     // sum of shard file sizes
  // Distinct dtypes of the tensors, by count, most common first.
  std::vector<std::pair<DType, std::size_t>> dtype_counts() const;

  // config.json helpers, looking under "text_config" too; nullopt if absent.
  std::optional<std::string> config_string(std::string_view key) const;
  std::optional<std::int64_t> config_int(std::string_view key) const;

 private:
  Model() = default;
  // What open() derives from the config and the tensor names.
  void finish();
  // Turns "<m>.weight" + "<m>.scales" (+ "<m>.biases") into one logical tensor.
  void link_quantized_weights();
  std::filesystem::path path_;
  std::string display_name_;
  nlohmann::json config_ = nlohmann::json::object();
  bool has_config_ = false;
  bool stage_output_ = false;
  std::vector<SafetensorsFile> files_;  // stable: never resized after open()
  std::map<std::string, TensorRef, std::less<>> tensors_;
  std::map<std::string, QuantizedWeight> quantized_;  // by module; node addresses are stable
  LayerStructure layers_;
  bool tied_embeddings_ = false;
  QuantizationInfo quantization_;
};

// Detects the layer structure from tensor names and cross-checks it with the
// config (a mismatch between the names and the config's count is Error(format)).
LayerStructure detect_layers(const std::vector<std::string>& tensor_names,
                             const nlohmann::json& config, const std::string& model_name);

// Resolves a model reference to a local path. A reference is a local path
// (absolute, or relative to `base_dir`), or a Hugging Face id "org/name" with
// optional "@revision", looked up in the local Hugging Face cache:
// $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub, folder
// "models--org--name/snapshots/<commit>", the commit read from refs/<revision>
// (default "main") or given directly as a commit hash. Never uses the network.
// Throws Error(io) saying every place it looked and how to download the
// model ("hf download org/name", huggingface_hub's current command).
std::filesystem::path resolve_model_reference(std::string_view reference,
                                              const std::filesystem::path& base_dir = {});

}  // namespace llmerge
