// della and della_linear: DELLA (MagPrune) -- drop task-vector entries at
// random with a keep probability that grows with their magnitude rank, then
// TIES sign consensus (della) or a plain weighted sum (della_linear).
//
// Paper: Deep, Bhardwaj, Poria, "DELLA-Merging: Reducing Interference in
// Model Merging through Magnitude-Based Sampling", 2024,
// https://arxiv.org/abs/2406.11617
//
// Formula (docs/mergekit-semantics.md §1.8, "della_magprune"), per model:
//   vectors: each vector along axis 1 (the rows of a matrix); a 1-D tensor
//   is one vector. In a vector of n entries, rank r ∈ 1..n by |δ| ascending
//   (ties: flattened order):
//     p = (density − ε) + 2ε·(r − 1)/(n − 1)
//   keep each entry with probability p
//   rescale: kept · ‖δ‖₁ / ‖kept‖₁ over the whole tensor, unless a norm < 1e-7
//   (L1 norm matching, as mergekit -- not the paper's per-entry 1/p)
//   then the GTA steps of task_arithmetic_core.h with (della) or without
//   (della_linear) sign consensus.
// Parameters: per-model `weight` (required), `density` (1.0: no pruning),
// `epsilon` (0.15); global `normalize` (della true, della_linear false),
// `rescale` (true), `lambda` (1.0), `int8_mask` (false).
//
// Streaming: ranks need a whole vector, and vectors can straddle chunks. One
// statistics pass walks the tensor in order with a buffer of one group of
// vectors (one row; for N-D tensors the shape[1]·Π shape[2:] elements that
// hold prod(shape[2:]) interleaved vectors), decides each group's mask once
// it is complete, sums the kept L1 norm per group in element order, and
// stores the mask bits of the groups that straddle a k_reduce_block
// boundary (chunk boundaries are block boundaries). begin_chunk() then
// decides the groups that lie inside the chunk from the chunk's data and
// takes the stored bits for the others. The pass is skipped when no rescale
// is needed and no group can straddle a block.
//
// Differences from mergekit:
// - The random draw is Philox4x32-10 keyed as DARE's (merge/random.h):
//   (seed, tensor name, model index in config order, element index); keep
//   when u < p. mergekit uses torch's global RNG, so only the statistics
//   agree.
// - One-entry vectors (n = 1): mergekit computes 0/0 = NaN and fails in
//   torch.bernoulli; here r is taken as the middle rank, p = density.
// - mergekit raises unless 0 < density − ε and density + ε < 1; so does the
//   planner (MethodSpec::check). The kernel never fails: u < p keeps nothing for
//   p <= 0 and everything for p >= 1.
// - f32 arithmetic (mergekit: the config dtype, f32 on CPU).
#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstring>
#include <deque>
#include <optional>
#include <vector>

#include <fmt/core.h>

#include "merge/kernels/kernels.h"
#include "merge/kernels/reduce.h"
#include "merge/methods/methods.h"
#include "merge/methods/rank_select.h"
#include "merge/methods/task_arithmetic_core.h"
#include "merge/random.h"

