// Sentencepiece-only tokenizers (io/sentencepiece.h, io/sentencepiece_convert.h,
// docs/tokenizers.md §7): the bounded ModelProto reader, the conversion to a
// tokenizer.json, union / base / model sources over a folder with only
// tokenizer.model, and hostile files refused by the plan (docs/RELIABILITY.md,
// rows 110-). Parity with transformers, sentencepiece and mergekit is
// tests/python/test_tokenizer_golden.py.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>

#include "config/config.h"
#include "core/error.h"
#include "io/files.h"
#include "io/model.h"
#include "io/sentencepiece.h"
#include "io/sentencepiece_convert.h"
#include "io/tokenizer.h"
#include "output/run_merge.h"
#include "plan/plan.h"
#include "plan/vocabulary.h"
#include "synth/synth.h"
#include "test_util.h"

namespace llmerge {
namespace {

using testing::contains;
using testing::error_of;

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::TempDir;

// ---- a protobuf writer for the test files (the wire format of io/sentencepiece.h) ----

std::string varint(std::uint64_t v) {
  std::string out;
  do {
    out += static_cast<char>((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v);
  return out;
}
std::string key(int number, int wire_type) {
  return varint(static_cast<std::uint64_t>(number) << 3 | static_cast<std::uint64_t>(wire_type));
}
std::string field(int number, const std::string& bytes) {
  return key(number, 2) + varint(bytes.size()) + bytes;
}
std::string field(int number, std::int64_t v) {
  return key(number, 0) + varint(static_cast<std::uint64_t>(v));
}
std::string score_field(float f) {
  std::uint32_t u = 0;
  std::memcpy(&u, &f, 4);
  std::string out = key(2, 5);
  for (int i = 0; i < 4; ++i)
    out += static_cast<char>(u >> (8 * i) & 0xff);
  return out;
}

struct Piece {
  std::string piece;
  float score = 0;
  int type = 1;
};

std::string piece_message(const Piece& p) {
  return field(1, p.piece) + score_field(p.score) + (p.type == 1 ? "" : field(3, p.type));
}

struct Spec {
  std::vector<Piece> pieces;
  int model_type = 2;
  bool byte_fallback = false;
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = false;
  std::string charsmap;
  std::string extra_trainer;  // more trainer_spec fields
};

std::string model_bytes(const Spec& s) {
  std::string out;
  for (const auto& p : s.pieces)
    out += field(1, piece_message(p));
  const std::string trainer = field(3, s.model_type) + field(35, s.byte_fallback ? 1 : 0) +
                              field(43, -1) /* pad_id: a 10-byte varint */ + s.extra_trainer;
  out += field(2, trainer);
  std::string norm = field(1, std::string("identity")) + field(3, s.add_dummy_prefix ? 1 : 0) +
                     field(4, s.remove_extra_whitespaces ? 1 : 0);
  if (!s.charsmap.empty()) norm += field(2, s.charsmap);
  out += field(3, norm);
  out += field(4, field(1, std::string("self test data, skipped")));  // an unread message
  return out;
}

// <unk> <s> </s>, then "▁", "a", "b", "é", "▁a", "ab", "▁ab", "▁é" (scores: merged pieces
// rank by score; "ab" outranks "▁a" although its id is later).
Spec llama_like() {
  Spec s;
  s.byte_fallback = true;
  s.pieces = {{"<unk>", 0, 2},
              {"<s>", 0, 3},
              {"</s>", 0, 3},
              {"\xe2\x96\x81", -1, 1},
              {"a", -2, 1},
              {"b", -3, 1},
              {"\xc3\xa9", -4, 1},
              {"\xe2\x96\x81"
               "a",
               -6, 1},
              {"ab", -5, 1},
              {"\xe2\x96\x81"
               "ab",
               -7, 1},
              {"\xe2\x96\x81\xc3\xa9", -8, 1},
              {"<0x41>", 0, 6}};
  return s;
}

TEST(Sentencepiece, ReaderReadsPiecesAndBothSpecsAndSkipsOtherFields) {
  Spec s = llama_like();
  s.extra_trainer = field(41, 1) + field(46, std::string("<s>")) + key(60, 1) + "12345678";
  const SentencepieceModel m = parse_sentencepiece_model(model_bytes(s), "t.model");
  ASSERT_EQ(m.pieces.size(), 12u);
  EXPECT_EQ(m.pieces[3].piece, "\xe2\x96\x81");
  EXPECT_EQ(m.pieces[8].score, -5.0f);
  EXPECT_EQ(m.pieces[0].type, PieceType::unknown);
  EXPECT_EQ(m.pieces[1].type, PieceType::control);
  EXPECT_EQ(m.pieces[11].type, PieceType::byte);
  EXPECT_TRUE(m.is_bpe());
  EXPECT_TRUE(m.byte_fallback);
  EXPECT_EQ(m.pad_id, -1);  // sign-extended on the wire
  EXPECT_EQ(m.unk_id, 0);
  EXPECT_EQ(m.normalizer_name, "identity");
  EXPECT_TRUE(m.add_dummy_prefix);
  EXPECT_FALSE(m.remove_extra_whitespaces);
  EXPECT_TRUE(m.escape_whitespaces);  // the proto default
}

TEST(Sentencepiece, BpeConversionRanksMergesByScoreOverNormalPieces) {
  const SentencepieceModel m = parse_sentencepiece_model(model_bytes(llama_like()), "t.model");
  const json t = tokenizer_json_from_sentencepiece(m, json::object(), "t.model");
  EXPECT_EQ(t["model"]["type"], "BPE");
  EXPECT_EQ(t["model"]["vocab"].size(), 12u);
  EXPECT_EQ(t["model"]["vocab"]["ab"], 8);
  EXPECT_EQ(t["model"]["unk_token"], "<unk>");
  EXPECT_EQ(t["model"]["byte_fallback"], true);
  EXPECT_EQ(t["model"]["fuse_unk"], true);
  EXPECT_EQ(t["model"]["ignore_merges"], false);
  // By score, high first: ab (-5), ▁a (-6), ▁ab (-7: ▁+ab and ▁a+b, then by the left
  // piece), ▁é (-8, split between characters, not bytes). No merge uses <0x41> or <s>.
  const std::string sp = "\xe2\x96\x81";
  const auto pair = [](const std::string& a, const std::string& b) { return json::array({a, b}); };
  EXPECT_EQ(t["model"]["merges"], json::array({pair("a", "b"), pair(sp, "a"), pair(sp, "ab"),
                                               pair(sp + "a", "b"), pair(sp, "\xc3\xa9")}));
  // The special pieces are added tokens, not normalized.
  ASSERT_EQ(t["added_tokens"].size(), 3u);
  EXPECT_EQ(t["added_tokens"][1]["content"], "<s>");
  EXPECT_EQ(t["added_tokens"][1]["special"], true);
  EXPECT_EQ(t["added_tokens"][1]["normalized"], false);
  // Legacy dummy prefix: " " -> "▁", a doubled "▁" at the start, Metaspace always.
  EXPECT_EQ(t["normalizer"]["normalizers"].size(), 2u);
  EXPECT_EQ(t["normalizer"]["normalizers"][0]["content"], sp);
  EXPECT_EQ(t["pre_tokenizer"]["pretokenizers"][0]["prepend_scheme"], "always");
  EXPECT_EQ(t["decoder"]["decoders"].size(), 4u);       // Replace, ByteFallback, Fuse, Strip
  EXPECT_EQ(t["post_processor"]["single"].size(), 1u);  // no add_bos_token: $A alone
}

TEST(Sentencepiece, ConversionFollowsTheSpecsAndTokenizerConfig) {
  const std::string sp = "\xe2\x96\x81";
  Spec s = llama_like();
  s.pieces.push_back({"<tool>", 0, 4});  // user-defined: isolated, never merged
  s.pieces.push_back({"<tool|x>", 0, 4});
  s.remove_extra_whitespaces = true;
  s.charsmap = std::string(
      "\x04\x00\x00\x00"
      "abcd",
      8);
  const SentencepieceModel m = parse_sentencepiece_model(model_bytes(s), "t.model");
  const json config = {{"legacy", false},
                       {"add_bos_token", true},
                       {"added_tokens_decoder",
                        {{"2", {{"content", "</s>"}, {"special", true}, {"rstrip", true}}},
                         {"14", {{"content", "<|im_start|>"}, {"special", true}}},
                         {"15", {{"content", "<|im_end|>"}, {"special", false}}}}}};
  const json t = tokenizer_json_from_sentencepiece(m, config, "t.model");
  const auto& norm = t["normalizer"]["normalizers"];
  ASSERT_EQ(norm.size(), 4u);  // no doubled "▁": not legacy
  EXPECT_EQ(norm[0], json({{"type", "Precompiled"}, {"precompiled_charsmap", "BAAAAGFiY2Q="}}));
  EXPECT_EQ(norm[1]["pattern"]["Regex"], "\\A +| +\\z");
  EXPECT_EQ(norm[3]["content"], sp);
  const auto& pre = t["pre_tokenizer"]["pretokenizers"];
  EXPECT_EQ(pre[0]["prepend_scheme"], "first");
  EXPECT_EQ(pre[1]["pattern"]["Regex"], "<tool\\|x>|<tool>");  // longest first, escaped
  EXPECT_EQ(t["model"]["ignore_merges"], true);
  // added tokens: <unk> <s> </s> (with tokenizer_config's flags), then the new ids.
  ASSERT_EQ(t["added_tokens"].size(), 5u);
  EXPECT_EQ(t["added_tokens"][2]["rstrip"], true);
  EXPECT_EQ(t["added_tokens"][3]["content"], "<|im_start|>");
  EXPECT_EQ(t["added_tokens"][3]["id"], 14);
  EXPECT_EQ(t["added_tokens"][4]["special"], false);
  EXPECT_EQ(t["added_tokens"][4]["normalized"], false);  // matched on the raw text
  // add_bos_token: <s> before each sequence.
  EXPECT_EQ(t["post_processor"]["single"][0]["SpecialToken"]["id"], "<s>");
  EXPECT_EQ(t["post_processor"]["special_tokens"]["<s>"]["ids"], json({1}));
  EXPECT_EQ(t["post_processor"]["pair"].size(), 4u);

  // Unigram: [[piece, score]] and unk_id; no dummy prefix: no Metaspace, no Strip.
  Spec u = llama_like();
  u.model_type = 1;
  u.byte_fallback = false;
  u.add_dummy_prefix = false;
  const json tu = tokenizer_json_from_sentencepiece(
      parse_sentencepiece_model(model_bytes(u), "u.model"), json::object(), "u.model");
  EXPECT_EQ(tu["model"]["type"], "Unigram");
  EXPECT_EQ(tu["model"]["unk_id"], 0);
  EXPECT_EQ(tu["model"]["vocab"][8], json({"ab", -5.0}));
  EXPECT_TRUE(tu["pre_tokenizer"].is_null());
  EXPECT_EQ(tu["decoder"]["decoders"].size(), 1u);

  // What the document cannot say the same way is refused.
  for (const auto& [entries, message] : std::vector<std::pair<json, std::string>>{
           {{{"3", {{"content", "X"}}}}, "renames piece 3"},
           {{{"20", {{"content", "<hole>"}}}},
            "where the next new id after the model's 14 "
            "pieces is 14"},
           {{{"x", {{"content", "<a>"}}}}, "is not {\"id\""}}) {
    ErrorKind kind{};
    const std::string e = error_of(
        [&] {
          tokenizer_json_from_sentencepiece(m, {{"added_tokens_decoder", entries}}, "t.model");
        },
        &kind);
    EXPECT_TRUE(contains(e, message)) << e;
  }
}

// ---- model folders: synth models whose tokenizer is a tokenizer.model ----

SynthOptions tiny(std::uint64_t seed, int vocab) {
  SynthOptions o;
  o.layers = 1;
  o.hidden = 16;
  o.intermediate = 32;
  o.heads = 2;
  o.kv_heads = 1;
  o.vocab = vocab;
  o.dtype = DType::F32;
  o.seed = seed;
  o.threads = 1;
  return o;
}

// A sentencepiece model of `n` pieces: <unk> <s> </s>, then "p3", "p4", ... (synth's
// tokenizer.json has "w<id>" pieces, so a union appends all of these).
Spec numbered(int n) {
  Spec s;
  s.pieces = {{"<unk>", 0, 2}, {"<s>", 0, 3}, {"</s>", 0, 3}};
  for (int i = 3; i < n; ++i)
    s.pieces.push_back({"p" + std::to_string(i), -static_cast<float>(i), 1});
  return s;
}

std::vector<float> read_f32(const fs::path& dir, const std::string& name) {
  const Model model = Model::open(dir);
  const TensorRef* ref = model.find(name);
  EXPECT_NE(ref, nullptr) << name;
  if (!ref) return {};
  std::uint64_t n = 1;
  for (auto d : ref->info->shape)
    n *= static_cast<std::uint64_t>(d);
  std::vector<float> out(n);
  ref->file->read(*ref->info, 0, out.data(), n * 4);
  return out;
}

class SentencepieceFolders : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    write_synth_model(tiny(1, 64), dir_->path() / "spm");  // replaced by tokenizer.model
    fs::remove(dir_->path() / "spm" / "tokenizer.json");
    fs::remove(dir_->path() / "spm" / "tokenizer_config.json");
    testing::write_text(dir_->path() / "spm" / "tokenizer.model", model_bytes(numbered(64)));
    write_synth_model(tiny(2, 64), dir_->path() / "json");
  }
  static void TearDownTestSuite() { delete dir_; }
  static fs::path m(const std::string& name) { return dir_->path() / name; }
  static std::string yaml(const fs::path& base, const fs::path& other, const std::string& tail) {
    return "merge_method: linear\nbase_model: " + base.string() +
           "\nmodels:\n  - model: " + base.string() +
           "\n    parameters: {weight: 0.5}\n  - model: " + other.string() +
           "\n    parameters: {weight: 0.5}\ndtype: float32\n" + tail;
  }
  static MergePlan plan(const std::string& y) {
    return make_plan(parse_config(y, "m.yaml"), PlanSettings{});
  }
  static void run(const std::string& y, const fs::path& out) {
    RunSettings s;
    s.out_dir = out;
    s.writer.force = true;
    s.write_model_card = false;
    run_merge(plan(y), s);
  }
  static TempDir* dir_;
};
TempDir* SentencepieceFolders::dir_ = nullptr;

TEST_F(SentencepieceFolders, UnionOntoASentencepieceBaseWritesAConvertedTokenizerJson) {
  TempDir work;
  run(yaml(m("spm"), m("json"), "tokenizer_source: union\n"), work / "out");
  EXPECT_FALSE(fs::exists(work / "out" / "tokenizer.model"));  // it would lack the new tokens
  const json tok = json::parse(testing::read_text(work / "out" / "tokenizer.json"));
  EXPECT_EQ(tok["model"]["type"], "BPE");
  EXPECT_EQ(tok["model"]["vocab"]["p63"], 63);
  EXPECT_TRUE(tok["normalizer"].is_object());
  // The json model's 64 tokens are all new but its "<unk>" "<s>" "</s>": 61 appended.
  const TokenizerVocab v = read_tokenizer_vocab(work / "out");
  EXPECT_EQ(v.ids.size(), 64u + 61u);
  EXPECT_EQ(v.ids.at("<s>"), 1);
  const auto config = json::parse(testing::read_text(work / "out" / "config.json"));
  EXPECT_EQ(config["vocab_size"], 125);
  // An appended token's row is the json model's own (the one model that has it).
  const auto rows = read_f32(work / "out", "model.embed_tokens.weight");
  const auto theirs = read_f32(m("json"), "model.embed_tokens.weight");
  const TokenizerVocab jv = read_tokenizer_vocab(m("json"));
  const std::string token = "A";  // synth's tokens are printable ASCII from '!'

  ASSERT_TRUE(jv.ids.count(token) && v.ids.count(token));
  for (int c = 0; c < 16; ++c)
    EXPECT_EQ(rows[static_cast<std::size_t>(v.ids.at(token) * 16 + c)],
              theirs[static_cast<std::size_t>(jv.ids.at(token) * 16 + c)]);
  // inspect says where the tokenizer came from.
  std::string out;
  ASSERT_EQ(testing::run_cli("inspect " + m("spm").string(), &out), 0) << out;
  EXPECT_TRUE(contains(out, "BPE (converted from sentencepiece tokenizer.model), 64 tokens"))
      << out;
}

TEST_F(SentencepieceFolders, BaseSourceCopiesTokenizerModelUnlessItMustChange) {
  TempDir work;
  // Nothing stripped or added: the file is copied as it is, which loads as itself.
  run(yaml(m("spm"), m("spm"), "tokenizer_source: base\n"), work / "same");
  EXPECT_EQ(testing::read_text(work / "same" / "tokenizer.model"),
            testing::read_text(m("spm") / "tokenizer.model"));
  EXPECT_FALSE(fs::exists(work / "same" / "tokenizer.json"));
  // An added token: a converted tokenizer.json with it, and no tokenizer.model.
  run(yaml(m("spm"), m("json"),
           "tokenizer:\n  source: base\n  tokens:\n    \"<new>\": {source: {kind: zero}}\n"),
      work / "added");
  EXPECT_FALSE(fs::exists(work / "added" / "tokenizer.model"));
  const TokenizerVocab v = read_tokenizer_vocab(work / "added");
  EXPECT_EQ(v.ids.at("<new>"), 64);
  EXPECT_EQ(v.ids.size(), 65u);
  // A model source that is sentencepiece-only works the same way.
  const MergePlan p =
      plan(yaml(m("json"), m("spm"), "tokenizer_source: " + m("spm").string() + "\n"));
  ASSERT_TRUE(p.vocabulary);
  EXPECT_EQ(p.vocabulary->model_type, "BPE");
  EXPECT_EQ(p.vocabulary->rows, 64);
}

TEST_F(SentencepieceFolders, CopiedTokenizerModelWithMorePiecesThanRowsIsRefused) {
  // No tokenizer_source: the first model's 64-piece tokenizer.model would be
  // copied next to embeddings cut to the other model's 48 rows.
  TempDir work;
  write_synth_model(tiny(3, 48), work / "small");
  const std::string plain =
      "merge_method: linear\nmodels:\n  - model: " + m("spm").string() +
      "\n    parameters: {weight: 1}\n  - model: " + (work / "small").string() +
      "\n    parameters: {weight: 1}\n";
  ErrorKind kind{};
  const std::string e = error_of([&] { plan(plain); }, &kind);
  EXPECT_EQ(kind, ErrorKind::shape) << e;
  EXPECT_TRUE(contains(e, "uses 64 token ids (tokenizer.model)")) << e;
  EXPECT_TRUE(contains(e, "48 embedding rows")) << e;
  // A file llmerge cannot read is copied as it is (as mergekit does), not counted.
  fs::copy(m("spm"), work / "garbled", fs::copy_options::recursive);
  testing::write_text(work / "garbled" / "tokenizer.model", "not a model");
  std::string y = plain;
  y.replace(y.find(m("spm").string()), m("spm").string().size(), (work / "garbled").string());
  EXPECT_NO_THROW(plan(y));
}

TEST_F(SentencepieceFolders, AddedTokensFromTheFolderAreReadOrRefused) {
  TempDir work;
  fs::copy(m("spm"), work / "a", fs::copy_options::recursive);
  // An old slow-tokenizer save: added_tokens.json, not in tokenizer_config.json.
  testing::write_text(work / "a" / "added_tokens.json", R"({"<x>": 64})");
  ErrorKind kind{};
  const std::string e = error_of([&] { read_tokenizer_vocab(work / "a"); }, &kind);
  EXPECT_EQ(kind, ErrorKind::unsupported) << e;
  EXPECT_TRUE(contains(e, "adds \"<x>\" (id 64), which tokenizer_config.json's")) << e;
  // Listed in added_tokens_decoder too: read, with its flags (a non-boolean one ignored).
  testing::write_text(work / "a" / "tokenizer_config.json",
                      R"({"added_tokens_decoder": {"64": {"content": "<x>", "special": "yes",
                          "lstrip": true}}})");
  const TokenizerVocab v = read_tokenizer_vocab(work / "a");
  EXPECT_EQ(v.ids.at("<x>"), 64);
  ASSERT_EQ(v.added.back()["content"], "<x>");
  EXPECT_EQ(v.added.back()["special"], false);
  EXPECT_EQ(v.added.back()["lstrip"], true);
}

