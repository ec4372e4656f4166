// The SIMD kernels against their scalar twins, on every Highway target this
// CPU runs, bit for bit; the conversions against core/dtype.h.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "hwy/highway.h"
#include "hwy/targets.h"
#include "merge/kernels/kernels.h"
#include "merge/kernels/reduce.h"

namespace llmerge::kernels {
namespace {

// 0, 1, around every vector width up to AVX-512 (16 lanes of f32), primes, and long.
const std::vector<std::size_t> k_lengths = {0,  1,  2,  3,  4,  5,  7,  8,  9,   15,   16,  17,
                                            31, 32, 33, 47, 63, 64, 65, 97, 257, 1009, 4099};

// Runs `body` once per Highway target compiled in and supported here.
template <class Body>
void for_each_target(Body body) {
  for (const std::int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    body();
  }
  hwy::SetSupportedTargetsForTest(0);
}

// f32 values that stress conversions: signed zeros, subnormals, NaN payloads,
// Inf, bf16/f16 rounding ties (even and odd), overflow edges, plus random bits.
std::vector<float> special_floats(std::size_t random_count) {
  std::vector<std::uint32_t> bits = {
      0x00000000u,
      0x80000000u,
      0x00000001u,
      0x807fffffu,
      0x00400000u,  // zeros, f32 subnormals
      0x7f800000u,
      0xff800000u,
      0x7fc00000u,
      0xffc00001u,
      0x7f800001u,  // Inf, NaN payloads
      0x7fbfffffu,
      0xff812345u,  // signalling NaN
      0x3f808000u,
      0x3f818000u,
      0x3f808001u,
      0x3f817fffu,  // bf16 ties to even (down, up), near
                    // ties
      0x7f7fffffu,
      0x7f7f8000u,
      0x7f7f7fffu,
      0xff7fffffu,  // bf16 overflow to Inf and just below
      0x477fe000u,
      0x477fefffu,
      0x477ff000u,
      0x47800000u,  // f16 max, just below / at overflow
      0x33000000u,
      0x33000001u,
      0x33800000u,
      0x33c00000u,  // f16 subnormal rounding edges
      0x387fe000u,
      0x387ff000u,
      0x38800000u,
      0x38801000u,  // f16 subnormal/normal boundary
      0x3f801000u,
      0x3f803000u,
      0x3f800fffu,
      0xbf803000u,  // f16 mantissa ties
      0x3f800000u,
      0xbf800000u,
      0x42f6e979u,
      0xc61c4000u,
  };
  std::mt19937 rng(1234);
  for (std::size_t i = 0; i < random_count; ++i)
    bits.push_back(static_cast<std::uint32_t>(rng()));
  std::vector<float> out;
  for (const std::uint32_t b : bits)
    out.push_back(f32_from_bits(b));
  return out;
}

std::vector<float> random_floats(std::size_t n, unsigned seed, bool with_zeros = false) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i)
    v[i] = with_zeros && rng() % 4 == 0 ? 0.0f : normal(rng);
  return v;
}

bool same_bits(const void* a, const void* b, std::size_t bytes) {
  return bytes == 0 || std::memcmp(a, b, bytes) == 0;
}

TEST(Kernels, LoadBf16AndF16AreExactForEveryBitPattern) {
  std::vector<std::uint16_t> all(65536 + 13);
  for (std::size_t i = 0; i < all.size(); ++i)
    all[i] = static_cast<std::uint16_t>(i * 40503u);
  for (std::size_t i = 0; i < 65536; ++i)
    all[i] = static_cast<std::uint16_t>(i);
  for_each_target([&] {
    for (const DType type : {DType::BF16, DType::F16}) {
      for (const std::size_t n : {all.size(), std::size_t{0}, std::size_t{1}, std::size_t{17}}) {
        std::vector<float> simd(n, -7.0f);
        load_f32(type, all.data(), simd.data(), n);
        for (std::size_t i = 0; i < n; ++i) {
          const float want = type == DType::BF16 ? bf16_to_f32(all[i]) : f16_to_f32(all[i]);
          ASSERT_EQ(f32_to_bits(simd[i]), f32_to_bits(want))
              << dtype_name(type) << " bits 0x" << std::hex << all[i];
        }
      }
    }
  });
}

