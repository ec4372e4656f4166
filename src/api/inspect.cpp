// inspect(): what a model folder holds (`llmerge inspect MODEL [--tensors] [--json]`),
// from config.json and the safetensors headers (no tensor data is read).
#include <algorithm>
#include <string>
#include <vector>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_text.h"
#include "io/model.h"
#include "io/tokenizer.h"
#include "llmerge/llmerge.h"
#include "llmerge/text.h"

namespace llmerge {

namespace {

namespace fs = std::filesystem;

// 1234 -> "1.23K", 1'235'814'400 -> "1.24B".
std::string human_count(std::uint64_t n) {
  static constexpr const char* k_units[] = {"", "K", "M", "B", "T"};
  double v = static_cast<double>(n);
  int unit = 0;
  while (v >= 1000 && unit < 4) {
    v /= 1000;
    ++unit;
  }
  return unit == 0 ? std::to_string(n) : fmt::format("{:.2f}{}", v, k_units[unit]);
}

std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::optional<std::int64_t> first_int(const Model& m, std::initializer_list<const char*> keys) {
  for (const char* key : keys) {
    if (auto v = m.config_int(key)) return v;
  }
  return std::nullopt;
}

// The shard's name relative to the model folder (the path for a lone file).
std::string file_label(const Model& m, const SafetensorsFile& f) {
  return f.path() == m.path() ? f.path().string() : f.path().filename().string();
}

struct TokenizerFacts {
  std::string
      type;  // tokenizer.json model type (and whether it was converted from tokenizer.model)
  std::int64_t tokens = 0, id_end = 0;
  std::vector<std::string> added;  // added tokens' contents, in id order
  bool chat_template = false;
  std::string error;  // set when the files could not be read
};

struct Facts {
  std::optional<std::string> architecture, model_type;
  std::optional<std::int64_t> hidden, vocab;
  std::optional<TokenizerFacts> tokenizer;
};

std::optional<TokenizerFacts> tokenizer_facts(const Model& m) {
  if (!fs::is_directory(m.path())) return std::nullopt;
  TokenizerFacts t;
  try {
    if (!has_tokenizer(m.path())) return std::nullopt;
    t.chat_template = read_chat_template(m.path()).has_value();
    const TokenizerVocab v = read_tokenizer_vocab(m.path());
    t.type = v.from_sentencepiece ? v.model_type + " (converted from sentencepiece tokenizer.model)"
                                  : v.model_type;
    t.tokens = static_cast<std::int64_t>(v.ids.size());
    t.id_end = v.id_end;
    std::vector<std::pair<std::int64_t, std::string>> added;
    for (const auto& a : v.added)
      added.emplace_back(a["id"].get<std::int64_t>(), a["content"].get<std::string>());
    std::sort(added.begin(), added.end());
    for (auto& [id, content] : added)
      t.added.push_back(std::move(content));
  } catch (const Error& e) {
    t.error = e.what();
  }
  return t;
}

Facts gather(const Model& m) {
  Facts f;
  const auto& config = m.config();
  if (const auto a = config.find("architectures");
      a != config.end() && a->is_array() && !a->empty() && a->front().is_string()) {
    f.architecture = a->front().get<std::string>();
  }
  f.model_type = m.config_string("model_type");
  f.hidden = first_int(m, {"hidden_size", "n_embd", "d_model"});
  f.vocab = first_int(m, {"vocab_size"});
  if (!f.vocab) {
    for (const char* name : {"model.embed_tokens.weight", "transformer.wte.weight"}) {
      if (const auto* t = m.find(name); t && t->info->shape.size() == 2) {
        f.vocab = t->info->shape[0];
        break;
      }
    }
  }
  f.tokenizer = tokenizer_facts(m);
  return f;
}

nlohmann::ordered_json to_json(const Model& m, const Facts& f, bool tensors) {
  auto opt = [](const auto& v) {
    return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json();
  };
  nlohmann::ordered_json dtypes = nlohmann::ordered_json::object();
  for (const auto& [dtype, count] : m.dtype_counts())
    dtypes[std::string(dtype_name(dtype))] = count;
  nlohmann::ordered_json shards = nlohmann::ordered_json::array();
  for (const auto& file : m.files())
    shards.push_back(file_label(m, file));
  const auto& q = m.quantization();
  nlohmann::ordered_json j = {
      {"path", m.path().string()},
      {"architecture", opt(f.architecture)},
      {"model_type", opt(f.model_type)},
      {"layers",
       {{"count", m.layers().count},
        {"prefix", m.layers().prefix},
        {"config_key", m.layers().config_key}}},
      {"hidden_size", opt(f.hidden)},
      {"vocab_size", opt(f.vocab)},
      {"parameters", m.parameter_count()},
      {"tensor_count", m.tensor_count()},
      {"dtypes", dtypes},
      {"size_on_disk", m.size_on_disk()},
      {"shards", shards},
      {"tied_embeddings", m.tied_embeddings()},
      {"quantization", q.quantized
                           ? nlohmann::ordered_json{{"bits", q.bits},
                                                    {"group_size", q.group_size},
                                                    {"mode", q.mode},
                                                    {"quantized_tensors", q.quantized_tensor_count}}
                           : nlohmann::ordered_json()},
  };
  if (f.tokenizer) {
    const auto& t = *f.tokenizer;
    j["tokenizer"] = {{"type", t.type},
                      {"tokens", t.tokens},
                      {"id_end", t.id_end},
                      {"added_tokens", t.added},
                      {"chat_template", t.chat_template}};
    if (!t.error.empty()) j["tokenizer"]["error"] = t.error;
  } else {
    j["tokenizer"] = nullptr;
  }
  if (tensors) {
    auto& list = j["tensors"] = nlohmann::ordered_json::array();
    for (const auto& name : m.tensor_names()) {
      const TensorRef* t = m.find(name);
      list.push_back({{"name", name},
                      {"dtype", dtype_name(t->info->dtype)},
                      {"shape", t->info->shape},
                      {"file", file_label(m, *t->file)}});
    }
  }
  return j;
}

std::string describe_text(const Model& m, const Facts& f, bool tensors) {
  std::string out;
  auto line = [&out](std::string_view key, const std::string& value) {
    out += fmt::format("{:<17}{}\n", std::string(key) + ":", value);
  };
  line("model", m.path().string());
  std::string arch = f.architecture.value_or("(unknown)");
  if (f.model_type) arch += fmt::format(" (model_type {})", *f.model_type);
  line("architecture", arch);
  const auto& layers = m.layers();
  std::string layer_text = std::to_string(layers.count);
  if (!layers.prefix.empty()) layer_text += fmt::format(" ({}.N", layers.prefix);
  if (!layers.config_key.empty()) {
    layer_text += layers.prefix.empty() ? " (" : ", ";
    layer_text += "config " + layers.config_key;
  }
  if (!layers.prefix.empty() || !layers.config_key.empty()) layer_text += ")";
  line("layers", layer_text);
  line("hidden size", f.hidden ? std::to_string(*f.hidden) : "(unknown)");
  line("vocab size", f.vocab ? std::to_string(*f.vocab) : "(unknown)");
  line("parameters", fmt::format("{} ({})", human_count(m.parameter_count()), m.parameter_count()));
  std::string dtypes;
  for (const auto& [dtype, count] : m.dtype_counts()) {
    dtypes += fmt::format("{}{} x {}", dtypes.empty() ? "" : ", ", dtype_name(dtype), count);
  }
  line("dtypes", dtypes.empty() ? "(no tensors)" : dtypes);
  line("tensors", std::to_string(m.tensor_count()));
  line("size on disk", human_bytes(m.size_on_disk()));
  std::string shards = std::to_string(m.files().size());
  if (m.files().size() == 1) shards += " (" + file_label(m, m.files().front()) + ")";
  line("shards", shards);
  line("tied embeddings", m.tied_embeddings() ? "yes" : "no");
  const auto& q = m.quantization();
  if (!q.quantized) {
    line("quantization", "none");
  } else {
    std::string text = q.bits ? fmt::format("{}-bit {}", q.bits, q.mode) : q.mode;
    if (q.group_size) text += fmt::format(", group size {}", q.group_size);
    text += fmt::format(", {} quantized tensors", q.quantized_tensor_count);
    line("quantization", text);
  }
  if (!f.tokenizer) {
    line("tokenizer", "none");
  } else if (!f.tokenizer->error.empty()) {
    line("tokenizer", "unreadable: " + f.tokenizer->error);
  } else {
    const auto& t = *f.tokenizer;
    std::string text = t.type;
    if (t.tokens) text += fmt::format(", {} tokens", t.tokens);
    if (t.id_end != t.tokens) text += fmt::format(" (ids up to {})", t.id_end - 1);
    line("tokenizer", text);
    std::string added = std::to_string(t.added.size());
    for (std::size_t i = 0; i < t.added.size() && i < 8; ++i)
      added += (i ? ", " : " (") + nlohmann::json(t.added[i]).dump();
    if (t.added.size() > 8) added += fmt::format(", ... {} more", t.added.size() - 8);
    if (!t.added.empty()) added += ")";
    line("added tokens", added);
    line("chat template", t.chat_template ? "yes" : "no");
  }
  if (!tensors) return out;

  struct Row {
    std::string name, dtype, shape, file;
  };
  std::vector<Row> rows{{"name", "dtype", "shape", "file"}};
  for (const auto& name : m.tensor_names()) {
    const TensorRef* t = m.find(name);
    rows.push_back({name, std::string(dtype_name(t->info->dtype)), shape_string(t->info->shape),
                    file_label(m, *t->file)});
  }
  std::size_t w_name = 0, w_dtype = 0, w_shape = 0;
  for (const auto& r : rows) {
    w_name = std::max(w_name, r.name.size());
    w_dtype = std::max(w_dtype, r.dtype.size());
    w_shape = std::max(w_shape, r.shape.size());
  }
  out += "\n";
  for (const auto& r : rows) {
    out += fmt::format("{:<{}}  {:<{}}  {:<{}}  {}\n", r.name, w_name, r.dtype, w_dtype, r.shape,
                       w_shape, r.file);
  }
  return out;
}

}  // namespace

ModelInfo inspect(const std::string& model, bool with_tensors, const std::string& base_dir) {
  const fs::path path = resolve_model_reference(model, base_dir);
  const Model m = Model::open(path, model);
  const Facts facts = gather(m);
  return {json_text(to_json(m, facts, with_tensors), 2), describe_text(m, facts, with_tensors)};
}

}  // namespace llmerge
