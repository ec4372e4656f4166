#include "io/tokenizer.h"

#include <algorithm>

#include <fmt/core.h>

#include "core/error.h"
#include "io/files.h"
#include "io/sentencepiece_convert.h"

namespace llmerge {

namespace fs = std::filesystem;

namespace {

// Ids are non-negative and far below 2^40: a real vocabulary has < 2^20 tokens,
// and the bound keeps id + 1 and row arithmetic clear of overflow.
constexpr std::int64_t k_token_id_max = std::int64_t{1} << 40;

std::int64_t token_id(const nlohmann::json& id, const fs::path& file, const std::string& what) {
  if (id.is_number_integer()) {
    const auto v = id.is_number_unsigned() && id.get<std::uint64_t>() > k_token_id_max
                       ? k_token_id_max
                       : id.get<std::int64_t>();
    if (v >= 0 && v < k_token_id_max) return v;
  }
  throw Error(ErrorKind::format, fmt::format("'{}': {} has id {}, which is not a token id (an "
                                             "integer in [0, 2^40))",
                                             file.string(), what, id.dump()));
}

}  // namespace

std::vector<std::pair<std::int64_t, std::string>> TokenizerVocab::by_id() const {
  std::vector<std::pair<std::int64_t, std::string>> out;
  out.reserve(ids.size());
  for (const auto& [content, id] : ids)
    out.emplace_back(id, content);
  std::sort(out.begin(), out.end());
  return out;
}

bool has_tokenizer(const fs::path& dir) {
  return find_side_file(dir, "tokenizer.json") || find_side_file(dir, "tokenizer.model");
}

TokenizerDocument read_tokenizer_document(const fs::path& dir) {
  if (const auto path = find_side_file(dir, "tokenizer.json"))
    return {parse_json_file(*path), *path, false};
  const auto model = find_side_file(dir, "tokenizer.model");
  if (!model) throw Error(ErrorKind::io, fmt::format("'{}' has no tokenizer.json", dir.string()));
  nlohmann::json config = nlohmann::json::object();
  if (const auto side = find_side_file(dir, "tokenizer_config.json")) {
    config = parse_json_file(*side);
    if (!config.is_object())
      throw Error(ErrorKind::format, fmt::format("'{}': not a JSON object", side->string()));
  }
  try {
    // Old slow-tokenizer saves list added tokens here; each must also be in
    // tokenizer_config.json's added_tokens_decoder (which the conversion reads).
    if (const auto side = find_side_file(dir, "added_tokens.json")) {
      const nlohmann::json extra = parse_json_file(*side);
      const auto* decoder =
          config.contains("added_tokens_decoder") ? &config["added_tokens_decoder"] : nullptr;
      if (!extra.is_object())
        throw Error(ErrorKind::format, fmt::format("'{}': not a JSON object", side->string()));
      for (const auto& [content, id] : extra.items()) {
        const std::string key =
            id.is_number_integer() ? std::to_string(id.get<std::int64_t>()) : "";
        const bool listed = decoder && decoder->is_object() && decoder->contains(key) &&
                            (*decoder)[key].is_object() && (*decoder)[key].contains("content") &&
                            (*decoder)[key]["content"] == nlohmann::json(content);
        if (!listed)
          throw Error(ErrorKind::unsupported,
                      fmt::format("'{}' adds {} (id {}), which tokenizer_config.json's "
                                  "added_tokens_decoder does not list; llmerge converts "
                                  "tokenizer.model with the added tokens of added_tokens_decoder",
                                  side->string(), nlohmann::json(content).dump(), id.dump()));
      }
    }
    const SentencepieceModel spm = read_sentencepiece_model(*model);
    return {tokenizer_json_from_sentencepiece(spm, config, model->string()), *model, true};
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::unsupported) throw;
    throw Error(ErrorKind::unsupported,
                std::string(e.what()) +
                    ". If transformers loads this tokenizer as you expect, save it once as a "
                    "tokenizer.json (AutoTokenizer.from_pretrained(dir).save_pretrained(dir)), "
                    "which llmerge reads as it is");
  }
}

