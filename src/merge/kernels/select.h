// select(c, a, b): c ? a : b for floats, as bit masks, without a branch.
//
// Why: the library's portable code is built for baseline x86-64 (SSE2, no
// blend instruction), where GCC compiles a per-element `c ? a : b` in a loop
// to a branch; on task vectors whose conditions fall at random (a fine-tune's
// entries are 0 or not, kept or not, agree in sign or not) that branch is
// mispredicted about half the time. With the choice written as and/or on the
// bits, the loops have no branch and vectorize. Bit for bit the same value as
// the conditional.
#pragma once

#include <bit>
#include <cstdint>

namespace llmerge::kernels {

inline float select(bool c, float a, float b) {
  const std::uint32_t mask = 0u - static_cast<std::uint32_t>(c);
  return std::bit_cast<float>((std::bit_cast<std::uint32_t>(a) & mask) |
                              (std::bit_cast<std::uint32_t>(b) & ~mask));
}

}  // namespace llmerge::kernels
