// One-pass recipes (docs/recipes.md §3): an earlier stage's planned output
// seen as a model, and the rules that say when a stage may be streamed.
//
// A recipe stage that is not written is opened from its plan: its header is
// the plan's output tensors (names, dtypes, shapes, in output order) and its
// config.json the plan's output config, so the next stage is planned and
// checked exactly as it would be against the written folder. Each input that
// reads such a model is then linked to the tensor of the stage's plan that
// produces it (PlannedInput::stage), and the executor computes it chunk by
// chunk (exec/stage_source.h).
#pragma once

#include <cstdint>
#include <string>

#include "plan/plan.h"

namespace llmerge {

// The model a later stage sees for `stage`, named `name` in its config.
Model stage_output_model(const StageInput& stage, const std::string& name);

// Links every input of `plan` that reads a stage output model to the tensor
// that computes it. A tensor the stage copies verbatim (a non-float buffer,
// or a plain passthrough copy) is read from where the stage copied it from:
// the same bytes.
void link_stage_inputs(MergePlan& plan);

// "" when every tensor of `stage` can be computed as it is read, else why
// not (for the plan note): a method that is not element-wise
// (MethodSpec::elementwise), MLX-quantized output, or tokenizer files that
// the stage writes itself (a vocabulary union or a chat template).
std::string stage_streaming_obstacle(const MergePlan& stage);

// Bytes one reader of `in` holds besides the executor's buffers: for a stage
// output, the chunk buffers of the stage's inputs and output, its method's
// memory, and the same for the stages it reads in turn; 0 for a stored tensor.
std::uint64_t stage_source_bytes(const PlannedInput& in, std::int64_t chunk);

}  // namespace llmerge
