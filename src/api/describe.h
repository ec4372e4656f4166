// The two views of a plan that `llmerge plan` and the public API show.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "plan/plan.h"

namespace llmerge {

// Human-readable plan (layer map, sample parameters, sizes, memory estimate).
std::string describe_plan(const MergePlan& plan);
// Machine-readable: every output tensor with its inputs and parameters.
nlohmann::json plan_to_json(const MergePlan& plan);

}  // namespace llmerge
