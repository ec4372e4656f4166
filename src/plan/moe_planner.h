// The planner of `llmerge moe`: a mergekit-moe config + model headers -> a
// MergePlan that the ordinary executor and writer run (bounded memory,
// atomic output). Every output tensor is one of:
//
//  - a copy of one base-model tensor (attention, norms, embeddings, lm_head);
//  - a copy of one expert's MLP tensor under its expert name (with
//    noise_scale / residual_scale applied if set: merge/methods/moe.h);
//  - a router weight [experts, hidden]: computed (random, uniform_random)
//    or read from a gate file of vectors computed from prompts (the Python
//    package's llmerge.moe_gates: cheap_embed, hidden, hidden_avg, hidden_last).
//
// Output layout (docs/moe.md): per-expert tensors, the layout that both
// transformers 5.x (whose conversion mapping fuses them into
// mlp.experts.gate_up_proj / down_proj on load) and mlx-lm (whose sanitize()
// stacks them into switch_mlp) load. mergekit 0.1.5 writes the fused v5 layout,
// which mlx-lm cannot load.
//
//   Mixtral     model.layers.L.block_sparse_moe.gate.weight               [E, H]
//               model.layers.L.block_sparse_moe.experts.e.w1|w2|w3.weight  (gate, down, up)
//   Qwen2-MoE   model.layers.L.mlp.gate.weight                            [E, H]
//               model.layers.L.mlp.experts.e.gate_proj|up_proj|down_proj.weight
//               model.layers.L.mlp.shared_expert.{gate,up,down}_proj.weight
//               model.layers.L.mlp.shared_expert_gate.weight              [1, H]
//   Qwen3-MoE   model.layers.L.mlp.gate.weight, mlp.experts.e.*_proj.weight
//
// Checks (mergekit/moe/config.py is_bad_config, and each output's
// supports_config), all reported at once with YAML locations:
// experts_per_token in [1, experts]; positive prompts for every expert unless
// the gates are random; prompts not identical across all experts; experts not
// all the same model unless allow_all_same; an output architecture that
// fits (architecture: narrows the choice, Mixtral first); every expert with the
// base's layer count and MLP shapes; a gate file with the right shapes.
#pragma once

#include <filesystem>

#include <nlohmann/json.hpp>

#include "config/moe_config.h"
#include "plan/plan.h"

namespace llmerge {

struct MoePlanSettings {
  PlanSettings plan;
  // mergekit-moe's --i-understand-this-is-not-useful-without-training.
  bool allow_all_same = false;
  // A safetensors file of gate vectors for a prompt gate mode, as
  // llmerge.moe_gates writes it: "layers.L.router" [experts, hidden] and, with a
  // shared expert, "layers.L.shared_router" [1, hidden], float32.
  std::filesystem::path gates;
};

// Tensor names in a gate file.
std::string moe_gate_tensor_name(std::int64_t layer, bool shared);

// Throws Error listing every problem found.
MergePlan make_moe_plan(const MoeMergeConfig& config, const MoePlanSettings& settings);

// What the gate helper needs to compute prompt gates: the resolved base
// model folder, layers, hidden size, vocabulary, mode and each expert's
// prompts (shared experts after the routed ones), as JSON. Runs the same
// checks as make_moe_plan except the gate file's, so a bad config fails
// before any model is run.
nlohmann::json moe_gate_request(const MoeMergeConfig& config, const MoePlanSettings& settings);

}  // namespace llmerge
