#include "merge/methods/rank_select.h"

#include <algorithm>
#include <bit>
#include <utility>

namespace llmerge {
namespace {

constexpr std::size_t k_buckets = 1u << 16;

// The bucket holding ascending rank `rank`, and how many keys lie below it.
std::pair<std::uint32_t, std::int64_t> find_bucket(const std::vector<std::uint64_t>& histogram,
                                                   std::int64_t rank) {
  std::int64_t below = 0;
  for (std::size_t b = 0; b < histogram.size(); ++b) {
    const auto count = static_cast<std::int64_t>(histogram[b]);
    if (below + count > rank) return {static_cast<std::uint32_t>(b), below};
    below += count;
  }
  return {static_cast<std::uint32_t>(histogram.size() - 1), below};  // rank >= key count: a bug
}

}  // namespace

RankSelect::RankSelect(std::vector<std::int64_t> ranks, std::size_t odd_keys_max, int key_bits,
                       std::int64_t keys)
    : ranks_(std::move(ranks)),
      high_buckets_(std::size_t{1} << (key_bits - 16)),
      results_(ranks_.size()),
      odd_keys_max_(odd_keys_max),
      keys_(keys),
      probe_(static_cast<std::uint64_t>(std::max(keys / 64, k_probe_min))) {}

void RankSelect::set_window() {
  windowed_ = true;
  // The counts so far, without folding (the lanes keep counting).
  std::vector<std::uint64_t> counts(high_buckets_);
  for (std::size_t b = 0; b < high_buckets_; ++b) {
    const std::uint32_t* lane = &lanes_[b * k_lanes];
    counts[b] = (histogram_.empty() ? 0 : histogram_[b]) + lane[0] + lane[1] + lane[2] + lane[3];
  }
  for (const std::int64_t rank : ranks_) {
    // The same rank scaled to the keys seen so far.
    const auto scaled = static_cast<std::int64_t>(
        static_cast<double>(rank) * static_cast<double>(seen_) / static_cast<double>(keys_));
    const std::uint32_t bucket = find_bucket(counts, scaled).first;
    window_lo_.push_back(bucket >= k_window ? bucket - k_window : 0);
    window_hi_.push_back(bucket + k_window);
  }
}

void RankSelect::fold_lanes() {
  if (histogram_.empty()) histogram_.assign(high_buckets_, 0);
  for (std::size_t b = 0; b < high_buckets_; ++b) {
    const std::uint32_t* lane = &lanes_[b * k_lanes];
    histogram_[b] += std::uint64_t{lane[0]} + lane[1] + lane[2] + lane[3];
  }
  std::fill(lanes_.begin(), lanes_.end(), 0);
  unfolded_ = 0;
}

void RankSelect::end_pass(int pass) {
  if (pass != 0) {
    finish();
    return;
  }
  if (!lanes_.empty()) fold_lanes();
  if (histogram_.empty()) histogram_.assign(high_buckets_, 0);
  std::vector<std::uint32_t>().swap(lanes_);
  for (const std::int64_t rank : ranks_) {
    const auto [bucket, below] = find_bucket(histogram_, rank);
    const auto it = std::find(buckets_.begin(), buckets_.end(), bucket);
    bucket_of_rank_.push_back(static_cast<std::size_t>(it - buckets_.begin()));
    if (it == buckets_.end()) {
      buckets_.push_back(bucket);
      bucket_count_.push_back(histogram_[bucket]);
    }
    below_bucket_.push_back(below);
  }
  std::vector<std::uint64_t>().swap(histogram_);
  low_.assign(buckets_.size(), std::vector<std::uint64_t>(k_buckets, 0));
  // The kept odd keys are all of them, unless a wanted bucket is outside the window.
  for (const std::uint32_t bucket : buckets_) {
    if (windowed_ && !in_window(bucket)) odd_keys_max_ = 0;
  }
  if (odd_keys_max_ == 0) {  // pass 1 fills low_
    std::vector<std::uint32_t>().swap(odd_keys_);
    return;
  }
  // Every odd key was kept, and pass 1 looks at nothing else: replaying them
  // is pass 1 without reading the inputs.
  for (const std::uint32_t key : odd_keys_)
    count_low(key);
  std::vector<std::uint32_t>().swap(odd_keys_);
  finish();
  done_ = true;
}

void RankSelect::flush_run() {
  if (run_count_ == 0) return;
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    if (buckets_[b] == run_key_ >> 16) low_[b][run_key_ & 0xffffu] += run_count_;
  }
  run_count_ = 0;
}

