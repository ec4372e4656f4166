#include "io/lora.h"

#include <cmath>
#include <regex>

#include <fmt/core.h>

#include "core/error.h"
#include "io/files.h"

namespace llmerge {

namespace {

// Pattern keys of rank_pattern / alpha_pattern are regular expressions; real
// ones are module names. The cap keeps a hostile one from costing much.
constexpr std::size_t k_pattern_length_max = 1000;

[[noreturn]] void fail(ErrorKind kind, const std::string& adapter, const std::string& what) {
  throw Error(kind, fmt::format("adapter '{}': {}", adapter, what));
}

bool ends_with(std::string_view s, std::string_view tail) {
  return s.ends_with(tail);
}

std::string strip(std::string_view s, std::string_view tail) {
  return std::string(s.substr(0, s.size() - tail.size()));
}

const nlohmann::json* member(const nlohmann::json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

bool flag(const nlohmann::json& cfg, const char* key, const std::string& name) {
  const auto* v = member(cfg, key);
  if (!v) return false;
  if (!v->is_boolean()) fail(ErrorKind::format, name, fmt::format("'{}' is not true/false", key));
  return v->get<bool>();
}

double number(const nlohmann::json& v, const std::string& what, const std::string& name) {
  if (!v.is_number()) fail(ErrorKind::format, name, fmt::format("{} is not a number", what));
  const double x = v.get<double>();
  if (!std::isfinite(x)) fail(ErrorKind::format, name, fmt::format("{} is not finite", what));
  return x;
}

std::int64_t rank_value(const nlohmann::json& v, const std::string& what, const std::string& name) {
  if (!v.is_number_integer() || v.get<std::int64_t>() <= 0 || v.get<std::int64_t>() > 1 << 20)
    fail(ErrorKind::format, name, fmt::format("{} must be a positive integer", what));
  return v.get<std::int64_t>();
}

// PEFT's get_pattern_key: the first key k (in file order) for which the
// module name matches `(.*\.)?(k)$` from its start.
struct Pattern {
  std::string key;
  std::regex re;
  nlohmann::json value;
};

std::vector<Pattern> patterns(const nlohmann::json& cfg, const char* key, const std::string& name) {
  std::vector<Pattern> out;
  const auto* obj = member(cfg, key);
  if (!obj) return out;
  if (!obj->is_object()) fail(ErrorKind::format, name, fmt::format("'{}' is not an object", key));
  for (const auto& [k, v] : obj->items()) {
    if (k.empty() || k.size() > k_pattern_length_max)
      fail(ErrorKind::format, name, fmt::format("a '{}' key is empty or too long", key));
    try {
      out.push_back({k, std::regex("(.*\\.)?(" + k + ")", std::regex::ECMAScript), v});
    } catch (const std::regex_error&) {
      fail(ErrorKind::format, name,
           fmt::format("'{}' key '{}' is not a regular expression", key, k));
    }
  }
  return out;
}

const nlohmann::json* match(const std::vector<Pattern>& list, const std::string& module) {
  for (const auto& p : list) {
    if (std::regex_match(module, p.re)) return &p.value;
  }
  return nullptr;
}

std::filesystem::path weights_file(const std::filesystem::path& dir, std::string_view name,
                                   const std::string& display) {
  auto found = find_side_file(dir, name);
  if (!found) {
    const bool bin = find_side_file(dir, "adapter_model.bin").has_value();
    fail(ErrorKind::io, display,
         bin ? std::string("has adapter_model.bin (a pickle) but no adapter_model.safetensors; "
                           "llmerge reads only safetensors: save the adapter with "
                           "save_pretrained(..., safe_serialization=True)")
             : fmt::format("{} not found in {}", name, dir.string()));
  }
  return *found;
}

}  // namespace

ModelAndAdapter split_adapter_reference(std::string_view reference) {
  const auto plus = reference.find('+');
  if (plus == std::string_view::npos) return {std::string(reference), {}};
  return {std::string(reference.substr(0, plus)), std::string(reference.substr(plus + 1))};
}

std::uint64_t lora_factor_bytes(const LoraModule& m) {
  return static_cast<std::uint64_t>((m.rows + m.cols) * m.rank) * 4;
}

Adapter Adapter::open(const std::filesystem::path& path, std::string display_name) {
  Adapter a;
  a.path_ = path;
  a.display_name_ = display_name.empty() ? path.string() : std::move(display_name);
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec))
    fail(ErrorKind::io, a.display_name_,
         "is not a folder (an adapter is a folder with "
         "adapter_config.json)");
  auto config_path = find_side_file(path, "adapter_config.json");
  if (!config_path) fail(ErrorKind::io, a.display_name_, "adapter_config.json not found");
  const nlohmann::json cfg = parse_json_file(*config_path);
  if (!cfg.is_object())
    fail(ErrorKind::format, a.display_name_, "adapter_config.json is not an object");
  if (cfg.contains("peft_type")) {
    a.format_ = AdapterFormat::peft;
    a.open_peft(*config_path);
  } else if (cfg.contains("lora_parameters") || cfg.contains("fine_tune_type")) {
    a.format_ = AdapterFormat::mlx;
    a.open_mlx(*config_path);
  } else {
    fail(ErrorKind::format, a.display_name_,
         "adapter_config.json has neither 'peft_type' (PEFT) nor 'lora_parameters' (mlx-lm)");
  }
  if (a.modules_.empty() && a.replacements_.empty())
    fail(ErrorKind::format, a.display_name_, "holds no LoRA tensors");
  return a;
}

