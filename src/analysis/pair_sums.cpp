#include "analysis/pair_sums.h"

#include <cmath>
#include <limits>

namespace llmerge {

namespace {

constexpr double k_nan = std::numeric_limits<double>::quiet_NaN();

// Both zero: the vectors are equal (1); one zero: nothing in common (0).
double cosine(double dot, double n2a, double n2b) {
  if (n2a == 0 && n2b == 0) return 1;
  if (n2a == 0 || n2b == 0) return 0;
  return dot / (std::sqrt(n2a) * std::sqrt(n2b));
}

double ratio(std::int64_t num, std::int64_t den) {
  return den == 0 ? k_nan : static_cast<double>(num) / static_cast<double>(den);
}

}  // namespace

PairFigures pair_figures(const PairSums& s, bool with_base) {
  PairFigures f;
  f.cosine = cosine(s.dot, s.norm2_a, s.norm2_b);
  const double mean_norm = (std::sqrt(s.norm2_a) + std::sqrt(s.norm2_b)) / 2;
  f.relative_l2 = mean_norm == 0 ? 0 : std::sqrt(s.diff2) / mean_norm;
  if (!with_base) {
    f.task_cosine = f.sign_agreement = f.sign_conflict = f.top_k_overlap = k_nan;
    return f;
  }
  f.task_cosine = cosine(s.task_dot, s.task_norm2_a, s.task_norm2_b);
  f.sign_agreement = ratio(s.sign_same, s.both_nonzero);
  f.sign_conflict = ratio(s.kept_opposite, s.kept_both);
  f.top_k_overlap = ratio(s.kept_both, s.kept_a);
  return f;
}

}  // namespace llmerge