TokenizerVocab read_tokenizer_vocab(const fs::path& dir) {
  const TokenizerDocument doc = read_tokenizer_document(dir);
  const nlohmann::json& tok = doc.json;
  const fs::path* path = &doc.file;
  const std::string file = path->string();
  auto bad = [&](const std::string& what) {
    return Error(ErrorKind::format, fmt::format("'{}': {}", file, what));
  };
  if (!tok.is_object()) throw bad("not a JSON object");
  const auto model = tok.find("model");
  if (model == tok.end() || !model->is_object()) throw bad("no \"model\" object");
  TokenizerVocab v;
  v.from_sentencepiece = doc.from_sentencepiece;
  const auto type = model->find("type");
  const auto vocab = model->find("vocab");
  if (type == model->end() || !type->is_string()) {
    // Old files omit the type; the vocabulary's shape still tells Unigram from the rest.
    v.model_type = vocab != model->end() && vocab->is_array() ? "Unigram" : "BPE";
  } else {
    v.model_type = type->get<std::string>();
  }
  if (v.model_type != "BPE" && v.model_type != "WordPiece" && v.model_type != "WordLevel" &&
      v.model_type != "Unigram") {
    throw Error(ErrorKind::unsupported,
                fmt::format("'{}': tokenizer model type '{}' is not one llmerge reads (BPE, "
                            "WordPiece, WordLevel, Unigram)",
                            file, v.model_type));
  }
  if (vocab == model->end()) throw bad("no \"model.vocab\"");
  auto take = [&](const std::string& content, std::int64_t id, bool added) {
    v.id_end = std::max(v.id_end, id + 1);
    auto [it, inserted] = v.ids.try_emplace(content, id);
    if (!inserted && added) it->second = id;
  };
  if (v.model_type == "Unigram") {
    if (!vocab->is_array()) throw bad("\"model.vocab\" of a Unigram model is not a list");
    std::int64_t id = 0;
    for (const auto& entry : *vocab) {
      if (!entry.is_array() || entry.empty() || !entry[0].is_string())
        throw bad(fmt::format("\"model.vocab\"[{}] is not [piece, score]", id));
      take(entry[0].get<std::string>(), id++, false);
    }
  } else {
    if (!vocab->is_object()) throw bad("\"model.vocab\" is not an object {piece: id}");
    for (const auto& [piece, id] : vocab->items())
      take(piece, token_id(id, *path, fmt::format("piece {}", nlohmann::json(piece).dump())),
           false);
  }
  if (auto added = tok.find("added_tokens"); added != tok.end() && !added->is_null()) {
    if (!added->is_array()) throw bad("\"added_tokens\" is not a list");
    for (const auto& a : *added) {
      if (!a.is_object() || !a.contains("content") || !a["content"].is_string() ||
          !a.contains("id"))
        throw bad("an \"added_tokens\" entry lacks \"id\" or \"content\"");
      take(a["content"].get<std::string>(), token_id(a["id"], *path, "an added token"), true);
      v.added.push_back(a);
    }
  }
  // The files written from these are checked here too, so a bad one fails the plan.
  for (const char* name : {"tokenizer_config.json", "special_tokens_map.json"}) {
    const auto side = find_side_file(dir, name);
    if (!side) continue;
    if (!parse_json_file(*side).is_object())
      throw Error(ErrorKind::format, fmt::format("'{}': not a JSON object", side->string()));
    v.has_tokenizer_config |= std::string_view(name) == "tokenizer_config.json";
  }
  v.chat_template = read_chat_template(dir);
  return v;
}

std::optional<std::string> read_chat_template(const fs::path& dir) {
  if (const auto jinja = find_side_file(dir, "chat_template.jinja"))
    return read_regular_file(*jinja);
  const auto config = find_side_file(dir, "tokenizer_config.json");
  if (!config) return std::nullopt;
  const nlohmann::json tc = parse_json_file(*config);
  if (!tc.is_object()) return std::nullopt;
  const auto t = tc.find("chat_template");
  if (t == tc.end()) return std::nullopt;
  if (t->is_string()) return t->get<std::string>();
  if (t->is_array()) {  // [{name, template}, ...]: transformers' "default" entry
    for (const auto& entry : *t) {
      if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
          entry["template"].is_string())
        return entry["template"].get<std::string>();
    }
  }
  return std::nullopt;
}

}  // namespace llmerge
