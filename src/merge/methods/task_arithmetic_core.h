// The generalized task arithmetic (GTA) core shared by task_arithmetic,
// ties, dare_ties and dare_linear (docs/mergekit-semantics.md §1.8).
//
// For each element, with base b and models x_i (config order):
//   1. δ_i = x_i − b                                       task vectors
//   2. δ_i = sparsify_i(δ_i)   each model with its own density (Sparsifier)
//   3. D_i = δ_i · w_i
//   4. consensus (ties, dare_ties):
//        S = Σ D_i;  maj = +1 if S >= 0 else −1;  m_i = (sign D_i == maj)
//        mixed = Σ D_i·m_i;   divisor = Σ w_i·m_i, 1 where it is 0
//      otherwise:
//        mixed = Σ D_i;       divisor = Σ w_i, 1 if |Σ w_i| < 1e-8
//   5. if normalize:  mixed = mixed / divisor
//   6. if lambda != 1: mixed = mixed · lambda
//   7. res = b + mixed
// All of it in f32 (mergekit: the config dtype), sums in config order.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "merge/method.h"

namespace llmerge::gta {

// Sparsifies one model's task vector of one tensor. It may first observe the
// task vector in statistics passes; apply() then sees the whole tensor once,
// in increasing element order, and masks (and rescales) it in place.
class Sparsifier {
 public:
  virtual ~Sparsifier() = default;
  // Statistics passes still wanted; asked again after each end_pass(), so it
  // may drop once a pass has made the later ones unnecessary.
  virtual int passes() const { return 0; }
  // `delta` holds task-vector elements [begin, begin + n): exactly one
  // k_reduce_block-aligned block, or the part of the last block that exists.
  virtual void observe(int /*pass*/, std::int64_t /*begin*/, const float* /*delta*/,
                       std::size_t /*n*/) {}
  virtual void end_pass(int /*pass*/) {}
  // Called at the start of each compute chunk, before apply() sees its
  // elements, with that model's and the base's values of the whole chunk
  // (della ranks whole rows, which apply()'s pieces may split).
  virtual void begin_chunk(std::int64_t /*begin*/, std::size_t /*n*/, const float* /*model*/,
                           const float* /*base*/) {}
  virtual void apply(std::int64_t begin, float* delta, std::size_t n) = 0;
};

// Makes the sparsifier of `model` for a tensor, given that model's density
// (< 1; density >= 1 never sparsifies and gets no sparsifier) and the global
// `rescale` flag.
using SparsifierFactory = std::unique_ptr<Sparsifier> (*)(const TensorContext& context,
                                                          std::size_t model, double density,
                                                          bool rescale);

struct GtaVariant {
  bool consensus = false;
  SparsifierFactory sparsifier = nullptr;  // nullptr: no sparsification (density ignored)
};

// The odd keys (rank_select.h) one model's sparsifier may keep in its first
// pass: its share of a quarter of TensorContext::scratch_bytes (1 MiB by
// default), at most one per element. Small on purpose: the memory estimate
// must hold whether or not the keys come (a bf16 fine-tune has under 1 % odd
// keys, unrelated weights nearly 100 %), and past the budget the price is one
// more pass, not a cliff.
inline std::uint64_t odd_keys_budget(std::uint64_t scratch_bytes, std::size_t models) {
  return scratch_bytes / 4 / sizeof(std::uint32_t) / std::max<std::size_t>(models, 1);
}
inline std::size_t odd_keys_budget(const TensorContext& context) {
  return static_cast<std::size_t>(
      std::min<std::uint64_t>(static_cast<std::uint64_t>(std::max<std::int64_t>(context.numel, 0)),
                              odd_keys_budget(context.scratch_bytes, context.model_count)));
}

// Bytes a GtaMerge holds itself (the task-vector block and the compute
// step's rows), for MethodSpec::memory_bytes.
std::uint64_t gta_merge_bytes(std::size_t models);

std::unique_ptr<TensorMerge> make_gta_merge(const TensorContext& context, GtaVariant variant);

// The spec fields every GTA method shares: base required, truncation to the
// base's shape, parameters weight/density/normalize/rescale/lambda/int8_mask
// with this method's defaults; `extra` (the sparsifier's own per-model
// parameters, breadcrumbs' gamma, della's epsilon) go after density.
MethodSpec gta_spec(std::string name, std::string pretty_name, std::string reference,
                    std::string description, bool normalize_default, bool rescale_default,
                    std::vector<ParameterSpec> extra = {});

// L1 norm matching (mergekit's "rescale", RescaleNorm.l1): after masking,
// multiply the kept elements by ‖δ‖₁ / ‖masked δ‖₁, unless either norm is
// below 1e-7. Both norms are summed per reduce block in f64.
class L1Rescale {
 public:
  void add_block(const float* delta, const float* masked, std::size_t n);
  // Adds norms the caller summed itself (each in a chunking-independent order).
  void add_sums(double full, double kept) {
    full_ += full;
    kept_ += kept;
  }
  // The factor to apply, or nullopt when the rescale is skipped.
  std::optional<float> factor() const;

 private:
  double full_ = 0.0;
  double kept_ = 0.0;
};

}  // namespace llmerge::gta
