// Options shared by `llmerge run` and `llmerge plan`: they build the same plan.
#pragma once

#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "plan/plan.h"

namespace llmerge::cli {

struct MergeOptions {
  std::string config_path;
  std::string dtype;
  std::string out_dtype;
  bool allow_crimes = false;
  std::string shard_size = "5B";
  int threads = 0;
  std::int64_t chunk_elements = k_reduce_block;
  std::uint64_t seed = 0;
  int quantize_bits = 0;  // 0: no --quantize
  int q_group_size = 64;
  std::string q_mode = "affine";
  bool dequantize = false;
};

// Adds CONFIG and the planning flags to `app`.
void add_merge_options(CLI::App& app, MergeOptions& options);

// Parses the config file and makes the plan (throws llmerge::Error).
Plan plan_from_options(const MergeOptions& options);
// The same from a config already in memory (used by `llmerge quantize`).
Plan plan_from_config(const MergeConfig& config, const MergeOptions& options);

}  // namespace llmerge::cli