TEST(Kernels, StoreRoundsToNearestEvenBitIdenticalToScalar) {
  const std::vector<float> values = special_floats(5000);
  for_each_target([&] {
    for (const std::size_t n : k_lengths) {
      for (std::size_t start : {std::size_t{0}, std::size_t{3}}) {
        const std::size_t len = std::min(n, values.size() - start);
        const float* src = values.data() + start;
        std::vector<std::uint16_t> bf(len), h(len);
        store_from_f32(DType::BF16, src, bf.data(), len);
        store_from_f32(DType::F16, src, h.data(), len);
        for (std::size_t i = 0; i < len; ++i) {
          ASSERT_EQ(bf[i], f32_to_bf16(src[i])) << "bf16 of 0x" << std::hex << f32_to_bits(src[i]);
          ASSERT_EQ(h[i], f32_to_f16(src[i])) << "f16 of 0x" << std::hex << f32_to_bits(src[i]);
        }
      }
    }
    // The whole special set in one call, so every special value also takes the vector path.
    std::vector<std::uint16_t> bf(values.size()), h(values.size());
    store_from_f32(DType::BF16, values.data(), bf.data(), values.size());
    store_from_f32(DType::F16, values.data(), h.data(), values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
      ASSERT_EQ(bf[i], f32_to_bf16(values[i])) << i;
      ASSERT_EQ(h[i], f32_to_f16(values[i])) << i;
    }
  });
}

TEST(Kernels, Bf16StoreRoundsTiesToEvenNotTruncates) {
  // 0x3f818000 is exactly halfway between bf16 0x3f81 and 0x3f82: even is 0x3f82.
  // 0x3f808000 is halfway between 0x3f80 and 0x3f81: even is 0x3f80.
  const std::vector<float> src(33, f32_from_bits(0x3f818000u));
  const std::vector<float> src2(33, f32_from_bits(0x3f808000u));
  for_each_target([&] {
    std::vector<std::uint16_t> out(src.size());
    store_from_f32(DType::BF16, src.data(), out.data(), src.size());
    for (const auto v : out)
      ASSERT_EQ(v, 0x3f82);
    store_from_f32(DType::BF16, src2.data(), out.data(), src2.size());
    for (const auto v : out)
      ASSERT_EQ(v, 0x3f80);
    const std::vector<float> nan(17, f32_from_bits(0x7f800001u));
    store_from_f32(DType::BF16, nan.data(), out.data(), nan.size());
    for (std::size_t i = 0; i < nan.size(); ++i)
      ASSERT_EQ(out[i], 0x7fc0);  // stays NaN, quiet
  });
}

TEST(Kernels, F32AndF64ConversionsMatchScalar) {
  const std::vector<float> values = special_floats(3000);
  std::vector<double> doubles(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    doubles[i] = static_cast<double>(values[i]) * (1.0 + 1e-9);  // not exactly representable
  }
  doubles.push_back(1e300);
  doubles.push_back(-1e-300);
  for_each_target([&] {
    for (const std::size_t n : k_lengths) {
      const std::size_t len = std::min(n, values.size());
      std::vector<float> simd(len), ref(len);
      load_f32(DType::F64, doubles.data(), simd.data(), len);
      scalar::load_f32(DType::F64, doubles.data(), ref.data(), len);
      ASSERT_TRUE(same_bits(simd.data(), ref.data(), len * 4)) << n;
      load_f32(DType::F32, values.data(), simd.data(), len);
      ASSERT_TRUE(same_bits(simd.data(), values.data(), len * 4)) << n;
      std::vector<double> back(len), back_ref(len);
      store_from_f32(DType::F64, values.data(), back.data(), len);
      scalar::store_from_f32(DType::F64, values.data(), back_ref.data(), len);
      ASSERT_TRUE(same_bits(back.data(), back_ref.data(), len * 8)) << n;
      std::vector<float> copy(len);
      store_from_f32(DType::F32, values.data(), copy.data(), len);
      ASSERT_TRUE(same_bits(copy.data(), values.data(), len * 4)) << n;
    }
  });
  EXPECT_EQ(1.0f, [] {
    const double one = 1.0;
    float f = 0;
    load_f32(DType::F64, &one, &f, 1);
    return f;
  }());
}

