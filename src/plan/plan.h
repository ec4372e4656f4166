// The planner: config + model headers -> the full list of output tensors.
//
// This is the only place where user input is validated. make_plan() reads
// config.json files and safetensors headers (never tensor data), resolves
// every parameter for every output tensor, and proves that every tensor
// exists with a compatible shape and dtype. It reports *all* problems at once
// in one Error (one line each, with the YAML location and the tensors and
// shapes involved). A MergePlan that exists is valid: the executor and the kernels
// do not check again.
//
// mergekit semantics followed here (docs/mergekit-semantics.md §2 and §4):
//  - `models:` becomes one slice whose sources are every model with its full
//    layer range; a base_model not listed is appended as a source (for
//    methods that use a base).
//  - Output layers are numbered from 0 across slices in order; a source reads
//    layer `layer_range[0] + offset` of its own model.
//  - Gradients: within an output slice of n layers, layer i has t = i/(n-1)
//    (t = 1 when n == 1). Tensors outside the layers have t = 0; embeddings
//    take their sources and parameters from the first slice, everything after
//    the layers (final norm, lm_head) from the last slice.
//  - Per-model parameters: source > slice > top level > default, filtered on
//    the model's input tensor name. Global parameters: slice > top level >
//    default, filtered on the output tensor name.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "core/dtype.h"
#include "io/lora.h"
#include "io/model.h"
#include "merge/method.h"

