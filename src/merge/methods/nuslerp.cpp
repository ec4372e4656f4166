// nuslerp: spherical interpolation between two models (or their task
// vectors), over the whole tensor, per row or per column.
//
// Reference: Shoemake, "Animating rotation with quaternion curves",
// SIGGRAPH 1985, https://doi.org/10.1145/325165.325242 (mergekit's NuSLERP).
//
// Formula (docs/mergekit-semantics.md §1.5), models x_1, x_2 with weights w_1, w_2:
//   t = w_2 / (w_1 + w_2), or 0.5 if |w_1 + w_2| < 1e-6
//   v_k = x_k − b with a base, else x_k
//   for each vector (the flattened tensor; or each vector along the last
//   axis; or, with nuslerp_row_wise, along axis 0):
//     cos θ = clamp(v_1·v_2 / (max(‖v_1‖, 1e-7) · max(‖v_2‖, 1e-7)), −1, 1)
//     if 1 − cos²θ <= 1e-16:  res = (1 − t)·v_1 + t·v_2
//     else:                   res = (sin((1 − t)θ)·v_1 + sin(tθ)·v_2) / sin θ
//   plus b with a base.
// Parameters: per-model `weight` (required); global `nuslerp_row_wise`
// (false), `nuslerp_flatten` (true; when true, row_wise is ignored).
// "row_wise" follows mergekit's code, not its docs: false makes each vector
// along the last axis (each row of an [out, in] matrix) one vector; true
// makes each vector along axis 0 (each column) one. A 1-D tensor is always
// one vector.
//
// Norms and dots are one statistics pass: block-wise f64 sums for the whole
// tensor, per-vector f64 sums in element order otherwise (one triple of
// doubles per vector, so memory is numel / vector length).
//
// Differences from mergekit: the two coefficients are computed in f64 and
// rounded to f32, then res = c_1·v_1 + c_2·v_2 in f32 (mergekit: the config
// dtype, dividing by sin θ last).
#include <cmath>
#include <vector>

#include "merge/kernels/reduce.h"
#include "merge/methods/methods.h"

namespace llmerge {
namespace {

// mergekit's constants (merge_methods/nuslerp.py).
constexpr double k_norm_min = 1e-7;
constexpr double k_colinear = 1e-16;  // (1e-8)², compared with sin²θ
constexpr double k_weight_sum_min = 1e-6;

class NuslerpMerge final : public TensorMerge {
 public:
  explicit NuslerpMerge(const TensorContext& context) : has_base_(context.has_base) {
    const ResolvedParameters& p = *context.params;
    const double w1 = p.model_value(0, "weight");
    const double w2 = p.model_value(1, "weight");
    t_ = std::fabs(w1 + w2) < k_weight_sum_min ? 0.5 : w2 / (w1 + w2);
    const bool flatten = p.global_value("nuslerp_flatten") != 0.0;
    const bool row_wise = p.global_value("nuslerp_row_wise") != 0.0;
    const std::int64_t numel = context.numel;
    if (flatten || context.shape.size() < 2 || numel == 0) {
      mode_ = Mode::whole;
      vectors_ = 1;
    } else if (!row_wise) {
      mode_ = Mode::last_axis;
      length_ = context.shape.back();
      vectors_ = numel / length_;
    } else {
      mode_ = Mode::first_axis;
      vectors_ = numel / context.shape.front();  // the stride between a vector's elements
    }
    sums_.assign(static_cast<std::size_t>(vectors_) * 3, 0.0);
  }

  int passes() const override { return 1; }

  void observe(int /*pass*/, const Chunk& chunk) override {
    const auto n = static_cast<std::size_t>(chunk.size);
    v1_.resize(n);
    v2_.resize(n);
    vectors(chunk, v1_.data(), v2_.data());
    if (mode_ == Mode::whole) {
      kernels::for_each_block(chunk.begin, chunk.size, [&](std::size_t off, std::size_t len) {
        sums_[0] += kernels::reduce_sum_squares(v1_.data() + off, len);
        sums_[1] += kernels::reduce_sum_squares(v2_.data() + off, len);
        sums_[2] += kernels::reduce_dot(v1_.data() + off, v2_.data() + off, len);
      });
      return;
    }
    for (std::size_t i = 0; i < n; ++i) {
      double* s = &sums_[3 * vector_of(chunk.begin + static_cast<std::int64_t>(i))];
      const double a = v1_[i];
      const double b = v2_[i];
      s[0] += a * a;
      s[1] += b * b;
      s[2] += a * b;
    }
  }

