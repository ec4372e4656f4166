// nearswap: take the other model's value where it is close to the base's,
// keep the base where they differ a lot.
//
// Reference: alchemonaut, QuartetAnemoi-70B-t0.0001 (model card),
// https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001
//
// Formula (docs/mergekit-semantics.md §1.12), per element, base a and other b:
//   w   = clamp(t / max(|a − b|, 1e-6), 0, 1)
//   res = w·b + (1 − w)·a
// Parameters: global `t` (required; any value, t <= 0 gives the base).
//
// Differences from mergekit: f32 instead of the config dtype; otherwise the
// same operations in the same order. NaN in t / |a − b| stays NaN, as
// torch's clamp leaves it.
#include <algorithm>
#include <cmath>

#include "merge/methods/methods.h"

namespace llmerge {
namespace {

// mergekit's clamp on |a − b| (merge_methods/nearswap.py).
constexpr float k_distance_min = 1e-6f;

class NearswapMerge final : public TensorMerge {
 public:
  explicit NearswapMerge(const TensorContext& context)
      : t_(static_cast<float>(context.params->global_value("t"))) {}

  void compute(const Chunk& chunk, float* out) override {
    const float* a = chunk.base;
    const float* b = chunk.models[0];
    for (std::int64_t i = 0; i < chunk.size; ++i) {
      const float distance = std::max(std::fabs(a[i] - b[i]), k_distance_min);
      float w = t_ / distance;
      if (!std::isnan(w)) w = std::clamp(w, 0.0f, 1.0f);
      out[i] = w * b[i] + (1.0f - w) * a[i];
    }
  }

 private:
  float t_;
};

std::unique_ptr<TensorMerge> make_nearswap(const TensorContext& context) {
  return std::make_unique<NearswapMerge>(context);
}

}  // namespace

MethodSpec make_nearswap_spec() {
  MethodSpec spec;
  spec.name = "nearswap";
  spec.pretty_name = "NearSwap";
  spec.reference = "https://huggingface.co/alchemonaut/QuartetAnemoi-70B-t0.0001";
  spec.description = "Take the other model's values where they lie within ~t of the base's";
  spec.base_use = MethodSpec::BaseUse::required;
  spec.models_min = 1;
  spec.models_max = 1;
  spec.rectify_to_common = true;
  spec.parameters = {
      number_parameter("t", ParameterSpec::Scope::global, std::nullopt,
                       "Distance scale: elements closer than t take the other model's value"),
  };
  spec.make = &make_nearswap;
  spec.elementwise = &always_elementwise;
  return spec;
}

}  // namespace llmerge
