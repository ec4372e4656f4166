// RankSelect and RankKeep (merge/methods/rank_select.h) against plain
// references (std::sort, std::nth_element, std::stable_sort) on distributions
// chosen to break a selection: all keys distinct, all equal, many ties, one
// crowded bucket, NaN / Inf / subnormals / negative zero, odd lengths, and
// every path (two passes, one pass with the odd keys kept, an odd-key budget
// that runs out midway, key-by-key and bulk adds).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "merge/methods/rank_select.h"
#include "method_driver.h"

namespace llmerge {
namespace {

float bf16(float x) {
  return bf16_to_f32(f32_to_bf16(x));
}

// n values of a named family.
std::vector<float> family_values(const std::string& family, std::size_t n, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> x(n);
  for (std::size_t j = 0; j < n; ++j) {
    float v = 0.0f;
    if (family == "distinct") v = normal(rng);  // f32: almost every key has low bits
    if (family == "equal") v = -0.375f;
    if (family == "ties") v = static_cast<float>(static_cast<int>(rng() % 9) - 4) * 0.125f;
    if (family == "bf16_delta") {
      const float w = bf16(normal(rng));
      v = bf16(w + normal(rng) * 0.01f) - w;  // even keys, many zeros
    }
    if (family == "few_odd" || family == "many_odd") {
      // bf16 deltas with every 20th (5 %) or 8th (12.5 %) element f32: a
      // bf16 row with a few keys that are not clean, or too many of them.
      const float w = bf16(normal(rng));
      v = bf16(w + normal(rng) * 0.01f) - w;
      if (j % (family == "few_odd" ? 20 : 8) == 0) v = normal(rng);
    }
    if (family == "few_odd_ties") {
      // bf16 deltas with every 20th element one of four odd values that share
      // their high bits with each other and with some even keys: ties among
      // the odd keys, ordered by index.
      const float w = bf16(normal(rng));
      v = bf16(w + normal(rng) * 0.01f) - w;
      if (j % 20 == 0) v = f32_from_bits(0x3c000000u | static_cast<std::uint32_t>(rng() % 4u));
      if (j % 20 == 10) v = f32_from_bits(0x3c000000u);
    }
    if (family == "crowded") {
      // One high bucket: [1, 1 + 2^-7) holds every value, low bits all differ.
      v = f32_from_bits(0x3f800000u | static_cast<std::uint32_t>(rng() % 0x10000u));
      if (rng() % 2) v = -v;
    }
    if (family == "special") {
      const float specials[] = {INFINITY, -INFINITY, NAN,   -NAN,   1e-45f, -1e-40f,
                                0.0f,     -0.0f,     3e38f, 1e-38f, 2.0f};
      v = j % 2 == 0 ? specials[rng() % 11] : normal(rng);
    }
    x[j] = v;
  }
  return x;
}

const std::vector<std::string> k_families = {"distinct", "equal",    "ties",    "bf16_delta",
                                             "few_odd",  "many_odd", "crowded", "special"};
const std::vector<std::size_t> k_lengths = {1, 2, 3, 7, 4095, 4097, 65537, 300001};

enum class Feed { one_by_one, bulk };

struct SelectRun {
  std::size_t odd_keys_max = 0;
  Feed feed = Feed::bulk;
  bool magnitude = true;  // magnitude_key (31 bits), else order_key (32 bits)
  bool window = false;    // tell RankSelect the key count (odd-key window)
};

std::uint32_t key_of(const SelectRun& run, float v) {
  return run.magnitude ? magnitude_key(v) : order_key(v);
}

// Drives RankSelect as the methods do (pass 1 only when not done), in uneven pieces.
std::vector<RankSelect::Result> select(const std::vector<float>& x,
                                       const std::vector<std::int64_t>& ranks, const SelectRun& run,
                                       int* passes) {
  RankSelect s(ranks, run.odd_keys_max, run.magnitude ? 31 : 32,
               run.window ? static_cast<std::int64_t>(x.size()) : 0);
  *passes = 0;
  for (int pass = 0; pass < RankSelect::k_passes; ++pass) {
    if (pass == 1 && s.done()) break;
    ++*passes;
    std::size_t i = 0;
    std::size_t piece = 1;
    while (i < x.size()) {
      const std::size_t n = std::min(piece, x.size() - i);
      if (run.feed == Feed::bulk && run.magnitude) {
        s.add_all(pass, x.data() + i, n, magnitude_key);
      } else if (run.feed == Feed::bulk) {
        s.add_all(pass, x.data() + i, n, order_key);
      } else {
        for (std::size_t j = i; j < i + n; ++j)
          s.add(pass, key_of(run, x[j]));
      }
      i += n;
      piece = piece * 3 + 1;  // 1, 4, 13, ...: pieces of every size mod 4
    }
    s.end_pass(pass);
  }
  std::vector<RankSelect::Result> out;
  for (std::size_t r = 0; r < ranks.size(); ++r)
    out.push_back(s.result(r));
  return out;
}

TEST(RankSelect, MatchesNthElementOnAdversarialKeysInEveryPath) {
  std::mt19937 rng(21);
  const std::vector<SelectRun> runs = {
      {0, Feed::bulk, true},          {0, Feed::one_by_one, true},
      {1u << 20, Feed::bulk, true},   {1u << 20, Feed::one_by_one, false},
      {5, Feed::bulk, true},          {0, Feed::bulk, false},
      {1u << 20, Feed::bulk, false},  {1u << 20, Feed::bulk, true, true},
      {2000, Feed::bulk, true, true},
  };
  for (const std::string& family : k_families) {
    for (const std::size_t n : k_lengths) {
      const std::vector<float> x = family_values(family, n, rng);
      std::vector<std::int64_t> ranks = {0, static_cast<std::int64_t>(n - 1),
                                         static_cast<std::int64_t>(n / 2),
                                         static_cast<std::int64_t>(rng() % n)};
      for (const SelectRun& run : runs) {
        std::vector<std::uint32_t> keys(n);
        for (std::size_t j = 0; j < n; ++j)
          keys[j] = key_of(run, x[j]);
        int passes = 0;
        const auto got = select(x, ranks, run, &passes);
        for (std::size_t r = 0; r < ranks.size(); ++r) {
          std::vector<std::uint32_t> nth = keys;
          const auto rank = static_cast<std::size_t>(ranks[r]);
          std::nth_element(nth.begin(), nth.begin() + static_cast<std::ptrdiff_t>(rank), nth.end());
          const std::uint32_t want = nth[rank];
          const std::string where = family + " n=" + std::to_string(n) +
                                    " rank=" + std::to_string(rank) +
                                    " budget=" + std::to_string(run.odd_keys_max) +
                                    (run.magnitude ? " magnitude" : " order") +
                                    (run.feed == Feed::bulk ? " bulk" : " one by one");
          EXPECT_EQ(got[r].key, want) << where;
          EXPECT_EQ(got[r].below, std::count_if(keys.begin(), keys.end(),
                                                [&](std::uint32_t k) { return k < want; }))
              << where;
          EXPECT_EQ(got[r].equal, std::count(keys.begin(), keys.end(), want)) << where;
        }
        // Without a budget there are always two passes; a budget big enough
        // for every key always makes one enough.
        if (run.odd_keys_max == 0) {
          EXPECT_EQ(passes, 2) << family << " n=" << n;
        }
        if (run.odd_keys_max >= n && !run.window) {
          EXPECT_EQ(passes, 1) << family << " n=" << n;
        }
      }
    }
  }
}

TEST(RankSelect, AnOddKeyBudgetThatRunsOutTakesTheSecondPass) {
  std::mt19937 rng(3);
  const std::vector<float> x = family_values("distinct", 1000, rng);
  int passes = 0;
  const auto got = select(x, {0, 500, 999}, SelectRun{10, Feed::bulk, true}, &passes);
  EXPECT_EQ(passes, 2);
  std::vector<std::uint32_t> keys(x.size());
  for (std::size_t j = 0; j < x.size(); ++j)
    keys[j] = magnitude_key(x[j]);
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(got[0].key, keys[0]);
  EXPECT_EQ(got[1].key, keys[500]);
  EXPECT_EQ(got[2].key, keys[999]);
}

// The odd-key window is estimated from the first keys; when the rest look
// different the wanted bucket falls outside it, and the second pass must
// still give the exact answer.
TEST(RankSelect, AMissedOddKeyWindowStillGivesExactResults) {
  std::mt19937 rng(4);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const std::size_t n = 1 << 20;
  std::vector<float> x(n);
  for (std::size_t j = 0; j < n; ++j)  // the first eighth (the probe and more) is 1000 x larger
    x[j] = normal(rng) * (j < n / 8 ? 1000.0f : 1.0f);
  const std::vector<std::int64_t> ranks = {static_cast<std::int64_t>(n / 2)};
  int passes = 0;
  const auto got = select(x, ranks, SelectRun{1u << 21, Feed::bulk, true, true}, &passes);
  EXPECT_EQ(passes, 2);
  std::vector<std::uint32_t> keys(n);
  for (std::size_t j = 0; j < n; ++j)
    keys[j] = magnitude_key(x[j]);
  std::nth_element(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(n / 2), keys.end());
  EXPECT_EQ(got[0].key, keys[n / 2]);
  // Without the window every odd key fits the budget and one pass does.
  const auto whole = select(x, ranks, SelectRun{1u << 21, Feed::bulk, true, false}, &passes);
  EXPECT_EQ(passes, 1);
  EXPECT_EQ(whole[0].key, keys[n / 2]);
}

// RankKeep against the definition: a stable sort by |x|, then u < p[rank].
std::vector<std::uint8_t> rank_keep_reference(const std::vector<float>& x,
                                              const std::vector<float>& u,
                                              const std::vector<float>& p) {
  std::vector<std::size_t> order(x.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return magnitude_key(x[a]) < magnitude_key(x[b]);
  });
  std::vector<std::uint8_t> keep(x.size());
  for (std::size_t r = 0; r < order.size(); ++r)
    keep[order[r]] = u[order[r]] < p[r] ? 1 : 0;
  return keep;
}

TEST(RankKeep, MatchesAStableSortOnAdversarialRows) {
  std::mt19937 rng(12);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  RankKeep rank_keep;  // reused across rows, as della does
  std::vector<std::string> families = k_families;
  families.emplace_back("few_odd_ties");
  for (const std::string& family : families) {
    for (const std::size_t n :
         {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{4}, std::size_t{5},
          std::size_t{255}, std::size_t{896}, std::size_t{8191}, std::size_t{8193}}) {
      const std::vector<float> x = family_values(family, n, rng);
      std::vector<float> u(n), p(n);
      for (std::size_t j = 0; j < n; ++j)
        u[j] = unit(rng);
      // Strictly increasing: every rank error changes some decision's odds.
      for (std::size_t r = 0; r < n; ++r)
        p[r] = n > 1 ? static_cast<float>(r) / static_cast<float>(n - 1) : 0.5f;
      std::vector<std::uint8_t> got(n, 7);
      rank_keep.decide(x.data(), u.data(), p.data(), n, got.data());
      EXPECT_EQ(got, rank_keep_reference(x, u, p)) << family << " n=" << n;
    }
  }
}

// The odd-key budget decides only how many passes ties and breadcrumbs take,
// never what they keep: f32 task vectors (every key odd) with no budget, a
// budget that runs out in the first chunk, and the default one.
TEST(RankSelect, TiesAndBreadcrumbsKeepTheSameWhateverTheOddKeyBudget) {
  std::mt19937 rng(8);
  std::uniform_real_distribution<float> uniform(-0.035f, 0.035f);
  const std::size_t n = 3 * 65536 + 17;
  std::vector<float> base(n);
  testing::Tensors models(2, std::vector<float>(n));
  for (std::size_t j = 0; j < n; ++j) {
    base[j] = bf16(uniform(rng));
    models[0][j] = bf16(uniform(rng));
    models[1][j] = j % 3 == 0 ? base[j] : bf16(uniform(rng));  // some zeros in the task vector
  }
  for (const std::string method : {"ties", "breadcrumbs_ties"}) {
    testing::MergeRun run;
    run.method = method;
    run.per_model.assign(2, {{"weight", 0.5}, {"density", 0.4}, {"gamma", 0.05}});
    run.shape = {static_cast<std::int64_t>(n)};
    std::vector<std::vector<float>> outputs;
    std::vector<int> reads;
    for (const std::uint64_t budget :
         {std::uint64_t{0}, std::uint64_t{64}, std::uint64_t{1} << 30}) {
      run.scratch_bytes = budget;
      int r = 0;
      outputs.push_back(testing::merge(run, &base, models, 65536, &r));
      reads.push_back(r);
    }
    EXPECT_EQ(reads[0], 3) << method;  // two selection passes and the output
    EXPECT_EQ(reads[1], 3) << method;
    EXPECT_EQ(reads[2], 2) << method;  // every key kept: one selection pass
    for (std::size_t k = 1; k < outputs.size(); ++k) {
      ASSERT_EQ(outputs[k].size(), outputs[0].size());
      EXPECT_EQ(std::memcmp(outputs[k].data(), outputs[0].data(), n * sizeof(float)), 0)
          << method << " budget #" << k;
    }
  }
}

}  // namespace
}  // namespace llmerge