namespace llmerge {
namespace {

// The keep bits della may cache between its passes, every tensor and model
// of the process together (CachePool below): eight times the scratch budget
// (32 MiB by default, 99 % of a Qwen2.5-0.5B embedding's bits for two
// models; the peak RSS of that merge stays near 50 MiB, inside the 64 MiB
// aimed at with two threads, whatever the thread count). Every bit cached is
// one element whose row the compute pass need not rank again.
std::uint64_t cache_budget_bytes(std::uint64_t scratch_bytes) {
  return 8 * scratch_bytes;
}

// The bytes of keep bits cached by every della tensor of the process
// together: each draws its share from here when it is made and gives it back
// when it is destroyed, so two workers on two embeddings at once hold one
// budget between them, not two (the planner's estimate counts it once:
// MethodSpec::shared_bytes). What is cached changes only the speed: bits not
// cached are decided again from the same data, to the same values.
class CachePool {
 public:
  // Up to `want` bytes, as many as the pool has left below `budget`.
  std::uint64_t draw(std::uint64_t want, std::uint64_t budget) {
    std::uint64_t used = used_.load(std::memory_order_relaxed);
    for (;;) {
      const std::uint64_t left = used < budget ? budget - used : 0;
      const std::uint64_t take = std::min(want, left);
      if (take == 0) return 0;
      if (used_.compare_exchange_weak(used, used + take, std::memory_order_relaxed)) return take;
    }
  }
  void give_back(std::uint64_t bytes) { used_.fetch_sub(bytes, std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> used_{0};
};

CachePool& cache_pool() {
  static CachePool pool;
  return pool;
}

// The leading elements whose keep bits are cached: whole groups, as many as
// one model's share of the budget holds.
std::int64_t cached_elements(std::int64_t numel, std::int64_t group, std::uint64_t scratch_bytes,
                             std::size_t models) {
  const std::uint64_t bits =
      cache_budget_bytes(scratch_bytes) * 8 / std::max<std::size_t>(models, 1);
  const std::uint64_t groups = bits / static_cast<std::uint64_t>(std::max<std::int64_t>(group, 1));
  const auto elements = groups * static_cast<std::uint64_t>(std::max<std::int64_t>(group, 1));
  return static_cast<std::int64_t>(std::min<std::uint64_t>(
      elements, static_cast<std::uint64_t>(std::max<std::int64_t>(numel, 0))));
}

// Bit e of `bits` (LSB first) = keep[i] for e = first + i; keep[i] is 0 or 1.
void pack_bits(const std::uint8_t* keep, std::size_t n, std::uint64_t first,
               std::vector<std::uint8_t>& bits) {
  std::size_t i = 0;
  for (; i < n && (first + i) % 8 != 0; ++i)
    bits[(first + i) / 8] |= static_cast<std::uint8_t>(keep[i] << ((first + i) % 8));
  for (; i + 8 <= n; i += 8) {
    // Byte k of `eight` is keep[i + k]; the product gathers bit 0 of each in the top byte.
    std::uint64_t eight = 0;
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(&eight, keep + i, 8);
    } else {
      for (std::size_t k = 0; k < 8; ++k)
        eight |= static_cast<std::uint64_t>(keep[i + k]) << (8 * k);
    }
    bits[(first + i) / 8] = static_cast<std::uint8_t>((eight * 0x0102040810204080ull) >> 56);
  }
  for (; i < n; ++i)
    bits[(first + i) / 8] |= static_cast<std::uint8_t>(keep[i] << ((first + i) % 8));
}

// The 8 keep bytes (0 or 1) of each bit pattern, in memory order.
struct ByteTable {
  std::uint8_t bytes[256][8];
  constexpr ByteTable() : bytes() {
    for (int b = 0; b < 256; ++b) {
      for (int k = 0; k < 8; ++k)
        bytes[b][k] = static_cast<std::uint8_t>((b >> k) & 1);
    }
  }
};
constexpr ByteTable k_byte_table;

// keep[i] = bit (first + i) of `bits`.
void unpack_bits(const std::vector<std::uint8_t>& bits, std::uint64_t first, std::size_t n,
                 std::uint8_t* keep) {
  std::size_t i = 0;
  for (; i < n && (first + i) % 8 != 0; ++i)
    keep[i] = static_cast<std::uint8_t>((bits[(first + i) / 8] >> ((first + i) % 8)) & 1u);
  for (; i + 8 <= n; i += 8)
    std::memcpy(keep + i, k_byte_table.bytes[bits[(first + i) / 8]], 8);
  for (; i < n; ++i)
    keep[i] = static_cast<std::uint8_t>((bits[(first + i) / 8] >> ((first + i) % 8)) & 1u);
}

class MagPruneSparsifier final : public gta::Sparsifier {
 public:
  MagPruneSparsifier(const TensorContext& context, std::size_t model, double density, bool rescale)
      : random_(context.seed, context.tensor_key, static_cast<std::uint32_t>(model)),
        density_(density),
        epsilon_(context.params->model_value(model, "epsilon")),
        rescale_(rescale) {
    const std::vector<std::int64_t>& shape = context.shape;
    if (shape.size() < 2) {
      length_ = std::max<std::int64_t>(context.numel, 1);
      stride_ = 1;
    } else {
      stride_ = 1;
      for (std::size_t d = 2; d < shape.size(); ++d)
        stride_ *= shape[d];
      length_ = shape[1];
    }
    group_ = std::max<std::int64_t>(length_ * stride_, 1);
    // p(r) for ranks r = 0..n-1; one-entry vectors take the middle rank.
    const auto n = static_cast<std::size_t>(length_);
    probability_.resize(n);
    for (std::size_t r = 0; r < n; ++r) {
      const double rank_norm = n > 1 ? static_cast<double>(r) / static_cast<double>(n - 1) : 0.5;
      probability_[r] = static_cast<float>(density_ - epsilon_ + 2.0 * epsilon_ * rank_norm);
    }
    const bool may_straddle = group_ > k_reduce_block || k_reduce_block % group_ != 0;
    passes_ = rescale_ || may_straddle ? 1 : 0;
    // The keep bits of the statistics pass are kept for the compute pass, for
    // as many leading groups as the cache budget holds; the compute pass
    // ranks the rows of the others again (an embedding's, mostly).
    if (passes_ == 1) {
      // What the pool gives, cut down to whole groups; the rest goes back.
      const std::int64_t want =
          cached_elements(context.numel, group_, context.scratch_bytes, context.model_count);
      const std::uint64_t got = cache_pool().draw(static_cast<std::uint64_t>(want + 7) / 8,
                                                  cache_budget_bytes(context.scratch_bytes));
      cached_end_ =
          std::min<std::int64_t>(want, static_cast<std::int64_t>(got * 8)) / group_ * group_;
      drawn_ = static_cast<std::uint64_t>(cached_end_ + 7) / 8;
      cache_pool().give_back(got - drawn_);
      cache_.assign(static_cast<std::size_t>((cached_end_ + 7) / 8), 0);
    }
  }

