// The seed project's config format ("MergeKit for MLX", the prototype llmerge
// began from; docs/recipes.md §1), read as it is.
//
//   models:                               # a registry, not a merge list
//     - {name: qwq, path: Qwen/QwQ-32B, base_model: true}
//     - {name: bielik, path: speakleash/Bielik-11B-v2.3-Instruct}
//   slices:
//     - sources: [{model: qwq, layer_range: [0, 40]}, {model: bielik, layer_range: [0, 40]}]
//       merge_method: slerp               # per slice
//       parameters: {t: [...]}
//     - sources: [{model: qwq, layer_range: [40, 64]}]   # one source, no method: passthrough
//   tokenizer: {source: qwq, preserve_embeddings: true}
//   advanced: {low_memory: false}
//   method: slerp                         # used when there are no slices
//
// translate_seed_format() rewrites such a YAML tree, in place, into mergekit's
// schema with llmerge's per-slice `merge_method` extension. Nodes are moved,
// not copied, so every value keeps its line and column for messages.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "config/config.h"

namespace llmerge {

// Where `root` first shows the seed's format (a model entry with `name` or
// `path`, a top-level `advanced` or `method`, tokenizer.preserve_embeddings);
// nullopt for a mergekit config.
std::optional<SourceLocation> seed_format_marker(const YAML::Node& root);

// Rewrites the seed's format into mergekit's. Appends to `notes` one remark
// per option that means nothing here. Throws Error(config) with a location
// for what cannot be translated (two base models, a model entry without path).
void translate_seed_format(YAML::Node& root, const std::string& file,
                           std::vector<std::string>& notes);

}  // namespace llmerge

namespace llmerge {
// The non-empty YAML documents of a config text, after the size, control-byte
// and syntax checks of parse_config (config.cpp). Config-stage internal.
std::vector<YAML::Node> load_yaml_documents(std::string_view yaml_text, const std::string& file);
// Parses one document node (translating the seed's format first).
MergeConfig parse_yaml_document(YAML::Node root, const std::string& file, std::string text);
}  // namespace llmerge