  void end_pass(int /*pass*/) override {
    coefficients_.resize(static_cast<std::size_t>(vectors_) * 2);
    for (std::size_t v = 0; v < static_cast<std::size_t>(vectors_); ++v) {
      const double* s = &sums_[3 * v];
      const double n1 = std::max(std::sqrt(s[0]), k_norm_min);
      const double n2 = std::max(std::sqrt(s[1]), k_norm_min);
      const double cos_theta = std::clamp(s[2] / n1 / n2, -1.0, 1.0);
      double c1 = 1.0 - t_;
      double c2 = t_;
      if (!(1.0 - cos_theta * cos_theta <= k_colinear)) {
        const double theta = std::acos(cos_theta);
        const double sin_theta = std::sin(theta);
        c1 = std::sin((1.0 - t_) * theta) / sin_theta;
        c2 = std::sin(t_ * theta) / sin_theta;
      }
      coefficients_[2 * v] = static_cast<float>(c1);
      coefficients_[2 * v + 1] = static_cast<float>(c2);
    }
    std::vector<double>().swap(sums_);
    std::vector<float>().swap(v1_);
    std::vector<float>().swap(v2_);
  }

  void compute(const Chunk& chunk, float* out) override {
    for (std::int64_t i = 0; i < chunk.size; ++i) {
      const float* c = &coefficients_[2 * vector_of(chunk.begin + i)];
      if (has_base_) {
        const float b = chunk.base[i];
        out[i] = b + (c[0] * (chunk.models[0][i] - b) + c[1] * (chunk.models[1][i] - b));
      } else {
        out[i] = c[0] * chunk.models[0][i] + c[1] * chunk.models[1][i];
      }
    }
  }

 private:
  enum class Mode { whole, last_axis, first_axis };

  std::size_t vector_of(std::int64_t element) const {
    switch (mode_) {
      case Mode::whole:
        return 0;
      case Mode::last_axis:
        return static_cast<std::size_t>(element / length_);
      case Mode::first_axis:
        return static_cast<std::size_t>(element % vectors_);
    }
    return 0;
  }

  void vectors(const Chunk& chunk, float* v1, float* v2) const {
    for (std::int64_t i = 0; i < chunk.size; ++i) {
      const float b = has_base_ ? chunk.base[i] : 0.0f;
      v1[i] = has_base_ ? chunk.models[0][i] - b : chunk.models[0][i];
      v2[i] = has_base_ ? chunk.models[1][i] - b : chunk.models[1][i];
    }
  }

  bool has_base_;
  double t_ = 0.5;
  Mode mode_ = Mode::whole;
  std::int64_t length_ = 1;
  std::int64_t vectors_ = 1;
  std::vector<double> sums_;  // per vector: ‖v_1‖², ‖v_2‖², v_1·v_2
  std::vector<float> coefficients_;
  std::vector<float> v1_;
  std::vector<float> v2_;
};

std::unique_ptr<TensorMerge> make_nuslerp(const TensorContext& context) {
  return std::make_unique<NuslerpMerge>(context);
}

}  // namespace

MethodSpec make_nuslerp_spec() {
  MethodSpec spec;
  spec.name = "nuslerp";
  spec.pretty_name = "NuSLERP";
  spec.reference = "https://doi.org/10.1145/325165.325242";
  spec.description = "Spherical interpolation of two models (or task vectors), whole or per row";
  spec.base_use = MethodSpec::BaseUse::optional;
  spec.models_min = 2;
  spec.models_max = 2;
  spec.rectify_to_common = true;
  spec.parameters = {
      number_parameter("weight", ParameterSpec::Scope::per_model, std::nullopt,
                       "Relative weight; t = w_2 / (w_1 + w_2)"),
      bool_parameter("nuslerp_row_wise", false,
                     "Without flatten: interpolate each column (vector along axis 0) "
                     "instead of each row"),
      bool_parameter("nuslerp_flatten", true, "Treat the whole tensor as one vector"),
  };
  spec.make = &make_nuslerp;
  return spec;
}

}  // namespace llmerge
