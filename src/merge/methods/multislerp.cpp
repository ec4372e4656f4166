// multislerp: barycentric interpolation of several models on the
// hypersphere, via the tangent space at their weighted mean direction.
//
// Reference: Goddard, "Multi-SLERP", https://goddard.blog/posts/multislerp-wow-what-a-cool-idea
//
// Formula (docs/mergekit-semantics.md §1.6), X_i = x_i − b with a base, else x_i,
// every vector the whole flattened tensor:
//   w_i ← w_i / Σ w_j                      if normalize_weights
//   n_i = ‖X_i‖,  u_i = X_i / (n_i + eps)
//   m = Σ w_i u_i;  if ‖m‖ < eps: res = Σ w_i X_i (+ b)   (see below)
//   m ← m / ‖m‖
//   T = Σ w_i (u_i − (u_i·m) m),  s = ‖T‖ + eps
//   r = m cos s + T sin(s) / s
//   res = r · Σ w_i n_i  (+ b)
// Parameters: per-model `weight` (required); global `normalize_weights`
// (true), `eps` (1e-8). One model: returned unchanged.
//
// Every vector above is a linear combination of the X_i, so one statistics
// pass for the Gram matrix G_ij = X_i·X_j (block-wise f64) is enough: the
// steps run on coefficient vectors c with ‖Σ c_i X_i‖² = cᵀGc, and compute()
// writes res = Σ c_i X_i (+ b) in f32.
//
// Differences from mergekit:
// - f64 coefficients from an f64 Gram matrix; mergekit: the config dtype.
// - ‖m‖ < eps with more than two models raises in mergekit; here it falls
//   back to the weighted sum Σ w_i X_i (+ b) for any number of models, as
//   mergekit does for two.
#include <algorithm>
#include <cmath>
#include <vector>

#include "merge/kernels/reduce.h"
#include "merge/methods/methods.h"

namespace llmerge {
namespace {

class MultislerpMerge final : public TensorMerge {
 public:
  explicit MultislerpMerge(const TensorContext& context)
      : m_(context.model_count), has_base_(context.has_base), gram_(m_ * m_, 0.0) {
    const ResolvedParameters& p = *context.params;
    eps_ = p.global_value("eps");
    double sum = 0.0;
    for (std::size_t i = 0; i < m_; ++i) {
      weights_.push_back(p.model_value(i, "weight"));
      sum += weights_.back();
    }
    if (p.global_value("normalize_weights") != 0.0) {
      for (double& w : weights_)
        w /= sum;
    }
  }

  int passes() const override { return m_ > 1 ? 1 : 0; }

  void observe(int /*pass*/, const Chunk& chunk) override {
    const auto n = static_cast<std::size_t>(chunk.size);
    deltas_.resize(m_ * n);
    for (std::size_t i = 0; i < m_; ++i) {
      float* d = deltas_.data() + i * n;
      for (std::size_t e = 0; e < n; ++e)
        d[e] = has_base_ ? chunk.models[i][e] - chunk.base[e] : chunk.models[i][e];
    }
    kernels::for_each_block(chunk.begin, chunk.size, [&](std::size_t off, std::size_t len) {
      for (std::size_t i = 0; i < m_; ++i) {
        for (std::size_t j = i; j < m_; ++j) {
          const double dot =
              kernels::reduce_dot(deltas_.data() + i * n + off, deltas_.data() + j * n + off, len);
          gram_[i * m_ + j] += dot;
        }
      }
    });
  }

