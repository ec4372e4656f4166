// A sentencepiece `tokenizer.model`, read as hostile input.
//
// The file is a serialized `ModelProto` (sentencepiece's
// src/sentencepiece_model.proto, protobuf wire format: each field is a varint
// key `number << 3 | wire_type`, then a varint (type 0), 8 bytes (1), a
// varint length and that many bytes (2) or 4 bytes (5)). The fields read:
//
//   ModelProto      1 pieces (repeated SentencePiece), 2 trainer_spec,
//                   3 normalizer_spec
//   SentencePiece   1 piece (string), 2 score (float), 3 type (enum:
//                   1 NORMAL, 2 UNKNOWN, 3 CONTROL, 4 USER_DEFINED, 5 UNUSED,
//                   6 BYTE; default NORMAL)
//   TrainerSpec     3 model_type (1 UNIGRAM (default), 2 BPE, 3 WORD, 4 CHAR),
//                   24 treat_whitespace_as_suffix, 35 byte_fallback,
//                   40-43 unk/bos/eos/pad id (defaults 0, 1, 2, -1),
//                   45-48 unk/bos/eos/pad piece ("<unk>", "<s>", "</s>", "<pad>")
//   NormalizerSpec  1 name, 2 precompiled_charsmap (bytes), 3 add_dummy_prefix,
//                   4 remove_extra_whitespaces, 5 escape_whitespaces (all
//                   three default true)
//
// Every other field is skipped by its wire type. Why not libsentencepiece:
// its C++ API gives the trainer and normalizer specs only as the generated
// protobuf message (so llmerge would link libprotobuf too), and this file needs
// four messages and twenty fields under caps llmerge chooses
// (docs/tokenizers.md §7).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace llmerge {

enum class PieceType : std::uint8_t {
  normal = 1,
  unknown = 2,
  control = 3,
  user_defined = 4,
  unused = 5,
  byte = 6
};

struct SentencePiece {
  std::string piece;
  float score = 0;
  PieceType type = PieceType::normal;
};

struct SentencepieceModel {
  std::vector<SentencePiece> pieces;  // the id is the index
  // trainer_spec
  int model_type = 1;  // 1 UNIGRAM, 2 BPE (others are refused by the reader)
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  std::int32_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
  std::string unk_piece = "<unk>", bos_piece = "<s>", eos_piece = "</s>", pad_piece = "<pad>";
  // normalizer_spec
  std::string normalizer_name;
  std::string precompiled_charsmap;  // bytes; empty: no normalization table
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;

  bool is_bpe() const { return model_type == 2; }
};

// Real models have up to 262,144 pieces (Gemma 3); the cap keeps a hostile
// file's piece table (and the tokenizer.json made from it) bounded.
inline constexpr std::size_t k_sentencepiece_pieces_max = std::size_t{1} << 21;
// sentencepiece caps trained pieces at 16 characters; user-defined symbols can
// be longer, never this long.
inline constexpr std::size_t k_sentencepiece_piece_bytes_max = 4096;

// Parses and validates `bytes`, the contents of `label` (named in errors).
// Error(format) for a malformed message (truncated, a length past the end, a
// group, a varint past 64 bits), a piece that is empty, not UTF-8, over the
// byte cap or defined twice, an unknown piece type, no pieces or too many,
// unk_id not an UNKNOWN piece; Error(unsupported) for a model type other
// than UNIGRAM or BPE, or treat_whitespace_as_suffix (which transformers'
// conversion does not represent).
SentencepieceModel parse_sentencepiece_model(std::string_view bytes, const std::string& label);

// read_regular_file (io/files.h) + parse_sentencepiece_model. `path` is a
// file found by find_side_file.
SentencepieceModel read_sentencepiece_model(const std::filesystem::path& path);

}  // namespace llmerge
