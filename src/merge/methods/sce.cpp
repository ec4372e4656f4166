// sce: Select, Calculate, Erase -- keep the entries where the task vectors
// disagree most, weight each model by its task vector's energy, elect signs.
//
// Paper: Wan et al., "FuseChat: Knowledge Fusion of Chat Models", 2024,
// https://arxiv.org/abs/2408.07990
//
// Formula (docs/mergekit-semantics.md §1.9), τ_i = x_i − b, i = 1..m:
//   select (select_topk < 1):  var = population variance over i of τ_i, per
//     element; k = ⌊count(var != 0)·select_topk⌋; keep the k elements with
//     the largest var in every τ_i (ties: flattened order), zero the rest
//   calculate:  w_i = mean(τ_i²) / Σ_j mean(τ_j²)  (over the selected τ),
//     or 1/m if that sum < 1e-6
//   erase:  maj = sign(Σ_i τ_i) (0 counts as +);  keep_i = (sign τ_i == maj)
//   res = b + Σ_i τ_i·w_i·keep_i / max(Σ_i w_i·keep_i, 1e-6)
// Parameters: global `select_topk` (1.0), `int8_mask` (false). No per-model
// weight (mergekit ignores it too).
//
// Passes: with select_topk < 1, two RankSelect passes over the variance's
// bits (rank_select.h; the non-zero count comes with the first), then one
// for Σ τ_i² of the selected entries; otherwise just the last.
//
// Differences from mergekit: variance and k in f64 (mergekit: the config
// dtype; k from an f32 product); the merge itself in f32. select_topk <= 0
// zeroes every task vector (res = b), as in mergekit. With one model the
// variance is all zero, so k = 0 and res = b, as in mergekit.
#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "merge/kernels/kernels.h"
#include "merge/kernels/reduce.h"
#include "merge/kernels/select.h"
#include "merge/methods/methods.h"
#include "merge/methods/rank_select.h"

namespace llmerge {
namespace {

// mergekit's constants (merge_methods/sce.py).
constexpr double k_weight_sum_min = 1e-6;
constexpr float k_divisor_min = 1e-6f;

class SceMerge final : public TensorMerge {
 public:
  explicit SceMerge(const TensorContext& context)
      : m_(context.model_count),
        numel_(context.numel),
        topk_(context.params->global_value("select_topk")),
        select_(topk_ < 1.0),
        squares_(m_, 0.0),
        weights_(m_, 0.0f) {
    if (select_) select_rank_.emplace(std::vector<std::int64_t>{0});  // replaced after pass 0
  }

  int passes() const override { return (select_ ? RankSelect::k_passes : 0) + 1; }

  void observe(int pass, const Chunk& chunk) override {
    const auto n = static_cast<std::size_t>(chunk.size);
    if (select_) fill_variance(chunk);
    if (select_ && pass < RankSelect::k_passes) {
      if (pass == 0) {
        std::int64_t nonzero = 0;
        for (std::size_t e = 0; e < n; ++e) {
          const float v = var_[e];
          nonzero += v != 0.0f ? 1 : 0;
          ++high_counts_[magnitude_key(v) >> 16];
        }
        nonzero_ += nonzero;
      } else if (k_ > 0) {
        for (std::size_t e = 0; e < n; ++e)
          select_rank_->add(pass, magnitude_key(var_[e]));
      }
      return;
    }
    // The selection is the same for every model: one mask for the chunk.
    fill_kept(n, ties_observe_);
    tau_.resize(n);
    for (std::size_t i = 0; i < m_; ++i) {
      const float* x = chunk.models[i];
      for (std::size_t e = 0; e < n; ++e) {
        tau_[e] = kernels::select(kept_[e] != 0, x[e] - chunk.base[e], 0.0f);
      }
      kernels::for_each_block(chunk.begin, chunk.size, [&](std::size_t off, std::size_t len) {
        squares_[i] += kernels::reduce_sum_squares(tau_.data() + off, len);
      });
    }
  }