void Adapter::add_module(LoraModule m) {
  if (m.a->shape.size() != 2 || m.b->shape.size() != 2)
    fail(ErrorKind::unsupported, display_name_,
         fmt::format("module '{}' has {}-D factors; only 2-D (Linear and Embedding) LoRA is "
                     "supported, not convolution or mixture-of-experts LoRA",
                     m.target, std::max(m.a->shape.size(), m.b->shape.size())));
  const auto& a = m.a->shape;
  const auto& b = m.b->shape;
  std::int64_t rank_a = 0;
  std::int64_t rank_b = 0;
  switch (m.layout) {
    case LoraLayout::peft_linear:
      rank_a = a[0], rank_b = b[1], m.rows = b[0], m.cols = a[1];
      break;
    case LoraLayout::peft_fan_in_fan_out:
    case LoraLayout::peft_embedding:
      rank_a = a[0], rank_b = b[1], m.rows = a[1], m.cols = b[0];
      break;
    case LoraLayout::mlx_linear:
      rank_a = a[1], rank_b = b[0], m.rows = b[1], m.cols = a[0];
      break;
    case LoraLayout::mlx_embedding:
      rank_a = a[1], rank_b = b[0], m.rows = a[0], m.cols = b[1];
      break;
  }
  if (rank_a != rank_b || rank_a != m.rank)
    fail(ErrorKind::format, display_name_,
         fmt::format("module '{}': the factors have ranks {} and {} but the config says r = {}",
                     m.target, rank_a, rank_b, m.rank));
  for (const auto* t : {m.a, m.b}) {
    if (!dtype_is_mergeable_float(t->dtype))
      fail(ErrorKind::format, display_name_,
           fmt::format("tensor '{}' is {}, not a float", t->name, dtype_name(t->dtype)));
  }
  std::string target = m.target;
  if (!modules_.emplace(target, std::move(m)).second)
    fail(ErrorKind::format, display_name_, fmt::format("module '{}' appears twice", target));
}

