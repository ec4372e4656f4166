// The two views of a plan that `llmerge plan` and the public API show.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "plan/plan.h"

namespace llmerge {

// Human-readable plan (layer map, sample parameters, sizes, memory estimate).
// `threads` and `chunk_elements` (0: the plan options') size the memory estimate.
std::string describe_plan(const MergePlan& plan, int threads = 0, std::int64_t chunk_elements = 0);
// Machine-readable: every output tensor with its inputs and parameters.
nlohmann::json plan_to_json(const MergePlan& plan, int threads = 0,
                            std::int64_t chunk_elements = 0);

}  // namespace llmerge
