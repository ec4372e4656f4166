// Output vocabularies and aligned embedding rows (plan/vocabulary.h,
// docs/tokenizers.md): sources, default rows, overrides, padding, plan errors
// with YAML locations, hostile tokenizer files, chat templates. The parity with
// mergekit itself is tests/python/test_tokenizer_golden.py.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>

#include "config/config.h"
#include "core/error.h"
#include "io/model.h"
#include "io/tokenizer.h"
#include "output/run_merge.h"
#include "plan/chat_templates.h"
#include "plan/plan.h"
#include "plan/vocabulary.h"
#include "synth/synth.h"
#include "test_util.h"

namespace llmerge {
namespace {

using testing::contains;
using testing::error_of;

namespace fs = std::filesystem;
using testing::TempDir;

// synth's tokenizer: WordLevel, "<unk>" "<s>" "</s>", then printable ASCII, then "w<id>".
SynthOptions tiny(std::uint64_t seed, int vocab, bool tied = false) {
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
  o.tied = tied;
  return o;
}

std::vector<float> read_f32(const fs::path& dir, const std::string& name,
                            std::vector<std::int64_t>* shape = nullptr) {
  const Model model = Model::open(dir);
  const TensorRef* ref = model.find(name);
  EXPECT_NE(ref, nullptr) << name;
  if (!ref) return {};
  if (shape) *shape = ref->info->shape;
  std::uint64_t n = 1;
  for (auto d : ref->info->shape)
    n *= static_cast<std::uint64_t>(d);
  std::vector<float> out(n);
  ref->file->read(*ref->info, 0, out.data(), n * 4);
  return out;
}

class Vocabulary : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    write_synth_model(tiny(1, 128), dir_->path() / "a");    // tokens 0..127
    write_synth_model(tiny(2, 160), dir_->path() / "big");  // the same 128 + w128..w159
    write_synth_model(tiny(3, 128), dir_->path() / "c");
    write_synth_model(tiny(4, 128, true), dir_->path() / "ta");  // tied: no lm_head
    write_synth_model(tiny(5, 160, true), dir_->path() / "tb");
    SynthOptions wide = tiny(6, 128);
    wide.hidden = 32;
    wide.intermediate = 64;
    write_synth_model(wide, dir_->path() / "wide");
    ready_ = true;
  }
  static void TearDownTestSuite() { delete dir_; }
  void SetUp() override { ASSERT_TRUE(ready_); }
  static std::string m(const std::string& name) { return (dir_->path() / name).string(); }

  // linear over the models, weights 1/n, base `base` (or none).
  static std::string linear(const std::vector<std::string>& models, const std::string& tokenizer,
                            const std::string& base = "") {
    std::string y = "merge_method: linear\n";
    if (!base.empty()) y += "base_model: " + m(base) + "\n";
    y += "models:\n";
    for (const auto& model : models)
      y += "  - model: " + m(model) + "\n    parameters: {weight: 1}\n";
    return y + tokenizer;
  }
  static MergePlan plan(const std::string& yaml) {
    return make_plan(parse_config(yaml, "m.yaml"), PlanSettings{});
  }
  static fs::path run(const std::string& yaml, const fs::path& out) {
    RunSettings s;
    s.out_dir = out;
    s.writer.force = true;
    s.write_model_card = false;
    run_merge(plan(yaml), s);
    return out;
  }
  static TempDir* dir_;
  static bool ready_;
};
TempDir* Vocabulary::dir_ = nullptr;
bool Vocabulary::ready_ = false;

