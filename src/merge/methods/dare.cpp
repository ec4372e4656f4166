// dare_ties and dare_linear: DARE (drop and rescale) sparsification, then
// TIES sign consensus (dare_ties) or a plain weighted sum (dare_linear).
//
// Paper: Yu et al., "Language Models are Super Mario: Absorbing Abilities
// from Homologous Models as a Free Lunch", ICML 2024,
// https://arxiv.org/abs/2311.03099
//
// Formula (docs/mergekit-semantics.md §1.8, "bernoulli" sparsification):
//   δ_i = x_i − b;  keep each element with probability density_i
//   rescale: kept · ‖δ_i‖₁ / ‖kept‖₁ unless either norm < 1e-7
//            (L1 norm matching, as mergekit since #245 -- not the paper's
//            1/density; equal in expectation)
//   then the GTA steps of task_arithmetic_core.h with consensus (dare_ties)
//   or without (dare_linear).
// Parameters: per-model `weight` (required), `density` (1.0); global
// `normalize` (false), `rescale` (true), `lambda` (1.0), `int8_mask` (false).
// rescale needs one statistics pass for the two L1 norms; density >= 1
// leaves the task vector unchanged and needs none.
//
// Differences from mergekit:
// - The mask comes from Philox4x32-10 keyed by (seed, tensor name, model
//   index in config order, element index) (merge/random.h): the same seed
//   gives the same merge on any machine, thread count or chunk size.
//   mergekit draws from torch's global RNG in hash-map model order, so its
//   masks differ run to run; only the statistics agree. An element is kept
//   when its uniform u ∈ [0, 1) (24 bits) satisfies u < density.
// - f32 arithmetic instead of the config dtype.
#include <cmath>
#include <vector>

#include "merge/kernels/kernels.h"
#include "merge/methods/methods.h"
#include "merge/methods/task_arithmetic_core.h"
#include "merge/random.h"

namespace llmerge {
namespace {

class BernoulliSparsifier final : public gta::Sparsifier {
 public:
  BernoulliSparsifier(const TensorContext& context, std::size_t model, double density, bool rescale)
      : random_(context.seed, context.tensor_key, static_cast<std::uint32_t>(model)),
        keep_below_(keep_threshold(density)),
        rescale_(rescale) {}

  int passes() const override { return rescale_ ? 1 : 0; }

  void observe(int /*pass*/, std::int64_t begin, const float* delta, std::size_t n) override {
    uniforms_.resize(n);
    masked_.resize(n);
    random_.uniforms(static_cast<std::uint64_t>(begin), uniforms_.data(), n);
    kernels::keep_below(uniforms_.data(), keep_below_, delta, masked_.data(), n, 1.0f);
    rescale_norms_.add_block(delta, masked_.data(), n);
  }

  void end_pass(int /*pass*/) override {
    factor_ = rescale_norms_.factor();
    std::vector<float>().swap(masked_);
  }

  void apply(std::int64_t begin, float* delta, std::size_t n) override {
    uniforms_.resize(n);
    random_.uniforms(static_cast<std::uint64_t>(begin), uniforms_.data(), n);
    const float factor = factor_.value_or(1.0f);  // x * 1 == x, bit for bit
    kernels::keep_below(uniforms_.data(), keep_below_, delta, delta, n, factor);
  }

  // u < density for a uniform u = m * 2^-24, as one float comparison:
  // m < density * 2^24  <=>  u < ceil(density * 2^24) * 2^-24 (exact in f32).
  static float keep_threshold(double density) {
    if (!(density < 1.0)) return 2.0f;  // everything
    return static_cast<float>(std::ceil(density * 0x1p24) * 0x1p-24);
  }

 private:
  ElementRandom random_;
  float keep_below_;
  bool rescale_;
  std::vector<float> uniforms_;
  std::vector<float> masked_;
  gta::L1Rescale rescale_norms_;
  std::optional<float> factor_;
};

std::unique_ptr<gta::Sparsifier> make_bernoulli(const TensorContext& context, std::size_t model,
                                                double density, bool rescale) {
  return std::make_unique<BernoulliSparsifier>(context, model, density, rescale);
}

// MethodSpec::memory_bytes: per model one block of uniforms and, for the
// rescale pass, of masked values; plus the GTA buffers.
std::uint64_t dare_memory_bytes(const std::vector<std::int64_t>& /*shape*/, std::int64_t /*numel*/,
                                std::size_t models, std::int64_t /*chunk*/) {
  return gta::gta_merge_bytes(models) + models * 2 * k_reduce_block * sizeof(float);
}

std::unique_ptr<TensorMerge> make_dare_ties(const TensorContext& context) {
  return gta::make_gta_merge(context,
                             gta::GtaVariant{.consensus = true, .sparsifier = &make_bernoulli});
}

std::unique_ptr<TensorMerge> make_dare_linear(const TensorContext& context) {
  return gta::make_gta_merge(context,
                             gta::GtaVariant{.consensus = false, .sparsifier = &make_bernoulli});
}

}  // namespace

MethodSpec make_dare_ties_spec() {
  MethodSpec spec = gta::gta_spec("dare_ties", "DARE TIES", "https://arxiv.org/abs/2311.03099",
                                  "Randomly drop task-vector entries, rescale, elect signs, sum",
                                  /*normalize_default=*/false, /*rescale_default=*/true);
  spec.random = true;
  spec.make = &make_dare_ties;
  spec.elementwise = [](const ResolvedParameters& p) {
    return elementwise_unless_sparsified(p, "dare_ties", true);
  };
  spec.memory_bytes = &dare_memory_bytes;
  return spec;
}

MethodSpec make_dare_linear_spec() {
  MethodSpec spec = gta::gta_spec("dare_linear", "Linear DARE", "https://arxiv.org/abs/2311.03099",
                                  "Randomly drop task-vector entries, rescale, weighted sum",
                                  /*normalize_default=*/false, /*rescale_default=*/true);
  spec.random = true;
  spec.make = &make_dare_linear;
  spec.elementwise = [](const ResolvedParameters& p) {
    return elementwise_unless_sparsified(p, "dare_linear", true);
  };
  spec.memory_bytes = &dare_memory_bytes;
  return spec;
}

}  // namespace llmerge
