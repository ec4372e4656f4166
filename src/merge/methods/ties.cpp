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
// Top-k by selection, not sorting: the k-th largest |δ_i| is ascending rank
// numel − k, found exactly by RankSelect (rank_select.h) in two histogram
// passes over the bits of |δ_i|, or one when the keys with low bits set fit
// the odd-key budget (a bf16 fine-tune's task vector has almost none).
// rescale adds a pass for the two L1 norms. density >= 1 needs no pass.
//
// Differences from mergekit:
// - Ties at T: the first elements in flattened order are kept until exactly
//   k are kept. mergekit keeps whichever argsort puts first (unspecified).
// - None in k: at least one element is kept (k = max(1, ⌊density·numel⌋)),
//   as in mergekit 0.1.5's magnitude(); the golden case ties_f32_low_density
//   checks it.
// - NaN in |δ| ranks above +Inf (by its bits); f32 math (mergekit: dtype).
#include <algorithm>
#include <optional>
#include <vector>

#include "merge/kernels/kernels.h"
#include "merge/methods/methods.h"
#include "merge/methods/rank_select.h"
#include "merge/methods/task_arithmetic_core.h"

namespace llmerge {
namespace {

class MagnitudeSparsifier final : public gta::Sparsifier {
 public:
  MagnitudeSparsifier(const TensorContext& context, double density, bool rescale)
      : numel_(context.numel),
        keep_(std::max<std::int64_t>(
            context.numel > 0 ? 1 : 0,
            static_cast<std::int64_t>(density * static_cast<double>(context.numel)))),
        keep_all_(keep_ >= context.numel),
        rescale_(rescale) {
    if (keep_ > 0 && !keep_all_) {
      select_.emplace(std::vector<std::int64_t>{numel_ - keep_}, gta::odd_keys_budget(context),
                      /*key_bits=*/31, numel_);
    }
  }

  int passes() const override {
    if (!select_) return 0;
    return (low_pass_needed_ ? 2 : 1) + (rescale_ ? 1 : 0);
  }

  void observe(int pass, std::int64_t /*begin*/, const float* delta, std::size_t n) override {
    if (stage(pass) != Stage::norms) {
      select_->add_all(pass, delta, n, magnitude_key);
      return;
    }
    masked_.resize(n);
    mask(delta, masked_.data(), n, 1.0f, ties_seen_observe_);
    rescale_norms_.add_block(delta, masked_.data(), n);
  }

  void end_pass(int pass) override {
    if (stage(pass) == Stage::norms) {
      factor_ = rescale_norms_.factor();
      std::vector<float>().swap(masked_);
      return;
    }
    select_->end_pass(pass);
    if (pass == 0 && !select_->done()) return;  // the low bits need their pass
    low_pass_needed_ = pass == 1;
    // Keys above the threshold are kept; of those equal to it, the first in
    // flattened order until keep_ are kept.
    const RankSelect::Result& r = select_->result(0);
    threshold_ = r.key;
    ties_to_keep_ = keep_ - (numel_ - r.below - r.equal);
  }

  void apply(std::int64_t /*begin*/, float* delta, std::size_t n) override {
    if (keep_all_) return;
    const float factor = factor_.value_or(1.0f);  // x * 1 == x, bit for bit
    mask(delta, delta, n, factor, ties_seen_apply_);
  }

 private:
  enum class Stage { select, norms };

  Stage stage(int pass) const {
    return pass == 0 || (pass == 1 && low_pass_needed_) ? Stage::select : Stage::norms;
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

  std::int64_t numel_;
  std::int64_t keep_;
  bool keep_all_;
  bool rescale_;
  std::optional<RankSelect> select_;
  bool low_pass_needed_ = true;  // until RankSelect is done after pass 0
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

// MethodSpec::memory_bytes: per model a RankSelect over magnitude keys
// (one wanted bucket) with its odd keys, plus the GTA buffers and, with
// rescale, one block of masked values.
std::uint64_t ties_memory_bytes(const std::vector<std::int64_t>& /*shape*/, std::int64_t numel,
                                std::size_t models, std::int64_t /*chunk*/) {
  const std::uint64_t odd = std::min<std::uint64_t>(static_cast<std::uint64_t>(numel),
                                                    gta::odd_keys_budget(k_scratch_bytes, models));
  return gta::gta_merge_bytes(models) +
         models * (RankSelect::memory_bytes(31, 1, odd) + k_reduce_block * sizeof(float));
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
  spec.elementwise = [](const ResolvedParameters& p) {
    return elementwise_unless_sparsified(p, "ties", false);
  };
  spec.memory_bytes = &ties_memory_bytes;
  return spec;
}

}  // namespace llmerge