TEST_F(Vocabulary, UnionHoldsEveryModelsTokensAndSizesEveryTable) {
  const MergePlan p = plan(linear({"a", "big"}, "tokenizer_source: union\n", "a"));
  ASSERT_TRUE(p.vocabulary);
  EXPECT_EQ(p.vocabulary->size, 160);
  EXPECT_EQ(p.vocabulary->rows, 160);
  EXPECT_EQ(p.vocabulary->appended.size(), 32u);  // w128..w159, as added tokens
  EXPECT_EQ(p.out_config["vocab_size"], 160);
  int tables = 0;
  for (const auto& t : p.tensors) {
    if (!is_token_table(t.name)) continue;
    ++tables;
    EXPECT_EQ(t.shape, (std::vector<std::int64_t>{160, 16})) << t.name;
    for (const auto& in : t.inputs)
      EXPECT_EQ(in.source, SourceKind::row_gather) << t.name;
  }
  EXPECT_EQ(tables, 2);
  // The base source keeps the base's 128 tokens: big's extra rows are dropped.
  EXPECT_EQ(plan(linear({"a", "big"}, "tokenizer_source: base\n", "a")).vocabulary->rows, 128);
  // A model source is that model's tokenizer.
  EXPECT_EQ(plan(linear({"a", "big"}, "tokenizer_source: " + m("big") + "\n")).vocabulary->rows,
            160);
}

// The invariant the issue states: whatever the source and padding, every id of
// the written tokenizer has a row in every token table, and config.json agrees.
TEST_F(Vocabulary, NoOutputHasFewerRowsThanItsTokenizer) {
  TempDir work;
  int n = 0;
  for (const std::string& source : std::vector<std::string>{"base", "union", m("a"), m("big")}) {
    for (const std::string pad : {"", "  pad_to_multiple_of: 48\n"}) {
      for (const bool tied : {false, true}) {
        SCOPED_TRACE(source + " " + pad + (tied ? " tied" : ""));
        const std::string src = source == m("a") && tied     ? m("ta")
                                : source == m("big") && tied ? m("tb")
                                                             : source;
        const std::vector<std::string> models =
            tied ? std::vector<std::string>{"ta", "tb"} : std::vector<std::string>{"a", "big"};
        const fs::path out =
            run(linear(models, "tokenizer:\n  source: " + src + "\n" + pad, tied ? "ta" : "a"),
                work / std::to_string(n++));
        const TokenizerVocab v = read_tokenizer_vocab(out);
        const Model model = Model::open(out);
        const auto vocab_size = model.config_int("vocab_size");
        ASSERT_TRUE(vocab_size);
        int tables = 0;
        for (const auto& name : model.tensor_names()) {
          if (!is_token_table(name)) continue;
          ++tables;
          const auto rows = model.find(name)->info->shape[0];
          EXPECT_GE(rows, v.id_end) << name;
          EXPECT_EQ(rows, *vocab_size) << name;
          if (!pad.empty()) {
            EXPECT_EQ(rows % 48, 0) << name;
          }
        }
        EXPECT_EQ(tables, tied ? 1 : 2);
        EXPECT_EQ(model.find("lm_head.weight") == nullptr, tied);
      }
    }
  }
}

TEST_F(Vocabulary, RowsFollowTheDefaultRules) {
  TempDir work;
  // a and c have tokens 0..127, big has 0..159; the base is a.
  const fs::path out = run(linear({"a", "c", "big"}, "tokenizer_source: union\n", "a"), work / "o");
  const auto merged = read_f32(out, "model.embed_tokens.weight");
  const auto a = read_f32(m("a"), "model.embed_tokens.weight");
  const auto c = read_f32(m("c"), "model.embed_tokens.weight");
  const auto big = read_f32(m("big"), "model.embed_tokens.weight");
  const std::size_t w = 16;
  // Shared token (id 5): each model's own row; linear with weights 1 normalises to the mean.
  for (std::size_t i = 0; i < w; ++i)
    EXPECT_NEAR(merged[5 * w + i], (a[5 * w + i] + c[5 * w + i] + big[5 * w + i]) / 3, 1e-6);
  // A token only big has (w150): a and c take big's row, so the merge is big's row.
  for (std::size_t i = 0; i < w; ++i)
    EXPECT_NEAR(merged[150 * w + i], big[150 * w + i], 1e-6);
}