  ~MagPruneSparsifier() override { cache_pool().give_back(drawn_); }
  MagPruneSparsifier(const MagPruneSparsifier&) = delete;
  MagPruneSparsifier& operator=(const MagPruneSparsifier&) = delete;

  int passes() const override { return passes_; }

  void observe(int /*pass*/, std::int64_t begin, const float* delta, std::size_t n) override {
    full_l1_ += kernels::reduce_l1(delta, n);
    std::size_t i = 0;
    while (i < n) {
      const std::size_t left = n - i;
      if (buffer_.empty() && left >= static_cast<std::size_t>(group_)) {
        // A whole group inside the block: decide it in place.
        finish_group(begin + static_cast<std::int64_t>(i), delta + i);
        i += static_cast<std::size_t>(group_);
        continue;
      }
      if (buffer_.empty()) buffer_begin_ = begin + static_cast<std::int64_t>(i);
      const std::size_t take = std::min(left, static_cast<std::size_t>(group_) - buffer_.size());
      buffer_.insert(buffer_.end(), delta + i, delta + i + take);
      i += take;
      if (buffer_.size() == static_cast<std::size_t>(group_)) {
        finish_group(buffer_begin_, buffer_.data());
        buffer_.clear();
      }
    }
  }

  void end_pass(int /*pass*/) override {
    gta::L1Rescale norms;
    norms.add_sums(full_l1_, kept_l1_);
    if (rescale_) factor_ = norms.factor();
    std::vector<float>().swap(buffer_);
  }

  void begin_chunk(std::int64_t begin, std::size_t n, const float* model,
                   const float* base) override {
    chunk_begin_ = begin;
    chunk_keep_.resize(n);
    const std::int64_t end = begin + static_cast<std::int64_t>(n);
    // The cached groups' bits, then the others (cached_end_ is a group boundary).
    const std::int64_t cached_hi = std::min(end, cached_end_);
    if (begin < cached_hi) {
      unpack_bits(cache_, static_cast<std::uint64_t>(begin),
                  static_cast<std::size_t>(cached_hi - begin), chunk_keep_.data());
    }
    const std::int64_t uncached = std::max(begin, cached_end_);
    for (std::int64_t g = uncached / group_ * group_; g < end; g += group_) {
      const std::int64_t g_end = g + group_;
      if (g >= begin && g_end <= end) {
        delta_.resize(static_cast<std::size_t>(group_));
        const auto off = static_cast<std::size_t>(g - begin);
        for (std::size_t e = 0; e < delta_.size(); ++e)
          delta_[e] = model[off + e] - base[off + e];
        decide(g, delta_.data());
        std::copy(keep_.begin(), keep_.end(),
                  chunk_keep_.begin() + static_cast<std::ptrdiff_t>(off));
        continue;
      }
      while (!stored_.empty() && stored_.front().begin < g)
        stored_.pop_front();
      const StoredGroup& s = stored_.front();  // straddles a chunk, hence a block: stored
      const std::int64_t lo = std::max(g, begin);
      const std::int64_t hi = std::min(g_end, end);
      for (std::int64_t e = lo; e < hi; ++e)
        chunk_keep_[static_cast<std::size_t>(e - begin)] = s.keep[static_cast<std::size_t>(e - g)];
    }
  }

