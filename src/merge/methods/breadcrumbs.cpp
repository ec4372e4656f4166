// breadcrumbs and breadcrumbs_ties: Model Breadcrumbs -- drop each task
// vector's largest outliers and its smallest entries, then task arithmetic
// (breadcrumbs) or TIES sign consensus (breadcrumbs_ties).
//
// Paper: Davari, Belilovsky, "Model Breadcrumbs: Scaling Multi-Task Model
// Merging with Sparse Masks", ECCV 2024, https://arxiv.org/abs/2312.06795
//
// Formula (docs/mergekit-semantics.md §1.8, "magnitude_outliers"), per model and
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
// two histogram passes over |δ|'s bits, or one when the keys with low bits
// fit the odd-key budget (bf16 fine-tunes); rescale adds a pass for the norms.
//
// Differences from mergekit:
// - mergekit up to v0.1.4 sliced [bottom : −top], which is empty when
//   top == 0 (tiny tensors, gamma·N < 1) and so zeroed the whole task
//   vector; here, as in mergekit 0.1.5, top == 0 just removes no outliers.
// - keep == 0 (tiny tensor, low density): the task vector is all zeros.
// - Ties at a cut-off go by flattened order (mergekit: unspecified sort
//   order); f32 arithmetic (mergekit: the config dtype).
#include <algorithm>
#include <optional>
#include <vector>

#include "merge/kernels/kernels.h"
#include "merge/methods/methods.h"
#include "merge/methods/rank_select.h"
#include "merge/methods/task_arithmetic_core.h"

namespace llmerge {
namespace {

class OutlierSparsifier final : public gta::Sparsifier {
 public:
  OutlierSparsifier(const TensorContext& context, double density, double gamma, bool rescale)
      : rescale_(rescale) {
    const std::int64_t numel = context.numel;
    const auto n = static_cast<double>(numel);
    const auto keep = static_cast<std::int64_t>(density * n);
    const auto top = static_cast<std::int64_t>(gamma * n);
    low_ = std::max<std::int64_t>(0, numel - keep - top);
    high_ = low_ + keep - 1;  // last kept rank
    if (keep > 0) {
      select_.emplace(std::vector<std::int64_t>{low_, high_}, gta::odd_keys_budget(context),
                      /*key_bits=*/31, numel);
    }
  }

  int passes() const override {
    if (!select_) return 0;
    return (low_pass_needed_ ? 2 : 1) + (rescale_ ? 1 : 0);
  }

  void observe(int pass, std::int64_t /*begin*/, const float* delta, std::size_t n) override {
    if (pass == 0 || (pass == 1 && low_pass_needed_)) {
      select_->add_all(pass, delta, n, magnitude_key);
      return;
    }
    masked_.resize(n);
    mask(delta, masked_.data(), n, 1.0f, observe_ties_);
    norms_.add_block(delta, masked_.data(), n);
  }

  void end_pass(int pass) override {
    if (pass == 0 || (pass == 1 && low_pass_needed_)) {
      select_->end_pass(pass);
      if (pass == 0 && !select_->done()) return;  // the low bits need their pass
      low_pass_needed_ = pass == 1;
      low_key_ = select_->result(0).key;
      low_skip_ = low_ - select_->result(0).below;
      high_key_ = select_->result(1).key;
      high_take_ = high_ - select_->result(1).below + 1;
      return;
    }
    factor_ = norms_.factor();
    std::vector<float>().swap(masked_);
  }

  void apply(std::int64_t /*begin*/, float* delta, std::size_t n) override {
    if (!select_) {
      std::fill(delta, delta + n, 0.0f);
      return;
    }
    mask(delta, delta, n, factor_.value_or(1.0f), apply_ties_);  // x * 1 == x, bit for bit
  }

 private:
  // Counts of elements seen so far whose key equals the lower / upper cut-off.
  struct Ties {
    std::int64_t low = 0;
    std::int64_t high = 0;
  };

  // out[i] = in[i] * factor where kept, else 0. Elements at a cut-off key are
  // decided in flattened order; only a chunk where such a decision changes
  // needs the ordered scalar loop, every other one is a vectorized band test.
  void mask(const float* in, float* out, std::size_t n, float factor, Ties& ties) const {
    std::int64_t at_low = 0;
    std::int64_t at_high = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint32_t key = magnitude_key(in[i]);
      at_low += key == low_key_;
      at_high += key == high_key_;
    }
    // Within this chunk, are the elements at each cut-off all dropped or all kept?
    const bool low_uniform = ties.low >= low_skip_ || ties.low + at_low <= low_skip_;
    const bool high_uniform = ties.high + at_high <= high_take_ || ties.high >= high_take_;
    if (low_key_ != high_key_ && low_uniform && high_uniform) {
      const bool low_kept = ties.low >= low_skip_ && at_low > 0;
      const bool high_kept = ties.high + at_high <= high_take_ && at_high > 0;
      // Keys are at most 0x7fffffff, so the bounds fit an int32.
      const auto above =
          static_cast<std::int32_t>(low_kept ? std::int64_t{low_key_} - 1 : low_key_);
      const auto top = static_cast<std::int32_t>(high_kept ? std::int64_t{high_key_}
                                                           : std::int64_t{high_key_} - 1);
      kernels::keep_magnitude_in(in, out, n, above, top, factor);
      ties.low += at_low;
      ties.high += at_high;
      return;
    }
    for (std::size_t i = 0; i < n; ++i)
      out[i] = kept(magnitude_key(in[i]), ties) ? in[i] * factor : 0.0f;
  }

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
  bool low_pass_needed_ = true;  // until RankSelect is done after pass 0
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
  return std::make_unique<OutlierSparsifier>(context, density,
                                             context.params->model_value(model, "gamma"), rescale);
}

// MethodSpec::memory_bytes: per model a RankSelect over magnitude keys with
// two wanted buckets and its odd keys, plus the GTA buffers.
std::uint64_t breadcrumbs_memory_bytes(const std::vector<std::int64_t>& /*shape*/,
                                       std::int64_t numel, std::size_t models,
                                       std::int64_t /*chunk*/) {
  const std::uint64_t odd = std::min<std::uint64_t>(static_cast<std::uint64_t>(numel),
                                                    gta::odd_keys_budget(k_scratch_bytes, models));
  return gta::gta_merge_bytes(models) +
         models * (RankSelect::memory_bytes(31, 2, odd) + k_reduce_block * sizeof(float));
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
  spec.memory_bytes = &breadcrumbs_memory_bytes;
  return spec;
}

MethodSpec make_breadcrumbs_ties_spec() {
  MethodSpec spec = gta::gta_spec(
      "breadcrumbs_ties", "Model Breadcrumbs with TIES", "https://arxiv.org/abs/2312.06795",
      "Drop each task vector's outliers and smallest entries, elect signs, sum",
      /*normalize_default=*/false, /*rescale_default=*/false, gamma_parameter());
  spec.make = &make_breadcrumbs_ties;
  spec.memory_bytes = &breadcrumbs_memory_bytes;
  return spec;
}

}  // namespace llmerge