TEST(Kernels, UnsupportedDtypeIsAnInternalError) {
  std::uint8_t byte = 0;
  float f = 0;
  EXPECT_THROW(load_f32(DType::I8, &byte, &f, 1), Error);
  EXPECT_THROW(store_from_f32(DType::U8, &f, &byte, 1), Error);
}

TEST(Kernels, ArithmeticMatchesScalarTwinBitForBit) {
  const std::size_t max_n = 4099;
  const auto x = random_floats(max_n, 1);
  const auto y = random_floats(max_n, 2);
  auto d = random_floats(max_n, 3);
  d[5] = 0.0f;  // x / 0 = Inf, 0 / 0 = NaN in both
  for_each_target([&] {
    for (const std::size_t n : k_lengths) {
      std::vector<float> a(n), b(n);
      scale(x.data(), 0.37f, a.data(), n);
      scalar::scale(x.data(), 0.37f, b.data(), n);
      ASSERT_TRUE(same_bits(a.data(), b.data(), n * 4)) << "scale " << n;

      a.assign(y.begin(), y.begin() + static_cast<std::ptrdiff_t>(n));
      b = a;
      axpy(-1.7f, x.data(), a.data(), n);
      scalar::axpy(-1.7f, x.data(), b.data(), n);
      ASSERT_TRUE(same_bits(a.data(), b.data(), n * 4)) << "axpy " << n;

      // Fused: one rounding, on every target (MulAdd only where it is an FMA).
      a.assign(y.begin(), y.begin() + static_cast<std::ptrdiff_t>(n));
      b = a;
      fused_axpy(-1.7f, x.data(), a.data(), n);
      for (std::size_t i = 0; i < n; ++i)
        b[i] = std::fma(-1.7f, x[i], b[i]);
      ASSERT_TRUE(same_bits(a.data(), b.data(), n * 4)) << "fused_axpy " << n;

      // Masks: a threshold from the data, so that some elements sit on it.
      const std::int32_t above =
          n == 0 ? 0 : static_cast<std::int32_t>(f32_to_bits(std::abs(x[n / 2])));
      keep_above_magnitude(x.data(), a.data(), n, above, 1.5f);
      scalar::keep_above_magnitude(x.data(), b.data(), n, above, 1.5f);
      ASSERT_TRUE(same_bits(a.data(), b.data(), n * 4)) << "keep_above_magnitude " << n;
      for (std::size_t i = 0; i < n; ++i) {
        const bool kept = static_cast<std::int32_t>(f32_to_bits(std::abs(x[i]))) > above;
        ASSERT_EQ(a[i] != 0.0f || x[i] == 0.0f, kept || x[i] == 0.0f) << i;
      }
      const std::int32_t top =
          n == 0 ? 0 : static_cast<std::int32_t>(f32_to_bits(std::abs(x[n / 3])));
      for (const std::int32_t low : {-1, above}) {
        keep_magnitude_in(x.data(), a.data(), n, low, top, 1.5f);
        scalar::keep_magnitude_in(x.data(), b.data(), n, low, top, 1.5f);
        ASSERT_TRUE(same_bits(a.data(), b.data(), n * 4)) << "keep_magnitude_in " << n;
        for (std::size_t i = 0; i < n; ++i) {
          const auto bits = static_cast<std::int32_t>(f32_to_bits(std::abs(x[i])));
          ASSERT_EQ(f32_to_bits(a[i]), f32_to_bits(bits > low && bits <= top ? x[i] * 1.5f : 0.0f))
              << i;
        }
      }
      keep_below(y.data(), 0.25f, x.data(), a.data(), n, 2.0f);
      scalar::keep_below(y.data(), 0.25f, x.data(), b.data(), n, 2.0f);
      ASSERT_TRUE(same_bits(a.data(), b.data(), n * 4)) << "keep_below " << n;
      std::vector<std::uint8_t> keep(n);
      for (std::size_t i = 0; i < n; ++i)
        keep[i] = static_cast<std::uint8_t>(y[i] < 0.25f ? 0 : (i % 3) + 1);  // any non-zero keeps
      keep_where(keep.data(), x.data(), a.data(), n, 2.0f);
      scalar::keep_where(keep.data(), x.data(), b.data(), n, 2.0f);
      ASSERT_TRUE(same_bits(a.data(), b.data(), n * 4)) << "keep_where " << n;
      for (std::size_t i = 0; i < n; ++i)
        ASSERT_EQ(f32_to_bits(a[i]), f32_to_bits(keep[i] != 0 ? x[i] * 2.0f : 0.0f)) << i;

      weighted_sum2(0.3f, x.data(), 0.7f, y.data(), a.data(), n);
      scalar::weighted_sum2(0.3f, x.data(), 0.7f, y.data(), b.data(), n);
      ASSERT_TRUE(same_bits(a.data(), b.data(), n * 4)) << "weighted_sum2 " << n;

      add(x.data(), y.data(), a.data(), n);
      scalar::add(x.data(), y.data(), b.data(), n);
      ASSERT_TRUE(same_bits(a.data(), b.data(), n * 4)) << "add " << n;

      subtract(x.data(), y.data(), a.data(), n);
      scalar::subtract(x.data(), y.data(), b.data(), n);
      ASSERT_TRUE(same_bits(a.data(), b.data(), n * 4)) << "subtract " << n;

      a.assign(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(n));
      b = a;
      divide_scalar(a.data(), 3.3f, n);
      scalar::divide_scalar(b.data(), 3.3f, n);
      ASSERT_TRUE(same_bits(a.data(), b.data(), n * 4)) << "divide_scalar " << n;
      divide(a.data(), d.data(), n);
      scalar::divide(b.data(), d.data(), n);
      ASSERT_TRUE(same_bits(a.data(), b.data(), n * 4)) << "divide " << n;
    }
  });
}

