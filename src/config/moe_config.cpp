// YAML text -> MoeMergeConfig (mergekit/moe/config.py). The text guards are those
// of config.cpp: a size cap, printable text only, a bounded document count
// (yaml-cpp 0.7 loops on a stray ','), and a cap on visited nodes (aliases).
#include "config/moe_config.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

#include "config/config.h"
#include "config/seed_format.h"
#include "core/dtype.h"
#include "core/error.h"

namespace llmerge {

namespace {

constexpr std::size_t k_node_visits_max = 1'000'000;  // as config.cpp

const std::vector<std::string> k_top_keys = {"base_model",        "gate_mode",    "dtype",
                                             "experts_per_token", "architecture", "experts",
                                             "shared_experts"};
const std::vector<std::string> k_expert_keys = {
    "source_model", "positive_prompts", "negative_prompts", "noise_scale", "residual_scale"};
const std::vector<std::string> k_gate_modes = {"hidden",      "hidden_avg", "hidden_last",
                                               "cheap_embed", "random",     "uniform_random"};

SourceLocation location_of(const YAML::Node& n, SourceLocation fallback) {
  const YAML::Mark m = n.Mark();
  if (!n.IsDefined() || n.IsNull() || m.is_null() || m.line < 0) return fallback;
  return {m.line + 1, m.column + 1};
}

class MoeParser {
 public:
  explicit MoeParser(MoeMergeConfig& config) : c_(config) {}

  [[noreturn]] void fail(SourceLocation at, const std::string& message) const {
    throw Error(ErrorKind::config, message, ErrorContext{c_.file, at.line, at.column, {}});
  }

  void visit(SourceLocation at) {
    if (++visits_ > k_node_visits_max)
      fail(at, fmt::format("config is too large: more than {} YAML nodes once aliases are expanded",
                           k_node_visits_max));
  }

  struct Entry {
    std::string key;
    SourceLocation key_at;
    SourceLocation at;  // of the value (the key's when the value is null)
    YAML::Node value;
  };

  std::vector<Entry> entries(const YAML::Node& map, SourceLocation at, const std::string& path,
                             const std::vector<std::string>& allowed) {
    visit(at);
    if (!map.IsMap()) fail(at, fmt::format("{}: expected a map of keys", path));
    std::vector<Entry> out;
    std::set<std::string> seen;
    for (const auto& kv : map) {
      const SourceLocation key_at = location_of(kv.first, at);
      visit(key_at);
      if (!kv.first.IsScalar()) fail(key_at, fmt::format("{}: keys must be strings", path));
      const std::string& key = kv.first.Scalar();
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        std::string message = fmt::format("unknown key '{}' in {}", key, path);
        if (auto m = closest_match(key, allowed))
          message += fmt::format("; did you mean '{}'?", *m);
        else
          message += fmt::format("; expected one of: {}", fmt::join(allowed, ", "));
        fail(key_at, message);
      }
      if (!seen.insert(key).second)
        fail(key_at, fmt::format("duplicate key '{}' in {}", key, path));
      const std::string full = path == "config" ? key : path + "." + key;
      c_.yaml_paths.try_emplace({key_at.line, key_at.column}, full);
      out.push_back({key, key_at, location_of(kv.second, key_at), kv.second});
    }
    return out;
  }

  std::string string(const Entry& e, const std::string& path) {
    visit(e.at);
    if (!e.value.IsScalar() || e.value.IsNull()) fail(e.at, path + ": expected a string");
    return e.value.Scalar();
  }

  std::string model_reference(const Entry& e, const std::string& path) {
    std::string ref = string(e, path);
    if (ref.empty()) fail(e.at, path + ": the model reference is empty");
    if (ref.find('+') != std::string::npos)
      fail(e.at, fmt::format("{}: LoRA references ('+') are not supported in moe configs", path));
    return ref;
  }

  double number(const Entry& e, const std::string& path) {
    const std::string s = string(e, path);
    double v = 0;
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || ptr != s.data() + s.size() || !std::isfinite(v))
      fail(e.at, fmt::format("{}: expected a finite number; found '{}'", path, s));
    return v;
  }

  std::vector<std::string> prompts(const Entry& e, const std::string& path) {
    visit(e.at);
    if (e.value.IsNull()) return {};
    if (!e.value.IsSequence()) fail(e.at, path + ": expected a list of prompt strings");
    std::vector<std::string> out;
    std::size_t i = 0;
    for (const YAML::Node& item : e.value) {
      const SourceLocation at = location_of(item, e.at);
      visit(at);
      if (!item.IsScalar()) fail(at, fmt::format("{}[{}]: expected a prompt string", path, i));
      out.push_back(item.Scalar());
      ++i;
    }
    return out;
  }