TEST_F(Vocabulary, OverridesReplaceTheDefaultAndForceReplacesOwnRows) {
  TempDir work;
  const std::string tok =
      "tokenizer:\n  source: union\n  tokens:\n"
      "    w150: {source: {kind: zero}}\n"
      "    w105: {source: {kind: model_token, model: " +
      m("c") +
      ", token_id: 7}, force: true}\n"
      "    \"<new>\": {source: {kind: model_token, model: " +
      m("a") + ", token: \"w109\"}}\n";
  const MergePlan p = plan(linear({"a", "c", "big"}, tok, "a"));
  EXPECT_EQ(p.vocabulary->size, 161);  // + "<new>"
  const fs::path out = run(linear({"a", "c", "big"}, tok, "a"), work / "o");
  const auto merged = read_f32(out, "model.embed_tokens.weight");
  const auto a = read_f32(m("a"), "model.embed_tokens.weight");
  const auto c = read_f32(m("c"), "model.embed_tokens.weight");
  const auto big = read_f32(m("big"), "model.embed_tokens.weight");
  const std::size_t w = 16;
  const TokenizerVocab v = read_tokenizer_vocab(out);
  const auto new_id = static_cast<std::size_t>(v.ids.at("<new>"));
  for (std::size_t i = 0; i < w; ++i) {
    // Not forced: big keeps its own row of w150, a and c take zero: the mean is big / 3.
    EXPECT_NEAR(merged[150 * w + i], big[150 * w + i] / 3, 1e-6);
    // Forced: every model takes c's row 7 for w105.
    EXPECT_NEAR(merged[105 * w + i], c[7 * w + i], 1e-6);
    // A new token: a's row of w109 for every model.
    EXPECT_NEAR(merged[new_id * w + i], a[109 * w + i], 1e-6);
  }
}

TEST_F(Vocabulary, PaddingRowsAreTheMeanOfEachModelsRows) {
  TempDir work;
  const std::string tok = "tokenizer:\n  source: base\n  pad_to_multiple_of: 96\n";
  std::vector<std::int64_t> shape;
  const fs::path out = run(linear({"a"}, tok), work / "o");
  const auto merged = read_f32(out, "lm_head.weight", &shape);
  ASSERT_EQ(shape, (std::vector<std::int64_t>{192, 16}));
  const auto a = read_f32(m("a"), "lm_head.weight");
  for (std::size_t i = 0; i < 16; ++i) {
    double mean = 0;
    for (std::size_t r = 0; r < 128; ++r)
      mean += a[r * 16 + i];
    mean /= 128;
    for (std::size_t r = 128; r < 192; ++r)
      EXPECT_NEAR(merged[r * 16 + i], mean, 1e-6);
  }
}

// Row runs are coalesced into one read and padding is summed in f64 in row order
// (10000 rows x 16: three chunks of 65536):
// neither may depend on how the rows are cut into chunks or spread over threads.
TEST_F(Vocabulary, AlignedRowsAreByteIdenticalAcrossThreadsAndChunkSizes) {
  TempDir work;
  const std::string yaml = linear({"a", "c", "big"},
                                  "tokenizer:\n  source: union\n  pad_to_multiple_of: 10000\n"
                                  "  tokens:\n    w3x: {source: {kind: zero}}\n",
                                  "a");
  std::string first;
  for (const auto& [threads, chunk] :
       std::vector<std::pair<int, std::int64_t>>{{1, 65536}, {3, 65536}, {2, 3 * 65536}}) {
    RunSettings s;
    s.out_dir = work / ("o" + std::to_string(threads) + "-" + std::to_string(chunk));
    s.execute.threads = threads;
    s.execute.chunk_elements = chunk;
    s.write_model_card = false;
    run_merge(plan(yaml), s);
    const std::string bytes = testing::read_text(s.out_dir / "model.safetensors");
    if (first.empty()) {
      first = bytes;
    } else {
      EXPECT_EQ(bytes, first) << s.out_dir;
    }
  }
}

