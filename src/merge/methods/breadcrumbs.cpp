// breadcrumbs and breadcrumbs_ties: Model Breadcrumbs -- drop each task
// vector's largest outliers and its smallest entries, then task arithmetic
// (breadcrumbs) or TIES sign consensus (breadcrumbs_ties).
//
// Paper: Davari, Belilovsky, "Model Breadcrumbs: Scaling Multi-Task Model
// Merging with Sparse Masks", ECCV 2024, https://arxiv.org/abs/2312.06795
//
// Formula (mergekit-behaviour.md 1.8, "magnitude_outliers"), per model and
// tensor, N = numel:
//   keep = ⌊density·N⌋,  top = ⌊gamma·N⌋,  bottom = max(0, N − keep − top)
//   sort |δ| ascending (ties: flattened order) and keep the entries at ranks
//   [bottom, bottom + keep): the `top` largest go (fewer when
//   keep + top > N), the smallest go so that `keep` remain
//   rescale: kept · ‖δ‖₁ / ‖kept‖₁ unless a norm < 1e-7
//   then the GTA steps of task_arithmetic_core.h, without (breadcrumbs) or
//   with (breadcrumbs_ties) sign consensus.
// Parameters: per-model `weight` (required), `density` (1.0: no pruning,
// gamma ignored), `gamma` (0.01); global `normalize` (false), `rescale`
// (false), `lambda` (1.0), `int8_mask` (false).
//
// The two cut-off ranks are found exactly by RankSelect (rank_select.h) in
// two histogram passes over |δ|'s bits; rescale adds a third for the norms.
//
// Differences from mergekit:
// - mergekit up to v0.1.4 sliced [bottom : −top], which is empty when
//   top == 0 (tiny tensors, gamma·N < 1) and so zeroed the whole task
//   vector; here, as in mergekit 0.1.5, top == 0 just removes no outliers.
// - keep == 0 (tiny tensor, low density): the task vector is all zeros.
// - Ties at a cut-off go by flattened order (mergekit: unspecified sort
//   order); f32 arithmetic (mergekit: the config dtype).
#include <optional>
#include <vector>

#include "merge/methods/methods.h"
#include "merge/methods/rank_select.h"
#include "merge/methods/task_arithmetic_core.h"

namespace llmerge {
namespace {

class OutlierSparsifier final : public gta::Sparsifier {
 public:
  OutlierSparsifier(std::int64_t numel, double density, double gamma, bool rescale)
      : rescale_(rescale) {
    const auto n = static_cast<double>(numel);
    const auto keep = static_cast<std::int64_t>(density * n);
    const auto top = static_cast<std::int64_t>(gamma * n);
    low_ = std::max<std::int64_t>(0, numel - keep - top);
    high_ = low_ + keep - 1;  // last kept rank
    if (keep > 0) select_.emplace(std::vector<std::int64_t>{low_, high_});
  }

  int passes() const override {
    if (!select_) return 0;
    return RankSelect::k_passes + (rescale_ ? 1 : 0);
  }

  void observe(int pass, std::int64_t /*begin*/, const float* delta, std::size_t n) override {
    if (pass < RankSelect::k_passes) {
      for (std::size_t i = 0; i < n; ++i)
        select_->add(pass, magnitude_key(delta[i]));
      return;
    }
    masked_.resize(n);
    for (std::size_t i = 0; i < n; ++i)
      masked_[i] = kept(magnitude_key(delta[i]), observe_ties_) ? delta[i] : 0.0f;
    norms_.add_block(delta, masked_.data(), n);
  }

  void end_pass(int pass) override {
    if (pass + 1 == RankSelect::k_passes) {
      select_->end_pass(pass);
      low_key_ = select_->result(0).key;
      low_skip_ = low_ - select_->result(0).below;
      high_key_ = select_->result(1).key;
      high_take_ = high_ - select_->result(1).below + 1;
    } else if (pass < RankSelect::k_passes) {
      select_->end_pass(pass);
    } else {
      factor_ = norms_.factor();
      std::vector<float>().swap(masked_);
    }
  }

  void apply(std::int64_t /*begin*/, float* delta, std::size_t n) override {
    for (std::size_t i = 0; i < n; ++i) {
      if (!select_ || !kept(magnitude_key(delta[i]), apply_ties_)) {
        delta[i] = 0.0f;
      } else if (factor_) {
        delta[i] = delta[i] * *factor_;
      }
    }
  }

 private:
  // Counts of elements seen so far whose key equals the lower / upper cut-off.
  struct Ties {
    std::int64_t low = 0;
    std::int64_t high = 0;
  };

  bool kept(std::uint32_t key, Ties& ties) const {
    bool above_low = key > low_key_;
    if (key == low_key_) above_low = ties.low++ >= low_skip_;
    bool below_high = key < high_key_;
    if (key == high_key_) below_high = ties.high++ < high_take_;
    return above_low && below_high;
  }

  bool rescale_;
  std::int64_t low_ = 0;   // first kept ascending rank
  std::int64_t high_ = 0;  // last kept ascending rank
  std::optional<RankSelect> select_;
  std::uint32_t low_key_ = 0;
  std::int64_t low_skip_ = 0;  // elements with the lower key that are dropped
  std::uint32_t high_key_ = 0;
  std::int64_t high_take_ = 0;  // elements with the upper key that can be kept
  Ties observe_ties_;
  Ties apply_ties_;
  std::vector<float> masked_;
  gta::L1Rescale norms_;
  std::optional<float> factor_;
};

std::unique_ptr<gta::Sparsifier> make_outliers(const TensorContext& context, std::size_t model,
                                               double density, bool rescale) {
  return std::make_unique<OutlierSparsifier>(context.numel, density,
                                             context.params->model_value(model, "gamma"), rescale);
}

std::unique_ptr<TensorMerge> make_breadcrumbs(const TensorContext& context) {
  return gta::make_gta_merge(context,
                             gta::GtaVariant{.consensus = false, .sparsifier = &make_outliers});
}

std::unique_ptr<TensorMerge> make_breadcrumbs_ties(const TensorContext& context) {
  return gta::make_gta_merge(context,
                             gta::GtaVariant{.consensus = true, .sparsifier = &make_outliers});
}

std::vector<ParameterSpec> gamma_parameter() {
  ParameterSpec gamma = number_parameter("gamma", ParameterSpec::Scope::per_model, 0.01,
                                         "Fraction of largest-magnitude entries to drop");
  gamma.min = 0.0;
  gamma.max = 1.0;
  return {gamma};
}

}  // namespace

MethodSpec make_breadcrumbs_spec() {
  MethodSpec spec =
      gta::gta_spec("breadcrumbs", "Model Breadcrumbs", "https://arxiv.org/abs/2312.06795",
                    "Drop each task vector's outliers and smallest entries, then sum",
                    /*normalize_default=*/false, /*rescale_default=*/false, gamma_parameter());
  spec.make = &make_breadcrumbs;
  return spec;
}

MethodSpec make_breadcrumbs_ties_spec() {
  MethodSpec spec = gta::gta_spec(
      "breadcrumbs_ties", "Model Breadcrumbs with TIES", "https://arxiv.org/abs/2312.06795",
      "Drop each task vector's outliers and smallest entries, elect signs, sum",
      /*normalize_default=*/false, /*rescale_default=*/false, gamma_parameter());
  spec.make = &make_breadcrumbs_ties;
  return spec;
}

}  // namespace llmerge