void RankSelect::finish() {
  flush_run();
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    std::uint64_t odd = 0;
    for (std::size_t low = 1; low < k_buckets; ++low)
      odd += low_[b][low];
    low_[b][0] = bucket_count_[b] - odd;  // the even keys
  }
  for (std::size_t r = 0; r < ranks_.size(); ++r) {
    const std::size_t b = bucket_of_rank_[r];
    const auto [low, below] = find_bucket(low_[b], ranks_[r] - below_bucket_[r]);
    results_[r].key = (buckets_[b] << 16) | low;
    results_[r].below = below_bucket_[r] + below;
    results_[r].equal = static_cast<std::int64_t>(low_[b][low]);
  }
  low_.clear();
  low_.shrink_to_fit();
}

namespace {

// One stable counting-sort pass of RankKeep::decide: moves from[0, n) to
// to[0, n) ordered by the digit (e >> shift) & (radix - 1), or, for the last
// pass (to == nullptr), decides keep[] as it finds each element's rank.
// Neighbouring elements often share a digit (the zeros of a task vector), and
// a counter bumped by consecutive elements makes each wait for the last; so
// the input is cut in four quarters, each with its own counters, walked side
// by side: quarter k's elements of a digit go after quarter k - 1's, which
// keeps the pass stable.
void radix_pass(const std::uint64_t* from, std::uint64_t* to, std::size_t n, int shift,
                std::size_t radix, std::vector<std::uint32_t>& counts, const float* uniforms,
                const float* probability, std::uint8_t* keep) {
  const std::uint64_t mask = radix - 1;
  const std::size_t q = n / 4;
  counts.assign(4 * radix, 0);
  std::uint32_t* c0 = counts.data();
  std::uint32_t* c1 = c0 + radix;
  std::uint32_t* c2 = c1 + radix;
  std::uint32_t* c3 = c2 + radix;
  const auto digit = [&](std::uint64_t e) { return static_cast<std::size_t>((e >> shift) & mask); };
  for (std::size_t i = 0; i < q; ++i) {
    ++c0[digit(from[i])];
    ++c1[digit(from[q + i])];
    ++c2[digit(from[2 * q + i])];
    ++c3[digit(from[3 * q + i])];
  }
  for (std::size_t i = 4 * q; i < n; ++i)
    ++c3[digit(from[i])];
  std::uint32_t first = 0;
  for (std::size_t b = 0; b < radix; ++b) {
    for (std::uint32_t* c : {c0, c1, c2, c3}) {
      const std::uint32_t count = c[b];
      c[b] = first;
      first += count;
    }
  }
  const auto place = [&](std::uint32_t* c, std::uint64_t e) {
    const std::uint32_t rank = c[digit(e)]++;
    if (to != nullptr) {
      to[rank] = e;
    } else {
      const auto j = static_cast<std::size_t>(e & 0xffffffffu);
      keep[j] = uniforms[j] < probability[rank] ? 1 : 0;
    }
  };
  for (std::size_t i = 0; i < q; ++i) {
    place(c0, from[i]);
    place(c1, from[q + i]);
    place(c2, from[2 * q + i]);
    place(c3, from[3 * q + i]);
  }
  for (std::size_t i = 4 * q; i < n; ++i)
    place(c3, from[i]);
}

}  // namespace

void RankKeep::decide(const float* values, const float* uniforms, const float* probability,
                      std::size_t n, std::uint8_t* keep) {
  if (n == 0) return;
  entries_.resize(n);
  std::uint32_t any = 0;
  std::uint32_t all = ~0u;
  for (std::size_t j = 0; j < n; ++j) {
    const std::uint32_t key = magnitude_key(values[j]);
    entries_[j] = (static_cast<std::uint64_t>(key) << 32) | j;
    any |= key;
    all &= key;
  }
  const std::uint32_t varying = any ^ all;  // the bits that are not the same in every key
  if (varying == 0) {                       // all keys equal: rank = index
    for (std::size_t j = 0; j < n; ++j)
      keep[j] = uniforms[j] < probability[j] ? 1 : 0;
    return;
  }
  // Sort on bits [lo, lo + width) of the keys: the others are the same in every key.
  const int lo = std::countr_zero(varying);
  const int width = 32 - std::countl_zero(varying) - lo;
  // Digits no wider than the row needs: the four quarters' counters (4 x 2^bits)
  // stay near n, so a short row does not pay for 4 x 2048 counters.
  const int bits_max = std::clamp(static_cast<int>(std::bit_width(n)) - 2, 4, k_digit_bits_max);
  const int digits = (width + bits_max - 1) / bits_max;
  const int bits = (width + digits - 1) / digits;
  const std::size_t radix = std::size_t{1} << bits;
  swap_.resize(n);
  for (int d = 0; d < digits; ++d) {
    const bool last = d + 1 == digits;
    radix_pass(entries_.data(), last ? nullptr : swap_.data(), n, 32 + lo + d * bits, radix,
               counts_, uniforms, probability, keep);
    if (!last) entries_.swap(swap_);
  }
}

}  // namespace llmerge