TEST_F(Vocabulary, PlanErrorsNameTheTokenAndTheYamlLine) {
  ErrorKind kind{};
  // Line 9 is the entry of a token no model has, with no source.
  std::string e = error_of(
      [&] {
        plan(linear({"a", "big"}, "tokenizer:\n  tokens:\n    \"<ghost>\": {force: true}\n"));
      },
      &kind);
  EXPECT_EQ(kind, ErrorKind::config);
  EXPECT_TRUE(contains(e, "m.yaml:9:5")) << e;
  EXPECT_TRUE(contains(e, "no model has the token \"<ghost>\"")) << e;
  // A model_token id past the model's rows.
  e = error_of([&] {
    plan(linear({"a", "big"},
                "tokenizer:\n  tokens:\n    w3: {source: {kind: model_token, model: " + m("a") +
                    ", token_id: 128}}\n"));
  });
  EXPECT_TRUE(contains(e, "m.yaml:9:18")) << e;
  EXPECT_TRUE(contains(e, "token_id 128 is out of range for model")) << e;
  EXPECT_TRUE(contains(e, "has 128 rows")) << e;
  // `source: <model>` for a token that model lacks.
  e = error_of([&] {
    plan(linear({"a", "big"},
                "tokenizer:\n  tokens:\n    w150: {source: " + m("a") + ", force: true}\n"));
  });
  EXPECT_TRUE(contains(e, "has no token \"w150\"")) << e;
  // A model that is not in the merge.
  e = error_of([&] {
    plan(linear({"a", "big"}, "tokenizer:\n  tokens:\n    w3: {source: " + m("c") + "}\n"));
  });
  EXPECT_TRUE(contains(e, "is not one of the merge's models")) << e;
  // Embedding widths that differ, at the model's entry (line 5). (The hidden-size check
  // would report wider models first: this one claims the same hidden size.)
  TempDir work;
  fs::copy(m("wide"), work / "wide", fs::copy_options::recursive);
  nlohmann::json cfg = nlohmann::json::parse(testing::read_text(work / "wide" / "config.json"));
  cfg["hidden_size"] = 16;
  testing::write_text(work / "wide" / "config.json", cfg.dump());
  e = error_of(
      [&] {
        plan("merge_method: linear\nmodels:\n  - model: " + m("a") +
             "\n    parameters: {weight: 1}\n  - model: " + (work / "wide").string() +
             "\n    parameters: {weight: 1}\ntokenizer_source: union\n");
      },
      &kind);
  EXPECT_EQ(kind, ErrorKind::shape);
  EXPECT_TRUE(contains(e, "embedding widths differ")) << e;
  EXPECT_TRUE(contains(e, "m.yaml:5:")) << e;
}

TEST_F(Vocabulary, BaseSourceStripsTokensPastTheConfigVocabSize) {
  TempDir work;
  fs::copy(m("a"), work / "a", fs::copy_options::recursive);
  // Two special tokens past the 128 rows, listed in the special-token lists too.
  nlohmann::json tok = nlohmann::json::parse(testing::read_text(work / "a" / "tokenizer.json"));
  for (int id : {128, 129}) {
    tok["added_tokens"].push_back({{"id", id},
                                   {"content", "<pad" + std::to_string(id) + ">"},
                                   {"special", true},
                                   {"normalized", false}});
  }
  testing::write_text(work / "a" / "tokenizer.json", tok.dump());
  nlohmann::json cfg =
      nlohmann::json::parse(testing::read_text(work / "a" / "tokenizer_config.json"));
  cfg["additional_special_tokens"] = {"<pad128>", "<pad129>", "</s>"};
  cfg["pad_token"] = "<pad129>";
  testing::write_text(work / "a" / "tokenizer_config.json", cfg.dump());
  const std::string yaml = "merge_method: linear\nmodels:\n  - model: " + (work / "a").string() +
                           "\n    parameters: {weight: 1}\n  - model: " + m("c") +
                           "\n    parameters: {weight: 1}\ntokenizer_source: base\n";
  const fs::path out = run(yaml, work / "o");
  const TokenizerVocab v = read_tokenizer_vocab(out);
  EXPECT_EQ(v.id_end, 128);
  EXPECT_FALSE(v.ids.count("<pad128>"));
  const nlohmann::json written =
      nlohmann::json::parse(testing::read_text(out / "tokenizer_config.json"));
  EXPECT_EQ(written["additional_special_tokens"], nlohmann::json({"</s>"}));
  EXPECT_FALSE(written.contains("pad_token"));
}