TEST(Kernels, MultiplyAndAddAreNeverFused) {
  // a·x = 1 + 2^-11 + 2^-24 exactly, which rounds (ties to even) to 1 + 2^-11 in f32.
  // Unfused, a·x + y is exactly 0; a fused multiply-add would give 2^-24.
  const float a = 1.0f + 0x1p-12f;
  const std::vector<float> x(37, a);
  for_each_target([&] {
    std::vector<float> y(x.size(), -(1.0f + 0x1p-11f));
    axpy(a, x.data(), y.data(), y.size());
    for (const float v : y)
      ASSERT_EQ(v, 0.0f);
    const std::vector<float> minus(x.size(), -(1.0f + 0x1p-11f));
    std::vector<float> out(x.size());
    weighted_sum2(a, x.data(), 1.0f, minus.data(), out.data(), out.size());
    for (const float v : out)
      ASSERT_EQ(v, 0.0f);
  });
}

TEST(Kernels, SumRowsAddsInRowOrder) {
  // (1e8 + 1) - 1e8 = 0 in f32 (1 is lost), but 1e8 - 1e8 + 1 = 1: the order shows.
  const std::vector<float> r0(19, 1e8f), r1(19, 1.0f), r2(19, -1e8f);
  const float* rows[] = {r0.data(), r1.data(), r2.data()};
  const auto x = random_floats(4099, 4), y = random_floats(4099, 5), z = random_floats(4099, 6);
  const float* random_rows[] = {x.data(), y.data(), z.data()};
  for_each_target([&] {
    std::vector<float> out(19);
    sum_rows(rows, 3, out.data(), out.size());
    for (const float v : out)
      ASSERT_EQ(v, 0.0f);
    for (const std::size_t m : {std::size_t{1}, std::size_t{2}, std::size_t{3}}) {
      for (const std::size_t n : k_lengths) {
        std::vector<float> a(n), b(n);
        sum_rows(random_rows, m, a.data(), n);
        scalar::sum_rows(random_rows, m, b.data(), n);
        ASSERT_TRUE(same_bits(a.data(), b.data(), n * 4)) << m << " rows, n " << n;
      }
    }
  });
}

