// The sums compare keeps for one pair of models over some set of elements (a
// tensor, a layer, a module kind, the whole model), and the figures made from
// them (docs/compare.md, "Measures"). Sums of sums are exact for the counts
// and taken in a fixed order for the f64 sums, so figures never depend on
// threads.
#pragma once

#include <cstdint>

namespace llmerge {

struct PairSums {
  double dot = 0;      // <a, b>
  double diff2 = 0;    // ||a - b||^2
  double norm2_a = 0;  // ||a||^2
  double norm2_b = 0;
  // Task vectors (model - base); zero without a base.
  double task_dot = 0;
  double task_norm2_a = 0;
  double task_norm2_b = 0;
  std::int64_t sign_same = 0;      // both nonzero with the same sign
  std::int64_t both_nonzero = 0;   // both nonzero
  std::int64_t kept_both = 0;      // kept by both at the density (TIES trim)
  std::int64_t kept_opposite = 0;  // ... with opposite signs
  std::int64_t kept_a = 0;         // kept by a (k per tensor)

  void add(const PairSums& o) {
    dot += o.dot;
    diff2 += o.diff2;
    norm2_a += o.norm2_a;
    norm2_b += o.norm2_b;
    task_dot += o.task_dot;
    task_norm2_a += o.task_norm2_a;
    task_norm2_b += o.task_norm2_b;
    sign_same += o.sign_same;
    both_nonzero += o.both_nonzero;
    kept_both += o.kept_both;
    kept_opposite += o.kept_opposite;
    kept_a += o.kept_a;
  }
};

// NaN where a figure has nothing to count (JSON null).
struct PairFigures {
  double cosine = 0;
  double relative_l2 = 0;
  double task_cosine = 0;
  double sign_agreement = 0;
  double sign_conflict = 0;
  double top_k_overlap = 0;
};

PairFigures pair_figures(const PairSums& s, bool with_base);

}  // namespace llmerge
