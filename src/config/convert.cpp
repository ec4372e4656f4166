// `llmerge convert-config`: any config llmerge reads, in mergekit's own schema
// (docs/recipes.md §4). The seed's format is translated; per-slice methods,
// which mergekit cannot express in one config, become a mergekit-multi
// recipe: one stage per merged slice, then a passthrough stage that stacks
// the stages' layers with the passthrough slices. Embeddings come from the
// first slice and the rest from the last in both, at t = 0, and every stage
// keeps the config's dtypes, so the recipe's output equals the original's.
#include <fmt/core.h>
#include <yaml-cpp/yaml.h>

#include "config/config.h"
#include "config/seed_format.h"
#include "core/error.h"

namespace llmerge {

namespace {

// A copy that shares no nodes (the translation shares them to keep
// locations), so the emitter writes no anchors and aliases.
YAML::Node plain_copy(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Scalar: {
      YAML::Node out(n.Scalar());
      if (n.Tag() == "!") out.SetTag("!");  // stays a quoted string
      return out;
    }
    case YAML::NodeType::Sequence: {
      YAML::Node out(YAML::NodeType::Sequence);
      for (const auto& item : n)
        out.push_back(plain_copy(item));
      out.SetStyle(n.Style());
      return out;
    }
    case YAML::NodeType::Map: {
      YAML::Node out(YAML::NodeType::Map);
      for (const auto& kv : n)
        out[plain_copy(kv.first)] = plain_copy(kv.second);
      out.SetStyle(n.Style());
      return out;
    }
    default:
      return YAML::Node(YAML::NodeType::Null);
  }
}

// The top-level keys every stage keeps.
YAML::Node stage_head(const YAML::Node& doc) {
  YAML::Node out(YAML::NodeType::Map);
  for (const char* key : {"base_model", "dtype", "out_dtype"})
    if (doc[key]) out[key] = plain_copy(doc[key]);
  return out;
}

std::string emit(const YAML::Node& n) {
  YAML::Emitter out;
  out << n;
  return std::string(out.c_str()) + "\n";
}

// One document -> one or more mergekit documents.
std::vector<YAML::Node> convert_document(YAML::Node root, const std::string& file) {
  MergeConfig parsed = parse_yaml_document(YAML::Clone(root), file, "");
  YAML::Node doc = plain_copy(root);
  if (parsed.dialect == MergeConfig::Dialect::seed) {
    std::vector<std::string> notes;
    translate_seed_format(doc, file, notes);
    doc = plain_copy(doc);
  }
  if (!parsed.per_slice_methods()) return {doc};
  // One method everywhere: it moves to the top level.
  bool one = true;
  for (std::size_t i = 0; i < parsed.slices.size(); ++i)
    one &= parsed.slice_method(i) == parsed.slice_method(0);
  if (one) {
    YAML::Node slices = doc["slices"];
    for (std::size_t i = 0; i < slices.size(); ++i) {
      YAML::Node s = slices[i];
      s.remove("merge_method");
    }
    doc["merge_method"] = parsed.slice_method(0);
    return {doc};
  }
  const std::string prefix = parsed.name ? *parsed.name + "-" : "";
  std::vector<YAML::Node> out;
  YAML::Node last = stage_head(doc);
  if (doc["name"]) last["name"] = plain_copy(doc["name"]);
  last["merge_method"] = "passthrough";
  YAML::Node stacked(YAML::NodeType::Sequence);
  for (std::size_t i = 0; i < parsed.slices.size(); ++i) {
    YAML::Node slice = plain_copy(doc["slices"][i]);
    slice.remove("merge_method");
    const std::string& method = parsed.slice_method(i);
    if (method == "passthrough") {
      stacked.push_back(slice);
      continue;
    }
    const auto& range = parsed.slices[i].sources.front().layer_range;
    if (!range)
      throw Error(
          ErrorKind::config,
          fmt::format("slices[{}]: a source without layer_range cannot be converted", i),
          ErrorContext{file, parsed.slices[i].location.line, parsed.slices[i].location.column, {}});
    const std::string name = fmt::format("{}slice-{}", prefix, i);
    YAML::Node stage = stage_head(doc);
    stage["name"] = name;
    stage["merge_method"] = method;
    if (doc["parameters"]) stage["parameters"] = plain_copy(doc["parameters"]);
    YAML::Node one_slice(YAML::NodeType::Sequence);
    one_slice.push_back(slice);
    stage["slices"] = one_slice;
    out.push_back(stage);

    YAML::Node source(YAML::NodeType::Map);
    source["model"] = name;
    YAML::Node layers(YAML::NodeType::Sequence);
    layers.push_back(0);
    layers.push_back(range->second - range->first);
    layers.SetStyle(YAML::EmitterStyle::Flow);
    source["layer_range"] = layers;
    YAML::Node sources(YAML::NodeType::Sequence);
    sources.push_back(source);
    YAML::Node ref(YAML::NodeType::Map);
    ref["sources"] = sources;
    stacked.push_back(ref);
  }
  last["slices"] = stacked;
  for (const char* key : {"tokenizer_source", "tokenizer", "chat_template"})
    if (doc[key]) last[key] = plain_copy(doc[key]);
  out.push_back(last);
  return out;
}

}  // namespace

std::string convert_to_mergekit(std::string_view yaml_text, const std::string& file) {
  std::string text = fmt::format("# {} in mergekit's schema (llmerge convert-config)\n", file);
  bool first = true;
  for (const YAML::Node& root : load_yaml_documents(yaml_text, file)) {
    std::vector<YAML::Node> docs;
    try {
      docs = convert_document(root, file);
    } catch (const YAML::Exception& e) {
      throw Error(ErrorKind::config, "cannot convert this config: " + e.msg,
                  ErrorContext{file, 0, 0, {}});
    }
    for (const YAML::Node& doc : docs) {
      if (!first) text += "---\n";
      first = false;
      text += emit(doc);
    }
  }
  return text;
}

}  // namespace llmerge