  MoeExpert expert(const YAML::Node& n, SourceLocation at, const std::string& path) {
    MoeExpert x;
    x.location = at;
    bool has_source = false;
    for (const Entry& e : entries(n, at, path, k_expert_keys)) {
      const std::string p = path + "." + e.key;
      if (e.key == "source_model") {
        x.source_model = model_reference(e, p);
        x.source_model_location = e.at;
        has_source = true;
      } else if (e.key == "positive_prompts") {
        x.positive_prompts = prompts(e, p);
        x.positive_prompts_location = e.at;
      } else if (e.key == "negative_prompts") {
        x.negative_prompts = prompts(e, p);
      } else if (e.value.IsNull()) {
        continue;  // noise_scale: / residual_scale: unset, as pydantic's None
      } else if (e.key == "noise_scale") {
        x.noise_scale = number(e, p);
        x.noise_scale_location = e.at;
      } else {
        x.residual_scale = number(e, p);
        x.residual_scale_location = e.at;
      }
    }
    if (!has_source) fail(at, path + ": missing required key 'source_model'");
    return x;
  }

  std::vector<MoeExpert> expert_list(const Entry& e, const std::string& path, bool required) {
    visit(e.at);
    if (e.value.IsNull() && !required) return {};
    if (!e.value.IsSequence() || e.value.size() == 0)
      fail(e.at, fmt::format("{}: expected a non-empty list of {{source_model, ...}}", path));
    std::vector<MoeExpert> out;
    std::size_t i = 0;
    for (const YAML::Node& item : e.value) {
      out.push_back(expert(item, location_of(item, e.at), fmt::format("{}[{}]", path, i)));
      ++i;
    }
    return out;
  }

  void document(const YAML::Node& root) {
    const SourceLocation root_at = location_of(root, {1, 1});
    bool has_base = false;
    bool has_experts = false;
    for (const Entry& e : entries(root, root_at, "config", k_top_keys)) {
      if (e.key == "base_model") {
        c_.base_model = model_reference(e, e.key);
        c_.base_model_location = e.at;
        has_base = true;
      } else if (e.key == "gate_mode") {
        const std::string mode = string(e, e.key);
        const auto it = std::find(k_gate_modes.begin(), k_gate_modes.end(), mode);
        if (it == k_gate_modes.end()) {
          std::string message = fmt::format("gate_mode: unknown mode '{}'", mode);
          if (auto m = closest_match(mode, k_gate_modes))
            message += fmt::format("; did you mean '{}'?", *m);
          else
            message += fmt::format("; expected one of: {}", fmt::join(k_gate_modes, ", "));
          fail(e.at, message);
        }
        c_.gate_mode = static_cast<MoeGateMode>(it - k_gate_modes.begin());
        c_.gate_mode_location = e.at;
      } else if (e.key == "dtype") {
        if (e.value.IsNull()) continue;
        const std::string name = string(e, e.key);
        if (!dtype_from_torch_name(name))
          fail(e.at, fmt::format("dtype: unknown dtype '{}'; expected bfloat16, float16 or "
                                 "float32",
                                 name));
        c_.dtype = name;
        c_.dtype_location = e.at;
      } else if (e.key == "experts_per_token") {
        const double v = number(e, e.key);
        if (v != std::floor(v) || std::abs(v) > 1e9)
          fail(e.at, fmt::format("experts_per_token: expected an integer; found {}", v));
        c_.experts_per_token = static_cast<std::int64_t>(v);
        c_.experts_per_token_location = e.at;
      } else if (e.key == "architecture") {
        if (e.value.IsNull()) continue;
        c_.architecture = string(e, e.key);
        c_.architecture_location = e.at;
      } else if (e.key == "experts") {
        c_.experts = expert_list(e, e.key, true);
        c_.experts_location = e.at;
        has_experts = true;
      } else {  // shared_experts
        c_.shared_experts = expert_list(e, e.key, false);
        c_.shared_experts_location = e.at;
      }
    }
    if (!has_base) fail(root_at, "missing required key 'base_model'");
    if (!has_experts) fail(root_at, "missing required key 'experts'");
  }

 private:
  MoeMergeConfig& c_;
  std::size_t visits_ = 0;
};

}  // namespace

const char* moe_gate_mode_name(MoeGateMode mode) {
  return k_gate_modes[static_cast<std::size_t>(mode)].c_str();
}

MoeMergeConfig parse_moe_config(std::string_view yaml_text, const std::string& file) {
  // The same guards as a merge config: size cap, control bytes, yaml-cpp's
  // stray-comma loop (config/config.cpp).
  const std::vector<YAML::Node> documents = load_yaml_documents(yaml_text, file);
  if (documents.size() > 1)
    throw Error(ErrorKind::config, "several YAML documents in one moe config; write one per file",
                ErrorContext{file, 0, 0, {}});
  const YAML::Node* root = &documents.front();
  const std::string text(yaml_text);
  MoeMergeConfig config;
  config.file = file;
  config.text = text;
  MoeParser(config).document(*root);
  return config;
}

MoeMergeConfig load_moe_config(const std::string& path) {
  return parse_moe_config(read_config_file(path), path);
}

}  // namespace llmerge
