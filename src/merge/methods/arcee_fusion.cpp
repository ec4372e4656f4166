// arcee_fusion: take the other model's value only where the change is
// important: a large |p − b| in a row whose output distribution moved.
//
// Reference: Arcee AI, "Arcee Fusion" (mergekit v0.1 release),
// https://arcee.ai
//
// Formula (docs/mergekit-semantics.md §1.13), base b, other p, rows along the last
// axis (a 1-D tensor is one row):
//   P = softmax(p_row) + 1e-8,  Q = softmax(b_row) + 1e-8
//   KL_row = Σ_row P·log(P/Q)
//   importance = |p − b| · KL_row
//   q_x = the importance at sorted index ⌊x·(N − 1)⌋ (ascending, N = numel)
//   threshold = q_.5 + 1.5·(q_.75 − q_.25)
//   res = b + (p − b)·[importance >= threshold]
// No parameters.
//
// Passes: (0) per row, the max and Σ exp(x − max) of p and of b, online in
// element order, then the row's KL in f64 (a row that straddles chunks is
// gathered in a row buffer first) and the first RankSelect pass over the
// row's importances; (1) RankSelect's second pass: the three quantiles
// exactly (rank_select.h). The KL reuses the exp(x − max) that the online
// sum computed for the elements after the row's last new maximum (the same
// call on the same argument, so the same bits), about half of them. Rows
// longer than k_row_max (1-D tensors of more than 64 Ki elements) take a
// pass of their own for the KL instead, with five doubles per row, and two
// more for the quantiles.
//
// Differences from mergekit:
// - Quantiles are exact over all N elements. mergekit samples 1e6 elements
//   at random (with replacement) when N > 1e6, so its threshold varies run
//   to run; for N <= 1e6 both take the same sorted index.
// - Softmax and KL are computed in f64 (mergekit: the config dtype); the
//   importance is rounded to f32 as |p − b|(f32) · KL(f32). This matters:
//   for a fine-tune close to its base, KL is ~1e-8 and mergekit's f32 KL is
//   rounding noise (negative in many rows of the demo models), so its mask
//   differs from the exact one (demo: ~10% of entries taken vs 0.8% here,
//   and 0.8% with mergekit's own formula run in f64).
#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "merge/methods/methods.h"
#include "merge/methods/rank_select.h"

namespace llmerge {
namespace {

// mergekit's constants (merge_methods/arcee_fusion.py).
constexpr double k_probability_floor = 1e-8;
constexpr double k_quantiles[3] = {0.25, 0.5, 0.75};
// Rows up to this length are finished in pass 0 (their buffers: 24 bytes per
// element of a row); longer ones get a KL pass of their own.
constexpr std::int64_t k_row_max = 1 << 16;

struct RowSoftmax {
  double max = -INFINITY;
  double sum = 0.0;  // Σ exp(x − max)

  void add(double x) {
    if (x > max) {
      sum = sum * std::exp(max - x) + 1.0;
      max = x;
    } else {
      sum += std::exp(x - max);
    }
  }
  double probability(double x) const { return std::exp(x - max) / sum; }
};

// RowSoftmax::add over a whole row, keeping each element's exp(x − max) as
// the online sum computed it: from the element after `last_max` on (the last
// element that raised the maximum) that is exp(x − final max).
void add_row(RowSoftmax& s, const float* x, std::size_t n, double* e, std::size_t& last_max) {
  last_max = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double v = x[i];
    if (v > s.max) {
      s.sum = s.sum * std::exp(s.max - v) + 1.0;
      s.max = v;
      last_max = i;
    } else {
      e[i] = std::exp(v - s.max);
      s.sum += e[i];
    }
  }
}

class ArceeFusionMerge final : public TensorMerge {
 public:
  explicit ArceeFusionMerge(const TensorContext& context) : numel_(context.numel) {
    length_ = context.shape.size() >= 2 ? context.shape.back() : std::max<std::int64_t>(numel_, 1);
    length_ = std::max<std::int64_t>(length_, 1);
    const auto rows = static_cast<std::size_t>(std::max<std::int64_t>(numel_ / length_, 1));
    fused_ = length_ <= k_row_max;
    quantile_pass_ = fused_ ? 0 : 2;
    if (fused_) {
      kl_f32_.assign(rows, 0.0f);
    } else {
      softmax_p_.resize(rows);
      softmax_b_.resize(rows);
      kl_.assign(rows, 0.0);
    }
    std::vector<std::int64_t> ranks;
    for (const double q : k_quantiles)
      ranks.push_back(static_cast<std::int64_t>(q * static_cast<double>(numel_ - 1)));
    if (numel_ > 0) select_.emplace(ranks);
  }