void Adapter::open_peft(const std::filesystem::path& config_path) {
  const nlohmann::json cfg = parse_json_file(config_path);
  const std::string& name = display_name_;
  const auto* type = member(cfg, "peft_type");
  if (!type || !type->is_string()) fail(ErrorKind::format, name, "'peft_type' is not a string");
  if (type->get<std::string>() != "LORA")
    fail(ErrorKind::unsupported, name,
         fmt::format("peft_type {} is not supported; only LoRA adapters (peft_type LORA) are",
                     type->get<std::string>()));
  if (flag(cfg, "use_dora", name))
    fail(ErrorKind::unsupported, name,
         "DoRA (use_dora: true) is not supported: its weight is a normalised direction times a "
         "learned magnitude, not W + B*A; merge it with peft's merge_and_unload first");
  if (flag(cfg, "lora_bias", name))
    fail(ErrorKind::unsupported, name, "lora_bias: true (a bias on lora_B) is not supported");
  for (const char* key :
       {"layer_replication", "trainable_token_indices", "alora_invocation_tokens"}) {
    if (member(cfg, key))
      fail(ErrorKind::unsupported, name, fmt::format("'{}' is not supported", key));
  }
  const auto* r = member(cfg, "r");
  if (!r) fail(ErrorKind::format, name, "adapter_config.json has no 'r'");
  const std::int64_t r_default = rank_value(*r, "'r'", name);
  const auto* alpha = member(cfg, "lora_alpha");
  const double alpha_default =
      alpha ? number(*alpha, "'lora_alpha'", name) : 8.0;  // PEFT's default
  const bool rslora = flag(cfg, "use_rslora", name);
  const bool fan_in_fan_out = flag(cfg, "fan_in_fan_out", name);
  const auto rank_patterns = patterns(cfg, "rank_pattern", name);
  const auto alpha_patterns = patterns(cfg, "alpha_pattern", name);
  if (const auto* bias = member(cfg, "bias")) {
    if (!bias->is_string() || (*bias != "none" && *bias != "all" && *bias != "lora_only"))
      fail(ErrorKind::format, name, "'bias' is not one of \"none\", \"all\", \"lora_only\"");
  }

  file_ = std::make_unique<SafetensorsFile>(
      SafetensorsFile::open(weights_file(path_, "adapter_model.safetensors", name)));
  constexpr std::string_view k_prefix = "base_model.model.";
  struct Pair {
    const TensorInfo* a = nullptr;
    const TensorInfo* b = nullptr;
    bool embedding = false;
  };
  std::map<std::string, Pair> pairs;  // by module name
  for (const auto& t : file_->tensors()) {
    if (!t.name.starts_with(k_prefix))
      fail(ErrorKind::format, name,
           fmt::format("tensor '{}' does not start with '{}', as PEFT saves them", t.name,
                       k_prefix));
    const std::string key = t.name.substr(k_prefix.size());
    if (ends_with(key, ".lora_A.weight")) {
      pairs[strip(key, ".lora_A.weight")].a = &t;
    } else if (ends_with(key, ".lora_B.weight")) {
      pairs[strip(key, ".lora_B.weight")].b = &t;
    } else if (ends_with(key, ".lora_embedding_A")) {
      auto& p = pairs[strip(key, ".lora_embedding_A")];
      p.a = &t, p.embedding = true;
    } else if (ends_with(key, ".lora_embedding_B")) {
      auto& p = pairs[strip(key, ".lora_embedding_B")];
      p.b = &t, p.embedding = true;
    } else if (key.find("lora_magnitude_vector") != std::string::npos) {
      fail(ErrorKind::unsupported, name,
           fmt::format("tensor '{}' is a DoRA magnitude; DoRA is not supported", t.name));
    } else if (key.find("lora_") != std::string::npos) {
      fail(ErrorKind::unsupported, name,
           fmt::format("tensor '{}' is not a LoRA factor llmerge knows (lora_A/lora_B .weight, "
                       "lora_embedding_A/B); is the adapter name still in it?",
                       t.name));
    } else if (const auto pos = key.find(".base_layer."); pos != std::string::npos) {
      // The base weight of a LoRA'd layer, saved whole (save_embedding_layers,
      // for resized embeddings): it replaces the base's, and the update applies.
      replacements_[key.substr(0, pos) + key.substr(pos + std::string_view(".base_layer").size())] =
          &t;
    } else {
      // modules_to_save and trained biases: whole tensors under the base's names.
      replacements_[key] = &t;
    }
  }
  for (const auto& [module, p] : pairs) {
    if (!p.a || !p.b)
      fail(ErrorKind::format, name,
           fmt::format("module '{}' has lora_{} but no lora_{}", module, p.a ? "A" : "B",
                       p.a ? "B" : "A"));
    LoraModule m;
    m.target = module + ".weight";
    m.a = p.a;
    m.b = p.b;
    m.layout = p.embedding      ? LoraLayout::peft_embedding
               : fan_in_fan_out ? LoraLayout::peft_fan_in_fan_out
                                : LoraLayout::peft_linear;
    const auto* rp = match(rank_patterns, module);
    m.rank = rp ? rank_value(*rp, fmt::format("rank_pattern of '{}'", module), name) : r_default;
    const auto* ap = match(alpha_patterns, module);
    const double a =
        ap ? number(*ap, fmt::format("alpha_pattern of '{}'", module), name) : alpha_default;
    // PEFT's LoraLayer.update_layer.
    m.scale = rslora ? a / std::sqrt(static_cast<double>(m.rank)) : a / static_cast<double>(m.rank);
    add_module(std::move(m));
  }
}

