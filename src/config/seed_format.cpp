// The seed's format -> mergekit's schema (seed_format.h; docs/recipes.md §1).
#include "config/seed_format.h"

#include <map>
#include <utility>

#include <fmt/core.h>

#include "core/error.h"

namespace llmerge {

namespace {

SourceLocation mark_of(const YAML::Node& n, SourceLocation fallback = {1, 1}) {
  if (!n.IsDefined() || n.Mark().is_null() || n.Mark().line < 0) return fallback;
  return {n.Mark().line + 1, n.Mark().column + 1};
}

[[noreturn]] void fail(const std::string& file, SourceLocation at, const std::string& message) {
  throw Error(ErrorKind::config, message, ErrorContext{file, at.line, at.column, {}});
}

// The key node of `key` in a map (for its location); an undefined node if absent.
YAML::Node key_node(const YAML::Node& map, const std::string& key) {
  if (!map.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  for (const auto& kv : map)
    if (kv.first.IsScalar() && kv.first.Scalar() == key) return kv.first;
  return YAML::Node(YAML::NodeType::Undefined);
}

bool has(const YAML::Node& map, const char* key) {
  return map && map.IsMap() && map[key];
}

bool truthy(const YAML::Node& n) {
  if (!n || !n.IsScalar()) return false;
  const std::string& s = n.Scalar();
  return s == "true" || s == "True" || s == "TRUE" || s == "yes" || s == "Yes" || s == "on";
}

}  // namespace

std::optional<SourceLocation> seed_format_marker(const YAML::Node& root) {
  if (!root.IsMap()) return std::nullopt;
  // The earliest of the seed's own keys in the file.
  std::optional<SourceLocation> first;
  const auto consider = [&](const YAML::Node& key) {
    const SourceLocation at = mark_of(key);
    if (!first || std::pair(at.line, at.column) < std::pair(first->line, first->column)) first = at;
  };
  for (const char* key : {"advanced", "method"}) {
    if (has(root, key)) consider(key_node(root, key));
  }
  const YAML::Node models = root["models"];
  if (models && models.IsSequence()) {
    for (const YAML::Node& m : models) {
      for (const char* key : {"path", "name"}) {
        if (has(m, key)) consider(key_node(m, key));
      }
    }
  }
  const YAML::Node tokenizer = root["tokenizer"];
  if (has(tokenizer, "preserve_embeddings")) consider(key_node(tokenizer, "preserve_embeddings"));
  return first;
}

void translate_seed_format(YAML::Node& root, const std::string& file,
                           std::vector<std::string>& notes) {
  // The registry: name -> the node of its path (shared, so locations stay).
  std::map<std::string, YAML::Node> paths;
  std::optional<YAML::Node> base;
  std::vector<YAML::Node> order;
  if (root["models"]) {
    const YAML::Node models = root["models"];
    if (!models.IsSequence())
      fail(file, mark_of(models), "models: expected a list of {name, path, base_model}");
    for (const YAML::Node& m : models) {
      if (!m.IsMap())
        fail(file, mark_of(m), "models: each entry is a map {name, path, base_model}");
      for (const auto& kv : m) {
        const std::string k = kv.first.Scalar();
        if (k != "name" && k != "path" && k != "base_model" && k != "model")
          fail(file, mark_of(kv.first),
               fmt::format("models: unknown key '{}' in the seed's model entry; expected name, "
                           "path and base_model",
                           k));
      }
      YAML::Node path = m["path"] ? m["path"] : m["model"];
      if (!path || !path.IsScalar())
        fail(file, mark_of(m), "models: a seed model entry needs `path:` (a folder or org/name)");
      if (m["name"]) {
        if (!m["name"].IsScalar()) fail(file, mark_of(m["name"]), "models: name is a string");
        if (!paths.emplace(m["name"].Scalar(), path).second)
          fail(file, mark_of(m["name"]),
               fmt::format("models: the name '{}' is given twice", m["name"].Scalar()));
      }
      if (truthy(m["base_model"])) {
        if (base) fail(file, mark_of(m["base_model"]), "models: only one model can be the base");
        base = path;
      }
      order.push_back(path);
    }
    root.remove("models");
  }
  const auto resolve = [&](YAML::Node holder, const char* key) {
    YAML::Node v = holder[key];
    if (!v || !v.IsScalar()) return;
    auto it = paths.find(v.Scalar());
    if (it != paths.end()) holder[key] = it->second;
  };

  if (base && !root["base_model"]) root["base_model"] = *base;
  if (root["method"]) {
    if (root["merge_method"])
      fail(file, mark_of(key_node(root, "method")),
           "method and merge_method are the same setting; give one");
    root["merge_method"] = root["method"];
    root.remove("method");
  }
  if (root["slices"] && root["slices"].IsSequence()) {
    for (YAML::Node slice : root["slices"]) {
      if (!slice.IsMap()) continue;  // the parser reports it
      YAML::Node sources = slice["sources"];
      if (sources && sources.IsSequence()) {
        for (YAML::Node src : sources)
          if (src.IsMap()) resolve(src, "model");
        // The seed: a slice of one source is passthrough, whatever `method` says.
        if (sources.size() == 1 && !slice["merge_method"])
          slice["merge_method"] = YAML::Node("passthrough");
      }
      if (slice.IsMap() && slice["base_model"]) resolve(slice, "base_model");
    }
  } else if (!order.empty()) {
    // No slices: the seed merges the registry's models whole, with `method`.
    YAML::Node list(YAML::NodeType::Sequence);
    for (const YAML::Node& path : order) {
      YAML::Node entry(YAML::NodeType::Map);
      entry["model"] = path;
      list.push_back(entry);
    }
    root["models"] = list;
  }
  if (root["tokenizer"] && root["tokenizer"].IsMap()) {
    YAML::Node tokenizer = root["tokenizer"];
    if (tokenizer["preserve_embeddings"]) {
      notes.push_back(
          "tokenizer.preserve_embeddings (seed format) means nothing here: embeddings are "
          "merged as mergekit merges them, by the first slice's method");
      tokenizer.remove("preserve_embeddings");
    }
    resolve(tokenizer, "source");
  }
  if (root["advanced"]) {
    const YAML::Node advanced = root["advanced"];
    if (advanced.IsMap()) {
      for (const auto& kv : advanced) {
        const std::string k = kv.first.Scalar();
        if (k == "low_memory" || k == "offload_to_cpu") {
          notes.push_back(fmt::format(
              "advanced.{} (seed format) means nothing here: memory is always bounded, every "
              "tensor is streamed in chunks (`llmerge plan` shows the estimate)",
              k));
        } else if (k == "batch_size") {
          notes.push_back(
              "advanced.batch_size (seed format) means nothing here: the chunk size is "
              "--chunk-elements");
        } else if (k == "dtype") {
          if (!root["dtype"]) root["dtype"] = kv.second;
        } else {
          fail(file, mark_of(kv.first),
               fmt::format("advanced: unknown key '{}'; the seed's format has low_memory, dtype, "
                           "offload_to_cpu and batch_size",
                           k));
        }
      }
    } else if (!advanced.IsNull()) {
      fail(file, mark_of(advanced), "advanced: expected a map such as {low_memory: false}");
    }
    root.remove("advanced");
  }
  // What the seed did differently and a user of it would otherwise not know.
  notes.push_back(
      "seed format: embeddings come from the first slice and the final norm and lm_head from "
      "the last, merged by that slice's method, as mergekit does (the seed always copied the "
      "base model's)");
}

}  // namespace llmerge
