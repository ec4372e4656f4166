// passthrough: copy one model's tensor, optionally scaled. The building block
// of frankenmerges and layer stacking; there is no paper.
//
// Formula (docs/mergekit-semantics.md §1.14): res = x · scale if `scale` is set,
// else res = x.
// Parameters: per-model `scale`, optional with no default. mergekit's
// default is None; here the default is k_parameter_unset (NaN), and NaN
// means "not set": the tensor is copied bit for bit.
//
// Differences from mergekit: none beyond the f32 product (mergekit multiplies
// in the config dtype).
#include <cmath>
#include <cstring>

#include "merge/kernels/kernels.h"
#include "merge/methods/methods.h"

namespace llmerge {
namespace {

class PassthroughMerge final : public TensorMerge {
 public:
  explicit PassthroughMerge(const TensorContext& context)
      : scale_(context.params->model_value(0, "scale")) {}

  void compute(const Chunk& chunk, float* out) override {
    const auto n = static_cast<std::size_t>(chunk.size);
    if (std::isnan(scale_)) {
      if (n != 0) std::memcpy(out, chunk.models[0], n * sizeof(float));
    } else {
      kernels::scale(chunk.models[0], static_cast<float>(scale_), out, n);
    }
  }

 private:
  double scale_;
};

std::unique_ptr<TensorMerge> make_passthrough(const TensorContext& context) {
  return std::make_unique<PassthroughMerge>(context);
}

}  // namespace

MethodSpec make_passthrough_spec() {
  MethodSpec spec;
  spec.name = "passthrough";
  spec.pretty_name = "Passthrough";
  spec.reference = "https://github.com/arcee-ai/mergekit/blob/main/docs/merge_methods.md";
  spec.description = "Copy one model's tensors unchanged, optionally scaled";
  spec.base_use = MethodSpec::BaseUse::none;
  spec.models_min = 1;
  spec.models_max = 1;
  spec.rectify_to_common = true;
  spec.parameters = {
      number_parameter("scale", ParameterSpec::Scope::per_model, k_parameter_unset,
                       "Multiply the tensor by this factor (default: unset, copy as is)"),
  };
  spec.make = &make_passthrough;
  spec.elementwise = &always_elementwise;
  return spec;
}

}  // namespace llmerge
