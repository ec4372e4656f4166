// Philox4x32-10 and the element streams. The block function is compiled once
// per CPU target (foreach_target.h re-includes this file): each vector holds
// Lanes(u64) blocks in SoA form, one 32-bit counter word per u64 lane, so
// MulEven gives the full 32x32->64 products that Highway 1.0.3 has no
// MulHigh for. philox4x32_10 below is its scalar twin and the spec.
#include <algorithm>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "merge/random.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "merge/random.h"

#ifndef LLMERGE_RANDOM_CONSTANTS
#define LLMERGE_RANDOM_CONSTANTS
namespace llmerge::detail {
// Multipliers and Weyl key increments from the Philox paper (Random123).
constexpr std::uint32_t k_philox_m0 = 0xD2511F53u;
constexpr std::uint32_t k_philox_m1 = 0xCD9E8D57u;
constexpr std::uint32_t k_philox_w0 = 0x9E3779B9u;
constexpr std::uint32_t k_philox_w1 = 0xBB67AE85u;
}  // namespace llmerge::detail
#endif

HWY_BEFORE_NAMESPACE();
namespace llmerge::random_simd {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using D64 = hn::ScalableTag<std::uint64_t>;
using V64 = hn::Vec<D64>;

// low32(a) * m as 64 bits. HWY_SCALAR cannot BitCast u64 to u32 lanes.
HWY_INLINE V64 MulLow32(V64 a, std::uint32_t m) {
  const D64 d64;
#if HWY_TARGET == HWY_SCALAR
  return hn::Set(d64, (hn::GetLane(a) & 0xffffffffu) * m);
#else
  const hn::Repartition<std::uint32_t, D64> d32;
  return hn::MulEven(hn::BitCast(d32, a), hn::BitCast(d32, hn::Set(d64, m)));
#endif
}

// Only the low 32 bits of each lane are meaningful: MulEven reads just those,
// and the high halves left by the products never reach a low half (XOR and
// the final truncation are lane-local), so no masking is needed.
HWY_INLINE void Rounds(V64& c0, V64& c1, V64& c2, V64& c3, PhiloxKey key) {
  const D64 d64;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key[0] += detail::k_philox_w0;
      key[1] += detail::k_philox_w1;
    }
    const V64 p0 = MulLow32(c0, detail::k_philox_m0);
    const V64 p1 = MulLow32(c2, detail::k_philox_m1);
    c0 = hn::Xor(hn::Xor(hn::ShiftRight<32>(p1), c1), hn::Set(d64, key[0]));
    c1 = p1;
    c2 = hn::Xor(hn::Xor(hn::ShiftRight<32>(p0), c3), hn::Set(d64, key[1]));
    c3 = p0;
  }
}

// Full vectors only; returns the number of blocks done.
std::size_t PhiloxBlocks(const std::uint32_t* counters, PhiloxKey key, std::uint32_t* out,
                         std::size_t n) {
  const D64 d64;
  const hn::Rebind<std::uint32_t, D64> d32;
  const std::size_t lanes = hn::Lanes(d64);
  std::size_t j = 0;
  for (; j + lanes <= n; j += lanes) {
    hn::Vec<decltype(d32)> w0, w1, w2, w3;
    hn::LoadInterleaved4(d32, counters + 4 * j, w0, w1, w2, w3);
    V64 c0 = hn::PromoteTo(d64, w0), c1 = hn::PromoteTo(d64, w1);
    V64 c2 = hn::PromoteTo(d64, w2), c3 = hn::PromoteTo(d64, w3);
    Rounds(c0, c1, c2, c3, key);
    hn::StoreInterleaved4(hn::TruncateTo(d32, c0), hn::TruncateTo(d32, c1), hn::TruncateTo(d32, c2),
                          hn::TruncateTo(d32, c3), d32, out + 4 * j);
  }
  return j;
}

