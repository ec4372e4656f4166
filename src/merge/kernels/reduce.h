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
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "merge/kernels/kernels.h"
#include "merge/method.h"

namespace llmerge::kernels {

namespace detail {
template <class Term>
inline double reduce8(std::size_t n, Term term) {
  // Named accumulators, not an array: compilers keep these in registers.
  double a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    a0 += term(i);
    a1 += term(i + 1);
    a2 += term(i + 2);
    a3 += term(i + 3);
    a4 += term(i + 4);
    a5 += term(i + 5);
    a6 += term(i + 6);
    a7 += term(i + 7);
  }
  double* tail[7] = {&a0, &a1, &a2, &a3, &a4, &a5, &a6};
  for (std::size_t j = 0; i + j < n; ++j)
    *tail[j] += term(i + j);
  return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
}
}  // namespace detail

// reduce_sum, reduce_sum_squares, reduce_dot and reduce_l1 (kernels.h) follow
// this pattern with Highway, two f64 lanes per vector (four vectors are the
// eight accumulators); their scalar twins use reduce8 itself.

// Σ |x[i]| over the i with keep[i] == 1; every keep[i] is 0 or 1.
inline double reduce_l1_kept(const float* x, const std::uint8_t* keep, std::size_t n) {
  return detail::reduce8(n, [x, keep](std::size_t i) {
    // A bit mask, not a branch: a random mask defeats branch prediction.
    const std::uint32_t bits = std::bit_cast<std::uint32_t>(x[i]) & 0x7fffffffu &
                               (0u - static_cast<std::uint32_t>(keep[i]));
    return static_cast<double>(std::bit_cast<float>(bits));
  });
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
