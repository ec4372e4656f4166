#include "io/sentencepiece.h"

#include <cmath>
#include <cstring>
#include <unordered_set>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/utf8.h"
#include "io/files.h"

namespace llmerge {

namespace {

// A bounded protobuf wire-format cursor over one message's bytes. Every read
// checks the bytes left first, so a declared length can never reach past the
// message that holds it.
class Wire {
 public:
  Wire(std::string_view bytes, const std::string& label, const char* message)
      : p_(bytes), label_(label), message_(message) {}

  bool done() const { return p_.empty(); }

  std::uint64_t varint() {
    std::uint64_t v = 0;
    // At most 10 bytes: the 10th may only hold bit 63.
    for (int shift = 0;; shift += 7) {
      if (p_.empty()) throw bad("a varint runs past the end");
      const auto byte = static_cast<std::uint8_t>(p_.front());
      p_.remove_prefix(1);
      if (shift == 63 && byte > 1) throw bad("a varint overflows 64 bits");
      v |= std::uint64_t{byte & 0x7fu} << shift;
      if (!(byte & 0x80)) return v;
    }
  }

  // The next field's number and wire type.
  std::pair<std::uint64_t, unsigned> key() {
    const std::uint64_t k = varint();
    const auto number = k >> 3;
    if (number == 0) throw bad("a field has number 0");
    return {number, static_cast<unsigned>(k & 7)};
  }

  std::string_view bytes(unsigned wire_type) {
    expect(wire_type, 2);
    const std::uint64_t n = varint();
    if (n > p_.size())
      throw bad(fmt::format("a field declares {} bytes, but only {} are left", n, p_.size()));
    const auto out = p_.substr(0, static_cast<std::size_t>(n));
    p_.remove_prefix(static_cast<std::size_t>(n));
    return out;
  }

  float fixed32_float(unsigned wire_type) {
    expect(wire_type, 5);
    if (p_.size() < 4) throw bad("a 4-byte field runs past the end");
    std::uint32_t u = 0;
    for (int i = 3; i >= 0; --i)  // little-endian
      u = u << 8 | static_cast<std::uint8_t>(p_[static_cast<std::size_t>(i)]);
    p_.remove_prefix(4);
    float f = 0;
    std::memcpy(&f, &u, 4);
    return f;
  }

  std::uint64_t scalar(unsigned wire_type) {
    expect(wire_type, 0);
    return varint();
  }
  // int32 fields are sign-extended to 64 bits on the wire (-1 is 10 bytes).
  std::int32_t int32(unsigned wire_type) {
    return static_cast<std::int32_t>(static_cast<std::uint32_t>(scalar(wire_type)));
  }

  void skip(unsigned wire_type) {
    switch (wire_type) {
      case 0:
        varint();
        return;
      case 1:
        if (p_.size() < 8) throw bad("an 8-byte field runs past the end");
        p_.remove_prefix(8);
        return;
      case 2:
        bytes(2);
        return;
      case 5:
        if (p_.size() < 4) throw bad("a 4-byte field runs past the end");
        p_.remove_prefix(4);
        return;
      default:  // 3, 4: groups, which sentencepiece never writes; 6, 7: invalid
        throw bad(fmt::format("wire type {} is not one sentencepiece writes", wire_type));
    }
  }

  Error bad(const std::string& what) const {
    return Error(ErrorKind::format,
                 fmt::format("'{}' is not a sentencepiece model ({}: {}); an incomplete "
                             "download?",
                             label_, message_, what));
  }

 private:
  void expect(unsigned got, unsigned want) const {
    if (got != want)
      throw bad(fmt::format("a field has wire type {} where {} is expected", got, want));
  }

