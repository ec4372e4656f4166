#include "output/tokenizer_files.h"

#include <set>

#include <fmt/core.h>

#include "core/error.h"
#include "io/files.h"
#include "io/tokenizer.h"
#include "plan/vocabulary.h"

namespace llmerge {

namespace fs = std::filesystem;

namespace {

nlohmann::json read_object(const fs::path& dir, const char* name) {
  const auto path = find_side_file(dir, name);
  if (!path) return nlohmann::json::object();
  nlohmann::json j = parse_json_file(*path);
  if (!j.is_object())
    throw Error(ErrorKind::format, fmt::format("'{}' is not a JSON object", path->string()));
  return j;
}

// A BPE merge is "a b" or ["a", "b"].
bool merge_uses(const nlohmann::json& merge, const std::set<std::string>& gone) {
  if (merge.is_string()) {
    const std::string m = merge.get<std::string>();
    const auto space = m.find(' ');
    if (space == std::string::npos) return false;
    return gone.count(m.substr(0, space)) || gone.count(m.substr(space + 1));
  }
  if (merge.is_array()) {
    for (const auto& part : merge)
      if (part.is_string() && gone.count(part.get<std::string>())) return true;
  }
  return false;
}

void strip(nlohmann::json& tok, const VocabularyPlan& v) {
  const std::set<std::string> gone(v.stripped.begin(), v.stripped.end());
  nlohmann::json& model = tok["model"];
  nlohmann::json& vocab = model["vocab"];
  if (vocab.is_array()) {  // Unigram: the id is the index
    if (static_cast<std::int64_t>(vocab.size()) > v.keep_below)
      vocab.erase(vocab.begin() + v.keep_below, vocab.end());
  } else {
    for (const auto& content : v.stripped)
      vocab.erase(content);
  }
  if (model.contains("merges") && model["merges"].is_array()) {
    nlohmann::json kept = nlohmann::json::array();
    for (auto& m : model["merges"])
      if (!merge_uses(m, gone)) kept.push_back(std::move(m));
    model["merges"] = std::move(kept);
  }
  if (tok.contains("added_tokens") && tok["added_tokens"].is_array()) {
    nlohmann::json kept = nlohmann::json::array();
    for (auto& a : tok["added_tokens"])
      if (a["id"].get<std::int64_t>() < v.keep_below) kept.push_back(std::move(a));
    tok["added_tokens"] = std::move(kept);
  }
}

// A special token entry is a string or {"content": ...}.
bool names_any(const nlohmann::json& entry, const std::set<std::string>& gone) {
  if (entry.is_string()) return gone.count(entry.get<std::string>()) > 0;
  if (entry.is_object() && entry.contains("content") && entry["content"].is_string())
    return gone.count(entry["content"].get<std::string>()) > 0;
  return false;
}

// Stripped tokens leave the special-token lists too; transformers re-adds
// every listed token on load, with an id past the embedding rows.
void strip_special_tokens(nlohmann::json& config, const std::set<std::string>& gone) {
  if (gone.empty() || !config.is_object()) return;
  for (const char* key : {"additional_special_tokens", "extra_special_tokens"}) {
    if (!config.contains(key)) continue;
    nlohmann::json& list = config[key];
    if (list.is_array()) {
      nlohmann::json kept = nlohmann::json::array();
      for (auto& e : list)
        if (!names_any(e, gone)) kept.push_back(std::move(e));
      list = std::move(kept);
    } else if (list.is_object()) {
      nlohmann::json kept = nlohmann::json::object();
      for (auto& [k, e] : list.items())
        if (!names_any(e, gone)) kept[k] = std::move(e);
      list = std::move(kept);
    }
  }
  for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                          "cls_token", "mask_token"}) {
    if (config.contains(key) && names_any(config[key], gone)) config.erase(key);
  }
}

}  // namespace

void write_built_tokenizer(const MergePlan& plan, ModelWriter& writer) {
  const VocabularyPlan& v = *plan.vocabulary;
  const fs::path dir = plan.models[v.tokenizer_model].path();
  // A sentencepiece-only source is converted again, as the planner did.
  nlohmann::json tok = read_tokenizer_document(dir).json;
  if (!tok.is_object())
    throw Error(ErrorKind::format,
                fmt::format("'{}': tokenizer.json is not a JSON object", dir.string()));
  nlohmann::json config = read_object(dir, "tokenizer_config.json");
  strip(tok, v);
  if (!tok.contains("added_tokens") || !tok["added_tokens"].is_array())
    tok["added_tokens"] = nlohmann::json::array();
  for (const auto& a : v.appended)
    tok["added_tokens"].push_back(a);

  // tokenizer_config.json's added_tokens_decoder mirrors tokenizer.json's added tokens.
  if (config.contains("added_tokens_decoder") && config["added_tokens_decoder"].is_object()) {
    nlohmann::json kept = nlohmann::json::object();
    for (auto& [key, value] : config["added_tokens_decoder"].items()) {
      std::int64_t id = -1;
      try {
        id = std::stoll(key);
      } catch (const std::exception&) {
        continue;  // not an id: transformers would not read it either
      }
      if (id < v.keep_below) kept[key] = value;
    }
    config["added_tokens_decoder"] = std::move(kept);
  }
  if (!v.appended.empty()) {
    nlohmann::json& decoder = config["added_tokens_decoder"];
    if (!decoder.is_object()) decoder = nlohmann::json::object();
    for (const auto& a : v.appended) {
      nlohmann::json entry = a;
      entry.erase("id");
      decoder[std::to_string(a["id"].get<std::int64_t>())] = std::move(entry);
    }
  }
  // The output has no tokenizer.model: a slow tokenizer class would look for it.
  config.erase("vocab_file");
  std::optional<std::string> chat = plan.chat_template;
  if (!chat) {
    if (const auto jinja = find_side_file(dir, "chat_template.jinja"))
      chat = read_regular_file(*jinja);
  }
  if (chat) config["chat_template"] = *chat;

  const std::set<std::string> gone(v.stripped.begin(), v.stripped.end());
  strip_special_tokens(config, gone);
  if (find_side_file(dir, "special_tokens_map.json")) {
    nlohmann::json special = read_object(dir, "special_tokens_map.json");
    strip_special_tokens(special, gone);
    writer.write_file("special_tokens_map.json", special.dump(2) + "\n");
  }
  writer.write_file("tokenizer.json", tok.dump(2) + "\n");
  writer.write_file("tokenizer_config.json", config.dump(2) + "\n");
  if (chat) writer.write_file("chat_template.jinja", *chat);
  if (const auto gen = find_side_file(dir, "generation_config.json"))
    writer.copy_file(*gen, "generation_config.json");
}

}  // namespace llmerge
