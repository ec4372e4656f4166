// linear: a weighted average of the models ("model soup").
//
// Paper: Wortsman et al., "Model soups: averaging weights of multiple
// fine-tuned models improves accuracy without increasing inference time",
// ICML 2022, https://arxiv.org/abs/2203.05482
//
// Formula (docs/mergekit-semantics.md §1.3), per element:
//   res = w_0·x_0, then res = fma(w_i, x_i, res) for i = 1.. in config order
//   (mergekit 0.1.5 accumulates with torch's addcmul_, fused on the CPU)
//   res = res / Σ_i w_i                 if normalize
// Parameters: per-model `weight` (required); global `normalize` (true).
//
// Differences from mergekit:
// - mergekit 0.1.5 computes linear in f32 whatever the config dtype (after
//   casting the inputs to it), accumulating with a fused multiply-add; so
//   does llmerge, so the two agree bit for bit up to summation order. Σw is
//   the f32 sum of the weights in config order.
// - Σw = 0 with normalize gives inf/NaN in mergekit; the planner rejects it,
//   so this kernel divides without a guard.
// - Inputs are in config order (mergekit's order follows a hash map), which
//   only affects the last bit of a sum of three or more models.
#include <vector>

#include "merge/kernels/kernels.h"
#include "merge/methods/methods.h"

namespace llmerge {
namespace {

class LinearMerge final : public TensorMerge {
 public:
  explicit LinearMerge(const TensorContext& context)
      : normalize_(context.params->global_value("normalize") != 0.0) {
    for (std::size_t i = 0; i < context.model_count; ++i) {
      weights_.push_back(static_cast<float>(context.params->model_value(i, "weight")));
      weight_sum_ = i == 0 ? weights_.back() : weight_sum_ + weights_.back();
    }
  }

  void compute(const Chunk& chunk, float* out) override {
    const auto n = static_cast<std::size_t>(chunk.size);
    kernels::scale(chunk.models[0], weights_[0], out, n);
    for (std::size_t i = 1; i < weights_.size(); ++i)
      kernels::fused_axpy(weights_[i], chunk.models[i], out, n);
    if (normalize_) kernels::divide_scalar(out, weight_sum_, n);
  }

 private:
  bool normalize_;
  std::vector<float> weights_;
  float weight_sum_ = 0.0f;
};

std::unique_ptr<TensorMerge> make_linear(const TensorContext& context) {
  return std::make_unique<LinearMerge>(context);
}

}  // namespace

MethodSpec make_linear_spec() {
  MethodSpec spec;
  spec.name = "linear";
  spec.pretty_name = "Linear";
  spec.reference = "https://arxiv.org/abs/2203.05482";
  spec.description = "Weighted average of the models (model soup)";
  spec.base_use = MethodSpec::BaseUse::none;
  spec.models_min = 1;
  spec.models_max = 0;
  spec.rectify_to_common = true;
  spec.parameters = {
      number_parameter("weight", ParameterSpec::Scope::per_model, std::nullopt,
                       "Scalar weight of the model"),
      bool_parameter("normalize", true, "Divide the weighted sum by the sum of the weights"),
  };
  spec.make = &make_linear;
  spec.elementwise = &always_elementwise;
  spec.check = [](const ResolvedParameters& p) {
    return p.global_value("normalize") != 0 ? check_weights_do_not_cancel(p) : std::string();
  };
  return spec;
}

}  // namespace llmerge