TEST(Kernels, SignConsensusKeepsAgreeingEntries) {
  // Columns: majority +, majority −, zero sum (counts as +), all zero, NaN.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> r0 = {1.0f, -1.0f, 2.0f, 0.0f, nan};
  const std::vector<float> r1 = {-2.0f, -3.0f, -2.0f, 0.0f, 1.0f};
  const std::vector<float> r2 = {3.0f, 3.0f, 0.0f, 0.0f, -1.0f};
  const float* rows[] = {r0.data(), r1.data(), r2.data()};
  const float weights[] = {0.5f, 0.25f, 2.0f};
  for_each_target([&] {
    std::vector<float> mixed(5), divisor(5);
    sign_consensus(rows, weights, 3, mixed.data(), divisor.data(), 5);
    EXPECT_EQ(mixed[0], 4.0f);
    EXPECT_EQ(divisor[0], 2.5f);
    EXPECT_EQ(mixed[1], -4.0f);
    EXPECT_EQ(divisor[1], 0.75f);
    EXPECT_EQ(mixed[2], 2.0f);
    EXPECT_EQ(divisor[2], 0.5f);
    EXPECT_EQ(mixed[3], 0.0f);
    EXPECT_EQ(divisor[3], 1.0f);        // no agreeing model: divisor 0 becomes 1
    EXPECT_TRUE(std::isnan(mixed[4]));  // NaN·0, as torch's delta * mask
    EXPECT_EQ(divisor[4], 2.0f);        // a NaN sum elects −; only row 2 (weight 2) agrees
  });
}

TEST(Kernels, SignConsensusMatchesScalarTwin) {
  const std::size_t max_n = 4099;
  std::vector<std::vector<float>> data;
  for (unsigned s = 0; s < 5; ++s)
    data.push_back(random_floats(max_n, 10 + s, true));
  std::vector<const float*> rows;
  for (const auto& r : data)
    rows.push_back(r.data());
  const float weights[] = {0.5f, -1.0f, 0.3f, 1.0f, 0.0f};
  for_each_target([&] {
    for (const std::size_t m : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{5}}) {
      for (const std::size_t n : k_lengths) {
        std::vector<float> a(n), b(n), da(n), db(n);
        sign_consensus(rows.data(), weights, m, a.data(), da.data(), n);
        scalar::sign_consensus(rows.data(), weights, m, b.data(), db.data(), n);
        ASSERT_TRUE(same_bits(a.data(), b.data(), n * 4)) << m << " rows, n " << n;
        ASSERT_TRUE(same_bits(da.data(), db.data(), n * 4)) << m << " rows, n " << n;
      }
    }
  });
}

// SCE's variance: f64 lanes against the scalar twin, with NaN, infinities and
// the tails of every length; the base is one of the rows, so some task vectors
// are exactly 0.
TEST(Kernels, TaskVarianceMatchesScalarTwin) {
  const std::size_t max_n = 4099;
  std::vector<std::vector<float>> data;
  for (unsigned s = 0; s < 6; ++s)
    data.push_back(random_floats(max_n, 20 + s, true));
  const float* base = data[0].data();
  std::vector<const float*> models;
  for (std::size_t r = 1; r < data.size(); ++r)
    models.push_back(data[r].data());
  models.push_back(base);
  for_each_target([&] {
    for (const std::size_t m : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{6}}) {
      for (const std::size_t n : k_lengths) {
        std::vector<float> a(n), b(n);
        task_variance(base, models.data() + (6 - m), m, a.data(), n);
        scalar::task_variance(base, models.data() + (6 - m), m, b.data(), n);
        ASSERT_TRUE(same_bits(a.data(), b.data(), n * 4)) << m << " models, n " << n;
      }
    }
  });
}

