// ties: TIES-Merging -- trim, elect sign, disjoint merge.
//
// Paper: Yadav et al., "TIES-Merging: Resolving Interference When Merging
// Models", NeurIPS 2023, https://arxiv.org/abs/2306.01708
//
// Formula (docs/mergekit-semantics.md §1.8, "magnitude" sparsification + sign
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
// like the float, so a histogram pass over the high 16 bits of |δ_i| finds
// the bucket of the k-th largest value, and a second pass over the low 16
// bits inside that bucket gives the exact value T and how many elements
// exceed it. The second pass is skipped when the first could keep every key
// with low bits set (within TensorContext::scratch_bytes): a task vector of
// bf16 checkpoints is almost all keys without low bits, the least of their
// bucket, so the kept keys decide T. rescale adds a pass for the two L1
// norms. density >= 1 needs no pass.
//
// Differences from mergekit:
// - Ties at T: the first elements in flattened order are kept until exactly
//   k are kept. mergekit keeps whichever argsort puts first (unspecified).
// - None in k: at least one element is kept (k = max(1, ⌊density·numel⌋)),
//   as in mergekit 0.1.5's magnitude(); the golden case ties_f32_low_density
//   checks it.
// - NaN in |δ| ranks above +Inf (by its bits); f32 math (mergekit: dtype).
#include <algorithm>
#include <functional>
#include <vector>

#include "merge/kernels/kernels.h"
#include "merge/methods/methods.h"
#include "merge/methods/rank_select.h"
#include "merge/methods/task_arithmetic_core.h"

namespace llmerge {
namespace {

constexpr std::size_t k_buckets = 1u << 16;
// |x| has a clear sign bit, so its high 16 bits take only 2^15 values.
constexpr std::size_t k_high_buckets = 1u << 15;

class MagnitudeSparsifier final : public gta::Sparsifier {
 public:
  MagnitudeSparsifier(const TensorContext& context, double density, bool rescale)
      : keep_(std::max<std::int64_t>(
            context.numel > 0 ? 1 : 0,
            static_cast<std::int64_t>(density * static_cast<double>(context.numel)))),
        keep_all_(keep_ >= context.numel),
        rescale_(rescale),
        odd_keys_max_(context.scratch_bytes / sizeof(std::uint32_t) /
                      std::max<std::size_t>(context.model_count, 1)) {
    if (keep_ > 0 && !keep_all_) histogram_.assign(4 * k_high_buckets, 0);
  }

  int passes() const override {
    if (keep_ <= 0 || keep_all_) return 0;
    return (low_pass_needed_ ? 2 : 1) + (rescale_ ? 1 : 0);
  }

  void observe(int pass, std::int64_t /*begin*/, const float* delta, std::size_t n) override {
    switch (stage(pass)) {
      case Stage::high: {
        // Neighbouring elements often share a bucket; four interleaved
        // sub-histograms keep those increments from waiting on each other.
        std::uint32_t low_bits = 0;
        std::size_t i = 0;
        for (; i + 4 <= n; i += 4) {
          const std::uint32_t b0 = magnitude_key(delta[i]);
          const std::uint32_t b1 = magnitude_key(delta[i + 1]);
          const std::uint32_t b2 = magnitude_key(delta[i + 2]);
          const std::uint32_t b3 = magnitude_key(delta[i + 3]);
          ++histogram_[b0 >> 16];
          ++histogram_[(b1 >> 16) + k_high_buckets];
          ++histogram_[(b2 >> 16) + 2 * k_high_buckets];
          ++histogram_[(b3 >> 16) + 3 * k_high_buckets];
          low_bits |= (b0 | b1 | b2 | b3) & 0xffffu;
        }
        for (; i < n; ++i) {
          const std::uint32_t bits = magnitude_key(delta[i]);
          ++histogram_[bits >> 16];
          low_bits |= bits & 0xffffu;
        }
        if (low_bits != 0) keep_odd_keys(delta, n);
        break;
      }
      case Stage::low:
        for (std::size_t i = 0; i < n; ++i) {
          const std::uint32_t bits = magnitude_key(delta[i]);
          if ((bits >> 16) == high_) ++histogram_[bits & 0xffffu];
        }
        break;
      case Stage::norms:
        masked_.resize(n);
        mask(delta, masked_.data(), n, 1.0f, ties_seen_observe_);
        rescale_norms_.add_block(delta, masked_.data(), n);
        break;
    }
  }