  std::string_view p_;
  const std::string& label_;
  const char* message_;
};

SentencePiece read_piece(std::string_view bytes, const std::string& label) {
  Wire w(bytes, label, "a piece");
  SentencePiece p;
  while (!w.done()) {
    const auto [number, type] = w.key();
    if (number == 1) {
      p.piece = std::string(w.bytes(type));
    } else if (number == 2) {
      p.score = w.fixed32_float(type);
    } else if (number == 3) {
      const std::uint64_t t = w.scalar(type);
      if (t < 1 || t > 6) throw w.bad(fmt::format("piece type {} is not one of 1 to 6", t));
      p.type = static_cast<PieceType>(t);
    } else {
      w.skip(type);
    }
  }
  return p;
}

void read_trainer_spec(std::string_view bytes, const std::string& label, SentencepieceModel& m) {
  Wire w(bytes, label, "trainer_spec");
  while (!w.done()) {
    const auto [number, type] = w.key();
    switch (number) {
      case 3:
        m.model_type = static_cast<int>(std::min<std::uint64_t>(w.scalar(type), 1000));
        break;
      case 24:
        m.treat_whitespace_as_suffix = w.scalar(type) != 0;
        break;
      case 35:
        m.byte_fallback = w.scalar(type) != 0;
        break;
      case 40:
        m.unk_id = w.int32(type);
        break;
      case 41:
        m.bos_id = w.int32(type);
        break;
      case 42:
        m.eos_id = w.int32(type);
        break;
      case 43:
        m.pad_id = w.int32(type);
        break;
      case 45:
        m.unk_piece = std::string(w.bytes(type));
        break;
      case 46:
        m.bos_piece = std::string(w.bytes(type));
        break;
      case 47:
        m.eos_piece = std::string(w.bytes(type));
        break;
      case 48:
        m.pad_piece = std::string(w.bytes(type));
        break;
      default:
        w.skip(type);
    }
  }
}

void read_normalizer_spec(std::string_view bytes, const std::string& label, SentencepieceModel& m) {
  Wire w(bytes, label, "normalizer_spec");
  while (!w.done()) {
    const auto [number, type] = w.key();
    switch (number) {
      case 1:
        m.normalizer_name = std::string(w.bytes(type));
        break;
      case 2:
        m.precompiled_charsmap = std::string(w.bytes(type));
        break;
      case 3:
        m.add_dummy_prefix = w.scalar(type) != 0;
        break;
      case 4:
        m.remove_extra_whitespaces = w.scalar(type) != 0;
        break;
      case 5:
        m.escape_whitespaces = w.scalar(type) != 0;
        break;
      default:
        w.skip(type);
    }
  }
}

}  // namespace

SentencepieceModel parse_sentencepiece_model(std::string_view bytes, const std::string& label) {
  SentencepieceModel m;
  Wire w(bytes, label, "ModelProto");
  while (!w.done()) {
    const auto [number, type] = w.key();
    if (number == 1) {
      if (m.pieces.size() == k_sentencepiece_pieces_max)
        throw w.bad(fmt::format("more than {} pieces", k_sentencepiece_pieces_max));
      m.pieces.push_back(read_piece(w.bytes(type), label));
    } else if (number == 2) {
      read_trainer_spec(w.bytes(type), label, m);
    } else if (number == 3) {
      read_normalizer_spec(w.bytes(type), label, m);
    } else {
      w.skip(type);
    }
  }
  if (m.pieces.empty()) throw w.bad("no pieces");
  std::unordered_set<std::string_view> seen;
  seen.reserve(m.pieces.size());
  for (std::size_t id = 0; id < m.pieces.size(); ++id) {
    const std::string& p = m.pieces[id].piece;
    const auto quoted = [&] {
      return nlohmann::json(p).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
    };
    if (p.empty()) throw w.bad(fmt::format("piece {} is empty", id));
    if (p.size() > k_sentencepiece_piece_bytes_max)
      throw w.bad(fmt::format("piece {} is {} bytes (at most {})", id, p.size(),
                              k_sentencepiece_piece_bytes_max));
    if (find_invalid_utf8(p) != std::string_view::npos)
      throw w.bad(fmt::format("piece {} ({}) is not UTF-8", id, quoted()));
    if (!std::isfinite(m.pieces[id].score))
      throw w.bad(fmt::format("piece {} ({}) has score {}", id, quoted(), m.pieces[id].score));
    if (!seen.insert(p).second)
      throw w.bad(fmt::format("piece {} ({}) is defined twice", id, quoted()));
  }
  if (m.model_type != 1 && m.model_type != 2) {
    static constexpr const char* k_names[] = {"", "UNIGRAM", "BPE", "WORD", "CHAR"};
    throw Error(ErrorKind::unsupported,
                fmt::format("'{}': sentencepiece model type {}{} is not one llmerge converts "
                            "(UNIGRAM, BPE), as transformers' converter",
                            label, m.model_type,
                            m.model_type >= 3 && m.model_type <= 4
                                ? fmt::format(" ({})", k_names[m.model_type])
                                : std::string()));
  }
  if (m.treat_whitespace_as_suffix) {
    throw Error(ErrorKind::unsupported,
                fmt::format("'{}': the sentencepiece model puts the word boundary after words "
                            "(treat_whitespace_as_suffix), which a tokenizer.json made as "
                            "transformers makes one does not represent",
                            label));
  }
  if (m.unk_id < 0 || static_cast<std::size_t>(m.unk_id) >= m.pieces.size() ||
      m.pieces[static_cast<std::size_t>(m.unk_id)].type != PieceType::unknown) {
    throw w.bad(fmt::format("unk_id {} is not the id of an UNKNOWN piece", m.unk_id));
  }
  return m;
}

SentencepieceModel read_sentencepiece_model(const std::filesystem::path& path) {
  return parse_sentencepiece_model(read_regular_file(path), path.string());
}

}  // namespace llmerge