// The Highway reductions add in the scalar twin's order: the same bits,
// whatever the length (every tail) and however wide the values range.
TEST(Reduce, SimdReductionsMatchTheScalarTwinBitForBit) {
  auto x = random_floats(70000, 22);
  const auto y = random_floats(70000, 23);
  for (std::size_t i = 0; i < x.size(); i += 7)
    x[i] = std::ldexp(x[i], static_cast<int>(i % 61) - 30);  // sums that round
  const auto same = [](double a, double b) { return std::memcmp(&a, &b, sizeof(double)) == 0; };
  for (std::size_t n = 0; n <= 70000; n = n < 40 ? n + 1 : n * 3 + 5) {
    EXPECT_TRUE(same(reduce_sum(x.data(), n), scalar::reduce_sum(x.data(), n))) << n;
    EXPECT_TRUE(same(reduce_sum_squares(x.data(), n), scalar::reduce_sum_squares(x.data(), n)))
        << n;
    EXPECT_TRUE(same(reduce_dot(x.data(), y.data(), n), scalar::reduce_dot(x.data(), y.data(), n)))
        << n;
    EXPECT_TRUE(same(reduce_l1(x.data(), n), scalar::reduce_l1(x.data(), n))) << n;
  }
  // A different order of the same terms gives other bits: the check can fail.
  std::vector<float> reversed(x.rbegin(), x.rend());
  EXPECT_FALSE(same(reduce_sum(x.data(), x.size()), reduce_sum(reversed.data(), x.size())));
}

TEST(Reduce, BlockReductionsAgreeWithLongDouble) {
  const auto x = random_floats(1009, 20);
  const auto y = random_floats(1009, 21);
  long double sum = 0, squares = 0, dot = 0, l1 = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    sum += x[i];
    squares += static_cast<long double>(x[i]) * x[i];
    dot += static_cast<long double>(x[i]) * y[i];
    l1 += std::fabs(static_cast<long double>(x[i]));
  }
  EXPECT_NEAR(reduce_sum(x.data(), x.size()), static_cast<double>(sum), 1e-12);
  EXPECT_NEAR(reduce_sum_squares(x.data(), x.size()), static_cast<double>(squares), 1e-10);
  EXPECT_NEAR(reduce_dot(x.data(), y.data(), x.size()), static_cast<double>(dot), 1e-10);
  EXPECT_NEAR(reduce_l1(x.data(), x.size()), static_cast<double>(l1), 1e-10);
  EXPECT_EQ(reduce_sum(x.data(), 0), 0.0);
  EXPECT_EQ(reduce_l1(x.data(), 1), std::fabs(static_cast<double>(x[0])));
}

TEST(Reduce, ForEachBlockSplitsAtAbsoluteBlockBoundaries) {
  std::vector<std::pair<std::size_t, std::size_t>> pieces;
  const auto record = [&](std::size_t off, std::size_t len) { pieces.emplace_back(off, len); };
  for_each_block(0, 2 * k_reduce_block + 5, record);
  const auto block = static_cast<std::size_t>(k_reduce_block);
  EXPECT_EQ(pieces, (std::vector<std::pair<std::size_t, std::size_t>>{
                        {0, block}, {block, block}, {2 * block, 5}}));
  pieces.clear();
  for_each_block(k_reduce_block - 3, 10, record);  // a chunk that straddles a boundary
  EXPECT_EQ(pieces, (std::vector<std::pair<std::size_t, std::size_t>>{{0, 3}, {3, 7}}));
  pieces.clear();
  for_each_block(5, 0, record);
  EXPECT_TRUE(pieces.empty());
}

}  // namespace
}  // namespace llmerge::kernels
