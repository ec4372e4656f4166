// Pieces of the planner shared between its .cpp files. Not a public API.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plan/diagnostics.h"
#include "plan/plan.h"

namespace llmerge {

namespace plan_detail {
std::string shape_string(const std::vector<std::int64_t>& shape);
// Embedding-like tensors (input embeddings, lm_head): mergekit's `is_embed`.
bool is_embedding_name(std::string_view name);
// Tensors before the layers (input embeddings); all other non-layer tensors come after.
bool is_pre_weight(std::string_view name);
}  // namespace plan_detail

// Where a non-base input's per-model parameters come from.
struct InputParameterSource {
  const ParameterMap* parameters = nullptr;  // the source's own parameters (may be null)
  std::string tensor;                        // the input tensor name (for filters)
  SourceLocation location;                   // of the source entry
};

// Every parameter name used anywhere in the config must be one the method
// takes, at a level where it means something. With per-slice methods a
// slice's parameters are checked against its own method, and a top-level
// parameter must be one that some slice's method takes.
void check_parameter_names(const MergeConfig& config, const MethodSpec& method,
                           const std::vector<const MethodSpec*>& slice_methods, Diagnostics& diag);

// Looks up the top-level and every slice's merge_method (slice_methods.cpp):
// sets MergePlan::method and ::slice_methods, or reports each unknown name once.
void resolve_methods(MergePlan& plan, Diagnostics& diag);
// With PlanSettings::strict_mergekit, refuses the seed's format and
// per-slice methods, at their YAML locations.
void check_strict_mergekit(const MergePlan& plan, Diagnostics& diag);

// Resolves the method's parameters for one output tensor (precedence and
// filters as mergekit; see plan.h) and checks their ranges.
void resolve_parameters(const MergeConfig& config, const MethodSpec& method,
                        const ParameterMap* slice_parameters, SourceLocation slice_location,
                        const std::vector<InputParameterSource>& inputs,
                        const std::string& out_name, double t, ResolvedParameters& out,
                        Diagnostics& diag);

// The output config.json: the donor's, with layer count, per-layer arrays,
// torch_dtype, tie_word_embeddings and (if embeddings were cut) vocab_size updated.
nlohmann::json build_output_config(const MergePlan& plan,
                                   std::optional<std::int64_t> rectified_vocab);

// The model whose tokenizer files are copied: `tokenizer_source` (base or a
// model reference), else the base, else the config donor.
std::size_t tokenizer_model_of(const MergePlan& plan);

// Every update and whole tensor of every adapter fits a tensor of its base
// (plan/adapters.cpp).
void check_adapters(const MergePlan& plan, Diagnostics& diag);
// Attaches the input's LoRA update, or points it at the adapter's whole
// tensor that replaces it (modules_to_save, biases).
void attach_adapter(const MergePlan& plan, PlannedInput& in);

// Decides which output tensors are written MLX-quantized (PlannedTensor::quantize).
void assign_output_quantization(MergePlan& plan, Diagnostics& diag);
// Unscaled passthrough tensors whose bytes would not change are planned as
// plain copies (PlannedTensor::method = nullptr), skipping the f32 round trip.
void plan_plain_copies(MergePlan& plan);
// Chooses how each input is read and each output written (PlannedInput::source,
// PlannedTensor::sink), from the storage and the quantization decided above.
void assign_sources_and_sinks(MergePlan& plan);
// The chosen tokenizer's token ids must all have an embedding row and be
// below the output vocab_size (docs/RELIABILITY.md, class 1).
void check_tokenizer_fits_embeddings(const MergePlan& plan, Diagnostics& diag);
// The donor's config.json becomes the output's; a folder without one is refused,
// a lone .safetensors file gets a note.
void check_donor_config(MergePlan& plan, Diagnostics& diag);
// Refuses a --chunk-elements whose buffers would not fit in physical memory.
void check_chunk_memory(const MergePlan& plan, Diagnostics& diag);
// Writes (or removes) config.json "quantization" / "quantization_config".
void update_config_quantization(const MergePlan& plan, nlohmann::json& cfg);

}  // namespace llmerge
