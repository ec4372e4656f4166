#include "analysis/module_kind.h"

#include <array>
#include <vector>

namespace llmerge {

namespace {

std::vector<std::string_view> components(std::string_view name) {
  std::vector<std::string_view> parts;
  while (!name.empty()) {
    const std::size_t dot = name.find('.');
    parts.push_back(name.substr(0, dot));
    if (dot == std::string_view::npos) break;
    name.remove_prefix(dot + 1);
  }
  return parts;
}

template <std::size_t N>
bool any_of(std::string_view part, const std::array<std::string_view, N>& words) {
  for (std::string_view w : words)
    if (part == w) return true;
  return false;
}

}  // namespace

ModuleKind module_kind(std::string_view tensor_name) {
  static constexpr std::array<std::string_view, 6> k_embedding = {
      "embed_tokens", "wte", "wpe", "lm_head", "embed_out", "word_embeddings"};
  static constexpr std::array<std::string_view, 8> k_attention = {
      "self_attn", "attn", "attention", "q_proj", "k_proj", "v_proj", "o_proj", "qkv"};
  static constexpr std::array<std::string_view, 8> k_mlp = {
      "mlp", "feed_forward", "gate_proj", "up_proj", "down_proj", "fc1", "fc2", "experts"};
  const auto parts = components(tensor_name);
  // Norms first: "self_attn.q_norm" and "post_attention_layernorm" are norms.
  for (std::string_view p : parts)
    if (p.find("norm") != std::string_view::npos || p.starts_with("ln_")) return ModuleKind::norm;
  for (std::string_view p : parts)
    if (any_of(p, k_embedding)) return ModuleKind::embedding;
  for (std::string_view p : parts)
    if (any_of(p, k_attention)) return ModuleKind::attention;
  for (std::string_view p : parts)
    if (any_of(p, k_mlp)) return ModuleKind::mlp;
  return ModuleKind::other;
}

std::string_view module_kind_name(ModuleKind kind) {
  switch (kind) {
    case ModuleKind::embedding:
      return "embedding";
    case ModuleKind::attention:
      return "attention";
    case ModuleKind::mlp:
      return "mlp";
    case ModuleKind::norm:
      return "norm";
    case ModuleKind::other:
      return "other";
  }
  return "other";
}

}  // namespace llmerge
