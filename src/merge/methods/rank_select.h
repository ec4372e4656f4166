// Exact order statistics over a stream of 32-bit keys, in at most two
// passes and bounded memory, at a cost per key that does not depend on the
// keys' distribution: the building block for every "top k", "drop the
// smallest" and quantile decision (ties, breadcrumbs, sce, arcee_fusion).
//
// A radix select with two digits of 16 bits. Pass 0 histograms the high 16
// bits of every key and picks, for each wanted rank, the bucket that holds it;
// pass 1 histograms the low 16 bits of the odd keys (below) in those
// buckets; the others have low bits 0 and are counted by difference. Pass 1 is
// not needed when pass 0 could keep every "odd" key (one with low bits set) of
// the wanted buckets within a given budget (add_all() keeps only those near
// the ranks once it can estimate where they fall): every other key is the
// least of its bucket, so the bucket counts and the odd keys give the low
// histograms without a pass. Task vectors of bf16 checkpoints have few odd
// keys; unrelated weights have nearly only odd keys and take the second pass.
// Either way the work is two histogram increments per key at most, plus one
// scan of each histogram: nothing is sorted. Memory: 4 x 2^(key_bits - 16)
// 32-bit counters and 2^(key_bits - 16) 64-bit totals in pass 0 (768 KiB for
// magnitude keys), 512 KiB per distinct wanted bucket in pass 1, and the odd
// keys' budget.
//
// The result for ascending rank r is the key K at that rank in sorted order,
// with the counts of keys below and equal to K. Ties are ordered by element
// index: the element at rank r is the (r - below)-th element (0-based, in
// flattened order) whose key is K.
//
// Keys of floats: magnitude_key orders |x| (NaN above +Inf); order_key
// orders signed floats (-NaN < -Inf < ... < -0 < +0 < ... < +Inf < NaN).
#pragma once

