// `llmerge moe`: a mixture-of-experts model from dense models, with
// mergekit-moe's YAML schema (docs/moe.md).
//
//   llmerge::MoeConfig config = llmerge::MoeConfig::load("moe.yaml");
//   llmerge::Plan plan = llmerge::plan_moe(config);   // checks everything, writes nothing
//   llmerge::run(plan, "moe-out/");                   // the ordinary run(): atomic, streaming
//
// The output (Mixtral, Qwen2-MoE or Qwen3-MoE) stores each expert's tensors
// under its own name, which transformers 5.x and mlx-lm both load. Routers
// for gate_mode random / uniform_random are computed in C++ from
// RunOptions::random_seed (identical bytes on every run). The prompt modes
// (cheap_embed, hidden, hidden_avg, hidden_last) need the base model run on
// the prompts: moe_gate_request() says what to compute, the Python package
// (llmerge.moe_gates) computes it into a gate file, and PlanOptions::gates
// hands that file to plan_moe().
#pragma once

#include <memory>
#include <string>

#include "llmerge/llmerge.h"

namespace llmerge {

namespace detail {
struct MoeConfigData;
}

class MoeConfig {
 public:
  // Reads and parses a mergekit-moe config; schema errors carry file:line:col.
  static MoeConfig load(const std::string& path);
  static MoeConfig parse(const std::string& yaml, const std::string& name = "<config>");

  const std::string& text() const;
  const std::string& name() const;
  // "hidden", "cheap_embed", "random", ... (mergekit's default is hidden).
  std::string gate_mode() const;
  // True unless gate_mode is random or uniform_random.
  bool needs_prompt_gates() const;

 private:
  explicit MoeConfig(std::shared_ptr<const detail::MoeConfigData> data) : data_(std::move(data)) {}
  std::shared_ptr<const detail::MoeConfigData> data_;
  friend struct detail::MoeConfigData;
};

// Checks the config against the models' headers and plans every output
// tensor. Uses options.allow_all_same and options.gates (required for a
// prompt gate_mode), and the usual dtype, shard and quantization options.
// Throws Error with every problem found.
Plan plan_moe(const MoeConfig& config, const PlanOptions& options = {},
              const CancelToken& cancel = CancelToken());

// The JSON the gate helper reads: gate_mode, base_model (the resolved
// folder), num_layers, hidden_size, vocab_size, embed_tensor, the gate file's
// tensor names, and experts (routed, then shared) with their prompts. Makes
// the same checks as plan_moe, except for the gate file.
std::string moe_gate_request(const MoeConfig& config, const PlanOptions& options = {});

// The gate file's tensor for a layer: "layers.L.router" [experts, hidden], or
// "layers.L.shared_router" [1, hidden] with a shared expert.
std::string moe_gate_tensor(std::int64_t layer, bool shared = false);

}  // namespace llmerge
