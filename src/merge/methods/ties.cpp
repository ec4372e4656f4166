// ties: TIES-Merging -- trim, elect sign, disjoint merge.
//
// Paper: Yadav et al., "TIES-Merging: Resolving Interference When Merging
// Models", NeurIPS 2023, https://arxiv.org/abs/2306.01708
//
// Formula (mergekit-behaviour.md 1.8, "magnitude" sparsification + sign
// consensus), per tensor:
//   δ_i  = x_i − b;  keep the k_i = ⌊density_i · numel⌋ largest |δ_i| over
//          the whole flattened tensor, zero the rest
//          (rescale: kept · ‖δ_i‖₁ / ‖kept‖₁ unless a norm < 1e-7)
//   D_i  = w_i · δ_i;  elect maj = sign(Σ D_i) (0 counts as +);  keep D_i
//          whose sign is maj;  mixed = Σ kept D_i
//   res  = b + λ · mixed / Σ_{i kept} w_i     (the division only if normalize)
// See task_arithmetic_core.h for the exact steps.
// Parameters: per-model `weight` (required), `density` (1.0); global
// `normalize` (true), `rescale` (false), `lambda` (1.0), `int8_mask` (false).
//
// Top-k by selection, not sorting: the bits of a non-negative float order
// like the float, so two histogram passes over the bits of |δ_i| (high 16
// bits, then low 16 bits inside the chosen bucket) give the exact k-th
// largest value T and how many elements exceed it. rescale adds a third pass
// for the two L1 norms. density >= 1 needs no pass.
//
// Differences from mergekit:
// - Ties at T: the first elements in flattened order are kept until exactly
//   k are kept. mergekit keeps whichever argsort puts first (unspecified).
// - None in k: at least one element is kept (k = max(1, ⌊density·numel⌋)),
//   as in mergekit 0.1.5's magnitude(); the golden case ties_f32_low_density
//   checks it.
// - NaN in |δ| ranks above +Inf (by its bits); f32 math (mergekit: dtype).
#include <algorithm>
#include <vector>

#include "core/dtype.h"

#include "merge/methods/methods.h"
#include "merge/methods/task_arithmetic_core.h"

namespace llmerge {
namespace {

constexpr std::size_t k_buckets = 1u << 16;

std::uint32_t magnitude_bits(float x) {
  return f32_to_bits(x) & 0x7fffffffu;
}

class MagnitudeSparsifier final : public gta::Sparsifier {
 public:
  MagnitudeSparsifier(std::int64_t numel, double density, bool rescale)
      : keep_(std::max<std::int64_t>(
            numel > 0 ? 1 : 0, static_cast<std::int64_t>(density * static_cast<double>(numel)))),
        keep_all_(keep_ >= numel),
        rescale_(rescale) {
    if (keep_ > 0 && !keep_all_) histogram_.assign(k_buckets, 0);
  }

  int passes() const override {
    if (keep_ <= 0 || keep_all_) return 0;
    return rescale_ ? 3 : 2;
  }

  void observe(int pass, std::int64_t /*begin*/, const float* delta, std::size_t n) override {
    if (pass == 0) {
      for (std::size_t i = 0; i < n; ++i)
        ++histogram_[magnitude_bits(delta[i]) >> 16];
    } else if (pass == 1) {
      for (std::size_t i = 0; i < n; ++i) {
        const std::uint32_t bits = magnitude_bits(delta[i]);
        if ((bits >> 16) == high_) ++histogram_[bits & 0xffffu];
      }
    } else {
      masked_.resize(n);
      for (std::size_t i = 0; i < n; ++i) {
        masked_[i] = kept(magnitude_bits(delta[i]), ties_seen_observe_) ? delta[i] : 0.0f;
      }
      rescale_norms_.add_block(delta, masked_.data(), n);
    }
  }

  void end_pass(int pass) override {
    if (pass == 0) {
      const auto [bucket, above] = select_bucket(keep_);
      high_ = bucket;
      above_high_ = above;
      histogram_.assign(k_buckets, 0);
    } else if (pass == 1) {
      const auto [bucket, above] = select_bucket(keep_ - above_high_);
      threshold_ = (high_ << 16) | bucket;
      ties_to_keep_ = keep_ - above_high_ - above;
      std::vector<std::uint64_t>().swap(histogram_);
    } else {
      factor_ = rescale_norms_.factor();
      std::vector<float>().swap(masked_);
    }
  }

  void apply(std::int64_t /*begin*/, float* delta, std::size_t n) override {
    if (keep_all_) return;
    for (std::size_t i = 0; i < n; ++i) {
      if (keep_ <= 0 || !kept(magnitude_bits(delta[i]), ties_seen_apply_)) {
        delta[i] = 0.0f;
      } else if (factor_) {
        delta[i] = delta[i] * *factor_;
      }
    }
  }

 private:
  struct Selection {
    std::uint32_t bucket;
    std::int64_t above;  // elements in higher buckets
  };

  // The highest bucket b with count(buckets >= b) >= wanted (wanted >= 1).
  Selection select_bucket(std::int64_t wanted) const {
    std::int64_t above = 0;
    for (std::size_t b = k_buckets; b-- > 0;) {
      const auto count = static_cast<std::int64_t>(histogram_[b]);
      if (above + count >= wanted) return {static_cast<std::uint32_t>(b), above};
      above += count;
    }
    return {0, above};  // unreachable: the histogram counts every element
  }

  bool kept(std::uint32_t bits, std::int64_t& ties_seen) const {
    if (bits > threshold_) return true;
    if (bits < threshold_) return false;
    return ties_seen++ < ties_to_keep_;
  }

  std::int64_t keep_;
  bool keep_all_;
  bool rescale_;
  std::vector<std::uint64_t> histogram_;
  std::uint32_t high_ = 0;
  std::int64_t above_high_ = 0;
  std::uint32_t threshold_ = 0;
  std::int64_t ties_to_keep_ = 0;
  std::int64_t ties_seen_observe_ = 0;
  std::int64_t ties_seen_apply_ = 0;
  std::vector<float> masked_;
  gta::L1Rescale rescale_norms_;
  std::optional<float> factor_;
};

std::unique_ptr<gta::Sparsifier> make_magnitude(const TensorContext& context, std::size_t /*model*/,
                                                double density, bool rescale) {
  return std::make_unique<MagnitudeSparsifier>(context.numel, density, rescale);
}

std::unique_ptr<TensorMerge> make_ties(const TensorContext& context) {
  return gta::make_gta_merge(context,
                             gta::GtaVariant{.consensus = true, .sparsifier = &make_magnitude});
}

}  // namespace

MethodSpec make_ties_spec() {
  MethodSpec spec = gta::gta_spec("ties", "TIES", "https://arxiv.org/abs/2306.01708",
                                  "Keep each task vector's largest entries, elect signs, average",
                                  /*normalize_default=*/true, /*rescale_default=*/false);
  spec.make = &make_ties;
  return spec;
}

}  // namespace llmerge
