#include "io/sentencepiece_convert.h"

#include <algorithm>
#include <map>
#include <tuple>
#include <unordered_map>

#include <fmt/core.h>

#include "core/error.h"

namespace llmerge {

namespace {

using json = nlohmann::json;

const std::string k_space = "\xe2\x96\x81";  // U+2581 "▁", sentencepiece's word boundary

std::string base64(std::string_view bytes) {
  static constexpr char k_digits[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (std::size_t i = 0; i < bytes.size(); i += 3) {
    std::uint32_t v = static_cast<std::uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<std::uint8_t>(bytes[i + 1]) << 8;
    if (i + 2 < bytes.size()) v |= static_cast<std::uint8_t>(bytes[i + 2]);
    out += k_digits[v >> 18 & 63];
    out += k_digits[v >> 12 & 63];
    out += i + 1 < bytes.size() ? k_digits[v >> 6 & 63] : '=';
    out += i + 2 < bytes.size() ? k_digits[v & 63] : '=';
  }
  return out;
}

// A literal for the Oniguruma regex of a Split: the characters Python's
// re.escape escapes, each behind a backslash.
std::string regex_literal(const std::string& s) {
  static constexpr std::string_view k_special = "()[]{}?*+-|^$\\.&~# \t\n\r\v\f";
  std::string out;
  for (const char c : s) {
    if (k_special.find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

// The byte offsets where UTF-8 code points start (after the first): the
// splits transformers tries are between characters, not bytes.
std::vector<std::size_t> char_boundaries(const std::string& s) {
  std::vector<std::size_t> out;
  for (std::size_t i = 1; i < s.size(); ++i)
    if ((static_cast<std::uint8_t>(s[i]) & 0xc0) != 0x80) out.push_back(i);
  return out;
}

json bpe_merges(const SentencepieceModel& m) {
  std::unordered_map<std::string_view, std::size_t> normal;
  for (std::size_t id = 0; id < m.pieces.size(); ++id)
    if (m.pieces[id].type == PieceType::normal) normal.emplace(m.pieces[id].piece, id);
  // (-score, id, left, right), sorted: the highest-scoring piece's merge first.
  std::vector<std::tuple<double, std::size_t, std::string_view, std::string_view>> ranked;
  for (const auto& [piece, id] : normal) {
    for (const std::size_t cut : char_boundaries(m.pieces[id].piece)) {
      const std::string_view left = piece.substr(0, cut), right = piece.substr(cut);
      if (normal.count(left) && normal.count(right))
        ranked.emplace_back(-static_cast<double>(m.pieces[id].score), id, left, right);
    }
  }
  std::sort(ranked.begin(), ranked.end());
  json merges = json::array();
  for (const auto& [score, id, left, right] : ranked)
    merges.push_back({std::string(left), std::string(right)});
  return merges;
}

json added_token(std::int64_t id, const std::string& content, bool special) {
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", special}};
}

json replace(const char* kind, const std::string& pattern, const std::string& content) {
  return {{"type", "Replace"}, {"pattern", {{kind, pattern}}}, {"content", content}};
}

// transformers' update_post_processor: bos and eos around each sequence as
// tokenizer_config.json's add_bos_token / add_eos_token say (default false).
// Written out, since transformers 5 does not rebuild it from those keys when
// it loads a tokenizer.json.
json post_processor(const SentencepieceModel& m, const json& config,
                    const std::unordered_map<std::string_view, std::int64_t>& id_of) {
  auto flag = [&](const char* key) {
    return config.is_object() && config.contains(key) && config[key].is_boolean() &&
           config[key].get<bool>();
  };
  const bool bos = flag("add_bos_token") && m.bos_id >= 0;
  const bool eos = flag("add_eos_token") && m.eos_id >= 0;
  json special = json::object();
  auto piece = [&](const std::string& p, int type_id) {
    special[p] = {{"id", p}, {"ids", {id_of.at(p)}}, {"tokens", {p}}};
    return json{{"SpecialToken", {{"id", p}, {"type_id", type_id}}}};
  };
  auto sequence = [&](const char* id, int type_id) {
    json out = json::array();
    if (bos) out.push_back(piece(m.bos_piece, type_id));
    out.push_back({{"Sequence", {{"id", id}, {"type_id", type_id}}}});
    if (eos) out.push_back(piece(m.eos_piece, type_id));
    return out;
  };
  json pair = sequence("A", 0);
  for (auto& step : sequence("B", 1))
    pair.push_back(std::move(step));
  return {{"type", "TemplateProcessing"},
          {"single", sequence("A", 0)},
          {"pair", std::move(pair)},
          {"special_tokens", std::move(special)}};
}

}  // namespace

json tokenizer_json_from_sentencepiece(const SentencepieceModel& m, const json& config,
                                       const std::string& label) {
  const auto n = static_cast<std::int64_t>(m.pieces.size());
  std::unordered_map<std::string_view, std::int64_t> id_of;
  for (std::int64_t id = 0; id < n; ++id)
    id_of.emplace(m.pieces[static_cast<std::size_t>(id)].piece, id);
  bool legacy = true;
  if (config.is_object() && config.contains("legacy") && config["legacy"].is_boolean())
    legacy = config["legacy"].get<bool>();
  std::vector<std::string> user_defined;
  for (const auto& p : m.pieces)
    if (p.type == PieceType::user_defined) user_defined.push_back(p.piece);

  json tok;
  tok["version"] = "1.0";
  tok["truncation"] = nullptr;
  tok["padding"] = nullptr;

  // The unk, bos and eos pieces and every CONTROL piece are special added
  // tokens (transformers' special tokens from trainer_spec); USER_DEFINED
  // pieces are handled by the pre-tokenizer instead.
  std::map<std::int64_t, json> added;
  auto special_piece = [&](std::int32_t id, const std::string& piece, const char* what) {
    if (id < 0) return;
    const auto it = id_of.find(piece);
    if (it == id_of.end())
      throw Error(ErrorKind::unsupported,
                  fmt::format("'{}': the {} piece {} is not one of the model's pieces, so "
                              "transformers would add it as a new token",
                              label, what, json(piece).dump()));
    added[it->second] = added_token(it->second, piece, true);
  };
  special_piece(m.unk_id, m.unk_piece, "unk");
  special_piece(m.bos_id, m.bos_piece, "bos");
  special_piece(m.eos_id, m.eos_piece, "eos");
  for (std::int64_t id = 0; id < n; ++id) {
    const auto& p = m.pieces[static_cast<std::size_t>(id)];
    if (p.type == PieceType::control) added[id] = added_token(id, p.piece, true);
  }
  // tokenizer_config.json's added tokens: their flags for a piece, or new ids
  // right after the pieces. Matched on the raw text with a dummy prefix (so
  // each chunk between them gets its own), as transformers does.
  if (config.is_object() && config.contains("added_tokens_decoder") &&
      config["added_tokens_decoder"].is_object()) {
    std::map<std::int64_t, json> extra;
    for (const auto& [key, entry] : config["added_tokens_decoder"].items()) {
      std::int64_t id = -1;
      if (!key.empty() && key.size() <= 12 &&
          std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; }))
        id = std::stoll(key);
      if (id < 0 || !entry.is_object() || !entry.contains("content") ||
          !entry["content"].is_string())
        throw Error(ErrorKind::format,
                    fmt::format("'{}': added_tokens_decoder entry {} is not {{\"id\": "
                                "{{\"content\": ...}}}}",
                                label, json(key).dump()));
      const std::string content = entry["content"].get<std::string>();
      json a = added_token(id, content, false);
      for (const char* flag : {"single_word", "lstrip", "rstrip", "normalized", "special"})
        if (entry.contains(flag) && entry[flag].is_boolean()) a[flag] = entry[flag];
      if (m.add_dummy_prefix) a["normalized"] = false;
      if (id < n) {
        if (m.pieces[static_cast<std::size_t>(id)].piece != content)
          throw Error(
              ErrorKind::unsupported,
              fmt::format("'{}': added_tokens_decoder renames piece {} ({}) to {}; "
                          "llmerge does not convert renamed pieces",
                          label, id, json(m.pieces[static_cast<std::size_t>(id)].piece).dump(),
                          json(content).dump()));
        added[id] = std::move(a);
      } else {
        extra[id] = std::move(a);
      }
    }
    std::int64_t next = n;
    for (auto& [id, a] : extra) {
      if (id != next || id_of.count(a["content"].get<std::string>()))
        throw Error(ErrorKind::unsupported,
                    fmt::format("'{}': added_tokens_decoder gives {} id {}, where the next new "
                                "id after the model's {} pieces is {}",
                                label, a["content"].dump(), id, n, next));
      ++next;
      added[id] = std::move(a);
    }
  }
  tok["added_tokens"] = json::array();
  for (auto& [id, a] : added)
    tok["added_tokens"].push_back(std::move(a));

  // The normalizer, in sentencepiece's order.
  json norm = json::array();
  if (!m.precompiled_charsmap.empty())
    norm.push_back(
        {{"type", "Precompiled"}, {"precompiled_charsmap", base64(m.precompiled_charsmap)}});
  if (m.remove_extra_whitespaces) {  // spaces only: sentencepiece leaves newlines alone
    norm.push_back(replace("Regex", "\\A +| +\\z", ""));
    norm.push_back(replace("Regex", " {2,}", " "));
  }
  if (m.escape_whitespaces) norm.push_back(replace("String", " ", k_space));
  // Metaspace does not prepend to a text that starts with "▁"; sentencepiece does.
  if (m.add_dummy_prefix && legacy)
    norm.push_back(replace("Regex", "\\A" + k_space, k_space + k_space));
  tok["normalizer"] = {{"type", "Sequence"}, {"normalizers", std::move(norm)}};

  json pre = json::array();
  if (m.add_dummy_prefix)
    pre.push_back({{"type", "Metaspace"},
                   {"replacement", k_space},
                   {"prepend_scheme", legacy ? "always" : "first"},
                   {"split", false}});
  if (!user_defined.empty()) {
    // sentencepiece emits user-defined pieces whole: the longest match first.
    std::stable_sort(
        user_defined.begin(), user_defined.end(),
        [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
    std::string pattern;
    for (const auto& u : user_defined)
      pattern += (pattern.empty() ? "" : "|") + regex_literal(u);
    pre.push_back({{"type", "Split"},
                   {"pattern", {{"Regex", pattern}}},
                   {"behavior", "Isolated"},
                   {"invert", false}});
  }
  tok["pre_tokenizer"] =
      pre.empty() ? json(nullptr) : json{{"type", "Sequence"}, {"pretokenizers", std::move(pre)}};
  tok["post_processor"] = post_processor(m, config, id_of);

  json dec = json::array({replace("String", k_space, " ")});
  if (m.byte_fallback) dec.push_back({{"type", "ByteFallback"}});
  if (m.add_dummy_prefix) {
    dec.push_back({{"type", "Fuse"}});
    dec.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  } else if (m.byte_fallback) {
    dec.push_back({{"type", "Fuse"}});
  }
  tok["decoder"] = {{"type", "Sequence"}, {"decoders", std::move(dec)}};

  if (m.is_bpe()) {
    json vocab = json::object();
    for (std::int64_t id = 0; id < n; ++id)
      vocab[m.pieces[static_cast<std::size_t>(id)].piece] = id;
    tok["model"] = {{"type", "BPE"},
                    {"dropout", nullptr},
                    {"unk_token", m.pieces[static_cast<std::size_t>(m.unk_id)].piece},
                    {"continuing_subword_prefix", nullptr},
                    {"end_of_word_suffix", nullptr},
                    {"fuse_unk", true},
                    {"byte_fallback", m.byte_fallback},
                    {"ignore_merges", !user_defined.empty()},
                    {"vocab", std::move(vocab)},
                    {"merges", bpe_merges(m)}};
  } else {
    json vocab = json::array();
    for (const auto& p : m.pieces)
      vocab.push_back({p.piece, static_cast<double>(p.score)});
    tok["model"] = {{"type", "Unigram"},
                    {"unk_id", m.unk_id},
                    {"vocab", std::move(vocab)},
                    {"byte_fallback", m.byte_fallback}};
  }
  return tok;
}

}  // namespace llmerge
