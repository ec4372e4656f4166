// The built-in merge methods: one factory per method file, collected in a
// fixed order by method_registry() (registry.cpp).
#pragma once

#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "merge/method.h"

namespace llmerge {

MethodSpec make_linear_spec();
MethodSpec make_slerp_spec();
MethodSpec make_nuslerp_spec();
MethodSpec make_multislerp_spec();
MethodSpec make_karcher_spec();
MethodSpec make_task_arithmetic_spec();
MethodSpec make_ties_spec();
MethodSpec make_dare_ties_spec();
MethodSpec make_dare_linear_spec();
MethodSpec make_breadcrumbs_spec();
MethodSpec make_breadcrumbs_ties_spec();
MethodSpec make_della_spec();
MethodSpec make_della_linear_spec();
MethodSpec make_sce_spec();
MethodSpec make_ram_spec();
MethodSpec make_ramplus_tl_spec();
MethodSpec make_model_stock_spec();
MethodSpec make_nearswap_spec();
MethodSpec make_arcee_fusion_spec();
MethodSpec make_passthrough_spec();

// For MethodSpec::check: "" unless the per-model weights sum to zero (a
// normalised weighted sum would divide by zero; mergekit writes inf/NaN).
std::string check_weights_do_not_cancel(const ResolvedParameters& params);

// For MethodSpec::elementwise: a method that always merges element by element.
inline std::string always_elementwise(const ResolvedParameters& /*params*/) {
  return "";
}
// For MethodSpec::elementwise of the GTA family with a sparsifier: "" when no
// model's `density` is below 1 (no sparsification runs: the merge is the
// per-element task-vector sum, with sign consensus or without), else why
// not. `random_mask` (dare): the mask is per element, and only the L1
// rescale after it needs the whole tensor.
std::string elementwise_unless_sparsified(const ResolvedParameters& params, const char* method,
                                          bool random_mask);

// Default of an optional parameter that has no value unless the user sets
// one (passthrough's `scale`): the planner fills in NaN, the method reads
// NaN as "unset".
inline constexpr double k_parameter_unset = std::numeric_limits<double>::quiet_NaN();

// Builders for the specs' parameter tables.
inline ParameterSpec number_parameter(std::string name, ParameterSpec::Scope scope,
                                      std::optional<double> default_value, std::string help) {
  ParameterSpec p;
  p.name = std::move(name);
  p.scope = scope;
  p.type = ParameterSpec::Type::number;
  p.default_value = default_value;
  p.help = std::move(help);
  return p;
}

inline ParameterSpec bool_parameter(std::string name, bool default_value, std::string help) {
  ParameterSpec p;
  p.name = std::move(name);
  p.scope = ParameterSpec::Scope::global;
  p.type = ParameterSpec::Type::boolean;
  p.default_value = default_value ? 1.0 : 0.0;
  p.min = 0.0;
  p.max = 1.0;
  p.help = std::move(help);
  return p;
}

}  // namespace llmerge