#include <algorithm>
#include <bit>
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
  // kept in pass 0 to make pass 1 unnecessary (0: never). `key_bits`: 31
  // when every key is below 2^31 (magnitude keys; halves pass 0's memory), else 32.
  // `keys`: how many keys each pass adds, when known (0: unknown). With it,
  // add_all() keeps only the odd keys near where the ranks will fall (below).
  explicit RankSelect(std::vector<std::int64_t> ranks, std::size_t odd_keys_max = 0,
                      int key_bits = 32, std::int64_t keys = 0);

  // Adds one key in `pass` (0 or 1); every key must be added once per pass.
  void add(int pass, std::uint32_t key) {
    if (pass == 0) {
      count_high(key, 0);
      keep_odd(key);
    } else {
      count_low(key);
    }
  }

  // Adds key_of(x[i]) for i < n, as add() does, faster: neighbouring keys
  // often share a bucket (zeros in a task vector), and four interleaved
  // counters per bucket keep those increments from waiting on each other.
  template <class KeyOf>
  void add_all(int pass, const float* x, std::size_t n, KeyOf key_of) {
    if (pass != 0) {
      add_all_low(x, n, key_of);
      return;
    }
    prepare_high(n);
    std::uint32_t* lanes = lanes_.data();
    std::uint32_t low_bits = 0;
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4) {
      const std::uint32_t k0 = key_of(x[i]);
      const std::uint32_t k1 = key_of(x[i + 1]);
      const std::uint32_t k2 = key_of(x[i + 2]);
      const std::uint32_t k3 = key_of(x[i + 3]);
      ++lanes[(k0 >> 16) * k_lanes];
      ++lanes[(k1 >> 16) * k_lanes + 1];
      ++lanes[(k2 >> 16) * k_lanes + 2];
      ++lanes[(k3 >> 16) * k_lanes + 3];
      low_bits |= k0 | k1 | k2 | k3;
    }
    for (; i < n; ++i) {
      const std::uint32_t key = key_of(x[i]);
      ++lanes[(key >> 16) * k_lanes];
      low_bits |= key;
    }
    if ((low_bits & 0xffffu) != 0 && odd_keys_max_ > 0) {
      // Odd keys are rare in a fine-tune's task vector, so test that first.
      for (std::size_t j = 0; j < n && odd_keys_max_ > 0; ++j) {
        const std::uint32_t key = key_of(x[j]);
        if ((key & 0xffffu) != 0 && (!windowed_ || in_window(key >> 16))) keep_odd(key);
      }
    }
    seen_ += n;
    if (!windowed_ && keys_ > 0 && seen_ >= probe_ && seen_ < static_cast<std::uint64_t>(keys_))
      set_window();
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
  // After pass 1 (or pass 0, when done()): the key at ranks[i].
  const Result& result(std::size_t i) const { return results_[i]; }

  // The most memory one RankSelect touches, for the planner's estimate:
  // pass 0's counters and histogram with `odd_keys` odd keys kept, or pass
  // 1's low histograms for `buckets` distinct wanted buckets.
  static std::uint64_t memory_bytes(int key_bits, std::size_t buckets, std::uint64_t odd_keys) {
    const std::uint64_t high = std::uint64_t{1} << (key_bits - 16);
    return std::max(high * (k_lanes * sizeof(std::uint32_t) + sizeof(std::uint64_t)) +
                        odd_keys * sizeof(std::uint32_t),
                    buckets * (std::uint64_t{1} << 16) * sizeof(std::uint64_t));
  }

 private:
  static constexpr std::size_t k_lanes = 4;
  // The odd-key window: after the first 1/64 of the keys (at least 2^16),
  // each wanted rank's bucket is estimated from the counts so far, and only
  // odd keys within k_window buckets of an estimate (a quarter of a binade
  // either way) are kept from then on. If a wanted bucket then lies outside,
  // the kept keys are incomplete and pass 1 runs, exact as ever; a bf16
  // fine-tune's embedding (many odd keys in all, few near the cut-off) stays
  // within the budget and needs no pass 1.
  static constexpr std::uint32_t k_window = 32;
  static constexpr std::int64_t k_probe_min = 1 << 16;
  // Folds the 32-bit lanes into histogram_ before any lane could overflow.
  static constexpr std::uint64_t k_fold_every = std::uint64_t{1} << 31;

  void prepare_high(std::size_t n) {
    if (lanes_.empty()) lanes_.assign(high_buckets_ * k_lanes, 0);
    if (unfolded_ + n > k_fold_every) fold_lanes();
    unfolded_ += n;
  }
  void count_high(std::uint32_t key, std::size_t lane) {
    prepare_high(1);
    ++lanes_[(key >> 16) * k_lanes + lane];
  }
  void keep_odd(std::uint32_t key) {
    if ((key & 0xffffu) == 0 || odd_keys_max_ == 0) return;
    if (odd_keys_.size() < odd_keys_max_) {
      // Reserved at once: growing would copy, and hold two buffers at a time.
      if (odd_keys_.capacity() == 0) odd_keys_.reserve(odd_keys_max_);
      odd_keys_.push_back(key);
    } else {
      odd_keys_max_ = 0;  // over the budget: pass 1 it is
      std::vector<std::uint32_t>().swap(odd_keys_);
    }
  }
  // Pass 1 counts only the odd keys of the wanted buckets: a bucket's even
  // keys are its count from pass 0 less those (finish()). A run of equal keys
  // is counted in a register, not by bumping one counter again and again.
  void count_low(std::uint32_t key) {
    if ((key & 0xffffu) == 0 || !wanted(key >> 16)) return;
    count_hit(key);
  }
  void count_hit(std::uint32_t key) {
    if (key != run_key_) {
      flush_run();
      run_key_ = key;
    }
    ++run_count_;
  }
  // Pass 1 in bulk. Whether a key counts is random from one key to the next
  // (bf16 differences are odd or not about half the time): a branch on it
  // would mispredict often, so 16 keys are tested without branches into a
  // bit mask first, and only the rare hits take the slow path.
  template <class KeyOf>
  void add_all_low(const float* x, std::size_t n, KeyOf key_of) {
    if (buckets_.size() > 4) {
      for (std::size_t i = 0; i < n; ++i)
        count_low(key_of(x[i]));
      return;
    }
    std::uint32_t b[4] = {~0u, ~0u, ~0u, ~0u};  // ~0 matches no key's high bits
    std::copy(buckets_.begin(), buckets_.end(), b);
    std::size_t i = 0;
    for (; i + 16 <= n; i += 16) {
      std::uint32_t hits = 0;
      for (std::uint32_t j = 0; j < 16; ++j) {
        const std::uint32_t key = key_of(x[i + j]);
        const std::uint32_t high = key >> 16;
        const bool hit = ((high == b[0]) | (high == b[1]) | (high == b[2]) | (high == b[3])) &
                         ((key & 0xffffu) != 0);
        hits |= static_cast<std::uint32_t>(hit) << j;
      }
      while (hits != 0) {
        count_hit(key_of(x[i + static_cast<std::size_t>(std::countr_zero(hits))]));
        hits &= hits - 1;
      }
    }
    for (; i < n; ++i)
      count_low(key_of(x[i]));
  }
  bool wanted(std::uint32_t high) const {
    for (const std::uint32_t b : buckets_) {
      if (b == high) return true;
    }
    return false;
  }
  void flush_run();
  void fold_lanes();
  void finish();
  void set_window();
  bool in_window(std::uint32_t high) const {
    bool in = false;
    for (std::size_t r = 0; r < window_lo_.size(); ++r)
      in |= static_cast<bool>(static_cast<unsigned>(high >= window_lo_[r]) &
                              static_cast<unsigned>(high <= window_hi_[r]));  // no branch
    return in;
  }

  std::vector<std::int64_t> ranks_;
  std::size_t high_buckets_;                     // 2^(key_bits - 16)
  std::vector<std::uint32_t> lanes_;             // pass 0: k_lanes counters per high bucket
  std::uint64_t unfolded_ = 0;                   // keys counted in lanes_ since the last fold
  std::vector<std::uint64_t> histogram_;         // pass 0: high 16 bits
  std::vector<std::uint32_t> buckets_;           // distinct chosen high buckets
  std::vector<std::uint64_t> bucket_count_;      // per chosen bucket: its keys
  std::vector<std::vector<std::uint64_t>> low_;  // pass 1: one per bucket
  std::uint32_t run_key_ = 0;                    // pass 1: a run of equal odd keys
  std::uint64_t run_count_ = 0;
  std::vector<std::int64_t> below_bucket_;  // per rank: keys in lower buckets
  std::vector<std::size_t> bucket_of_rank_;
  std::vector<Result> results_;
  std::size_t odd_keys_max_ = 0;
  std::vector<std::uint32_t> odd_keys_;
  std::int64_t keys_ = 0;    // keys per pass, 0 if unknown
  std::uint64_t probe_ = 0;  // keys counted before the window is set
  std::uint64_t seen_ = 0;   // keys counted in pass 0 so far
  bool windowed_ = false;
  std::vector<std::uint32_t> window_lo_;  // per rank: buckets whose odd keys are kept
  std::vector<std::uint32_t> window_hi_;
  bool done_ = false;
};

// Keep decisions by rank within one short vector (della's rows): element j
// of n has ascending rank r_j by (magnitude_key(values[j]), j) and is kept
// when uniforms[j] < probability[r_j].
//
// The ranks come from an LSD radix sort of (key, index) pairs, which is
// stable, so equal keys rank in index order. Only the key bits that differ
// between the row's elements are sorted on, in digits of at most 11 bits:
// a bf16 task vector (low 16 bits zero, a few exponents) takes one or two
// digits, unrelated f32 weights about three. The cost is linear in n
// whatever the values: no comparison sort.
class RankKeep {
 public:
  // keep[j] = 1 or 0 for j < n; probability has n entries.
  void decide(const float* values, const float* uniforms, const float* probability, std::size_t n,
              std::uint8_t* keep);

 private:
  static constexpr int k_digit_bits_max = 11;
  std::vector<std::uint64_t> entries_;  // key << 32 | index
  std::vector<std::uint64_t> swap_;
  std::vector<std::uint32_t> counts_;  // per digit, 2^digit_bits counters
};

}  // namespace llmerge
