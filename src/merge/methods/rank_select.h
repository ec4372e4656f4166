// Exact order statistics over a stream of 32-bit keys, in two passes and
// constant memory: the building block for every "top k", "drop the smallest"
// and quantile decision (breadcrumbs, sce, arcee_fusion).
//
// Pass 0 histograms the high 16 bits of every key and picks, for each wanted
// rank, the bucket that holds it; pass 1 histograms the low 16 bits of the
// keys in those buckets. Pass 1 is not needed when pass 0 could keep every
// "odd" key (one with low bits set) within a given budget: every other key
// is the least of its bucket, so the histogram and the odd keys give the
// exact results. Task vectors of bf16 checkpoints have few odd keys. The result for ascending rank
// r is the key K at that rank in sorted order, with the counts of keys below and equal to K. Ties
// are ordered by element index: the element at rank r is the (r - below)-th element (0-based, in
// flattened order) whose key is K.
//
// Keys of floats: magnitude_key orders |x| (NaN above +Inf); order_key
// orders signed floats (-NaN < -Inf < ... < -0 < +0 < ... < +Inf < NaN).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace llmerge {

inline std::uint32_t magnitude_key(float x) {
  return f32_to_bits(x) & 0x7fffffffu;
}

inline std::uint32_t order_key(float x) {
  const std::uint32_t bits = f32_to_bits(x);
  return (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
}

inline float float_from_order_key(std::uint32_t key) {
  return f32_from_bits((key & 0x80000000u) != 0 ? key & 0x7fffffffu : ~key);
}

class RankSelect {
 public:
  static constexpr int k_passes = 2;

  // `ranks`: the wanted 0-based ascending ranks, each below the number of
  // keys that will be added in each pass. Up to `odd_keys_max` odd keys are
  // kept in pass 0 to make pass 1 unnecessary (0: never).
  explicit RankSelect(std::vector<std::int64_t> ranks, std::size_t odd_keys_max = 0);

  // Adds one key in `pass` (0 or 1); every key must be added once per pass.
  void add(int pass, std::uint32_t key) {
    const std::uint32_t high = key >> 16;
    if (pass == 0) {
      ++histogram_[high];
      if ((key & 0xffffu) != 0 && odd_keys_max_ > 0) {
        if (odd_keys_.size() < odd_keys_max_) {
          odd_keys_.push_back(key);
        } else {
          odd_keys_max_ = 0;  // over the budget: pass 1 it is
          std::vector<std::uint32_t>().swap(odd_keys_);
        }
      }
      return;
    }
    for (std::size_t b = 0; b < buckets_.size(); ++b) {
      if (buckets_[b] == high) ++low_[b][key & 0xffffu];
    }
  }

  void end_pass(int pass);

  // After pass 0: whether the results are known already (pass 1 is skipped).
  bool done() const { return done_; }

  // Instead of pass 0: takes a histogram of the high 16 bits (65536 counts)
  // that the caller built itself, for when the wanted ranks were not known
  // until that pass was over (sce).
  void load_high(const std::vector<std::uint64_t>& histogram) {
    histogram_ = histogram;
    end_pass(0);
  }

  struct Result {
    std::uint32_t key = 0;
    std::int64_t below = 0;  // keys < key
    std::int64_t equal = 0;  // keys == key
  };
  // After pass 1: the key at ranks[i].
  const Result& result(std::size_t i) const { return results_[i]; }

 private:
  std::vector<std::int64_t> ranks_;
  std::vector<std::uint64_t> histogram_;         // pass 0: high 16 bits
  std::vector<std::uint32_t> buckets_;           // distinct chosen high buckets
  std::vector<std::vector<std::uint64_t>> low_;  // pass 1: one per bucket
  std::vector<std::int64_t> below_bucket_;       // per rank: keys in lower buckets
  std::vector<std::size_t> bucket_of_rank_;
  std::vector<Result> results_;
  std::size_t odd_keys_max_ = 0;
  std::vector<std::uint32_t> odd_keys_;
  bool done_ = false;
};

// Keep decisions by rank within one short vector (della's rows): element j
// of n has ascending rank r_j by (magnitude_key(values[j]), j) and is kept
// when uniforms[j] < probability[r_j].
//
// A counting sort instead of a comparison sort. Elements are counted into
// buckets by their keys' high 16 bits (a window of 2048 buckets below the
// largest key; zero and lower keys share bucket 0), which follow the key
// order. A key with no low bits (zero in bucket 0) is the least its bucket
// can hold, so such "clean" elements rank first in their bucket, in index
// order: one stable counting pass ranks them. Task vectors of bf16
// checkpoints are almost all clean (a difference of two nearby bf16 values
// needs at most 8 significant bits); the rest are sorted by (key, index) and
// ranked after their bucket's clean elements. An f32 task vector is mostly
// not clean and costs a comparison sort.
class RankKeep {
 public:
  // keep[j] = 1 or 0 for j < n; probability has n entries.
  void decide(const float* values, const float* uniforms, const float* probability, std::size_t n,
              std::uint8_t* keep);

 private:
  static constexpr std::size_t k_window = 2048;
  std::vector<std::uint32_t> keys_;
  std::vector<std::uint16_t> bucket_;
  std::vector<std::uint32_t> first_;   // per bucket: its count, then its first rank
  std::vector<std::uint32_t> clean_;   // per bucket: clean elements
  std::vector<std::uint32_t> next_;    // per bucket: the next clean element's rank
  std::vector<std::uint64_t> sorted_;  // the other elements: key << 32 | index
};

}  // namespace llmerge
