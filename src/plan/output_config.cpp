// The output config.json (docs/mergekit-semantics.md §4.5, plus the fixes noted in
// docs/methods.md).
#include <algorithm>

#include <fmt/core.h>

#include "plan/planner_internal.h"

namespace llmerge {

namespace {

// Per-layer arrays that must follow the layer map (mergekit leaves them stale).
bool is_per_layer_key(std::string_view key) {
  return key == "layer_types" || key == "block_types" || key.ends_with("_per_layer");
}

nlohmann::json* at_dotted(nlohmann::json& j, std::string_view dotted) {
  nlohmann::json* node = &j;
  while (true) {
    auto dot = dotted.find('.');
    std::string key(dotted.substr(0, dot));
    if (!node->is_object() || !node->contains(key)) return nullptr;
    node = &(*node)[key];
    if (dot == std::string_view::npos) return node;
    dotted.remove_prefix(dot + 1);
  }
}

void rebuild_layer_arrays(nlohmann::json& section, const MergePlan& plan, const char* prefix) {
  if (!section.is_object()) return;
  for (auto& [key, value] : section.items()) {
    if (!value.is_array() || !is_per_layer_key(key)) continue;
    nlohmann::json rebuilt = nlohmann::json::array();
    bool ok = true;
    for (const auto& mapping : plan.layer_map) {
      const auto [model, layer] = mapping.sources.front();
      const nlohmann::json& cfg = plan.models[model].config();
      const nlohmann::json* src = prefix ? (cfg.contains(prefix) ? &cfg[prefix] : nullptr) : &cfg;
      if (!src || !src->contains(key) || !(*src)[key].is_array() ||
          layer >= static_cast<std::int64_t>((*src)[key].size())) {
        ok = false;
        break;
      }
      rebuilt.push_back((*src)[key][static_cast<std::size_t>(layer)]);
    }
    if (ok) value = std::move(rebuilt);
  }
}

}  // namespace

nlohmann::json build_output_config(const MergePlan& plan,
                                   std::optional<std::int64_t> rectified_vocab) {
  const Model& donor = plan.models[plan.donor];
  nlohmann::json cfg = donor.config().is_object() ? donor.config() : nlohmann::json::object();
  if (!donor.has_config()) return cfg;

  const auto& key = donor.layers().config_key;
  if (!key.empty()) {
    if (auto* node = at_dotted(cfg, key)) *node = plan.out_layers;
  } else if (plan.out_layers > 0) {
    cfg["num_hidden_layers"] = plan.out_layers;
  }
  rebuild_layer_arrays(cfg, plan, nullptr);
  if (cfg.contains("text_config")) rebuild_layer_arrays(cfg["text_config"], plan, "text_config");

  DType out = DType::F32;
  for (const auto& t : plan.tensors) {
    if (dtype_is_mergeable_float(t.dtype)) {
      out = t.dtype;
      break;
    }
  }
  cfg["torch_dtype"] = std::string(dtype_torch_name(out));
  if (cfg.contains("dtype")) cfg["dtype"] = std::string(dtype_torch_name(out));

  const bool has_lm_head = std::any_of(plan.tensors.begin(), plan.tensors.end(), [](const auto& t) {
    return t.name.find("lm_head") != std::string::npos;
  });
  // Written explicitly, so a tied donor config can never hide a merged lm_head (mergekit #632).
  cfg["tie_word_embeddings"] = !has_lm_head;
  if (cfg.contains("text_config") && cfg["text_config"].is_object() &&
      cfg["text_config"].contains("tie_word_embeddings")) {
    cfg["text_config"]["tie_word_embeddings"] = !has_lm_head;
  }
  update_config_quantization(plan, cfg);
  if (rectified_vocab) {
    if (auto* node = at_dotted(cfg, "vocab_size")) {
      *node = *rectified_vocab;
    } else if (auto* text = at_dotted(cfg, "text_config.vocab_size")) {
      *text = *rectified_vocab;
    } else {
      cfg["vocab_size"] = *rectified_vocab;
    }
  }
  return cfg;
}

std::size_t tokenizer_model_of(const MergePlan& plan) {
  const auto& source = plan.config.tokenizer_source;
  if (source && *source != "base") {
    for (std::size_t i = 0; i < plan.model_refs.size(); ++i) {
      if (plan.model_refs[i] == *source) return i;
    }
  }
  return plan.base_model ? *plan.base_model : plan.donor;
}

}  // namespace llmerge