// ---- hostile tokenizer.model files (docs/RELIABILITY.md, rows 110-) ----

TEST_F(SentencepieceFolders, HostileTokenizerModelsAreRefusedByThePlanAndNothingIsWritten) {
  const std::string good = model_bytes(numbered(64));
  std::string many;  // one piece over the cap: each an empty 2-byte piece message
  for (std::size_t i = 0; i <= k_sentencepiece_pieces_max; ++i)
    many.append("\x0a\x00", 2);
  Spec word = numbered(64);
  word.model_type = 3;
  Spec suffix = numbered(64);
  suffix.extra_trainer = field(24, 1);
  Spec dup = numbered(64);
  dup.pieces[5].piece = "p4";
  Spec bad_utf8 = numbered(64);
  bad_utf8.pieces[5].piece = "\xc3(";
  Spec nan_score = numbered(64);
  nan_score.pieces[5].score = std::nanf("");
  Spec no_unk = numbered(64);
  no_unk.pieces[0].type = 1;
  struct Case {
    const char* name;
    std::string bytes;
    ErrorKind kind;
    const char* message;
  };
  const std::vector<Case> cases{
      {"truncated", good.substr(0, good.size() / 2), ErrorKind::format, "only"},
      {"garbage", std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11),
       ErrorKind::format, "a varint overflows 64 bits"},
      {"huge declared length", key(1, 2) + varint(std::uint64_t{1} << 62) + "x", ErrorKind::format,
       "declares 4611686018427387904 bytes"},
      {"a group", key(1, 3), ErrorKind::format, "wire type 3"},
      {"empty", "", ErrorKind::format, "no pieces"},
      {"too many pieces", many, ErrorKind::format, "more than 2097152 pieces"},
      {"a piece type of 9", field(1, field(1, std::string("a")) + field(3, 9)), ErrorKind::format,
       "piece type 9"},
      {"duplicate piece", model_bytes(dup), ErrorKind::format, "defined twice"},
      {"not UTF-8", model_bytes(bad_utf8), ErrorKind::format, "is not UTF-8"},
      {"NaN score", model_bytes(nan_score), ErrorKind::format, "has score nan"},
      {"no unk piece", model_bytes(no_unk), ErrorKind::format, "not the id of an UNKNOWN"},
      {"WORD model", model_bytes(word), ErrorKind::unsupported, "model type 3 (WORD)"},
      {"whitespace as suffix", model_bytes(suffix), ErrorKind::unsupported,
       "treat_whitespace_as_suffix"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    TempDir work;
    fs::copy(m("spm"), work / "a", fs::copy_options::recursive);
    testing::write_text(work / "a" / "tokenizer.model", c.bytes);
    ErrorKind kind{};
    const std::string e = error_of(
        [&] { run(yaml(work / "a", m("json"), "tokenizer_source: union\n"), work / "out"); },
        &kind);
    EXPECT_EQ(kind, c.kind) << e;
    EXPECT_TRUE(contains(e, c.message)) << e;
    EXPECT_TRUE(contains(e, "tokenizer of model")) << e;
    if (c.kind == ErrorKind::unsupported) {  // the way out
      EXPECT_TRUE(contains(e, "save it once as a tokenizer.json")) << e;
    }
    EXPECT_FALSE(fs::exists(work / "out"));
  }
}

