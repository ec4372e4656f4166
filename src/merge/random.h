// Counter-based random numbers for the random merge methods (DARE).
//
// Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as
// easy as 1, 2, 3", SC'11) maps a 128-bit counter and a 64-bit key to 128
// random bits with no state, so the value for an element depends only on
// (seed, tensor, model, element): never on chunking, threads or the order in
// which tensors are merged.
//
// Stream layout (fixed; changing it changes every DARE output):
//   key     = the two halves of mix(seed, tensor_key), low word first, where
//             mix(s, t) = splitmix64_finalize(s ^ splitmix64_finalize(t))
//   counter = {g & 0xffffffff, g >> 32, model, 0} with g = element / 4
//   element e uses output word e % 4; uniform = (word >> 8) · 2^-24 ∈ [0, 1).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace llmerge {

using PhiloxCounter = std::array<std::uint32_t, 4>;
using PhiloxKey = std::array<std::uint32_t, 2>;

// One Philox4x32-10 block: the scalar reference for the SIMD paths.
PhiloxCounter philox4x32_10(PhiloxCounter counter, PhiloxKey key);

// out[j] = philox4x32_10(counters[j], key) for j < n, several blocks per
// SIMD instruction on the best CPU target (bit-identical on every target).
void philox4x32_10_blocks(const PhiloxCounter* counters, PhiloxKey key, PhiloxCounter* out,
                          std::size_t n);

// FNV-1a 64-bit hash of a tensor name: TensorContext::tensor_key.
std::uint64_t hash_tensor_name(std::string_view name);

// The uniform stream of one model's mask for one tensor.
class ElementRandom {
 public:
  ElementRandom(std::uint64_t seed, std::uint64_t tensor_key, std::uint32_t model);

  // Uniform in [0, 1) for one element (a multiple of 2^-24).
  float uniform(std::uint64_t element) const;
  // out[i] = uniform(begin + i) for i < n (element indices wrap mod 2^64);
  // whole Philox blocks are computed with SIMD, bit-identical to uniform().
  void uniforms(std::uint64_t begin, float* out, std::size_t n) const;

 private:
  PhiloxKey key_;
  std::uint32_t model_;
};

}  // namespace llmerge
