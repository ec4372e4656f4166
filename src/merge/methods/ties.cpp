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

#include "merge/kernels/kernels.h"
#include "merge/methods/methods.h"
#include "merge/methods/task_arithmetic_core.h"

namespace llmerge {
namespace {

constexpr std::size_t k_buckets = 1u << 16;
// |x| has a clear sign bit, so its high 16 bits take only 2^15 values.
constexpr std::size_t k_high_buckets = 1u << 15;

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
    if (keep_ > 0 && !keep_all_) histogram_.assign(4 * k_high_buckets, 0);
  }

  int passes() const override {
    if (keep_ <= 0 || keep_all_) return 0;
    return rescale_ ? 3 : 2;
  }

  void observe(int pass, std::int64_t /*begin*/, const float* delta, std::size_t n) override {
    if (pass == 0) {
      // Neighbouring elements often share a bucket; four interleaved
      // sub-histograms keep those increments from waiting on each other.
      std::size_t i = 0;
      for (; i + 4 <= n; i += 4) {
        ++histogram_[(magnitude_bits(delta[i]) >> 16)];
        ++histogram_[(magnitude_bits(delta[i + 1]) >> 16) + k_high_buckets];
        ++histogram_[(magnitude_bits(delta[i + 2]) >> 16) + 2 * k_high_buckets];
        ++histogram_[(magnitude_bits(delta[i + 3]) >> 16) + 3 * k_high_buckets];
      }
      for (; i < n; ++i)
        ++histogram_[magnitude_bits(delta[i]) >> 16];
    } else if (pass == 1) {
      for (std::size_t i = 0; i < n; ++i) {
        const std::uint32_t bits = magnitude_bits(delta[i]);
        if ((bits >> 16) == high_) ++histogram_[bits & 0xffffu];
      }
    } else {
      masked_.resize(n);
      mask(delta, masked_.data(), n, 1.0f, ties_seen_observe_);
      rescale_norms_.add_block(delta, masked_.data(), n);
    }
  }

  void end_pass(int pass) override {
    if (pass == 0) {
      for (std::size_t b = 0; b < k_high_buckets; ++b) {
        histogram_[b] += histogram_[b + k_high_buckets] + histogram_[b + 2 * k_high_buckets] +
                         histogram_[b + 3 * k_high_buckets];
      }
      std::fill(histogram_.begin() + k_high_buckets, histogram_.end(), 0);
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
    const float factor = factor_.value_or(1.0f);  // x * 1 == x, bit for bit
    mask(delta, delta, n, factor, ties_seen_apply_);
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

  // out[i] = in[i] * factor where kept, else 0. Elements above the threshold
  // are kept; elements at it are kept in flattened order while ties_seen <
  // ties_to_keep_. Only the one chunk where that runs out needs the ordered
  // scalar loop; every other chunk is a branch-free select that vectorizes
  // (a top-k mask is unpredictable, and bf16 task vectors tie a lot).
  void mask(const float* in, float* out, std::size_t n, float factor,
            std::int64_t& ties_seen) const {
    if (keep_ <= 0) {
      std::fill(out, out + n, 0.0f);
      return;
    }
    const std::uint32_t threshold = threshold_;
    std::int64_t ties = 0;
    if (ties_seen < ties_to_keep_) {
      for (std::size_t i = 0; i < n; ++i)
        ties += magnitude_bits(in[i]) == threshold;
    }
    if (ties == 0 || ties_seen + ties <= ties_to_keep_) {
      // ties == 0 here means "none left to keep" or "none in this chunk".
      // bits > threshold (ties dropped), or bits > threshold - 1 (ties kept);
      // magnitudes are at most 0x7fffffff, so both fit an int32.
      const auto above = static_cast<std::int32_t>(ties == 0 ? threshold : threshold - 1);
      kernels::keep_above_magnitude(in, out, n, above, factor);
      ties_seen += ties;
      return;
    }
    for (std::size_t i = 0; i < n; ++i) {
      out[i] = kept(magnitude_bits(in[i]), ties_seen) ? in[i] * factor : 0.0f;
    }
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
