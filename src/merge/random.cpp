#include "merge/random.h"

namespace llmerge {
namespace {

// Multipliers and Weyl key increments from the Philox paper (Random123).
constexpr std::uint32_t k_philox_m0 = 0xD2511F53u;
constexpr std::uint32_t k_philox_m1 = 0xCD9E8D57u;
constexpr std::uint32_t k_philox_w0 = 0x9E3779B9u;
constexpr std::uint32_t k_philox_w1 = 0xBB67AE85u;

std::uint64_t splitmix64_finalize(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

float to_uniform(std::uint32_t word) {
  return static_cast<float>(word >> 8) * 0x1p-24f;
}

}  // namespace

PhiloxCounter philox4x32_10(PhiloxCounter c, PhiloxKey k) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k[0] += k_philox_w0;
      k[1] += k_philox_w1;
    }
    const std::uint64_t p0 = std::uint64_t{k_philox_m0} * c[0];
    const std::uint64_t p1 = std::uint64_t{k_philox_m1} * c[2];
    c = {static_cast<std::uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<std::uint32_t>(p1),
         static_cast<std::uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<std::uint32_t>(p0)};
  }
  return c;
}

std::uint64_t hash_tensor_name(std::string_view name) {
  std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64 offset basis and prime
  for (const char ch : name) {
    h ^= static_cast<unsigned char>(ch);
    h *= 0x100000001b3ull;
  }
  return h;
}

ElementRandom::ElementRandom(std::uint64_t seed, std::uint64_t tensor_key, std::uint32_t model)
    : model_(model) {
  const std::uint64_t mixed = splitmix64_finalize(seed ^ splitmix64_finalize(tensor_key));
  key_ = {static_cast<std::uint32_t>(mixed), static_cast<std::uint32_t>(mixed >> 32)};
}

float ElementRandom::uniform(std::uint64_t element) const {
  const std::uint64_t g = element / 4;
  const PhiloxCounter r = philox4x32_10(
      {static_cast<std::uint32_t>(g), static_cast<std::uint32_t>(g >> 32), model_, 0}, key_);
  return to_uniform(r[element % 4]);
}

void ElementRandom::uniforms(std::uint64_t begin, float* out, std::size_t n) const {
  std::size_t i = 0;
  while (i < n) {
    const std::uint64_t e = begin + i;
    const std::uint64_t g = e / 4;
    const PhiloxCounter r = philox4x32_10(
        {static_cast<std::uint32_t>(g), static_cast<std::uint32_t>(g >> 32), model_, 0}, key_);
    for (std::size_t lane = e % 4; lane < 4 && i < n; ++lane, ++i)
      out[i] = to_uniform(r[lane]);
  }
}

}  // namespace llmerge
