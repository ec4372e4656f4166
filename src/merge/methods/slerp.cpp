// slerp: spherical linear interpolation between the base (t = 0) and one
// other model (t = 1).
//
// Paper: Shoemake, "Animating rotation with quaternion curves", SIGGRAPH
// 1985, https://doi.org/10.1145/325165.325242 (mergekit's version follows a
// public gist by dvschultz).
//
// Formula (docs/mergekit-semantics.md §1.4), with v0 = base, v1 = the other model,
// norms and dot over the whole flattened tensor:
//   n_k  = v_k / ‖v_k‖  if ‖v_k‖ > 1e-8, else v_k
//   dot  = n_0 · n_1
//   if |dot| > 0.9995:  res = (1 − t)·v0 + t·v1
//   else:  θ0 = acos(dot),  s0 = sin(θ0 − tθ0) / sin θ0,  s1 = sin(tθ0) / sin θ0
//          res = s0·v0 + s1·v1       (on the unnormalised tensors)
// Parameters: global `t` (required). Any finite t is accepted; t outside
// [0, 1] extrapolates along the same formula, as mergekit does.
//
// Differences from mergekit:
// - ‖v0‖², ‖v1‖² and v0·v1 are summed in f64 (block-wise, kernels/reduce.h)
//   and the coefficients are computed in f64, then rounded to f32; mergekit
//   does all of it in f32 numpy. res = s0·v0 + s1·v1 is f32 in both.
// - An all-zero input is not special-cased, exactly as in mergekit: it is
//   left unnormalised, so dot = 0, θ0 = π/2 and res = cos(tπ/2)·v0 +
//   sin(tπ/2)·v1 (not a lerp). Two all-zero inputs give zeros.
#include <cmath>

#include "merge/kernels/kernels.h"
#include "merge/kernels/reduce.h"
#include "merge/methods/methods.h"

namespace llmerge {
namespace {

// mergekit's constants (merge_methods/slerp.py).
constexpr double k_dot_threshold = 0.9995;
constexpr double k_norm_epsilon = 1e-8;

class SlerpMerge final : public TensorMerge {
 public:
  explicit SlerpMerge(const TensorContext& context) : t_(context.params->global_value("t")) {}

  int passes() const override { return 1; }

  void observe(int /*pass*/, const Chunk& chunk) override {
    const float* v0 = chunk.base;
    const float* v1 = chunk.models[0];
    kernels::for_each_block(chunk.begin, chunk.size, [&](std::size_t off, std::size_t len) {
      norm0_squared_ += kernels::reduce_sum_squares(v0 + off, len);
      norm1_squared_ += kernels::reduce_sum_squares(v1 + off, len);
      dot_ += kernels::reduce_dot(v0 + off, v1 + off, len);
    });
  }

  void end_pass(int /*pass*/) override {
    const double norm0 = std::sqrt(norm0_squared_);
    const double norm1 = std::sqrt(norm1_squared_);
    const double divisor0 = norm0 > k_norm_epsilon ? norm0 : 1.0;
    const double divisor1 = norm1 > k_norm_epsilon ? norm1 : 1.0;
    const double dot = dot_ / divisor0 / divisor1;
    if (std::fabs(dot) > k_dot_threshold) {
      coefficient0_ = static_cast<float>(1.0 - t_);
      coefficient1_ = static_cast<float>(t_);
      return;
    }
    const double theta0 = std::acos(dot);
    const double sin_theta0 = std::sin(theta0);
    const double theta_t = theta0 * t_;
    coefficient0_ = static_cast<float>(std::sin(theta0 - theta_t) / sin_theta0);
    coefficient1_ = static_cast<float>(std::sin(theta_t) / sin_theta0);
  }

  void compute(const Chunk& chunk, float* out) override {
    kernels::weighted_sum2(coefficient0_, chunk.base, coefficient1_, chunk.models[0], out,
                           static_cast<std::size_t>(chunk.size));
  }

 private:
  double t_;
  double norm0_squared_ = 0.0;
  double norm1_squared_ = 0.0;
  double dot_ = 0.0;
  float coefficient0_ = 0.0f;
  float coefficient1_ = 0.0f;
};

std::unique_ptr<TensorMerge> make_slerp(const TensorContext& context) {
  return std::make_unique<SlerpMerge>(context);
}

}  // namespace

MethodSpec make_slerp_spec() {
  MethodSpec spec;
  spec.name = "slerp";
  spec.pretty_name = "SLERP";
  spec.reference = "https://doi.org/10.1145/325165.325242";
  spec.description = "Spherical interpolation between the base model (t=0) and one other (t=1)";
  spec.base_use = MethodSpec::BaseUse::required;
  spec.models_min = 1;
  spec.models_max = 1;
  spec.rectify_to_common = true;
  spec.parameters = {
      number_parameter("t", ParameterSpec::Scope::global, std::nullopt,
                       "Interpolation factor: 0 gives the base model, 1 the other model"),
  };
  spec.make = &make_slerp;
  return spec;
}

}  // namespace llmerge
