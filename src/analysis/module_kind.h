// Which part of a transformer a tensor belongs to, from its name: the rows of
// compare's module summary (docs/compare.md, "Module kinds").
#pragma once

#include <string_view>

namespace llmerge {

enum class ModuleKind { embedding, attention, mlp, norm, other };
inline constexpr int k_module_kinds = 5;

// "model.layers.3.self_attn.q_proj.weight" -> attention. Names from llama,
// qwen, mistral, gpt2, gpt-neox, phi and mixtral checkpoints are covered; the
// rest is `other`.
ModuleKind module_kind(std::string_view tensor_name);
std::string_view module_kind_name(ModuleKind kind);

}  // namespace llmerge
