// Philox4x32-10 against the Random123 known-answer vectors, and the element
// streams built on it.
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "merge/random.h"

namespace llmerge {
namespace {

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