// Elements 4 * first .. 4 * (first + blocks) of one stream (see random.h);
// full vectors only, returns the number of blocks done. first + blocks must
// not pass 2^62, where the element index wraps.
std::size_t UniformBlocks(PhiloxKey key, std::uint32_t model, std::uint64_t first, float* out,
                          std::size_t blocks) {
  const D64 d64;
  const hn::Rebind<std::uint32_t, D64> d32;
  const hn::Rebind<float, D64> df;
  const hn::Rebind<std::int32_t, D64> di32;
  const std::size_t lanes = hn::Lanes(d64);
  const auto scale = hn::Set(df, 0x1p-24f);
  const auto to_uniform = [&](V64 word) {
    const auto top24 = hn::ShiftRight<8>(hn::TruncateTo(d32, word));
    return hn::Mul(hn::ConvertTo(df, hn::BitCast(di32, top24)), scale);  // exact: < 2^24
  };
  const V64 model_words = hn::Set(d64, model);
  V64 g = hn::Add(hn::Set(d64, first), hn::Iota(d64, 0));
  const V64 step = hn::Set(d64, lanes);
  std::size_t j = 0;
  for (; j + lanes <= blocks; j += lanes, g = hn::Add(g, step)) {
    V64 c0 = g, c1 = hn::ShiftRight<32>(g), c2 = model_words, c3 = hn::Zero(d64);
    Rounds(c0, c1, c2, c3, key);
    hn::StoreInterleaved4(to_uniform(c0), to_uniform(c1), to_uniform(c2), to_uniform(c3), df,
                          out + 4 * j);
  }
  return j;
}

}  // namespace HWY_NAMESPACE
}  // namespace llmerge::random_simd
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace llmerge {
namespace random_simd {
HWY_EXPORT(PhiloxBlocks);
HWY_EXPORT(UniformBlocks);
}  // namespace random_simd

namespace {

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
      k[0] += detail::k_philox_w0;
      k[1] += detail::k_philox_w1;
    }
    const std::uint64_t p0 = std::uint64_t{detail::k_philox_m0} * c[0];
    const std::uint64_t p1 = std::uint64_t{detail::k_philox_m1} * c[2];
    c = {static_cast<std::uint32_t>(p1 >> 32) ^ c[1] ^ k[0], static_cast<std::uint32_t>(p1),
         static_cast<std::uint32_t>(p0 >> 32) ^ c[3] ^ k[1], static_cast<std::uint32_t>(p0)};
  }
  return c;
}

void philox4x32_10_blocks(const PhiloxCounter* counters, PhiloxKey key, PhiloxCounter* out,
                          std::size_t n) {
  static_assert(sizeof(PhiloxCounter) == 4 * sizeof(std::uint32_t));
  std::size_t j = 0;
  if (n > 0)
    j = HWY_DYNAMIC_DISPATCH(random_simd::PhiloxBlocks)(counters[0].data(), key, out[0].data(), n);
  for (; j < n; ++j)
    out[j] = philox4x32_10(counters[j], key);
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

namespace {

void uniforms_scalar(PhiloxKey key, std::uint32_t model, std::uint64_t begin, float* out,
                     std::size_t n) {
  std::size_t i = 0;
  while (i < n) {
    const std::uint64_t e = begin + i;
    const std::uint64_t g = e / 4;
    const PhiloxCounter r = philox4x32_10(
        {static_cast<std::uint32_t>(g), static_cast<std::uint32_t>(g >> 32), model, 0}, key);
    for (std::size_t lane = e % 4; lane < 4 && i < n; ++lane, ++i)
      out[i] = to_uniform(r[lane]);
  }
}

}  // namespace

void ElementRandom::uniforms(std::uint64_t begin, float* out, std::size_t n) const {
  // Scalar up to the first whole block, SIMD over whole blocks that stay
  // below the 2^64 element wrap (where the block index jumps back to 0),
  // scalar for the rest.
  const std::size_t head = std::min<std::size_t>(n, (4 - begin % 4) % 4);
  uniforms_scalar(key_, model_, begin, out, head);
  std::size_t i = head;
  const std::uint64_t before_wrap = 0 - (begin + i);  // 0 means no wrap ahead
  std::uint64_t whole = (n - i) / 4;
  if (before_wrap != 0) whole = std::min<std::uint64_t>(whole, before_wrap / 4);
  if (whole > 0)
    i += 4 * HWY_DYNAMIC_DISPATCH(random_simd::UniformBlocks)(key_, model_, (begin + i) / 4,
                                                              out + i, whole);
  uniforms_scalar(key_, model_, begin + i, out + i, n - i);
}

}  // namespace llmerge
#endif  // HWY_ONCE