void Adapter::open_mlx(const std::filesystem::path& config_path) {
  const nlohmann::json cfg = parse_json_file(config_path);
  const std::string& name = display_name_;
  std::string type = "lora";
  if (const auto* t = member(cfg, "fine_tune_type")) {
    if (!t->is_string()) fail(ErrorKind::format, name, "'fine_tune_type' is not a string");
    type = t->get<std::string>();
  }
  if (type == "dora")
    fail(ErrorKind::unsupported, name,
         "fine_tune_type dora is not supported: DoRA's weight is a normalised direction times a "
         "learned magnitude, not W + B*A; fuse it with mlx_lm.fuse");
  if (type != "lora")
    fail(ErrorKind::unsupported, name,
         fmt::format("fine_tune_type {} is not supported; only lora is", type));
  const auto* params = member(cfg, "lora_parameters");
  if (!params || !params->is_object())
    fail(ErrorKind::format, name, "'lora_parameters' is missing or not an object");
  const auto* rank = member(*params, "rank");
  if (!rank) fail(ErrorKind::format, name, "lora_parameters has no 'rank'");
  const std::int64_t r = rank_value(*rank, "lora_parameters.rank", name);
  const auto* scale = member(*params, "scale");
  if (!scale)
    fail(ErrorKind::format, name,
         "lora_parameters has no 'scale' (mlx-lm's scale is an absolute factor, not alpha)");
  const double s = number(*scale, "lora_parameters.scale", name);

  file_ = std::make_unique<SafetensorsFile>(
      SafetensorsFile::open(weights_file(path_, "adapters.safetensors", name)));
  std::map<std::string, std::pair<const TensorInfo*, const TensorInfo*>> pairs;
  for (const auto& t : file_->tensors()) {
    if (ends_with(t.name, ".lora_a")) {
      pairs[strip(t.name, ".lora_a")].first = &t;
    } else if (ends_with(t.name, ".lora_b")) {
      pairs[strip(t.name, ".lora_b")].second = &t;
    } else if (ends_with(t.name, ".m")) {
      fail(ErrorKind::unsupported, name,
           fmt::format("tensor '{}' is a DoRA magnitude; DoRA is not supported", t.name));
    } else {
      fail(ErrorKind::format, name,
           fmt::format("tensor '{}' is not a LoRA factor (lora_a, lora_b)", t.name));
    }
  }
  for (const auto& [module, p] : pairs) {
    if (!p.first || !p.second)
      fail(ErrorKind::format, name,
           fmt::format("module '{}' has lora_{} but no lora_{}", module, p.first ? "a" : "b",
                       p.first ? "b" : "a"));
    LoraModule m;
    m.target = module + ".weight";
    m.a = p.first;
    m.b = p.second;
    // mlx-lm wraps nn.Embedding in LoRAEmbedding; its modules are the
    // embeddings (embed_tokens, wte).
    const bool embedding = module.find("embed") != std::string::npos || module.ends_with("wte") ||
                           module.ends_with(".wpe");
    m.layout = embedding ? LoraLayout::mlx_embedding : LoraLayout::mlx_linear;
    m.rank = r;
    m.scale = s;
    add_module(std::move(m));
  }
}

}  // namespace llmerge
