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

RankSelect::RankSelect(std::vector<std::int64_t> ranks)
    : ranks_(std::move(ranks)), histogram_(k_buckets, 0), results_(ranks_.size()) {}

void RankSelect::end_pass(int pass) {
  if (pass == 0) {
    for (const std::int64_t rank : ranks_) {
      const auto [bucket, below] = find_bucket(histogram_, rank);
      const auto it = std::find(buckets_.begin(), buckets_.end(), bucket);
      bucket_of_rank_.push_back(static_cast<std::size_t>(it - buckets_.begin()));
      if (it == buckets_.end()) buckets_.push_back(bucket);
      below_bucket_.push_back(below);
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

}  // namespace llmerge