  void end_pass(int /*pass*/) override {
    std::vector<float>().swap(deltas_);
    for (std::size_t i = 0; i < m_; ++i) {
      for (std::size_t j = 0; j < i; ++j)
        gram_[i * m_ + j] = gram_[j * m_ + i];
    }
    std::vector<double> norms(m_), unit_scale(m_), mean(m_);
    for (std::size_t i = 0; i < m_; ++i) {
      norms[i] = std::sqrt(std::max(gram_[i * m_ + i], 0.0));
      unit_scale[i] = 1.0 / (norms[i] + eps_);
      mean[i] = weights_[i] * unit_scale[i];
    }
    const double mean_norm = norm(mean);
    coefficients_.assign(m_, 0.0f);
    if (mean_norm < eps_) {
      for (std::size_t i = 0; i < m_; ++i)
        coefficients_[i] = static_cast<float>(weights_[i]);
      return;
    }
    for (double& c : mean)
      c /= mean_norm;
    // T = Σ w_i u_i − (Σ w_i (u_i·m)) m
    double projection = 0.0;
    for (std::size_t i = 0; i < m_; ++i)
      projection += weights_[i] * unit_scale[i] * dot_with_basis(mean, i);
    std::vector<double> tangent(m_);
    for (std::size_t i = 0; i < m_; ++i)
      tangent[i] = weights_[i] * unit_scale[i] - projection * mean[i];
    const double s = norm(tangent) + eps_;
    double average_norm = 0.0;
    for (std::size_t i = 0; i < m_; ++i)
      average_norm += norms[i] * weights_[i];
    for (std::size_t i = 0; i < m_; ++i) {
      const double r = mean[i] * std::cos(s) + tangent[i] * (std::sin(s) / s);
      coefficients_[i] = static_cast<float>(r * average_norm);
    }
  }

  void compute(const Chunk& chunk, float* out) override {
    if (m_ == 1) {
      std::copy_n(chunk.models[0], chunk.size, out);
      return;
    }
    for (std::int64_t e = 0; e < chunk.size; ++e) {
      const float b = has_base_ ? chunk.base[e] : 0.0f;
      float sum = 0.0f;
      for (std::size_t i = 0; i < m_; ++i)
        sum += coefficients_[i] * (has_base_ ? chunk.models[i][e] - b : chunk.models[i][e]);
      out[e] = has_base_ ? b + sum : sum;
    }
  }

 private:
  // (Σ_j c_j X_j) · X_i
  double dot_with_basis(const std::vector<double>& c, std::size_t i) const {
    double s = 0.0;
    for (std::size_t j = 0; j < m_; ++j)
      s += gram_[i * m_ + j] * c[j];
    return s;
  }

  // ‖Σ_j c_j X_j‖
  double norm(const std::vector<double>& c) const {
    double s = 0.0;
    for (std::size_t i = 0; i < m_; ++i)
      s += c[i] * dot_with_basis(c, i);
    return std::sqrt(std::max(s, 0.0));
  }

  std::size_t m_;
  bool has_base_;
  double eps_ = 1e-8;
  std::vector<double> weights_;
  std::vector<double> gram_;
  std::vector<float> deltas_;
  std::vector<float> coefficients_;
};

std::unique_ptr<TensorMerge> make_multislerp(const TensorContext& context) {
  return std::make_unique<MultislerpMerge>(context);
}

}  // namespace

MethodSpec make_multislerp_spec() {
  MethodSpec spec;
  spec.name = "multislerp";
  spec.pretty_name = "Multi-SLERP";
  spec.reference = "https://goddard.blog/posts/multislerp-wow-what-a-cool-idea";
  spec.description = "Spherical barycentric interpolation of any number of models";
  spec.base_use = MethodSpec::BaseUse::optional;
  spec.models_min = 1;
  spec.models_max = 0;
  spec.rectify_to_common = true;
  ParameterSpec eps =
      number_parameter("eps", ParameterSpec::Scope::global, 1e-8, "Guard against zero norms");
  eps.min = 0.0;
  spec.parameters = {
      number_parameter("weight", ParameterSpec::Scope::per_model, std::nullopt,
                       "Weight of the model in the barycentre"),
      bool_parameter("normalize_weights", true, "Divide the weights by their sum"),
      eps,
  };
  spec.make = &make_multislerp;
  spec.check = [](const ResolvedParameters& p) {
    return p.global_value("normalize_weights") != 0 ? check_weights_do_not_cancel(p)
                                                    : std::string();
  };
  return spec;
}

}  // namespace llmerge
