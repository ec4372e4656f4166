// karcher: the Karcher (Riemannian) mean of the models' directions on the
// unit hypersphere, scaled by their mean norm.
//
// Reference: arXiv 2603.04972 (as cited by mergekit's docs),
// https://arxiv.org/abs/2603.04972; Karcher, "Riemannian center of mass and
// mollifier smoothing", CPAM 1977.
//
// Formula (docs/mergekit-semantics.md §1.7), all N inputs (a base model is just
// another input), each the whole flattened tensor, α_i = 1/N:
//   n_i = ‖X_i‖,  u_i = X_i / n_i;  keep the inputs with n_i > tol and
//   renormalise their α to â (no input kept: res = 0)
//   u = normalise(Σ â_i u_i), or the first kept u_i if that norm < tol
//   repeat max_iter times:
//     cos θ_i = clamp(u·u_i, −1, 1);  T = Σ_{θ_i >= tol} â_i (θ_i / sin θ_i)(u_i − cos θ_i u)
//     stop if ‖T‖ < tol
//     u ← cos‖T‖ u + sin‖T‖ T/‖T‖;  u ← u/‖u‖ if ‖u‖ > tol
//   res = (Σ_all α_i n_i) · u
// Parameters: global `max_iter` (10), `tol` (1e-5). No weights.
//
// u always stays in the span of the u_i, so the iteration runs on
// coefficient vectors against the Gram matrix G_ij = X_i·X_j, which one
// statistics pass sums (block-wise f64). Memory is N² doubles, never a
// tensor copy, and no extra pass is needed per iteration.
//
// Differences from mergekit:
// - The iteration is in f64 (mergekit: the input dtype, norms in f32), so
//   results agree to f32 rounding, not bit for bit.
// - Non-convergence: like mergekit, the mean after max_iter iterations is
//   used as it is, with no warning.
#include <algorithm>
#include <cmath>
#include <vector>

#include "merge/kernels/reduce.h"
#include "merge/methods/methods.h"

namespace llmerge {
namespace {

class KarcherMerge final : public TensorMerge {
 public:
  explicit KarcherMerge(const TensorContext& context)
      : m_(context.model_count),
        max_iter_(static_cast<int>(context.params->global_value("max_iter"))),
        tol_(context.params->global_value("tol")),
        gram_(m_ * m_, 0.0),
        coefficients_(m_, 0.0f) {}

  int passes() const override { return m_ > 1 ? 1 : 0; }

  void observe(int /*pass*/, const Chunk& chunk) override {
    kernels::for_each_block(chunk.begin, chunk.size, [&](std::size_t off, std::size_t len) {
      for (std::size_t i = 0; i < m_; ++i) {
        for (std::size_t j = i; j < m_; ++j)
          gram_[i * m_ + j] +=
              kernels::reduce_dot(chunk.models[i] + off, chunk.models[j] + off, len);
      }
    });
  }

