// The merge method compare recommends, with parameters and the reasons, each
// naming the figure and the threshold that triggered it (docs/compare.md,
// "Recommendation"). Heuristics, stated so the user can overrule them.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/alignment.h"
#include "analysis/compare_engine.h"

namespace llmerge {

struct Recommendation {
  std::string method;
  nlohmann::ordered_json parameters = nlohmann::ordered_json::object();
  std::vector<std::string> reasons;
  std::string config;  // YAML that `llmerge run` accepts
};

// Thresholds, named for the docs and the tests.
inline constexpr double k_identical_cosine = 0.9999;
inline constexpr double k_colinear_task_cosine = 0.9;
inline constexpr double k_high_sign_conflict = 0.2;
inline constexpr double k_low_top_k_overlap = 0.3;

// `alignments[m - 1]`: model m aligned onto model 0.
Recommendation recommend(const CompareData& data, const std::vector<LayerAlignment>& alignments);

}  // namespace llmerge
