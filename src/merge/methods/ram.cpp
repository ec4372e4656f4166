// ram and ramplus_tl: Reinforced Agent Merging -- average task-vector entries
// only over the models that actually changed them.
//
// Paper: "Reinforced Agent Merging", arXiv 2601.13572,
// https://arxiv.org/abs/2601.13572
//
// Formula (docs/mergekit-semantics.md §1.10), per element, with τ_i = x_i − b:
//   nz_i = |τ_i| > ε;  c = Σ_i nz_i
//   ram:         res = b + Σ_i nz_i · (c == 1 ? τ_i : τ_i / c)
//   ramplus_tl:  per tensor, shared_i = #{elements: nz_i and c > 1},
//                unique_i = #{elements: nz_i and c == 1},
//                ρ_i = shared_i / max(unique_i, ε),  λ_i = 1 + r·clamp(ρ_i, 0, α);
//                res = b + Σ_i nz_i · (c == 1 ? τ_i·λ_i : τ_i / c)
// Parameters: ram: global `epsilon` (1e-5); ramplus_tl: global `r` (0.1),
// `alpha` (0.2), `epsilon` (1e-5). No per-model weights.
// ramplus_tl counts shared_i / unique_i in one statistics pass.
//
// Differences from mergekit: f32 instead of the config dtype; λ_i is
// computed in f64 from exact integer counts and rounded to f32.
#include <algorithm>
#include <cmath>
#include <vector>

#include "merge/kernels/select.h"
#include "merge/methods/methods.h"

namespace llmerge {
namespace {

class RamMerge final : public TensorMerge {
 public:
  RamMerge(const TensorContext& context, bool plus)
      : plus_(plus),
        epsilon_(context.params->global_value("epsilon")),
        threshold_(static_cast<float>(epsilon_)),
        lambdas_(context.model_count, 1.0f),
        shared_(context.model_count, 0),
        unique_(context.model_count, 0) {
    if (plus_) {
      r_ = context.params->global_value("r");
      alpha_ = context.params->global_value("alpha");
    }
  }

  int passes() const override { return plus_ ? 1 : 0; }

  // Both loops go a block of elements at a time, without branches on the
  // values: a fine-tune's task vector is 0 in about a third of its entries,
  // at random, which made every per-element branch a coin toss (ramplus_tl
  // took three times as long on fine-tunes as on unrelated models).
  void observe(int /*pass*/, const Chunk& chunk) override {
    const std::size_t m = lambdas_.size();
    for (std::int64_t off = 0; off < chunk.size; off += k_block) {
      const auto len = static_cast<std::size_t>(std::min<std::int64_t>(k_block, chunk.size - off));
      count_contributors(chunk, off, len);
      for (std::size_t i = 0; i < m; ++i) {
        const float* x = chunk.models[i] + off;
        const float* b = chunk.base + off;
        std::int64_t unique = 0;
        std::int64_t shared = 0;
        for (std::size_t e = 0; e < len; ++e) {
          const int nz = std::fabs(x[e] - b[e]) > threshold_ ? 1 : 0;
          unique += nz & (count_[e] == 1.0f ? 1 : 0);
          shared += nz & (count_[e] > 1.0f ? 1 : 0);
        }
        unique_[i] += unique;
        shared_[i] += shared;
      }
    }
  }

  void end_pass(int /*pass*/) override {
    for (std::size_t i = 0; i < lambdas_.size(); ++i) {
      const double rho =
          static_cast<double>(shared_[i]) / std::max(static_cast<double>(unique_[i]), epsilon_);
      lambdas_[i] = static_cast<float>(1.0 + r_ * std::clamp(rho, 0.0, alpha_));
    }
  }

