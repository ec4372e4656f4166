// Truncated SVD of a weight difference, for LoRA extraction (Eigen).
//
// For a matrix D [rows, cols] (f32, row-major) with SVD D = U S V^T, the
// rank-r factors are, as mergekit-extract-lora writes them:
//
//   distribute_scale:  A = sqrt(S_r) V_r^T  [r, cols],  B = U_r sqrt(S_r)  [rows, r]
//   otherwise:         A = S_r V_r^T,                    B = U_r
//
// so that B A is the best rank-r approximation of D (Eckart-Young), with
// error ||D - B A||_F^2 = sum of the dropped S_i^2.
//
// Small matrices use Eigen's exact divide-and-conquer SVD (BDCSVD). A matrix
// whose smaller side is over k_randomized_min_side and at least four times the
// rank asked for uses the randomized range finder of Halko, Martinsson and
// Tropp 2011 (arXiv:0909.4061, Algorithms 4.4 and 5.1): r + 16 Gaussian probes
// drawn from the counter-based RNG (merge/random.h, so the result is
// deterministic), four power iterations with re-orthonormalisation, and an
// exact SVD of the small projected matrix. docs/lora.md gives its accuracy.
#pragma once

#include <cstdint>
#include <vector>

namespace llmerge {

inline constexpr std::int64_t k_randomized_min_side = 1024;
inline constexpr std::int64_t k_randomized_oversampling = 16;
inline constexpr int k_randomized_power_iterations = 4;

struct LowRank {
  std::int64_t rank = 0;
  std::vector<float> a;         // [rank, cols]
  std::vector<float> b;         // [rows, rank]
  std::vector<float> singular;  // the leading singular values found (at least rank of them)
  bool randomized = false;
};

// Singular values of `d` [rows, cols], largest first (exact).
std::vector<float> singular_values(const float* d, std::int64_t rows, std::int64_t cols);

// The rank-`rank` factors of `d` (rank <= min(rows, cols)). `seed` keys the
// randomized method's probes.
LowRank truncated_svd(const float* d, std::int64_t rows, std::int64_t cols, std::int64_t rank,
                      bool distribute_scale, std::uint64_t seed);

// Whether truncated_svd uses the randomized method for this shape and rank.
bool uses_randomized_svd(std::int64_t rows, std::int64_t cols, std::int64_t rank);

}  // namespace llmerge