TEST_F(SentencepieceFolders, OversizedOrOutsideTokenizerModelsAreRefused) {
  TempDir work;
  fs::copy(m("spm"), work / "big", fs::copy_options::recursive);
  {  // sparse: the size check comes before any read
    std::ofstream(work / "big" / "tokenizer.model").close();
    fs::resize_file(work / "big" / "tokenizer.model", k_side_file_max + 1);
  }
  fs::copy(m("spm"), work / "link", fs::copy_options::recursive);
  fs::remove(work / "link" / "tokenizer.model");
  testing::write_text(work / "outside.model", model_bytes(numbered(64)));
  fs::create_symlink(work / "outside.model", work / "link" / "tokenizer.model");
  for (const auto& [name, message] : std::vector<std::pair<std::string, std::string>>{
           {"big", "over the 100000000 byte limit"}, {"link", "outside the model folder"}}) {
    SCOPED_TRACE(name);
    const std::string e = error_of(
        [&] { run(yaml(work / name, m("json"), "tokenizer_source: union\n"), work / "out"); });
    EXPECT_TRUE(contains(e, message)) << e;
    EXPECT_TRUE(contains(e, "tokenizer of model")) << e;
    EXPECT_FALSE(fs::exists(work / "out"));
  }
}

}  // namespace
}  // namespace llmerge