  void end_pass(int pass) override {
    switch (stage(pass)) {
      case Stage::high: {
        for (std::size_t b = 0; b < k_high_buckets; ++b) {
          histogram_[b] += histogram_[b + k_high_buckets] + histogram_[b + 2 * k_high_buckets] +
                           histogram_[b + 3 * k_high_buckets];
        }
        std::fill(histogram_.begin() + k_high_buckets, histogram_.end(), 0);
        const auto [bucket, above] = select_bucket(keep_);
        high_ = bucket;
        above_high_ = above;
        if (odd_keys_overflow_) {
          histogram_.assign(k_buckets, 0);  // the low bits need their own pass
        } else {
          select_in_bucket();
          low_pass_needed_ = false;
          std::vector<std::uint64_t>().swap(histogram_);
        }
        std::vector<std::uint32_t>().swap(odd_keys_);
        break;
      }
      case Stage::low: {
        const auto [bucket, above] = select_bucket(keep_ - above_high_);
        threshold_ = (high_ << 16) | bucket;
        ties_to_keep_ = keep_ - above_high_ - above;
        std::vector<std::uint64_t>().swap(histogram_);
        break;
      }
      case Stage::norms:
        factor_ = rescale_norms_.factor();
        std::vector<float>().swap(masked_);
        break;
    }
  }

  void apply(std::int64_t /*begin*/, float* delta, std::size_t n) override {
    if (keep_all_) return;
    const float factor = factor_.value_or(1.0f);  // x * 1 == x, bit for bit
    mask(delta, delta, n, factor, ties_seen_apply_);
  }

 private:
  enum class Stage { high, low, norms };

  Stage stage(int pass) const {
    if (pass == 0) return Stage::high;
    if (pass == 1 && low_pass_needed_) return Stage::low;
    return Stage::norms;
  }

  // Keys with low bits set ("odd": a bf16 task vector has few, an f32 one
  // almost only those), kept while they fit the scratch budget. Every other
  // key is its high bits followed by zeros, the least key of its bucket, so
  // the histogram of the high bits and these keys give the exact threshold
  // without a pass over the low bits.
  void keep_odd_keys(const float* delta, std::size_t n) {
    if (odd_keys_overflow_) return;
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint32_t bits = magnitude_key(delta[i]);
      if ((bits & 0xffffu) != 0) odd_keys_.push_back(bits);
    }
    if (odd_keys_.size() > odd_keys_max_) {
      odd_keys_overflow_ = true;
      std::vector<std::uint32_t>().swap(odd_keys_);
    }
  }

  // After the high pass, from the odd keys: the threshold inside bucket high_.
  void select_in_bucket() {
    std::vector<std::uint32_t> in_bucket;
    for (const std::uint32_t key : odd_keys_) {
      if ((key >> 16) == high_) in_bucket.push_back(key);
    }
    std::sort(in_bucket.begin(), in_bucket.end(), std::greater<>());
    const std::int64_t wanted = keep_ - above_high_;  // >= 1, <= the bucket's count
    const auto odd = static_cast<std::int64_t>(in_bucket.size());
    if (wanted > odd) {  // the threshold is the bucket's even key; every odd key is above it
      threshold_ = high_ << 16;
      ties_to_keep_ = wanted - odd;
      return;
    }
    threshold_ = in_bucket[static_cast<std::size_t>(wanted - 1)];
    const auto above =
        std::find(in_bucket.begin(), in_bucket.end(), threshold_) - in_bucket.begin();
    ties_to_keep_ = wanted - above;
  }

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
        ties += magnitude_key(in[i]) == threshold;
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
      out[i] = kept(magnitude_key(in[i]), ties_seen) ? in[i] * factor : 0.0f;
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
  std::size_t odd_keys_max_;
  bool low_pass_needed_ = true;  // until the high pass shows it is not
  std::vector<std::uint32_t> odd_keys_;
  bool odd_keys_overflow_ = false;
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
  return std::make_unique<MagnitudeSparsifier>(context, density, rescale);
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
