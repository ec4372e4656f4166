#include "extract/svd.h"

#include <algorithm>
#include <cmath>

#include <Eigen/Dense>
#include <Eigen/SVD>

#include "merge/random.h"

namespace llmerge {

namespace {

using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ColMatrix = Eigen::MatrixXf;

Eigen::Map<const Matrix> view(const float* d, std::int64_t rows, std::int64_t cols) {
  return {d, static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols)};
}

// Orthonormal basis of the columns of y (thin Householder QR).
ColMatrix orthonormal(const ColMatrix& y) {
  Eigen::HouseholderQR<ColMatrix> qr(y);
  return qr.householderQ() * ColMatrix::Identity(y.rows(), y.cols());
}

LowRank factors(const ColMatrix& u, const Eigen::VectorXf& s, const ColMatrix& v, std::int64_t rows,
                std::int64_t cols, std::int64_t rank, bool distribute) {
  LowRank out;
  out.rank = rank;
  out.singular.assign(s.data(), s.data() + s.size());
  out.a.resize(static_cast<std::size_t>(rank * cols));
  out.b.resize(static_cast<std::size_t>(rows * rank));
  for (std::int64_t k = 0; k < rank; ++k) {
    const float sv = std::max(s[k], 0.0F);
    const float scale_a = distribute ? std::sqrt(sv) : sv;
    const float scale_b = distribute ? std::sqrt(sv) : 1.0F;
    for (std::int64_t j = 0; j < cols; ++j)
      out.a[static_cast<std::size_t>(k * cols + j)] = scale_a * v(j, k);
    for (std::int64_t i = 0; i < rows; ++i)
      out.b[static_cast<std::size_t>(i * rank + k)] = u(i, k) * scale_b;
  }
  return out;
}

}  // namespace

bool uses_randomized_svd(std::int64_t rows, std::int64_t cols, std::int64_t rank) {
  const std::int64_t side = std::min(rows, cols);
  return side > k_randomized_min_side && 4 * (rank + k_randomized_oversampling) <= side;
}

std::vector<float> singular_values(const float* d, std::int64_t rows, std::int64_t cols) {
  const ColMatrix m = view(d, rows, cols);
  Eigen::BDCSVD<ColMatrix> svd(m);
  const auto& s = svd.singularValues();
  return {s.data(), s.data() + s.size()};
}

LowRank truncated_svd(const float* d, std::int64_t rows, std::int64_t cols, std::int64_t rank,
                      bool distribute_scale, std::uint64_t seed) {
  const ColMatrix m = view(d, rows, cols);
  if (!uses_randomized_svd(rows, cols, rank)) {
    Eigen::BDCSVD<ColMatrix> svd(m, Eigen::ComputeThinU | Eigen::ComputeThinV);
    return factors(svd.matrixU(), svd.singularValues(), svd.matrixV(), rows, cols, rank,
                   distribute_scale);
  }
  // Halko et al. 2011: Y = (M M^T)^q M G, Q = orth(Y), then the SVD of Q^T M.
  const std::int64_t probes = rank + k_randomized_oversampling;
  ColMatrix g(cols, probes);
  const ElementRandom random(seed, 0x5644, 0);
  for (std::int64_t j = 0; j < probes; ++j) {
    for (std::int64_t i = 0; i < cols; ++i) {
      // Box-Muller from two uniforms; 1 - u keeps the logarithm finite.
      const auto e = static_cast<std::uint64_t>(2 * (j * cols + i));
      const double u1 = 1.0 - random.uniform(e);
      const double u2 = random.uniform(e + 1);
      g(i, j) =
          static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
    }
  }
  ColMatrix q = orthonormal(m * g);
  for (int it = 0; it < k_randomized_power_iterations; ++it) {
    const ColMatrix z = orthonormal(m.transpose() * q);
    q = orthonormal(m * z);
  }
  const ColMatrix small = q.transpose() * m;  // [probes, cols]
  Eigen::BDCSVD<ColMatrix> svd(small, Eigen::ComputeThinU | Eigen::ComputeThinV);
  const ColMatrix u = q * svd.matrixU();
  LowRank out = factors(u, svd.singularValues(), svd.matrixV(), rows, cols, rank, distribute_scale);
  out.randomized = true;
  return out;
}

}  // namespace llmerge