  void end_pass(int pass) override {
    if (select_ && pass == 0) {
      k_ = static_cast<std::int64_t>(static_cast<double>(nonzero_) * topk_);
      if (k_ > 0) {
        // The wanted rank was unknown during pass 0 (k needs the non-zero
        // count), so RankSelect's first pass is replayed from our histogram.
        select_rank_.emplace(std::vector<std::int64_t>{numel_ - k_});
        select_rank_->load_high(high_counts_);
      }
      std::vector<std::uint64_t>().swap(high_counts_);
      return;
    }
    if (select_ && pass == 1) {
      if (k_ > 0) {
        select_rank_->end_pass(1);
        const RankSelect::Result& r = select_rank_->result(0);
        threshold_ = r.key;
        // Keys above the threshold are all kept; of those equal to it, the
        // first `take` in flattened order.
        take_ = k_ - (numel_ - r.below - r.equal);
      }
      return;
    }
    double sum = 0.0;
    for (const double s : squares_)
      sum += s / static_cast<double>(std::max<std::int64_t>(numel_, 1));
    for (std::size_t i = 0; i < m_; ++i) {
      const double mean = squares_[i] / static_cast<double>(std::max<std::int64_t>(numel_, 1));
      weights_[i] = static_cast<float>(
          std::fabs(sum) < k_weight_sum_min ? 1.0 / static_cast<double>(m_) : mean / sum);
    }
    std::vector<float>().swap(tau_);
  }

  // The same operations per element in the same order as the formula reads
  // (models in config order), a block of elements at a time with the models
  // in the outer loops and no branches on the values: for a fine-tune about
  // half of the entries are selected and the signs disagree at random, so
  // per-element branches were mispredicted half the time.
  void compute(const Chunk& chunk, float* out) override {
    const auto n = static_cast<std::size_t>(chunk.size);
    if (select_) fill_variance(chunk);
    fill_kept(n, ties_compute_);
    tau_.resize(m_ * k_block);
    for (std::size_t off = 0; off < n; off += k_block) {
      const std::size_t len = std::min(k_block, n - off);
      const float* base = chunk.base + off;
      const std::uint8_t* kept = kept_.data() + off;
      float total[k_block];
      std::fill(total, total + len, 0.0f);
      for (std::size_t i = 0; i < m_; ++i) {
        const float* x = chunk.models[i] + off;
        float* tau = tau_.data() + i * k_block;
        for (std::size_t e = 0; e < len; ++e) {
          tau[e] = kernels::select(kept[e] != 0, x[e] - base[e], 0.0f);
          total[e] += tau[e];
        }
      }
      float mixed[k_block];
      float divisor[k_block];
      std::fill(mixed, mixed + len, 0.0f);
      std::fill(divisor, divisor + len, 0.0f);
      for (std::size_t i = 0; i < m_; ++i) {
        const float* tau = tau_.data() + i * k_block;
        const float weight = weights_[i];
        for (std::size_t e = 0; e < len; ++e) {
          const float majority = kernels::select(total[e] >= 0.0f, 1.0f, -1.0f);
          const float sign =
              kernels::select(tau[e] > 0.0f, 1.0f, kernels::select(tau[e] < 0.0f, -1.0f, 0.0f));
          const float erased = kernels::select(sign == majority, weight, 0.0f);
          mixed[e] += tau[e] * erased;
          divisor[e] += erased;
        }
      }
      for (std::size_t e = 0; e < len; ++e)
        out[off + e] = base[e] + mixed[e] / std::max(divisor[e], k_divisor_min);
    }
  }

 private:
  // var_[e] = the population variance over the models of τ_i at element e of
  // the chunk, rounded to f32:
  //   mean = (0 + τ_1 + ... + τ_m) / m,  var = (0 + (τ_1 − mean)² + ...) / m
  // in f64, models in config order (kernels::task_variance, in f64 SIMD
  // lanes). Computed once per chunk and pass: every pass needs it.
  void fill_variance(const Chunk& chunk) {
    const auto n = static_cast<std::size_t>(chunk.size);
    var_.resize(n);
    kernels::task_variance(chunk.base, chunk.models.data(), m_, var_.data(), n);
  }