  void apply(std::int64_t begin, float* delta, std::size_t n) override {
    const std::uint8_t* keep = chunk_keep_.data() + (begin - chunk_begin_);
    const float factor = factor_.value_or(1.0f);  // x * 1 == x, bit for bit
    kernels::keep_where(keep, delta, delta, n, factor);
  }

 private:
  struct StoredGroup {
    std::int64_t begin;
    std::vector<bool> keep;
  };

  // The statistics pass's work on one whole group starting at element `begin`.
  void finish_group(std::int64_t begin, const float* delta) {
    decide(begin, delta);
    kept_l1_ += kernels::reduce_l1_kept(delta, keep_.data(), keep_.size());
    if (begin < cached_end_) {  // the whole group is cached
      pack_bits(keep_.data(), keep_.size(), static_cast<std::uint64_t>(begin), cache_);
      return;
    }
    const std::int64_t last = begin + group_ - 1;
    if (begin / k_reduce_block != last / k_reduce_block)
      stored_.push_back({begin, std::vector<bool>(keep_.begin(), keep_.end())});
  }

  // Decides keep_[0, group_) for the group starting at element `begin`.
  void decide(std::int64_t begin, const float* delta) {
    const auto size = static_cast<std::size_t>(group_);
    keep_.resize(size);
    uniforms_.resize(size);
    random_.uniforms(static_cast<std::uint64_t>(begin), uniforms_.data(), size);
    const auto n = static_cast<std::size_t>(length_);
    const auto stride = static_cast<std::size_t>(stride_);
    if (stride == 1) {
      rank_keep_.decide(delta, uniforms_.data(), probability_.data(), n, keep_.data());
      return;
    }
    // Entries of vector v are v, v + stride, ...: gather, decide, scatter.
    vector_.resize(n);
    vector_uniforms_.resize(n);
    vector_keep_.resize(n);
    for (std::size_t v = 0; v < stride; ++v) {
      for (std::size_t i = 0; i < n; ++i) {
        vector_[i] = delta[v + i * stride];
        vector_uniforms_[i] = uniforms_[v + i * stride];
      }
      rank_keep_.decide(vector_.data(), vector_uniforms_.data(), probability_.data(), n,
                        vector_keep_.data());
      for (std::size_t i = 0; i < n; ++i)
        keep_[v + i * stride] = vector_keep_[i];
    }
  }