  // Per element, the models' terms are added in config order as before; a
  // model that did not change the entry adds +0, which leaves the sum as it
  // was (the sum starts at +0 and a changed τ is never 0, so it is never −0).
  void compute(const Chunk& chunk, float* out) override {
    const std::size_t m = lambdas_.size();
    for (std::int64_t off = 0; off < chunk.size; off += k_block) {
      const auto len = static_cast<std::size_t>(std::min<std::int64_t>(k_block, chunk.size - off));
      count_contributors(chunk, off, len);
      const float* b = chunk.base + off;
      std::fill(sum_, sum_ + len, 0.0f);
      for (std::size_t i = 0; i < m; ++i) {
        const float* x = chunk.models[i] + off;
        const float lambda = lambdas_[i];
        for (std::size_t e = 0; e < len; ++e) {
          const float tau = x[e] - b[e];
          const float unique = tau * lambda;
          const float shared = tau / std::max(count_[e], 1.0f);
          const float term = kernels::select(count_[e] == 1.0f, unique, shared);
          sum_[e] += kernels::select(std::fabs(tau) > threshold_, term, 0.0f);
        }
      }
      for (std::size_t e = 0; e < len; ++e)
        out[off + e] = b[e] + sum_[e];
    }
  }

 private:
  static constexpr std::int64_t k_block = 1024;

  // count_[e] = how many models changed element off + e of the chunk.
  void count_contributors(const Chunk& chunk, std::int64_t off, std::size_t len) {
    std::fill(count_, count_ + len, 0.0f);
    const float* b = chunk.base + off;
    for (std::size_t i = 0; i < lambdas_.size(); ++i) {
      const float* x = chunk.models[i] + off;
      for (std::size_t e = 0; e < len; ++e)
        count_[e] += kernels::select(std::fabs(x[e] - b[e]) > threshold_, 1.0f, 0.0f);
    }
  }

  bool plus_;
  double epsilon_;
  float threshold_;  // ε compared in f32, as torch compares an f32 tensor with a scalar
  double r_ = 0.0;
  double alpha_ = 0.0;
  std::vector<float> lambdas_;
  std::vector<std::int64_t> shared_;
  std::vector<std::int64_t> unique_;
  float count_[k_block];  // exact: small integers
  float sum_[k_block];
};

std::unique_ptr<TensorMerge> make_ram(const TensorContext& context) {
  return std::make_unique<RamMerge>(context, false);
}

std::unique_ptr<TensorMerge> make_ramplus_tl(const TensorContext& context) {
  return std::make_unique<RamMerge>(context, true);
}

ParameterSpec non_negative(ParameterSpec p) {
  p.min = 0.0;
  return p;
}

MethodSpec ram_base_spec() {
  MethodSpec spec;
  spec.reference = "https://arxiv.org/abs/2601.13572";
  spec.base_use = MethodSpec::BaseUse::required;
  spec.models_min = 1;
  spec.models_max = 0;
  spec.rectify_to_common = false;
  return spec;
}

ParameterSpec epsilon_parameter() {
  return non_negative(
      number_parameter("epsilon", ParameterSpec::Scope::global, 1e-5,
                       "A task-vector entry counts as changed when its magnitude exceeds this"));
}

}  // namespace

MethodSpec make_ram_spec() {
  MethodSpec spec = ram_base_spec();
  spec.name = "ram";
  spec.pretty_name = "Reinforced Agent Merging";
  spec.description = "Average each task-vector entry over only the models that changed it";
  spec.parameters = {epsilon_parameter()};
  spec.make = &make_ram;
  spec.elementwise = &always_elementwise;
  return spec;
}

MethodSpec make_ramplus_tl_spec() {
  MethodSpec spec = ram_base_spec();
  spec.name = "ramplus_tl";
  spec.pretty_name = "Reinforced Agent Merging Plus (Tensor-Local)";
  spec.description = "RAM, boosting each model's unique entries by its share of overlap";
  spec.parameters = {
      non_negative(number_parameter("r", ParameterSpec::Scope::global, 0.1,
                                    "Strength of the boost of unique entries")),
      non_negative(number_parameter("alpha", ParameterSpec::Scope::global, 0.2,
                                    "Cap on the shared/unique ratio used for the boost")),
      epsilon_parameter(),
  };
  spec.make = &make_ramplus_tl;
  return spec;
}

}  // namespace llmerge