namespace llmerge {

struct MergePlan;

// An earlier recipe stage that a config uses by name and that is not written
// (one-pass recipes, docs/recipes.md §3): its plan stands in for the model
// folder. The planner sees its planned output as a model (names, shapes,
// dtypes, config.json; plan/stages.h), and the executor computes each tensor
// of it chunk by chunk from the stage's own inputs (exec/stage_source.h).
struct StageInput {
  std::shared_ptr<const MergePlan> plan;
  // Where the stage's tokenizer files come from: the folder that its staged
  // run would have copied them from (the model's path()).
  std::filesystem::path side_files;
  std::uint64_t seed = 0;  // the run's seed, for the stage's random methods
};

struct PlanSettings {
  std::optional<DType> dtype;      // --dtype, overrides the config's `dtype`
  std::optional<DType> out_dtype;  // --out-dtype, overrides `out_dtype`
  bool allow_crimes = false;       // allow models of different architectures
  std::uint64_t shard_size_max = 5'000'000'000;
  int threads = 1;  // for the memory estimate
  std::int64_t chunk_elements = k_reduce_block;
  // MLX output (docs/formats.md §2a): quantize eligible weights
  // (2-D ".weight" tensors whose last dimension divides by the group size,
  // which is what mlx-lm's quantize_model picks) with these parameters.
  std::optional<QuantParams> quantize;
  // With quantized inputs and no `quantize`, the output is quantized like
  // the inputs; `dequantize` writes dense tensors instead.
  bool dequantize = false;
  // Relative model paths resolve against this directory (empty: the current one).
  std::filesystem::path base_dir;
  // Refuse what mergekit would not read: llmerge's per-slice merge_method and
  // the seed's format (docs/recipes.md).
  bool strict_mergekit = false;
  // Model references that name an earlier recipe stage computed in the same
  // pass (one-pass recipes), by that name.
  std::map<std::string, std::shared_ptr<const StageInput>> stages;
};

// How the executor reads an input (exec/sources.h).
enum class SourceKind {
  dense,           // the stored tensor, any float dtype
  sub_matrix,      // a leading sub-matrix with fewer columns than stored
  mlx_dequantize,  // an MLX-quantized weight, dequantized per group
  row_gather,      // embedding rows aligned to the output vocabulary (plan/vocabulary.h)
  stage_output,    // an earlier recipe stage's tensor, computed as it is read (StageInput)
};

struct RowGather;  // plan/vocabulary.h
struct PlannedTensor;
struct VocabularyPlan;  // plan/vocabulary.h

// How the executor writes an output (exec/sink.h, output/sinks.h).
enum class SinkKind {
  dense,         // rounded to the output dtype
  mlx_quantize,  // rounded, then MLX-quantized into weight, scales, biases
};

// One input of an output tensor.
struct PlannedInput {
  std::size_t model = 0;            // index into MergePlan::models
  std::string tensor;               // name in that model
  TensorRef ref;                    // where it is stored
  std::vector<std::int64_t> shape;  // logical shape read (a leading sub-matrix of the stored one)
  SourceKind source = SourceKind::dense;
  // SourceKind::row_gather: the tensor's alignment, shared by all its inputs,
  // and this input's slot in it.
  std::shared_ptr<RowGather> gather;
  std::size_t gather_slot = 0;
  // A LoRA update added to what `source` reads (a "model+adapter" reference):
  // the executor sees W + scale * L * R^T, rounded as the adapted model would
  // be stored (exec/sources.h, docs/lora.md). nullptr: none.
  const LoraModule* lora = nullptr;
  const Adapter* adapter = nullptr;  // the adapter `lora` (or a replacement tensor) comes from
  // SourceKind::stage_output: the stage and the tensor of its plan that `ref`
  // stands for (`shape` may be a leading sub-matrix of it). nullptr: a stored tensor.
  const StageInput* stage = nullptr;
  const PlannedTensor* stage_tensor = nullptr;
};

struct PlannedTensor {
  std::string name;                    // output name
  DType dtype = DType::BF16;           // output dtype
  std::vector<std::int64_t> shape;     // output shape
  const MethodSpec* method = nullptr;  // nullptr: copied verbatim from inputs[0] (non-float)
  std::optional<PlannedInput> base;
  std::vector<PlannedInput> inputs;  // non-base inputs, in config order
  ResolvedParameters params;
  std::int64_t layer = -1;  // output layer index, -1 outside the layers
  // Written MLX-quantized: as "<module>.weight" (packed uint32), ".scales"
  // and ".biases" (in `dtype`) instead of one dense tensor.
  std::optional<QuantParams> quantize;
  SinkKind sink = SinkKind::dense;
  std::int64_t numel() const;
  std::uint64_t nbytes() const;  // bytes written, all three tensors if quantized
};

// Output layer <- sources, for `llmerge plan`.
struct LayerMapping {
  std::int64_t out_layer = 0;
  std::size_t slice = 0;
  double t = 0;
  std::vector<std::pair<std::size_t, std::int64_t>> sources;  // (model, source layer)
};

struct MergePlan {
  MergeConfig config;
  const MethodSpec* method = nullptr;  // the top-level method (else the first slice's)
  // The method of each config slice (one entry for a `models:` config).
  std::vector<const MethodSpec*> slice_methods;
  std::vector<Model> models;            // distinct models, in order of first mention
  std::vector<std::string> model_refs;  // the references as written, parallel to models
  // The LoRA adapter of each model ("base+adapter" references), parallel to
  // models; nullptr for a plain model. Heap-held: inputs point into them.
  std::vector<std::unique_ptr<Adapter>> adapters;
  std::optional<std::size_t> base_model;     // the top-level base, if any
  std::size_t donor = 0;                     // model whose config.json is used
  std::size_t tokenizer_model = 0;           // model whose tokenizer files are copied
  std::optional<std::string> chat_template;  // resolved `chat_template:`, if set
  // The output vocabulary when `tokenizer_source` / `tokenizer:` is set.
  std::shared_ptr<const VocabularyPlan> vocabulary;
  std::vector<PlannedTensor> tensors;  // output order
  std::vector<LayerMapping> layer_map;
  std::int64_t out_layers = 0;
  nlohmann::json out_config;               // the output config.json
  DType compute_dtype_round = DType::F32;  // inputs are rounded to this first (config `dtype`)
  bool round_inputs = false;
  PlanSettings options;
  std::vector<std::string> notes;  // non-fatal remarks for the user
  // The name the config is saved under in the output (mergekit-moe writes
  // mergekit_moe_config.yml).
  std::string recipe_file = "mergekit_config.yml";

  std::uint64_t output_bytes() const;
  // Upper bound of the executor's buffers: threads x (inputs + 1) x chunk x 4 bytes,
  // plus headers. Whole-tensor statistics are streaming, so this does not
  // depend on model size.
  // `threads` and `chunk_elements` of 0 take the plan options' values.
  std::uint64_t peak_memory_estimate(int threads = 0, std::int64_t chunk_elements = 0) const;
};

// Throws Error(config|shape|io|format|unsupported) listing every problem found.
MergePlan make_plan(const MergeConfig& config, const PlanSettings& options);

}  // namespace llmerge