  ElementRandom random_;
  double density_;
  double epsilon_;
  bool rescale_;
  int passes_ = 0;
  std::int64_t length_ = 1;    // entries per vector
  std::int64_t stride_ = 1;    // distance between a vector's entries
  std::int64_t group_ = 1;     // length_ · stride_: contiguous, whole vectors
  std::vector<float> buffer_;  // a group that straddles blocks, being gathered
  std::int64_t buffer_begin_ = 0;
  double full_l1_ = 0.0;
  double kept_l1_ = 0.0;
  std::int64_t cached_end_ = 0;      // the keep bits of elements [0, cached_end_) are cached
  std::vector<std::uint8_t> cache_;  // those bits
  std::uint64_t drawn_ = 0;          // bytes drawn from cache_pool() for them
  std::deque<StoredGroup> stored_;   // past the cache: groups that straddle blocks
  std::optional<float> factor_;
  std::vector<std::uint8_t> keep_;  // one group's decisions
  std::vector<float> uniforms_;
  std::vector<float> probability_;  // by rank within a vector
  RankKeep rank_keep_;
  std::vector<float> vector_;  // one vector gathered, for N-D tensors
  std::vector<float> vector_uniforms_;
  std::vector<std::uint8_t> vector_keep_;
  std::vector<float> delta_;
  std::int64_t chunk_begin_ = 0;
  std::vector<std::uint8_t> chunk_keep_;
};

std::unique_ptr<gta::Sparsifier> make_magprune(const TensorContext& context, std::size_t model,
                                               double density, bool rescale) {
  return std::make_unique<MagPruneSparsifier>(context, model, density, rescale);
}

// Elements per vector group: the whole rows MagPruneSparsifier decides at once.
std::int64_t group_of(const std::vector<std::int64_t>& shape, std::int64_t numel) {
  std::int64_t group = std::max<std::int64_t>(numel, 1);
  if (shape.size() >= 2) {
    group = 1;
    for (std::size_t d = 1; d < shape.size(); ++d)
      group *= shape[d];
  }
  return group;
}

// MethodSpec::memory_bytes: the per-row buffers (RankKeep's entries,
// uniforms, keep bytes; rows of up to ~8 Ki elements) and the chunk's keep
// bytes, per model; plus the GTA buffers.
std::uint64_t della_memory_bytes(const std::vector<std::int64_t>& /*shape*/, std::int64_t /*numel*/,
                                 std::size_t models, std::int64_t chunk) {
  constexpr std::uint64_t k_row_buffers = 256u << 10;
  return gta::gta_merge_bytes(models) +
         models * (k_row_buffers + static_cast<std::uint64_t>(chunk));
}

// MethodSpec::shared_bytes: the keep bits MagPruneSparsifier wants to cache
// for the tensor, every model together (it may get less from the pool).
std::uint64_t della_cache_bytes(const std::vector<std::int64_t>& shape, std::int64_t numel,
                                std::size_t models, std::int64_t /*chunk*/) {
  const std::int64_t elements =
      cached_elements(numel, group_of(shape, numel), k_scratch_bytes, models);
  return models * ((static_cast<std::uint64_t>(elements) + 7) / 8);
}

std::unique_ptr<TensorMerge> make_della(const TensorContext& context) {
  return gta::make_gta_merge(context,
                             gta::GtaVariant{.consensus = true, .sparsifier = &make_magprune});
}

std::unique_ptr<TensorMerge> make_della_linear(const TensorContext& context) {
  return gta::make_gta_merge(context,
                             gta::GtaVariant{.consensus = false, .sparsifier = &make_magprune});
}

std::vector<ParameterSpec> epsilon_parameter() {
  ParameterSpec epsilon =
      number_parameter("epsilon", ParameterSpec::Scope::per_model, 0.15,
                       "Keep probabilities run from density − epsilon to density + epsilon");
  epsilon.min = 0.0;
  return {epsilon};
}

// mergekit raises unless 0 < density - epsilon and density + epsilon < 1:
// the keep probabilities must stay inside (0, 1).
std::string check_della(const ResolvedParameters& p) {
  for (std::size_t i = 0; i < p.per_model.size(); ++i) {
    const double density = p.model_value(i, "density");
    const double epsilon = p.model_value(i, "epsilon");
    if (density >= 1) continue;  // no pruning
    if (!(density - epsilon > 0) || !(density + epsilon < 1)) {
      return fmt::format(
          "della needs 0 < density - epsilon and density + epsilon < 1, but "
          "model {} has density {} and epsilon {}",
          i + 1, density, epsilon);
    }
  }
  return "";
}

}  // namespace

MethodSpec make_della_spec() {
  MethodSpec spec =
      gta::gta_spec("della", "DELLA", "https://arxiv.org/abs/2406.11617",
                    "Drop task-vector entries at random, larger ones less often; "
                    "elect signs, average",
                    /*normalize_default=*/true, /*rescale_default=*/true, epsilon_parameter());
  spec.random = true;
  spec.memory_bytes = &della_memory_bytes;
  spec.shared_bytes = &della_cache_bytes;
  spec.shared_budget = cache_budget_bytes(k_scratch_bytes);
  spec.make = &make_della;
  spec.check = &check_della;
  return spec;
}

MethodSpec make_della_linear_spec() {
  MethodSpec spec =
      gta::gta_spec("della_linear", "Linear DELLA", "https://arxiv.org/abs/2406.11617",
                    "Drop task-vector entries at random, larger ones less often; "
                    "weighted sum",
                    /*normalize_default=*/false, /*rescale_default=*/true, epsilon_parameter());
  spec.random = true;
  spec.memory_bytes = &della_memory_bytes;
  spec.shared_bytes = &della_cache_bytes;
  spec.shared_budget = cache_budget_bytes(k_scratch_bytes);
  spec.make = &make_della_linear;
  spec.check = &check_della;
  return spec;
}

}  // namespace llmerge