  void end_pass(int /*pass*/) override {
    std::vector<double> norms(m_);
    std::vector<std::size_t> kept;
    for (std::size_t i = 0; i < m_; ++i) {
      norms[i] = std::sqrt(std::max(gram_[i * m_ + i], 0.0));
      if (norms[i] > tol_) kept.push_back(i);
    }
    if (kept.empty()) return;  // all coefficients 0
    const std::size_t k = kept.size();
    unit_gram_.assign(k * k, 0.0);
    for (std::size_t a = 0; a < k; ++a) {
      for (std::size_t b = 0; b < k; ++b) {
        const std::size_t i = std::min(kept[a], kept[b]);
        const std::size_t j = std::max(kept[a], kept[b]);
        unit_gram_[a * k + b] = gram_[i * m_ + j] / (norms[kept[a]] * norms[kept[b]]);
      }
    }
    const double alpha = 1.0 / static_cast<double>(k);  // â: equal weights renormalised
    std::vector<double> u(k, alpha);
    const double initial_norm = norm(u);
    if (initial_norm < tol_) {
      std::fill(u.begin(), u.end(), 0.0);
      u[0] = 1.0;
    } else {
      for (double& c : u)
        c /= initial_norm;
    }
    std::vector<double> tangent(k);
    for (int iteration = 0; iteration < max_iter_; ++iteration) {
      std::fill(tangent.begin(), tangent.end(), 0.0);
      for (std::size_t a = 0; a < k; ++a) {
        const double cos_theta = std::clamp(dot_with_unit(u, a), -1.0, 1.0);
        const double theta = std::acos(cos_theta);
        if (theta < tol_) continue;
        const double factor = alpha * theta / std::sin(theta);
        tangent[a] += factor;
        for (std::size_t b = 0; b < k; ++b)
          tangent[b] -= factor * cos_theta * u[b];
      }
      const double tangent_norm = norm(tangent);
      if (tangent_norm < tol_) break;
      for (std::size_t b = 0; b < k; ++b)
        u[b] = std::cos(tangent_norm) * u[b] + std::sin(tangent_norm) * tangent[b] / tangent_norm;
      const double u_norm = norm(u);
      if (u_norm > tol_) {
        for (double& c : u)
          c /= u_norm;
      }
    }
    double scale = 0.0;
    for (std::size_t i = 0; i < m_; ++i)
      scale += norms[i] / static_cast<double>(m_);
    for (std::size_t a = 0; a < k; ++a)
      coefficients_[kept[a]] = static_cast<float>(scale * u[a] / norms[kept[a]]);
  }

  void compute(const Chunk& chunk, float* out) override {
    if (m_ == 1) {
      std::copy_n(chunk.models[0], chunk.size, out);
      return;
    }
    for (std::int64_t e = 0; e < chunk.size; ++e) {
      float sum = 0.0f;
      for (std::size_t i = 0; i < m_; ++i)
        sum += coefficients_[i] * chunk.models[i][e];
      out[e] = sum;
    }
  }

 private:
  // (Σ_b c_b u_b) · u_a over the kept inputs
  double dot_with_unit(const std::vector<double>& c, std::size_t a) const {
    const std::size_t k = c.size();
    double s = 0.0;
    for (std::size_t b = 0; b < k; ++b)
      s += unit_gram_[a * k + b] * c[b];
    return s;
  }

  double norm(const std::vector<double>& c) const {
    double s = 0.0;
    for (std::size_t a = 0; a < c.size(); ++a)
      s += c[a] * dot_with_unit(c, a);
    return std::sqrt(std::max(s, 0.0));
  }

  std::size_t m_;
  int max_iter_;
  double tol_;
  std::vector<double> gram_;       // upper triangle of X_i·X_j
  std::vector<double> unit_gram_;  // u_a·u_b over the kept inputs
  std::vector<float> coefficients_;
};

std::unique_ptr<TensorMerge> make_karcher(const TensorContext& context) {
  return std::make_unique<KarcherMerge>(context);
}

}  // namespace

MethodSpec make_karcher_spec() {
  MethodSpec spec;
  spec.name = "karcher";
  spec.pretty_name = "Karcher Mean";
  spec.reference = "https://arxiv.org/abs/2603.04972";
  spec.description = "Riemannian (Karcher) mean of the models' directions, scaled by the mean norm";
  spec.base_use = MethodSpec::BaseUse::none;
  spec.models_min = 1;
  spec.models_max = 0;
  spec.rectify_to_common = true;
  ParameterSpec max_iter = number_parameter("max_iter", ParameterSpec::Scope::global, 10.0,
                                            "Most iterations of the mean");
  max_iter.min = 0.0;
  max_iter.max = 1e6;
  ParameterSpec tol =
      number_parameter("tol", ParameterSpec::Scope::global, 1e-5, "Convergence tolerance");
  tol.min = 0.0;
  spec.parameters = {max_iter, tol};
  spec.make = &make_karcher;
  return spec;
}

}  // namespace llmerge
