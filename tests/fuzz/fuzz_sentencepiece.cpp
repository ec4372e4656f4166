// libFuzzer target: the sentencepiece ModelProto reader and the conversion to
// a tokenizer.json (io/sentencepiece.h, io/sentencepiece_convert.h).
//
// The input is a whole tokenizer.model. parse_sentencepiece_model() must
// accept or raise Error; an accepted model has pieces within the caps and an
// UNKNOWN piece at unk_id, and converts (or raises Error) to a document that
// serializes as strict UTF-8 JSON and parses back with one vocabulary entry
// per piece.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "fuzz_util.h"
#include "io/sentencepiece.h"
#include "io/sentencepiece_convert.h"

using namespace llmerge;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  SentencepieceModel m;
  try {
    m = parse_sentencepiece_model(bytes, "fuzz.model");
  } catch (const Error&) {
    return 0;
  }
  FUZZ_CHECK(!m.pieces.empty() && m.pieces.size() <= k_sentencepiece_pieces_max);
  FUZZ_CHECK(m.unk_id >= 0 && static_cast<std::size_t>(m.unk_id) < m.pieces.size());
  FUZZ_CHECK(m.pieces[static_cast<std::size_t>(m.unk_id)].type == PieceType::unknown);
  FUZZ_CHECK(m.model_type == 1 || m.model_type == 2);
  nlohmann::json tok;
  try {
    tok = tokenizer_json_from_sentencepiece(m, nlohmann::json::object(), "fuzz.model");
  } catch (const Error&) {
    return 0;
  }
  const std::string text = tok.dump();  // throws on invalid UTF-8: a finding
  const nlohmann::json back = nlohmann::json::parse(text);
  FUZZ_CHECK(back["model"]["vocab"].size() == m.pieces.size());
  return 0;
}
