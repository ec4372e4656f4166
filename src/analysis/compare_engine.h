// The streaming pass of `llmerge compare`: opens the models, decides which
// tensors are compared, streams them chunk by chunk on worker threads and
// returns the sums (pair_sums.h) by tensor, layer, module kind and in total,
// plus one count sketch per layer and model for the layer alignment
// (alignment.h). docs/compare.md describes the measures.
//
// Work is split by layer: one worker streams every tensor of one layer index
// (of every model) in name order, so a layer's sketch and sums have one
// writer and one order, and the results do not depend on threads. Tensors
// outside the layers are one unit each. Memory: per worker one chunk buffer
// per model (and the base), the sources' scratch, and with a base one
// RankSelect per model (about 1 MiB each); plus the sketches.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "analysis/module_kind.h"
#include "analysis/pair_sums.h"
#include "llmerge/cancel.h"

namespace llmerge {

// Buckets of a layer's count sketch: 1/sqrt(4096) = 0.016 is the noise of the
// estimated cosine between unrelated layers (docs/compare.md).
inline constexpr std::size_t k_sketch_buckets = 4096;

struct CompareSettings {
  std::string base;  // "" for none
  double density = 0.2;
  int threads = 0;
  std::int64_t chunk_elements = 65536;
  std::string base_dir;
  CancelToken cancel;
  std::function<void(std::size_t, std::size_t)> progress;
};

struct ComparedModel {
  std::string name;  // as given
  std::string path;  // resolved
  std::int64_t layers = 0;
  std::size_t tensors = 0;
  std::uint64_t parameters = 0;
  std::string dtype;  // the most common dtype, torch spelling ("bfloat16")
};

struct ComparedTensor {
  std::string name;
  std::int64_t layer = -1;
  ModuleKind kind = ModuleKind::other;
  std::int64_t numel = 0;
  std::vector<PairSums> pairs;  // in CompareData::pairs order
};

struct CompareData {
  std::vector<ComparedModel> models;
  std::optional<ComparedModel> base;
  double density = 0.2;
  std::vector<std::pair<std::size_t, std::size_t>> pairs;  // (a, b), a < b
  std::vector<PairSums> total;
  std::map<std::int64_t, std::vector<PairSums>> layers;       // layer index -> per pair
  std::array<std::vector<PairSums>, k_module_kinds> modules;  // empty when the kind is absent
  std::vector<ComparedTensor> tensors;                        // compared tensors, by name
  std::int64_t elements = 0;                                  // compared elements per model
  std::size_t skipped_count = 0;
  std::vector<std::pair<std::string, std::string>> skipped_first;  // (tensor, reason), first 50
  // sketches[m][layer]: model m's count sketch of each of its layers.
  std::vector<std::vector<std::vector<double>>> sketches;
};

// Throws Error(config) for fewer than two models or a density outside (0, 1],
// Error(io/format) for unreadable models, Error(shape) when no tensor is shared.
CompareData run_compare(const std::vector<std::string>& models, const CompareSettings& settings);

}  // namespace llmerge