// Stripping works for every vocabulary kind: WordPiece and WordLevel lose the
// entries, Unigram's list is cut (its ids are the indices), BPE loses merges too.
TEST_F(Vocabulary, BaseSourceStripsEveryVocabularyKind) {
  for (const std::string type : {"Unigram", "WordPiece", "BPE"}) {
    SCOPED_TRACE(type);
    TempDir work;
    fs::copy(m("a"), work / "a", fs::copy_options::recursive);
    nlohmann::json model{{"type", type}};
    if (type == "Unigram") {
      model["unk_id"] = 0;
      model["vocab"] = nlohmann::json::array();
      for (int id = 0; id < 130; ++id)
        model["vocab"].push_back({"p" + std::to_string(id), -1.0 * id});
    } else {
      model["vocab"] = nlohmann::json::object();
      for (int id = 0; id < 130; ++id)
        model["vocab"]["p" + std::to_string(id)] = id;
      if (type == "BPE") model["merges"] = {"p1 p2", "p3 p129", nlohmann::json{"p128", "p4"}};
    }
    testing::write_text(
        work / "a" / "tokenizer.json",
        nlohmann::json{{"model", model}, {"added_tokens", nlohmann::json::array()}}.dump());
    fs::remove(work / "a" / "tokenizer_config.json");
    const std::string yaml = "merge_method: linear\nmodels:\n  - model: " + (work / "a").string() +
                             "\n    parameters: {weight: 1}\ntokenizer_source: base\n";
    const fs::path out = run(yaml, work / "o");
    const TokenizerVocab v = read_tokenizer_vocab(out);
    EXPECT_EQ(v.model_type, type);
    EXPECT_EQ(v.ids.size(), 128u);
    EXPECT_EQ(v.id_end, 128);
    EXPECT_FALSE(v.ids.count("p128"));
    const auto written = nlohmann::json::parse(testing::read_text(out / "tokenizer.json"));
    if (type == "BPE") {
      EXPECT_EQ(written["model"]["merges"], nlohmann::json({"p1 p2"}));
    }
  }
}

// ---- hostile tokenizer files (docs/RELIABILITY.md, rows 60-) ----