  int passes() const override { return numel_ > 0 ? quantile_pass_ + RankSelect::k_passes : 0; }

  // Each loop goes a row segment at a time (the part of a row inside the
  // chunk), so the row is found once per segment, not by a 64-bit division
  // per element.
  void observe(int pass, const Chunk& chunk) override {
    const float* p = chunk.models[0];
    const float* b = chunk.base;
    for_each_segment(chunk, [&](std::size_t row, std::int64_t lo, std::int64_t hi) {
      if (pass == 0 && fused_) {
        if (hi - lo == length_) {
          finish_row(row, p + lo, b + lo);
          return;
        }
        row_p_.insert(row_p_.end(), p + lo, p + hi);
        row_b_.insert(row_b_.end(), b + lo, b + hi);
        if (static_cast<std::int64_t>(row_p_.size()) == length_) {
          finish_row(row, row_p_.data(), row_b_.data());
          row_p_.clear();
          row_b_.clear();
        }
      } else if (pass == 0) {
        RowSoftmax& sp = softmax_p_[row];
        RowSoftmax& sb = softmax_b_[row];
        for (std::int64_t i = lo; i < hi; ++i) {
          sp.add(p[i]);
          sb.add(b[i]);
        }
      } else if (pass < quantile_pass_) {
        const RowSoftmax& sp = softmax_p_[row];
        const RowSoftmax& sb = softmax_b_[row];
        double kl = kl_[row];
        for (std::int64_t i = lo; i < hi; ++i) {
          const double pp = sp.probability(p[i]) + k_probability_floor;
          const double qq = sb.probability(b[i]) + k_probability_floor;
          kl += pp * std::log(pp / qq);
        }
        kl_[row] = kl;
      } else {
        const float kl = kl_f32_[row];
        for (std::int64_t i = lo; i < hi; ++i)
          select_->add(pass - quantile_pass_, order_key(std::fabs(p[i] - b[i]) * kl));
      }
    });
  }

  void end_pass(int pass) override {
    if (pass == 0 && fused_) {
      std::vector<float>().swap(row_p_);
      std::vector<float>().swap(row_b_);
      std::vector<double>().swap(exp_p_);
      std::vector<double>().swap(exp_b_);
    } else if (pass == 1 && !fused_) {
      kl_f32_.resize(kl_.size());
      for (std::size_t r = 0; r < kl_.size(); ++r)
        kl_f32_[r] = static_cast<float>(kl_[r]);
      std::vector<RowSoftmax>().swap(softmax_p_);
      std::vector<RowSoftmax>().swap(softmax_b_);
      std::vector<double>().swap(kl_);
    }
    if (pass >= quantile_pass_) {
      select_->end_pass(pass - quantile_pass_);
      if (pass + 1 == quantile_pass_ + RankSelect::k_passes) {
        const float q1 = float_from_order_key(select_->result(0).key);
        const float median = float_from_order_key(select_->result(1).key);
        const float q3 = float_from_order_key(select_->result(2).key);
        threshold_ = median + 1.5f * (q3 - q1);
      }
    }
  }

  void compute(const Chunk& chunk, float* out) override {
    const float* p = chunk.models[0];
    const float* b = chunk.base;
    for_each_segment(chunk, [&](std::size_t row, std::int64_t lo, std::int64_t hi) {
      const float kl = kl_f32_[row];
      for (std::int64_t i = lo; i < hi; ++i) {
        const float keep = std::fabs(p[i] - b[i]) * kl >= threshold_ ? 1.0f : 0.0f;
        out[i] = b[i] + (p[i] - b[i]) * keep;
      }
    });
  }

