// A model's tokenizer files, read as a vocabulary: which token has which id.
//
// Sources (docs/tokenizers.md §1):
//  - tokenizer.json (the Hugging Face `tokenizers` format): `model.type` is
//    BPE, WordPiece or WordLevel (`model.vocab` is {piece: id}) or Unigram
//    (`model.vocab` is [[piece, score], ...], the id is the index);
//    `added_tokens` is [{id, content, single_word, lstrip, rstrip,
//    normalized, special}, ...]. The vocabulary is the model's pieces plus the
//    added tokens, which is what transformers' `get_vocab()` returns.
//  - tokenizer_config.json: `added_tokens_decoder` ({"id": {content, ...}}),
//    special tokens, `chat_template` (a string, or a list of {name, template}).
//  - chat_template.jinja, which current transformers writes and reads first.
//
// A folder with only a sentencepiece `tokenizer.model` (no tokenizer.json) is
// read through the tokenizer.json that transformers would make from it
// (io/sentencepiece_convert.h). Every file goes through io/files.h.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace llmerge {

struct TokenizerVocab {
  std::string model_type;  // "BPE", "WordPiece", "WordLevel", "Unigram"
  // content -> id over the model's pieces and the added tokens (an added
  // token's id wins over a piece of the same content).
  std::unordered_map<std::string, std::int64_t> ids;
  // tokenizer.json `added_tokens` entries, in file order (each has "id" and "content").
  std::vector<nlohmann::json> added;
  std::int64_t id_end = 0;  // largest id + 1
  std::optional<std::string> chat_template;
  bool has_tokenizer_config = false;
  bool from_sentencepiece = false;  // converted from tokenizer.model

  // Tokens in id order (ties: pieces before added tokens), for deterministic iteration.
  std::vector<std::pair<std::int64_t, std::string>> by_id() const;
};

// True if `dir` has a tokenizer.json (or only a tokenizer.model).
bool has_tokenizer(const std::filesystem::path& dir);

// The tokenizer.json document of model folder `dir`: its tokenizer.json, or,
// without one, the document converted from its tokenizer.model (and
// tokenizer_config.json). Error(io) if it has neither.
struct TokenizerDocument {
  nlohmann::json json;
  std::filesystem::path file;  // tokenizer.json, or the tokenizer.model it came from
  bool from_sentencepiece = false;
};
TokenizerDocument read_tokenizer_document(const std::filesystem::path& dir);

// Reads the tokenizer of model folder `dir`. Error(format) for a tokenizer.json
// (or tokenizer.model) that is not the format above (naming the file and the
// key), Error(unsupported) for a model type other than the four or a
// sentencepiece model that cannot be converted faithfully.
TokenizerVocab read_tokenizer_vocab(const std::filesystem::path& dir);

// The chat template of `dir` (chat_template.jinja, else tokenizer_config.json's
// `chat_template`: a string, or the "default" entry of a list of named
// templates), if any.
std::optional<std::string> read_chat_template(const std::filesystem::path& dir);

}  // namespace llmerge
