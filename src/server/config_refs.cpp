#include "config_refs.h"

#include <algorithm>
#include <regex>
#include <set>
#include <sstream>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

namespace llmerge::server {

namespace {

// Bounds on what the form's YAML may expand to: aliases can make a small text
// name an exponentially large tree ("billion laughs"), and deep flow nesting
// recurses in the parser.
constexpr std::size_t k_json_nodes_max = 100000;
constexpr int k_flow_depth_max = 64;

class NullHandler : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// yaml-cpp 0.7 loops forever on a stray ',' in block context (the library's
// config parser has the same guard): a document takes at least one line.
void check_parses_in_bounded_time(const std::string& yaml) {
  int depth = 0;
  for (const char c : yaml) {
    depth += (c == '[' || c == '{') ? 1 : (c == ']' || c == '}') ? -1 : 0;
    if (depth > k_flow_depth_max) {
      throw Error(ErrorKind::config, "the YAML nests [...] or {...} too deeply");
    }
  }
  std::istringstream in(yaml);
  YAML::Parser parser(in);
  NullHandler handler;
  const auto max_documents =
      static_cast<std::size_t>(std::count(yaml.begin(), yaml.end(), '\n')) + 2;
  std::size_t count = 0;
  while (parser.HandleNextDocument(handler)) {
    if (++count > max_documents) {
      throw Error(ErrorKind::config,
                  "invalid YAML: the parser is stuck (a ',' outside [...] or {...}?)");
    }
  }
}

// "org/name" or "org/name@revision", as the Hugging Face hub spells repo ids.
bool is_hub_id(const std::string& s) {
  static const std::regex id(
      R"(^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*(@[A-Za-z0-9._/-]+)?$)");
  if (!std::regex_match(s, id)) return false;
  return s.find("..") == std::string::npos;
}

bool is_yaml_bool(const std::string& s) {
  for (const char* b : {"true", "True", "TRUE", "false", "False", "FALSE", "yes", "no"})
    if (s == b) return true;
  return false;
}

struct Walker {
  const Roots& roots;
  const std::string& file;
  std::vector<Problem> problems;
  std::size_t budget;
  std::set<std::string> seed_names;  // `models: [{name, path}]`: names stand for the paths

  void collect_seed_names(const YAML::Node& root) {
    if (!root.IsMap() || !root["models"] || !root["models"].IsSequence()) return;
    for (const auto& m : root["models"])
      if (m.IsMap() && m["name"] && m["name"].IsScalar() && m["path"])
        seed_names.insert(m["name"].Scalar());
  }

  void check(const std::string& ref, const YAML::Mark& mark, const std::string& path) {
    const auto why = refuse_reference(ref, roots);
    if (!why) return;
    Problem p;
    p.kind = ErrorKind::config;
    p.file = file;
    p.line = mark.line + 1;
    p.column = mark.column + 1;
    p.yaml_path = path;
    p.message = *why;
    p.hint = "pick a model under a --root folder or in the Hugging Face cache";
    p.values = {ref};
    problems.push_back(std::move(p));
  }

  void walk(const YAML::Node& node, const std::string& path, const std::string& key) {
    if (budget-- == 0) throw Error(ErrorKind::config, "the YAML expands to too many values");
    if (node.IsScalar()) {
      const std::string& value = node.Scalar();
      // The seed's format names folders under `path:` and marks its base with
      // `base_model: true`; a `chat_template:` ending in .jinja is a file the
      // library reads (plan/chat_templates.cpp).
      const bool seed_flag = key == "base_model" && is_yaml_bool(value);
      if (((key == "model" || key == "base_model" || key == "tokenizer_source" || key == "path" ||
            (key == "source" && path.find("tokenizer") != std::string::npos)) &&
           !seed_flag) ||
          (key == "chat_template" && value.ends_with(".jinja") &&
           value.find('\n') == std::string::npos)) {
        // A seed-format slice names its model by the `name:` of a models entry.
        if (key == "model" && seed_names.count(value) != 0) return;
        check(value, node.Mark(), path);
      }
    } else if (node.IsSequence()) {
      for (std::size_t i = 0; i < node.size(); ++i) {
        // `models: [a, b]` lists references directly.
        walk(node[i], path + "[" + std::to_string(i) + "]", key == "models" ? "model" : key);
      }
    } else if (node.IsMap()) {
      for (const auto& kv : node) {
        const std::string k = kv.first.IsScalar() ? kv.first.Scalar() : "";
        walk(kv.second, path.empty() ? k : path + "." + k, k);
      }
    }
  }
};

nlohmann::json to_json(const YAML::Node& node, std::size_t& budget) {
  if (budget-- == 0) throw Error(ErrorKind::config, "the YAML expands to too many values");
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Sequence: {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& item : node)
        a.push_back(to_json(item, budget));
      return a;
    }
    case YAML::NodeType::Map: {
      nlohmann::json o = nlohmann::json::object();
      for (const auto& kv : node)
        o[kv.first.Scalar()] = to_json(kv.second, budget);
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
  if (std::regex_match(s, integer)) {
    try {
      return std::stoll(s);
    } catch (const std::exception&) {
      return s;
    }
  }
  if (std::regex_match(s, real)) return std::stod(s);
  return s;
}

}  // namespace

std::optional<std::string> refuse_reference(const std::string& ref, const Roots& roots) {
  if (ref == "base" || ref == "union" || ref.empty()) return std::nullopt;
  std::vector<std::string> parts{ref};
  if (!roots.readable(ref) && ref.find('+') != std::string::npos) {
    parts = {ref.substr(0, ref.find('+')), ref.substr(ref.find('+') + 1)};
  }
  for (const auto& part : parts) {
    if (roots.readable(part)) continue;
    // A path that exists but resolves outside the roots is refused even when
    // it also looks like a hub id: the library would read the path.
    std::error_code ec;
    const std::filesystem::path p(part);
    const bool exists_outside = std::filesystem::exists(p.is_absolute() ? p : roots.base() / p, ec);
    if (!exists_outside && is_hub_id(part)) continue;
    return exists_outside ? "model '" + part + "' is outside the server's roots"
                          : "model '" + part + "' is not a folder under the server's roots";
  }
  return std::nullopt;
}

std::vector<Problem> check_config_references(const std::string& yaml, const std::string& name,
                                             const Roots& roots) {
  check_parses_in_bounded_time(yaml);
  Walker w{roots, name, {}, k_json_nodes_max, {}};
  const YAML::Node root = YAML::Load(yaml);
  w.collect_seed_names(root);
  w.walk(root, "", "");
  return std::move(w.problems);
}

std::string yaml_to_json(const std::string& yaml) {
  try {
    check_parses_in_bounded_time(yaml);
    std::size_t budget = k_json_nodes_max;
    return to_json(YAML::Load(yaml), budget).dump();
  } catch (const YAML::Exception& e) {
    throw Error(ErrorKind::config, e.msg,
                ErrorContext{"<web>", e.mark.line + 1, e.mark.column + 1});
  }
}

}  // namespace llmerge::server
