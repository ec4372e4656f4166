// mergekit-moe's YAML schema (mergekit/moe/config.py, MoEMergeConfig), parsed
// into plain structs with source locations. No models are touched here; the
// planner (plan/moe_planner.h) checks the config against the models.
//
//   base_model: org/base          # attention, norms, embeddings, lm_head come from it
//   gate_mode: hidden             # hidden | hidden_avg | hidden_last | cheap_embed |
//                                 # random | uniform_random  (mergekit's default: hidden)
//   dtype: bfloat16               # output dtype; else the base's torch_dtype
//   experts_per_token: 2
//   architecture: mixtral         # optional: a prefix of mixtral, qwen, qwen3 (any case)
//   experts:
//     - source_model: org/a
//       positive_prompts: ["..."]
//       negative_prompts: ["..."]
//       noise_scale: 0.01         # adds N(0, 1) * noise_scale to the expert's weights
//       residual_scale: 0.5       # multiplies the expert's down_proj
//   shared_experts:               # Qwen2-MoE: exactly one
//     - source_model: org/base
//       positive_prompts: ["..."]
//
// Stricter than mergekit on purpose: unknown keys, wrong types and unknown
// gate modes are Error(config) with file:line:col. Rules that need the whole
// config (experts_per_token in range, prompts present, ...) are the planner's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"

namespace llmerge {

enum class MoeGateMode { hidden, hidden_avg, hidden_last, cheap_embed, random, uniform_random };

// "hidden", "cheap_embed", ... as written in the config.
const char* moe_gate_mode_name(MoeGateMode mode);
// Random gates need no prompts and no model run; the others are computed
// from the base model's embeddings or hidden states (the Python package).
inline bool moe_gate_mode_is_random(MoeGateMode mode) {
  return mode == MoeGateMode::random || mode == MoeGateMode::uniform_random;
}

struct MoeExpert {
  std::string source_model;
  std::optional<std::vector<std::string>> positive_prompts;
  std::optional<std::vector<std::string>> negative_prompts;
  std::optional<double> noise_scale;
  std::optional<double> residual_scale;
  SourceLocation location;  // of the entry
  SourceLocation source_model_location;
  SourceLocation positive_prompts_location;
  SourceLocation noise_scale_location;
  SourceLocation residual_scale_location;
};

struct MoeMergeConfig {
  std::string file;  // the config's path as given (for messages)
  std::string text;  // the YAML as given (written to mergekit_moe_config.yml)

  std::string base_model;
  SourceLocation base_model_location;
  MoeGateMode gate_mode = MoeGateMode::hidden;
  SourceLocation gate_mode_location;
  std::optional<std::string> dtype;
  SourceLocation dtype_location;
  std::int64_t experts_per_token = 2;
  SourceLocation experts_per_token_location;
  std::optional<std::string> architecture;
  SourceLocation architecture_location;
  std::vector<MoeExpert> experts;
  SourceLocation experts_location;
  std::vector<MoeExpert> shared_experts;
  SourceLocation shared_experts_location;
  // The YAML path of the key at each (line, column), as MergeConfig::yaml_paths.
  std::map<std::pair<int, int>, std::string> yaml_paths;
};

// Parses YAML text; `file` names the config in messages. Throws Error(config)
// at the first schema problem (YAML syntax, unknown key with a did-you-mean,
// wrong type, missing base_model or experts, unknown gate_mode).
MoeMergeConfig parse_moe_config(std::string_view yaml_text, const std::string& file);
// Reads the file (Error(io) if unreadable), then parse_moe_config.
MoeMergeConfig load_moe_config(const std::string& path);

}  // namespace llmerge