 private:
  // Pass 0 on one whole row: the online softmax sums of p and b in element
  // order (RowSoftmax::add), then KL_row as pass 1 computes it, element by
  // element in order, taking the exp(x − max) values that add_row kept.
  void finish_row(std::size_t row, const float* p, const float* b) {
    const auto n = static_cast<std::size_t>(length_);
    exp_p_.resize(n);
    exp_b_.resize(n);
    RowSoftmax sp;
    RowSoftmax sb;
    std::size_t last_p = 0;
    std::size_t last_b = 0;
    add_row(sp, p, n, exp_p_.data(), last_p);
    add_row(sb, b, n, exp_b_.data(), last_b);
    double kl = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      const double ep = i > last_p ? exp_p_[i] : std::exp(static_cast<double>(p[i]) - sp.max);
      const double eb = i > last_b ? exp_b_[i] : std::exp(static_cast<double>(b[i]) - sb.max);
      const double pp = ep / sp.sum + k_probability_floor;
      const double qq = eb / sb.sum + k_probability_floor;
      kl += pp * std::log(pp / qq);
    }
    const float kl_f32 = static_cast<float>(kl);
    kl_f32_[row] = kl_f32;
    // RankSelect's first pass over the row's importances, now that its KL is
    // known: rows finish in element order, so the keys come in the order
    // a pass of their own would add them.
    for (std::size_t i = 0; i < n; ++i)
      select_->add(0, order_key(std::fabs(p[i] - b[i]) * kl_f32));
  }

  // f(row, lo, hi) for each row the chunk touches, with [lo, hi) the
  // chunk-relative indices of that row's elements, in element order.
  template <typename F>
  void for_each_segment(const Chunk& chunk, F&& f) const {
    std::int64_t i = 0;
    while (i < chunk.size) {
      const std::int64_t element = chunk.begin + i;
      const std::int64_t row = element / length_;
      const std::int64_t hi = std::min(chunk.size, (row + 1) * length_ - chunk.begin);
      f(static_cast<std::size_t>(row), i, hi);
      i = hi;
    }
  }

  std::int64_t numel_;
  std::int64_t length_ = 1;
  std::vector<RowSoftmax> softmax_p_;
  std::vector<RowSoftmax> softmax_b_;
  std::vector<double> kl_;
  std::vector<float> kl_f32_;
  bool fused_ = true;         // rows finished in pass 0 (length_ <= k_row_max)
  int quantile_pass_ = 0;     // the pass RankSelect's first pass is part of
  std::vector<float> row_p_;  // a row that straddles chunks, being gathered
  std::vector<float> row_b_;
  std::vector<double> exp_p_;  // finish_row(): add_row's exp(x − max) values
  std::vector<double> exp_b_;
  std::optional<RankSelect> select_;
  float threshold_ = 0.0f;
};

std::unique_ptr<TensorMerge> make_arcee_fusion(const TensorContext& context) {
  return std::make_unique<ArceeFusionMerge>(context);
}

// MethodSpec::memory_bytes: the f32 KL per row; in pass 0 the row buffers
// (or, for rows over k_row_max, per row two RowSoftmax and the f64 KL in the
// first two passes); then a RankSelect over order keys with three wanted
// buckets.
std::uint64_t arcee_fusion_memory_bytes(const std::vector<std::int64_t>& shape, std::int64_t numel,
                                        std::size_t /*models*/, std::int64_t /*chunk*/) {
  const std::int64_t length = shape.size() >= 2 ? std::max<std::int64_t>(shape.back(), 1)
                                                : std::max<std::int64_t>(numel, 1);
  const auto rows = static_cast<std::uint64_t>(std::max<std::int64_t>(numel / length, 1));
  const std::uint64_t first_passes =
      length <= k_row_max
          ? static_cast<std::uint64_t>(length) * (2 * sizeof(float) + 2 * sizeof(double))
          : rows * (2 * sizeof(RowSoftmax) + sizeof(double));
  // Fused, pass 0 holds the row buffers and RankSelect's first pass at once.
  return rows * sizeof(float) + (length <= k_row_max
                                     ? first_passes + RankSelect::memory_bytes(32, 3, 0)
                                     : std::max(first_passes, RankSelect::memory_bytes(32, 3, 0)));
}

}  // namespace

MethodSpec make_arcee_fusion_spec() {
  MethodSpec spec;
  spec.name = "arcee_fusion";
  spec.pretty_name = "Arcee Fusion";
  spec.reference = "https://arcee.ai";
  spec.description = "Take the other model's values only where the change is an importance outlier";
  spec.base_use = MethodSpec::BaseUse::required;
  spec.models_min = 1;
  spec.models_max = 1;
  spec.rectify_to_common = true;
  spec.make = &make_arcee_fusion;
  spec.memory_bytes = &arcee_fusion_memory_bytes;
  return spec;
}

}  // namespace llmerge
