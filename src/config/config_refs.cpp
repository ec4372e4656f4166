#include "config/config_refs.h"

#include <fmt/format.h>

#include <cstddef>
#include <regex>
#include <set>
#include <stdexcept>
#include <utility>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "config/seed_format.h"
#include "core/error.h"

namespace llmerge {

namespace {

// Aliases let a few lines name a tree of 10^9 values ("billion laughs"):
// yaml-cpp shares the aliased nodes, so parsing is cheap, but walking them is
// not. A merge config has at most a few thousand values.
constexpr std::size_t k_values_max = 100000;

// An alias inside its own anchor (`&a [*a]`) makes yaml-cpp's tree a cycle,
// so the walks below also stop at a depth no config reaches.
constexpr int k_depth_max = 64;

void spend(std::size_t& budget, int depth, const std::string& file) {
  if (budget == 0)
    throw Error(
        ErrorKind::config,
        fmt::format("the YAML expands to more than {} values (aliases of aliases?)", k_values_max),
        ErrorContext{file, 0, 0, {}});
  if (depth > k_depth_max)
    throw Error(ErrorKind::config,
                fmt::format("the YAML nests more than {} levels deep (an alias inside its own "
                            "anchor?)",
                            k_depth_max),
                ErrorContext{file, 0, 0, {}});
  --budget;
}

bool is_yaml_bool(const std::string& s) {
  for (const char* b : {"true", "True", "TRUE", "false", "False", "FALSE", "yes", "no"})
    if (s == b) return true;
  return false;
}

struct ReferenceWalker {
  const std::string& file;
  std::size_t budget = k_values_max;
  std::set<std::string> seed_names;  // `models: [{name, path}]`: names stand for the paths
  std::vector<ConfigReferenceSite> found;

  void collect_seed_names(const YAML::Node& root) {
    if (!root.IsMap() || !root["models"] || !root["models"].IsSequence()) return;
    for (const auto& m : root["models"])
      if (m.IsMap() && m["name"] && m["name"].IsScalar() && m["path"])
        seed_names.insert(m["name"].Scalar());
  }

  static bool names_a_reference(const std::string& key, const std::string& path,
                                const std::string& value) {
    if (key == "base_model" && is_yaml_bool(value)) return false;  // the seed's base flag
    if (key == "model" || key == "base_model" || key == "tokenizer_source" || key == "path")
      return true;
    if (key == "source" && path.find("tokenizer") != std::string::npos) return true;
    // A one-line chat_template ending in .jinja is a file the planner reads.
    return key == "chat_template" && value.ends_with(".jinja") &&
           value.find('\n') == std::string::npos;
  }

  void walk(const YAML::Node& node, const std::string& path, const std::string& key,
            int depth = 0) {
    spend(budget, depth, file);
    if (node.IsScalar()) {
      const std::string& value = node.Scalar();
      if (!names_a_reference(key, path, value)) return;
      if (value.empty() || value == "base" || value == "union") return;
      if (key == "model" && seed_names.count(value) != 0) return;
      found.push_back({value, path, node.Mark().line + 1, node.Mark().column + 1});
    } else if (node.IsSequence()) {
      for (std::size_t i = 0; i < node.size(); ++i) {
        // `models: [a, b]` lists references directly.
        walk(node[i], path + "[" + std::to_string(i) + "]", key == "models" ? "model" : key,
             depth + 1);
      }
    } else if (node.IsMap()) {
      for (const auto& kv : node) {
        const std::string k = kv.first.IsScalar() ? kv.first.Scalar() : "";
        walk(kv.second, path.empty() ? k : path + "." + k, k, depth + 1);
      }
    }
  }
};

nlohmann::json to_json(const YAML::Node& node, std::size_t& budget, const std::string& file,
                       int depth = 0) {
  spend(budget, depth, file);
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Sequence: {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& item : node)
        a.push_back(to_json(item, budget, file, depth + 1));
      return a;
    }
    case YAML::NodeType::Map: {
      nlohmann::json o = nlohmann::json::object();
      for (const auto& kv : node)
        o[kv.first.Scalar()] = to_json(kv.second, budget, file, depth + 1);
      return o;
    }
    case YAML::NodeType::Scalar:
      break;
  }
  const std::string& s = node.Scalar();
  if (node.Tag() == "!") return s;  // quoted
  static const std::regex integer(R"(^[-+]?[0-9]+$)");
  static const std::regex real(R"(^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$)");
  if (s == "null" || s == "Null" || s == "NULL" || s == "~") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  // A number beyond 64 bits, or beyond double's range (9e999), stays the text
  // it is: JSON has no infinity, and the planner reports it at its location.
  try {
    if (std::regex_match(s, integer)) return std::stoll(s);
    if (std::regex_match(s, real)) return std::stod(s);
  } catch (const std::out_of_range&) {
  }
  return s;
}

}  // namespace

std::vector<ConfigReferenceSite> find_config_references(std::string_view yaml_text,
                                                        const std::string& file) {
  ReferenceWalker walker{file};
  for (const YAML::Node& root : load_yaml_documents(yaml_text, file)) {
    walker.seed_names.clear();
    walker.collect_seed_names(root);
    walker.walk(root, "", "");
  }
  return std::move(walker.found);
}

std::string config_yaml_to_json(std::string_view yaml_text, const std::string& file) {
  const std::vector<YAML::Node> documents = load_yaml_documents(yaml_text, file);
  if (documents.size() > 1)
    throw Error(ErrorKind::config,
                fmt::format("a recipe of {} documents; the form edits one config at a time",
                            documents.size()),
                ErrorContext{file, 0, 0, {}});
  std::size_t budget = k_values_max;
  return to_json(documents.front(), budget, file).dump();
}

}  // namespace llmerge