  // kept_[e] = 1 when element e of the chunk is among the k selected (all
  // of them without selection); `ties` counts the elements seen so far whose
  // key equals the threshold, of which the first take_ are selected.
  void fill_kept(std::size_t n, std::int64_t& ties) {
    kept_.resize(n);
    if (!select_) {
      std::fill(kept_.begin(), kept_.end(), std::uint8_t{1});
      return;
    }
    if (k_ <= 0) {
      std::fill(kept_.begin(), kept_.end(), std::uint8_t{0});
      return;
    }
    std::int64_t seen = ties;
    for (std::size_t e = 0; e < n; ++e) {
      const std::uint32_t key = magnitude_key(var_[e]);
      const std::int64_t equal = key == threshold_ ? 1 : 0;
      kept_[e] =
          static_cast<std::uint8_t>((key > threshold_ ? 1 : 0) | (equal & (seen < take_ ? 1 : 0)));
      seen += equal;
    }
    ties = seen;
  }

  static constexpr std::size_t k_block = 1024;

  std::size_t m_;
  std::int64_t numel_;
  double topk_;
  bool select_;
  std::int64_t nonzero_ = 0;
  std::int64_t k_ = 0;
  std::vector<std::uint64_t> high_counts_ = std::vector<std::uint64_t>(1u << 16, 0);
  std::optional<RankSelect> select_rank_;
  std::uint32_t threshold_ = 0;
  std::int64_t take_ = 0;
  std::int64_t ties_observe_ = 0;  // tie counter of the weight pass, carried across chunks
  std::int64_t ties_compute_ = 0;
  std::vector<double> squares_;
  std::vector<float> weights_;
  std::vector<float> tau_;
  std::vector<float> var_;          // fill_variance(): one chunk's variances
  std::vector<std::uint8_t> kept_;  // fill_kept(): one chunk's selection
};

std::unique_ptr<TensorMerge> make_sce(const TensorContext& context) {
  return std::make_unique<SceMerge>(context);
}

// MethodSpec::memory_bytes: the high-bits histogram and RankSelect's copy
// of it, then its low histogram (64-bit counts, 2^16 each), one chunk's task
// vector, variances and selection, and a block of task vectors per model.
std::uint64_t sce_memory_bytes(const std::vector<std::int64_t>& /*shape*/, std::int64_t /*numel*/,
                               std::size_t models, std::int64_t chunk) {
  return 2 * (std::uint64_t{1} << 16) * sizeof(std::uint64_t) +
         static_cast<std::uint64_t>(chunk) * (2 * sizeof(float) + 1) +
         models * 1024 * sizeof(float);
}

}  // namespace

MethodSpec make_sce_spec() {
  MethodSpec spec;
  spec.name = "sce";
  spec.pretty_name = "SCE";
  spec.reference = "https://arxiv.org/abs/2408.07990";
  spec.description = "Keep high-variance entries, weight models by task-vector energy, elect signs";
  spec.base_use = MethodSpec::BaseUse::required;
  spec.models_min = 1;
  spec.models_max = 0;
  spec.rectify_to_common = false;
  ParameterSpec topk = number_parameter("select_topk", ParameterSpec::Scope::global, 1.0,
                                        "Fraction of the non-zero-variance entries to keep");
  topk.min = 0.0;
  topk.max = 1.0;
  spec.parameters = {
      topk,
      bool_parameter("int8_mask", false,
                     "Accepted for mergekit compatibility; saves memory there, no effect here"),
  };
  spec.make = &make_sce;
  spec.memory_bytes = &sce_memory_bytes;
  return spec;
}

}  // namespace llmerge
