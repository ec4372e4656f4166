#include <cmath>
#include <string>

#include <fmt/core.h>

#include "core/error.h"
#include "merge/method.h"
#include "merge/methods/methods.h"

namespace llmerge {
namespace {

template <class Pairs>
const double* find_value(const Pairs& pairs, std::string_view name) {
  for (const auto& [key, value] : pairs) {
    if (key == name) return &value;
  }
  return nullptr;
}

}  // namespace

const ParameterSpec* MethodSpec::find_parameter(std::string_view parameter) const {
  for (const ParameterSpec& p : parameters) {
    if (p.name == parameter) return &p;
  }
  return nullptr;
}

double ResolvedParameters::global_value(std::string_view name) const {
  if (const double* v = find_value(global, name)) return *v;
  throw Error(ErrorKind::internal, "parameter '" + std::string(name) + "' was not resolved");
}

double ResolvedParameters::model_value(std::size_t model, std::string_view name) const {
  if (model >= per_model.size()) {
    throw Error(ErrorKind::internal, "no resolved parameters for model " + std::to_string(model) +
                                         " (have " + std::to_string(per_model.size()) + ")");
  }
  if (const double* v = find_value(per_model[model], name)) return *v;
  throw Error(ErrorKind::internal, "parameter '" + std::string(name) +
                                       "' was not resolved for model " + std::to_string(model));
}

std::string check_weights_do_not_cancel(const ResolvedParameters& params) {
  // Summed in f32 in config order, as linear does: weights that cancel only
  // in double (1 and -0.9999999999) still sum to 0 in f32.
  if (params.per_model.empty()) return "";
  float sum = 0;
  for (std::size_t i = 0; i < params.per_model.size(); ++i)
    sum += static_cast<float>(params.model_value(i, "weight"));
  if (!std::isfinite(sum)) {
    return "the weights sum to infinity in f32 arithmetic; use smaller weights";
  }
  if (std::abs(sum) >= 1e-30f) return "";
  return "the weights sum to zero (in f32 arithmetic), so normalizing divides by zero; change a "
         "weight or turn normalization off";
}

std::string elementwise_unless_sparsified(const ResolvedParameters& params, const char* method,
                                          bool random_mask) {
  bool sparsified = false;
  for (std::size_t i = 0; i < params.per_model.size(); ++i)
    sparsified |= params.model_value(i, "density") < 1.0;
  if (!sparsified) return "";
  if (random_mask) {
    // The Bernoulli mask is keyed by the element (merge/random.h); the L1
    // rescale that follows it is a ratio of two whole-tensor norms.
    if (params.global_value("rescale") == 0.0) return "";
    return fmt::format(
        "{} with density < 1 and rescale: true scales each task vector by the ratio of two L1 "
        "norms of the whole tensor (set rescale: false to stream it)",
        method);
  }
  return fmt::format(
      "{} with density < 1 keeps each task vector's largest entries, a ranking of "
      "the whole tensor",
      method);
}

const std::vector<MethodSpec>& method_registry() {
  // Same order as mergekit's registry (docs/mergekit-semantics.md §1.1).
  static const std::vector<MethodSpec> registry = [] {
    std::vector<MethodSpec> specs;
    specs.push_back(make_linear_spec());
    specs.push_back(make_slerp_spec());
    specs.push_back(make_nuslerp_spec());
    specs.push_back(make_multislerp_spec());
    specs.push_back(make_karcher_spec());
    specs.push_back(make_task_arithmetic_spec());
    specs.push_back(make_ties_spec());
    specs.push_back(make_dare_ties_spec());
    specs.push_back(make_dare_linear_spec());
    specs.push_back(make_breadcrumbs_spec());
    specs.push_back(make_breadcrumbs_ties_spec());
    specs.push_back(make_della_spec());
    specs.push_back(make_della_linear_spec());
    specs.push_back(make_sce_spec());
    specs.push_back(make_ram_spec());
    specs.push_back(make_ramplus_tl_spec());
    specs.push_back(make_model_stock_spec());
    specs.push_back(make_nearswap_spec());
    specs.push_back(make_arcee_fusion_spec());
    specs.push_back(make_passthrough_spec());
    return specs;
  }();
  return registry;
}

const MethodSpec* find_method(std::string_view name) {
  for (const MethodSpec& spec : method_registry()) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

}  // namespace llmerge
