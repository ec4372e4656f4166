#include "merge/methods/rank_select.h"

#include <algorithm>
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

RankSelect::RankSelect(std::vector<std::int64_t> ranks, std::size_t odd_keys_max)
    : ranks_(std::move(ranks)),
      histogram_(k_buckets, 0),
      results_(ranks_.size()),
      odd_keys_max_(odd_keys_max) {}

void RankSelect::end_pass(int pass) {
  if (pass == 0) {
    for (const std::int64_t rank : ranks_) {
      const auto [bucket, below] = find_bucket(histogram_, rank);
      const auto it = std::find(buckets_.begin(), buckets_.end(), bucket);
      bucket_of_rank_.push_back(static_cast<std::size_t>(it - buckets_.begin()));
      if (it == buckets_.end()) buckets_.push_back(bucket);
      below_bucket_.push_back(below);
    }
    if (odd_keys_max_ > 0) {
      // Every key was seen: a bucket's even keys (no low bits) are its least,
      // and its odd keys, sorted, follow them.
      std::sort(odd_keys_.begin(), odd_keys_.end());
      for (std::size_t r = 0; r < ranks_.size(); ++r) {
        const std::uint32_t bucket = buckets_[bucket_of_rank_[r]];
        const auto first =
            std::partition_point(odd_keys_.begin(), odd_keys_.end(),
                                 [&](std::uint32_t k) { return (k >> 16) < bucket; });
        const auto last = std::partition_point(
            first, odd_keys_.end(), [&](std::uint32_t k) { return (k >> 16) == bucket; });
        const auto even = static_cast<std::int64_t>(histogram_[bucket]) - (last - first);
        const std::int64_t offset = ranks_[r] - below_bucket_[r];
        Result& result = results_[r];
        if (offset < even) {
          result = {bucket << 16, below_bucket_[r], even};
          continue;
        }
        const std::uint32_t key = first[offset - even];
        const auto [lo, hi] = std::equal_range(first, last, key);
        result = {key, below_bucket_[r] + even + (lo - first), hi - lo};
      }
      done_ = true;
      std::vector<std::uint32_t>().swap(odd_keys_);
      std::vector<std::uint64_t>().swap(histogram_);
      return;
    }
    std::vector<std::uint64_t>().swap(histogram_);
    low_.assign(buckets_.size(), std::vector<std::uint64_t>(k_buckets, 0));
    return;
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

void RankKeep::decide(const float* values, const float* uniforms, const float* probability,
                      std::size_t n, std::uint8_t* keep) {
  if (n == 0) return;
  keys_.resize(n);
  std::uint32_t top = 0;
  for (std::size_t j = 0; j < n; ++j) {
    keys_[j] = magnitude_key(values[j]);
    top = std::max(top, keys_[j]);
  }
  // Bucket b >= 1 holds the keys whose high 16 bits are floor + b; bucket 0
  // holds zero and every key below the window. Buckets follow the keys.
  const std::uint32_t high_top = top >> 16;
  const std::uint32_t floor = high_top >= k_window - 1 ? high_top - (k_window - 1) : 0;
  clean_.assign(k_window, 0);
  bucket_.resize(n);
  sorted_.clear();
  constexpr std::uint16_t k_dirty = 0x8000;  // flag in bucket_: not clean
  std::uint32_t* clean = clean_.data();
  std::uint16_t* bucket = bucket_.data();
  for (std::size_t j = 0; j < n; ++j) {
    const std::uint32_t key = keys_[j];
    const std::uint32_t high = key >> 16;
    const bool in_window = high > floor;
    const auto b = static_cast<std::uint16_t>(in_window ? high - floor : 0);
    // A clean key is the least key of its bucket: 0 in bucket 0, no low bits
    // in the others. Computed without a branch: zeros are common and random.
    const bool is_clean = ((key & 0xffffu) == 0) & (in_window | (key == 0));
    if (is_clean) {
      bucket[j] = b;
      ++clean[b];
    } else {
      bucket[j] = b | k_dirty;
      sorted_.push_back((static_cast<std::uint64_t>(key) << 32) | j);
    }
  }
  // first_[b]: the rank of bucket b's first element (clean ones first).
  first_.assign(clean_.begin(), clean_.end());
  first_.push_back(0);
  for (const std::uint64_t entry : sorted_)
    ++first_[bucket_[entry & 0xffffffffu] & ~k_dirty];
  std::uint32_t rank = 0;
  for (std::size_t b = 0; b <= k_window; ++b) {
    const std::uint32_t count = first_[b];
    first_[b] = rank;
    rank += count;
  }
  // Clean elements come first in their bucket, in index order.
  next_.assign(first_.begin(), first_.end() - 1);
  for (std::size_t j = 0; j < n; ++j) {
    const std::uint16_t b = bucket_[j];
    if ((b & k_dirty) == 0) keep[j] = uniforms[j] < probability[next_[b]++] ? 1 : 0;
  }
  // The others follow them, by (key, index).
  std::sort(sorted_.begin(), sorted_.end());
  std::size_t bucket_start = 0;
  for (std::size_t i = 0; i < sorted_.size(); ++i) {
    const auto j = static_cast<std::size_t>(sorted_[i] & 0xffffffffu);
    const auto b = static_cast<std::uint16_t>(bucket_[j] & ~k_dirty);
    if (i == 0 || bucket_[sorted_[i - 1] & 0xffffffffu] != bucket_[j]) bucket_start = i;
    keep[j] = uniforms[j] < probability[first_[b] + clean_[b] + (i - bucket_start)] ? 1 : 0;
  }
}

}  // namespace llmerge
