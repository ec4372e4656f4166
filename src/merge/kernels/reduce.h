// Deterministic f64 reductions over one block of at most k_reduce_block
// elements (method.h).
//
// Each reduction runs 8 f64 accumulators over the elements in a fixed
// pattern (element i goes to accumulator i % 8), then combines them as
// ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)). The order is written out
// in plain C++, so it is the same on every CPU; products of two floats are
// exact in f64, so FMA contraction cannot change a result either. Methods
// reduce each block of k_reduce_block elements separately and add the block
// results in element order (for_each_block), which makes a tensor's sum
// independent of how the executor chunks it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "merge/method.h"

namespace llmerge::kernels {

namespace detail {
template <class Term>
inline double reduce8(std::size_t n, Term term) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (std::size_t j = 0; j < 8; ++j)
      acc[j] += term(i + j);
  }
  for (std::size_t j = 0; i + j < n; ++j)
    acc[j] += term(i + j);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}
}  // namespace detail

// Σ x[i]
inline double reduce_sum(const float* x, std::size_t n) {
  return detail::reduce8(n, [x](std::size_t i) { return static_cast<double>(x[i]); });
}
// Σ x[i]²
inline double reduce_sum_squares(const float* x, std::size_t n) {
  return detail::reduce8(n, [x](std::size_t i) {
    const double v = x[i];
    return v * v;
  });
}
// Σ x[i]·y[i]
inline double reduce_dot(const float* x, const float* y, std::size_t n) {
  return detail::reduce8(
      n, [x, y](std::size_t i) { return static_cast<double>(x[i]) * static_cast<double>(y[i]); });
}
// Σ |x[i]|
inline double reduce_l1(const float* x, std::size_t n) {
  return detail::reduce8(n, [x](std::size_t i) { return std::fabs(static_cast<double>(x[i])); });
}

// Calls fn(offset, length) for the pieces of a chunk [begin, begin + size)
// that lie in successive k_reduce_block-aligned blocks of the whole tensor.
// With the executor's chunking (method.h) each piece is one whole block,
// except the tensor's last one.
template <class Fn>
inline void for_each_block(std::int64_t begin, std::int64_t size, Fn fn) {
  std::int64_t offset = 0;
  while (offset < size) {
    const std::int64_t block_end = ((begin + offset) / k_reduce_block + 1) * k_reduce_block;
    const std::int64_t length = std::min(size - offset, block_end - (begin + offset));
    fn(static_cast<std::size_t>(offset), static_cast<std::size_t>(length));
    offset += length;
  }
}

}  // namespace llmerge::kernels