TEST_F(Vocabulary, HostileTokenizerFilesAreRefusedByThePlan) {
  struct Case {
    const char* name;
    std::string tokenizer_json;
    ErrorKind kind;
    const char* message;
  };
  const std::vector<Case> cases{
      {"negative id", R"({"model": {"type": "WordLevel", "vocab": {"a": -1}}})", ErrorKind::format,
       "which is not a token id"},
      {"huge id", R"({"model": {"type": "BPE", "vocab": {"a": 99999999999999999}}})",
       ErrorKind::format, "which is not a token id"},
      {"vocab not a map", R"({"model": {"type": "BPE", "vocab": [1, 2]}})", ErrorKind::format,
       "is not an object {piece: id}"},
      {"unigram not pairs", R"({"model": {"type": "Unigram", "vocab": [1]}})", ErrorKind::format,
       "is not [piece, score]"},
      {"unknown type", R"({"model": {"type": "Telepathy", "vocab": {}}})", ErrorKind::unsupported,
       "tokenizer model type 'Telepathy'"},
      {"added token without id", R"({"model": {"vocab": {}}, "added_tokens": [{"content": "x"}]})",
       ErrorKind::format, "lacks \"id\" or \"content\""},
      {"not an object", "[1, 2, 3]", ErrorKind::format, "not a JSON object"},
      {"deep nesting", std::string(100000, '['), ErrorKind::format, ""},
      {"config not an object", "[\"chat_template\"]", ErrorKind::format, "not a JSON object"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    TempDir work;
    fs::copy(m("a"), work / "a", fs::copy_options::recursive);
    testing::write_text(work / "a" / "tokenizer.json", c.tokenizer_json);
    if (std::string_view(c.name) == "config not an object") {
      fs::copy_file(m("a") + "/tokenizer.json", work / "a" / "tokenizer.json",
                    fs::copy_options::overwrite_existing);
      testing::write_text(work / "a" / "tokenizer_config.json", c.tokenizer_json);
    }
    const std::string yaml = "merge_method: linear\nmodels:\n  - model: " + (work / "a").string() +
                             "\n    parameters: {weight: 1}\n  - model: " + m("c") +
                             "\n    parameters: {weight: 1}\ntokenizer_source: union\n";
    ErrorKind kind{};
    const std::string e = error_of([&] { plan(yaml); }, &kind);
    EXPECT_EQ(kind, c.kind) << e;
    EXPECT_TRUE(contains(e, c.message)) << e;
    EXPECT_TRUE(contains(e, "tokenizer of model")) << e;
  }
}

// ---- chat templates ----

TEST_F(Vocabulary, ChatTemplatesResolveBuiltinsAutoFilesAndLiterals) {
  const auto& builtins = builtin_chat_templates();
  std::vector<std::string> names;
  for (const auto& b : builtins)
    names.emplace_back(b.path);
  EXPECT_EQ(names, (std::vector<std::string>{"alpaca.jinja", "chatml.jinja", "exaone.jinja",
                                             "llama3.jinja", "mistral.jinja"}));
  const std::string base = linear({"a", "c"}, "tokenizer_source: union\n");
  EXPECT_EQ(plan(base + "chat_template: llama3\n").chat_template, std::string(builtins[3].data));
  // auto: the most common template among the models (two of three say "T2").
  TempDir work;
  for (const char* name : {"x", "y", "z"}) {
    fs::copy(m("a"), work / name, fs::copy_options::recursive);
    testing::write_text(work / name / "chat_template.jinja",
                        std::string(name) == "x" ? "{{ T1 }}" : "  {{ T2 }}\n");
  }
  std::string three = "merge_method: linear\nmodels:\n";
  for (const char* name : {"x", "y", "z"})
    three += "  - model: " + (work / name).string() + "\n    parameters: {weight: 1}\n";
  three += "chat_template: auto\n";
  EXPECT_EQ(plan(three).chat_template, "{{ T2 }}");
  // A .jinja file relative to base_dir, and a literal template.
  testing::write_text(work / "t.jinja", "{{ messages }}");
  PlanSettings settings;
  settings.base_dir = work.path();
  EXPECT_EQ(
      make_plan(parse_config(base + "chat_template: t.jinja\n", "m.yaml"), settings).chat_template,
      "{{ messages }}");
  EXPECT_EQ(
      plan(base + "chat_template: \"{% for m in messages %}{{ m }}{% endfor %}\"\n").chat_template,
      "{% for m in messages %}{{ m }}{% endfor %}");
  const std::string e = error_of([&] { plan(base + "chat_template: chatml2\n"); });
  EXPECT_TRUE(contains(e, "not a built-in (alpaca, chatml, exaone, llama3, mistral)")) << e;
  // Written where transformers reads it.
  const fs::path out = run(base + "chat_template: chatml\n", work / "o");
  EXPECT_EQ(testing::read_text(out / "chat_template.jinja"), builtins[1].data);
  EXPECT_EQ(
      nlohmann::json::parse(testing::read_text(out / "tokenizer_config.json"))["chat_template"],
      builtins[1].data);
}

TEST_F(Vocabulary, InspectShowsTheTokenizerAndPlanShowsTheVocabulary) {
  std::string out;
  ASSERT_EQ(testing::run_cli("inspect " + m("big"), &out), 0) << out;
  EXPECT_TRUE(contains(out, "tokenizer:       WordLevel, 160 tokens")) << out;
  EXPECT_TRUE(contains(out, "added tokens:    3 (\"<unk>\", \"<s>\", \"</s>\")")) << out;
  EXPECT_TRUE(contains(out, "chat template:   no")) << out;
  ASSERT_EQ(testing::run_cli("inspect " + m("big") + " --json", &out), 0) << out;
  const auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["tokenizer"]["tokens"], 160);
  EXPECT_EQ(j["tokenizer"]["type"], "WordLevel");
  TempDir work;
  testing::write_text(work / "m.yaml", linear({"a", "big"}, "tokenizer_source: union\n", "a"));
  ASSERT_EQ(testing::run_cli("plan " + (work / "m.yaml").string(), &out), 0) << out;
  EXPECT_TRUE(contains(out, "vocabulary: union (tokenizer of " + m("a") +
                                ", WordLevel), 160 tokens (32 added), 160 embedding rows"))
      << out;
  // a lacks w128..w159: it takes big's rows, the one model that has them.
  EXPECT_TRUE(contains(out,
                       "model.embed_tokens.weight: 128 own rows in every model, 32 from the "
                       "one model that has the token"))
      << out;
}

}  // namespace
}  // namespace llmerge
