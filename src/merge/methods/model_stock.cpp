// model_stock: interpolate between the base and the models' average by a
// ratio set by the angle between their task vectors.
//
// Paper: Jang, Yun, Han, "Model Stock: All we need is just a few fine-tuned
// models", ECCV 2024, https://arxiv.org/abs/2403.19522
//
// Formula (docs/mergekit-semantics.md §1.11), base w_0, models w_1..w_N (N >= 2),
// per vector (the flattened tensor; with filter_wise each vector along the
// last axis, a 1-D tensor being one vector):
//   o_i = w_i − w_0
//   cos = mean over pairs i < j of clamp(o_i·o_j / max(‖o_i‖‖o_j‖, 1e-6), −1, 1)
//   t   = N·cos / (1 + (N − 1)·cos),  and t = 0 where |1 + (N − 1)·cos| < 1e-6
//   res = t·(Σ_i w_i)/N + (1 − t)·w_0
// Parameters: global `filter_wise` (false).
//
// One statistics pass sums the Gram matrix of the o_i: block-wise f64 for
// the flattened tensor, per vector in element order with filter_wise
// (N(N+1)/2 doubles per row).
//
// Differences from mergekit: the zero denominator keeps the base (t = 0),
// as mergekit 0.1.5 does (older versions divided by zero); cos and t are
// f64, the interpolation f32 (mergekit: the config dtype).
#include <algorithm>
#include <cmath>
#include <vector>

#include "merge/kernels/reduce.h"
#include "merge/methods/methods.h"

namespace llmerge {
namespace {

// mergekit's constants (merge_methods/model_stock.py).
constexpr double k_norm_product_min = 1e-6;
constexpr double k_denominator_min = 1e-6;

class ModelStockMerge final : public TensorMerge {
 public:
  explicit ModelStockMerge(const TensorContext& context)
      : m_(context.model_count), pairs_(m_ * (m_ + 1) / 2) {
    if (context.params->global_value("filter_wise") != 0.0 && !context.shape.empty() &&
        context.numel > 0) {
      length_ = context.shape.back();
    } else {
      length_ = std::max<std::int64_t>(context.numel, 1);
    }
    vectors_ = std::max<std::int64_t>(context.numel / length_, 1);
    gram_.assign(static_cast<std::size_t>(vectors_) * pairs_, 0.0);
  }

  int passes() const override { return 1; }

  void observe(int /*pass*/, const Chunk& chunk) override {
    const auto n = static_cast<std::size_t>(chunk.size);
    offsets_.resize(m_ * n);
    for (std::size_t i = 0; i < m_; ++i) {
      for (std::size_t e = 0; e < n; ++e)
        offsets_[i * n + e] = chunk.models[i][e] - chunk.base[e];
    }
    if (vectors_ == 1) {
      kernels::for_each_block(chunk.begin, chunk.size, [&](std::size_t off, std::size_t len) {
        std::size_t p = 0;
        for (std::size_t i = 0; i < m_; ++i) {
          for (std::size_t j = i; j < m_; ++j, ++p) {
            gram_[p] += kernels::reduce_dot(&offsets_[i * n + off], &offsets_[j * n + off], len);
          }
        }
      });
      return;
    }
    for (std::size_t e = 0; e < n; ++e) {
      double* g =
          &gram_[static_cast<std::size_t>((chunk.begin + static_cast<std::int64_t>(e)) / length_) *
                 pairs_];
      std::size_t p = 0;
      for (std::size_t i = 0; i < m_; ++i) {
        for (std::size_t j = i; j < m_; ++j, ++p)
          g[p] += static_cast<double>(offsets_[i * n + e]) * offsets_[j * n + e];
      }
    }
  }

  void end_pass(int /*pass*/) override {
    std::vector<float>().swap(offsets_);
    ratios_.resize(static_cast<std::size_t>(vectors_));
    const auto count = static_cast<double>(m_);
    for (std::size_t v = 0; v < ratios_.size(); ++v) {
      const double* g = &gram_[v * pairs_];
      double cos_sum = 0.0;
      for (std::size_t i = 0; i < m_; ++i) {
        for (std::size_t j = i + 1; j < m_; ++j) {
          const double norms = std::sqrt(g[pair(i, i)]) * std::sqrt(g[pair(j, j)]);
          cos_sum += std::clamp(g[pair(i, j)] / std::max(norms, k_norm_product_min), -1.0, 1.0);
        }
      }
      const double cos_theta = cos_sum / (count * (count - 1.0) / 2.0);
      const double denominator = 1.0 + (count - 1.0) * cos_theta;
      const double t =
          std::fabs(denominator) < k_denominator_min ? 0.0 : count * cos_theta / denominator;
      ratios_[v] = static_cast<float>(t);
    }
    std::vector<double>().swap(gram_);
  }

  void compute(const Chunk& chunk, float* out) override {
    const auto count = static_cast<float>(m_);
    for (std::int64_t e = 0; e < chunk.size; ++e) {
      const float t = ratios_[static_cast<std::size_t>((chunk.begin + e) / length_)];
      float sum = chunk.models[0][e];
      for (std::size_t i = 1; i < m_; ++i)
        sum += chunk.models[i][e];
      out[e] = t * (sum / count) + (1.0f - t) * chunk.base[e];
    }
  }

 private:
  // Index of (i, j), i <= j, in the packed upper triangle.
  std::size_t pair(std::size_t i, std::size_t j) const {
    return i * m_ - i * (i - 1) / 2 + (j - i);
  }

  std::size_t m_;
  std::size_t pairs_;
  std::int64_t length_ = 1;
  std::int64_t vectors_ = 1;
  std::vector<double> gram_;  // per vector, the packed upper triangle of o_i·o_j
  std::vector<float> offsets_;
  std::vector<float> ratios_;
};

// MethodSpec::memory_bytes: the statistics pass's task vectors of one chunk.
std::uint64_t model_stock_memory_bytes(const std::vector<std::int64_t>& /*shape*/,
                                       std::int64_t /*numel*/, std::size_t models,
                                       std::int64_t chunk) {
  return models * static_cast<std::uint64_t>(chunk) * sizeof(float);
}

std::unique_ptr<TensorMerge> make_model_stock(const TensorContext& context) {
  return std::make_unique<ModelStockMerge>(context);
}

}  // namespace

MethodSpec make_model_stock_spec() {
  MethodSpec spec;
  spec.name = "model_stock";
  spec.pretty_name = "Model Stock";
  spec.reference = "https://arxiv.org/abs/2403.19522";
  spec.description = "Move from the base toward the models' average by their task vectors' angle";
  spec.base_use = MethodSpec::BaseUse::required;
  spec.models_min = 2;
  spec.models_max = 0;
  spec.rectify_to_common = true;
  spec.parameters = {
      bool_parameter("filter_wise", false, "One ratio per row (last axis) instead of per tensor"),
  };
  spec.make = &make_model_stock;
  spec.memory_bytes = &model_stock_memory_bytes;
  return spec;
}

}  // namespace llmerge
