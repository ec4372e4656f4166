// The shard layout of a plan: which writer tensors each planned tensor becomes.
#pragma once

#include <vector>

#include "output/model_writer.h"
#include "plan/plan.h"

namespace llmerge {

// The writer's tensor list for a plan, in plan order. A quantized output
// tensor becomes three entries: weight, scales, biases (in that order).
std::vector<TensorSpec> plan_tensor_specs(const MergePlan& plan);
// For each planned tensor, the index of its (first) entry in plan_tensor_specs.
std::vector<std::size_t> plan_writer_indices(const MergePlan& plan);

}  // namespace llmerge
