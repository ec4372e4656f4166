// Philox4x32-10 against the Random123 known-answer vectors, and the element
// streams built on it.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <set>
#include <vector>

#include "hwy/targets.h"
#include "merge/random.h"

namespace llmerge {
namespace {

// Runs body once per compiled Highway target that this CPU supports.
template <typename Body>
void for_each_target(Body body) {
  for (const std::int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    body();
  }
  hwy::SetSupportedTargetsForTest(0);
}

std::uint32_t bits_of(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

TEST(Philox, MatchesRandom123KnownAnswers) {
  // Random123 kat_vectors, "philox4x32 10".
  EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, {0, 0}),
            (PhiloxCounter{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  EXPECT_EQ(philox4x32_10({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                          {0xffffffffu, 0xffffffffu}),
            (PhiloxCounter{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
  EXPECT_EQ(philox4x32_10({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
                          {0xa4093822u, 0x299f31d0u}),
            (PhiloxCounter{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}));
}

TEST(Philox, BlocksMatchKnownAnswersAndScalarOnEveryTarget) {
  const PhiloxKey key = {0xa4093822u, 0x299f31d0u};
  std::mt19937 gen(5);
  std::vector<PhiloxCounter> counters(67);
  for (auto& c : counters)
    c = {static_cast<std::uint32_t>(gen()), static_cast<std::uint32_t>(gen()),
         static_cast<std::uint32_t>(gen()), static_cast<std::uint32_t>(gen())};
  counters[0] = {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u};
  counters[9] = counters[0];   // past the first vector on every target
  counters[66] = counters[0];  // in the scalar tail
  const PhiloxCounter kat = {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u};
  for_each_target([&] {
    for (const std::size_t n : {0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 16, 17, 33, 67}) {
      std::vector<PhiloxCounter> out(n + 1, PhiloxCounter{7, 7, 7, 7});
      philox4x32_10_blocks(counters.data(), key, out.data(), n);
      for (std::size_t j = 0; j < n; ++j)
        ASSERT_EQ(out[j], philox4x32_10(counters[j], key)) << "n " << n << " block " << j;
      EXPECT_EQ(out[n], (PhiloxCounter{7, 7, 7, 7})) << "wrote past n " << n;
      if (n > 0) {
        EXPECT_EQ(out[0], kat);
      }
      if (n > 9) {
        EXPECT_EQ(out[9], kat);
      }
      if (n > 66) {
        EXPECT_EQ(out[66], kat);
      }
    }
    const PhiloxCounter zeros[] = {{0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0},
                                   {0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}};
    PhiloxCounter zero_out[8];
    philox4x32_10_blocks(zeros, {0, 0}, zero_out, 8);
    for (const PhiloxCounter& r : zero_out)
      EXPECT_EQ(r, (PhiloxCounter{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
    const std::uint32_t ones = 0xffffffffu;
    std::vector<PhiloxCounter> all_ones(8, PhiloxCounter{ones, ones, ones, ones});
    philox4x32_10_blocks(all_ones.data(), {ones, ones}, all_ones.data(), 8);  // in place
    for (const PhiloxCounter& r : all_ones)
      EXPECT_EQ(r, (PhiloxCounter{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
  });
}

TEST(TensorNameHash, IsFnv1a64) {
  EXPECT_EQ(hash_tensor_name(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(hash_tensor_name("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(hash_tensor_name("foobar"), 0x85944171f73967e8ull);
  EXPECT_NE(hash_tensor_name("model.layers.0.mlp.up_proj.weight"),
            hash_tensor_name("model.layers.1.mlp.up_proj.weight"));
}

TEST(ElementRandom, BatchAgreesWithSingleElementsAtAnyOffset) {
  const ElementRandom r(42, hash_tensor_name("w"), 1);
  for (const std::uint64_t begin : {0ull, 1ull, 3ull, 4ull, 65535ull, (1ull << 33) + 2}) {
    std::vector<float> batch(23);
    r.uniforms(begin, batch.data(), batch.size());
    for (std::size_t i = 0; i < batch.size(); ++i)
      ASSERT_EQ(batch[i], r.uniform(begin + i)) << begin;
  }
}

TEST(ElementRandom, BatchIsBitIdenticalToSingleElementsOnEveryTarget) {
  const ElementRandom r(42, hash_tensor_name("model.layers.0.mlp.up_proj.weight"), 3);
  const std::uint64_t high_word_step = (std::uint64_t{1} << 32) * 4;  // g crosses 2^32
  const std::uint64_t begins[] = {0,
                                  1,
                                  2,
                                  3,
                                  4,
                                  5,
                                  65535,
                                  (1ull << 33) + 2,
                                  high_word_step - 13,
                                  high_word_step - 64,
                                  ~0ull - 200,  // ends past the 2^64 wrap
                                  ~0ull - 9,
                                  ~0ull - 3,
                                  ~0ull};
  const std::size_t lengths[] = {0,  1,  2,  3,  4,  5,  7,  8,  9,  15,
                                 16, 17, 31, 32, 33, 63, 64, 65, 257};
  for_each_target([&] {
    for (const std::uint64_t begin : begins) {
      for (const std::size_t n : lengths) {
        std::vector<float> batch(n + 1, -1.0f);
        r.uniforms(begin, batch.data(), n);
        for (std::size_t i = 0; i < n; ++i)
          ASSERT_EQ(bits_of(batch[i]), bits_of(r.uniform(begin + i)))
              << "begin " << begin << " n " << n << " i " << i;
        ASSERT_EQ(batch[n], -1.0f) << "wrote past n: begin " << begin << " n " << n;
      }
    }
  });
}

TEST(ElementRandom, StreamLayoutIsPinned) {
  // Values from the scalar implementation that first defined the layout:
  // changing any of them changes every DARE merge.
  const ElementRandom r(42, hash_tensor_name("model.layers.0.mlp.up_proj.weight"), 1);
  const auto words = [&](std::uint64_t begin) {
    std::vector<float> u(12);
    r.uniforms(begin, u.data(), u.size());
    std::vector<std::uint32_t> w;
    for (const float v : u)
      w.push_back(static_cast<std::uint32_t>(v * 0x1p24f));
    return w;
  };
  using W = std::vector<std::uint32_t>;
  EXPECT_EQ(words(0), (W{0x03a209, 0xb13b00, 0x438a2d, 0x4082ab, 0x8adcf4, 0xf93882, 0x5a2ac6,
                         0x8691f3, 0x0c4397, 0x81e859, 0x70b876, 0x37698c}));
  EXPECT_EQ(words((1ull << 34) + 3),
            (W{0x2c3403, 0xae5427, 0xd2333b, 0xedc672, 0xcc503f, 0x01adca, 0x3c74da, 0xf47890,
               0x613a4f, 0x6073e7, 0xc8074f, 0x7a01a7}));
  EXPECT_EQ(words(~0ull - 9), (W{0xf2a811, 0xac48f8, 0x787ea3, 0x0cc350, 0x037784, 0x04f958,
                                 0x85634c, 0x853c6f, 0xa2f430, 0x42c530, 0x03a209, 0xb13b00}));
}

TEST(ElementRandom, UniformsAreInUnitIntervalWithCorrectMoments) {
  const ElementRandom r(7, 99, 0);
  const std::size_t n = 200000;
  std::vector<float> u(n);
  r.uniforms(0, u.data(), n);
  double sum = 0, sum_squares = 0;
  std::size_t below_tenth = 0;
  for (const float v : u) {
    ASSERT_GE(v, 0.0f);
    ASSERT_LT(v, 1.0f);
    sum += v;
    sum_squares += static_cast<double>(v) * v;
    below_tenth += v < 0.1f;
  }
  const double mean = sum / n;
  EXPECT_NEAR(mean, 0.5, 0.005);                                // σ of the mean ≈ 0.00065
  EXPECT_NEAR(sum_squares / n - mean * mean, 1.0 / 12, 0.002);  // variance of U(0,1)
  EXPECT_NEAR(static_cast<double>(below_tenth) / n, 0.1, 0.003);
}

TEST(ElementRandom, StreamsDependOnSeedTensorAndModel) {
  const auto first = [](std::uint64_t seed, std::uint64_t tensor, std::uint32_t model) {
    std::vector<float> u(64);
    ElementRandom(seed, tensor, model).uniforms(0, u.data(), u.size());
    return u;
  };
  const auto base = first(1, 2, 3);
  EXPECT_EQ(base, first(1, 2, 3));
  EXPECT_NE(base, first(2, 2, 3));
  EXPECT_NE(base, first(1, 3, 3));
  EXPECT_NE(base, first(1, 2, 4));
  std::set<float> distinct(base.begin(), base.end());
  EXPECT_GT(distinct.size(), 60u);
}

}  // namespace
}  // namespace llmerge
