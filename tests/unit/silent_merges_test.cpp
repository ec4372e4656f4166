// Configs that used to give a silently wrong model with exit 0, and config
// mistakes that were reported badly: each must now work or be refused by the
// plan (docs/RELIABILITY.md, "Silently wrong output"; issue 12, classes 1-7,
// 21, 23, 25).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <thread>

#include "config/config.h"
#include "core/cancel.h"
#include "core/dtype.h"
#include "core/error.h"
#include "io/model.h"
#include "output/run_merge.h"
#include "plan/plan.h"
#include "synth/synth.h"
#include "test_util.h"

namespace llmerge {
namespace {

using testing::contains;
using testing::error_of;

namespace fs = std::filesystem;
using testing::TempDir;

SynthOptions tiny(std::uint64_t seed, int vocab = 256, DType dtype = DType::BF16) {
  SynthOptions o;
  o.layers = 2;
  o.hidden = 64;
  o.intermediate = 128;
  o.heads = 2;
  o.kv_heads = 1;
  o.vocab = vocab;
  o.dtype = dtype;
  o.seed = seed;
  o.threads = 1;
  return o;
}

MergePlan plan_yaml(const std::string& yaml) {
  return make_plan(parse_config(yaml, "m.yaml"), PlanSettings{});
}

class SilentMerges : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    write_synth_model(tiny(1), dir_->path() / "big");          // 256 tokens
    write_synth_model(tiny(2, 200), dir_->path() / "small");   // 200 tokens
    write_synth_model(tiny(3, 200), dir_->path() / "small2");  // 200 tokens
    write_synth_model(tiny(4, 256, DType::F16), dir_->path() / "f16a");
    write_synth_model(tiny(5, 256, DType::F16), dir_->path() / "f16b");
    write_synth_model(tiny(6, 256, DType::BF16), dir_->path() / "bf16a");
    write_synth_model(tiny(7, 256, DType::BF16), dir_->path() / "bf16b");
    ready_ = true;
  }
  static void TearDownTestSuite() { delete dir_; }
  void SetUp() override { ASSERT_TRUE(ready_) << "fixture models could not be made"; }
  static std::string m(const std::string& name) { return (dir_->path() / name).string(); }
  static std::string linear(const std::string& a, const std::string& b,
                            const std::string& extra = "") {
    return "merge_method: linear\n" + extra + "models:\n  - model: " + m(a) +
           "\n    parameters: {weight: 1}\n  - model: " + m(b) + "\n    parameters: {weight: 1}\n";
  }
  static TempDir* dir_;
  static bool ready_;
};
TempDir* SilentMerges::dir_ = nullptr;
bool SilentMerges::ready_ = false;

// ---- 1: the tokenizer and the embeddings agree ----

TEST_F(SilentMerges, TokenizerLargerThanTheMergedEmbeddingsIsRefused) {
  // The first model (the config donor) gives its 256-token tokenizer; the
  // embeddings are cut to the smaller model's 200 rows.
  ErrorKind kind{};
  const std::string message = error_of([&] { plan_yaml(linear("big", "small")); }, &kind);
  EXPECT_EQ(kind, ErrorKind::shape) << message;
  EXPECT_TRUE(contains(message, "uses 256 token ids")) << message;
  EXPECT_TRUE(contains(message, "200 embedding rows")) << message;
  EXPECT_TRUE(contains(message, "tokenizer_source")) << message;
  // The same models with the smaller tokenizer are consistent and plan.
  const MergePlan plan =
      plan_yaml(linear("big", "small", "tokenizer_source: " + m("small") + "\n"));
  EXPECT_EQ(plan.out_config["vocab_size"], 200);
  EXPECT_EQ(plan.model_refs[plan.tokenizer_model], m("small"));
}

TEST_F(SilentMerges, AddedTokensBeyondTheEmbeddingRowsAreRefused) {
  TempDir work;
  fs::copy(m("small"), work / "s", fs::copy_options::recursive);
  // A chat-template token registered only in tokenizer_config.json, past the 200 rows.
  testing::write_text(work / "s" / "tokenizer_config.json",
                      R"({"added_tokens_decoder": {"230": {"content": "<|im_end|>"}}})");
  const std::string yaml = "merge_method: linear\nmodels:\n  - model: " + (work / "s").string() +
                           "\n    parameters: {weight: 1}\n  - model: " + m("small2") +
                           "\n    parameters: {weight: 1}\n";
  const std::string message = error_of([&] { plan_yaml(yaml); });
  EXPECT_TRUE(contains(message, "uses 231 token ids (tokenizer_config.json)")) << message;
  EXPECT_NO_THROW(plan_yaml(linear("small", "small2")));
}

// tokenizer.json is counted as it is parsed (no document: a 150 k-token one
// would take more memory than the merge): vocab ids past its size, Unigram's
// array, added tokens, look-alike keys elsewhere, and a broken file.
TEST_F(SilentMerges, TokenizerJsonIdsAreCountedWithoutADocument) {
  const auto refused_with = [&](const std::string& tokenizer_json) {
    TempDir work;
    fs::copy(m("small"), work / "s", fs::copy_options::recursive);
    fs::remove(work / "s" / "tokenizer_config.json");
    testing::write_text(work / "s" / "tokenizer.json", tokenizer_json);
    const std::string yaml = "merge_method: linear\nmodels:\n  - model: " + (work / "s").string() +
                             "\n    parameters: {weight: 1}\n  - model: " + m("small2") +
                             "\n    parameters: {weight: 1}\n";
    return error_of([&] { plan_yaml(yaml); });
  };
  // An id past the entry count, beside a nested "vocab" and "id" that do not count.
  EXPECT_TRUE(contains(refused_with(R"({"x": {"vocab": {"a": 900}}, "model": {"vocab": )"
                                    R"({"a": 0, "b": 204}, "id": 950}})"),
                       "uses 205 token ids (tokenizer.json)"));
  // Unigram: [[piece, score], ...], 210 of them.
  std::string unigram = R"({"model": {"type": "Unigram", "vocab": [)";
  for (int i = 0; i < 210; ++i)
    unigram += std::string(i ? "," : "") + R"(["p", -1.5])";
  EXPECT_TRUE(contains(refused_with(unigram + "]}}"), "uses 210 token ids (tokenizer.json)"));
  // Added tokens: their "id", not other numbers in them.
  EXPECT_TRUE(contains(refused_with(R"({"added_tokens": [{"id": 3, "n": 999}, {"id": 220}],)"
                                    R"( "model": {"vocab": {"a": 0}}})"),
                       "uses 221 token ids (tokenizer.json)"));
  EXPECT_EQ(refused_with(R"({"model": {"vocab": {"a": 0, "b": 199}}})"), "(no error)");
  // A broken file is still an error at its line and column.
  const std::string broken = refused_with("{\"model\": {\"vocab\":\n {\"a\": 0,}}}");
  EXPECT_TRUE(contains(broken, "invalid JSON")) << broken;
}

// ---- 2: inputs in the other 16-bit format are rounded to `dtype` ----

std::vector<float> read_tensor(const fs::path& dir, const std::string& name) {
  const Model model = Model::open(dir);
  const TensorRef* ref = model.find(name);
  EXPECT_NE(ref, nullptr) << name;
  if (!ref) return {};
  std::uint64_t n = 1;
  for (auto d : ref->info->shape)
    n *= static_cast<std::uint64_t>(d);
  std::vector<std::uint16_t> raw(n);
  ref->file->read(*ref->info, 0, raw.data(), n * 2);
  std::vector<float> out(n);
  for (std::uint64_t i = 0; i < n; ++i)
    out[i] = ref->info->dtype == DType::BF16 ? bf16_to_f32(raw[i]) : f16_to_f32(raw[i]);
  return out;
}

float round_to(DType t, float v) {
  return t == DType::BF16 ? bf16_to_f32(f32_to_bf16(v)) : f16_to_f32(f32_to_f16(v));
}

// out = round_out((round_in(a) + round_in(b)) / 2): the inputs are cast to
// `dtype` first, as mergekit does. Some elements differ from rounding only
// the result, so a merge that skips the input cast fails here.
void expect_inputs_rounded(const std::string& a, const std::string& b, DType dtype,
                           const std::string& dtype_name) {
  TempDir work;
  const std::string yaml = "merge_method: linear\ndtype: " + dtype_name +
                           "\nmodels:\n  - model: " + a + "\n    parameters: {weight: 1}\n" +
                           "  - model: " + b + "\n    parameters: {weight: 1}\n";
  run_merge(plan_yaml(yaml), RunSettings{.out_dir = work / "out", .execute = {.threads = 1}});
  const std::string name = "model.layers.0.mlp.up_proj.weight";
  const auto x = read_tensor(a, name);
  const auto y = read_tensor(b, name);
  const auto out = read_tensor(work / "out", name);
  ASSERT_EQ(out.size(), x.size());
  std::size_t wrong = 0;
  std::size_t telling = 0;  // elements where skipping the input cast gives another value
  for (std::size_t i = 0; i < x.size(); ++i) {
    const float expected = round_to(dtype, (round_to(dtype, x[i]) + round_to(dtype, y[i])) / 2);
    const float unrounded = round_to(dtype, (x[i] + y[i]) / 2);
    wrong += out[i] != expected;
    telling += expected != unrounded;
  }
  EXPECT_EQ(wrong, 0u);
  EXPECT_GT(telling, 0u) << "the data cannot tell the two behaviours apart";
}

TEST_F(SilentMerges, Float16InputsAreRoundedToABfloat16Dtype) {
  expect_inputs_rounded(m("f16a"), m("f16b"), DType::BF16, "bfloat16");
}

// bf16 -> f16 is exact for ordinary weights (f16 has more mantissa bits), so
// this case uses values that are f16 subnormals: with q = 2^-24, f16's
// smallest step, 2.5q and 0.5q round to 2q and 0 (ties to even). Cast first,
// the mean is 1q; rounding only the result, (2.5q + 0.5q) / 2 = 1.5q gives 2q.
TEST(SilentMergesRounding, Bfloat16InputsAreRoundedToAFloat16Dtype) {
  TempDir work;
  const float q = std::ldexp(1.0f, -24);
  const auto write = [&](const fs::path& dir, float first, float second) {
    const std::vector<TensorSpec> tensors = {{"model.embed_tokens.weight", DType::BF16, {2, 2}},
                                             {"model.layers.0.mlp.weight", DType::BF16, {2}}};
    ModelWriter writer(dir, tensors);
    const std::uint16_t embed[4] = {f32_to_bf16(1), f32_to_bf16(2), f32_to_bf16(3), f32_to_bf16(4)};
    const std::uint16_t values[2] = {f32_to_bf16(first), f32_to_bf16(second)};
    ASSERT_EQ(bf16_to_f32(values[0]), first);
    ASSERT_EQ(bf16_to_f32(values[1]), second);
    writer.write(0, 0, embed, sizeof embed);
    writer.write(1, 0, values, sizeof values);
    writer.write_file("config.json", R"({"model_type": "llama", "num_hidden_layers": 1})");
    writer.commit();
  };
  write(work / "a", 2.5f * q, 0.5f * q);
  write(work / "b", 0.5f * q, 2.5f * q);
  const std::string yaml =
      "merge_method: linear\ndtype: float16\nmodels:\n  - model: " + (work / "a").string() +
      "\n    parameters: {weight: 1}\n  - model: " + (work / "b").string() +
      "\n    parameters: {weight: 1}\n";
  run_merge(plan_yaml(yaml), RunSettings{.out_dir = work / "out", .execute = {.threads = 1}});
  const auto out = read_tensor(work / "out", "model.layers.0.mlp.weight");
  EXPECT_EQ(out, (std::vector<float>{q, q}));
}

// ---- 3: non-float weights ----

// A one-layer model whose tensors have the given dtypes (headers are all the plan reads).
void write_model(const fs::path& dir, const std::vector<TensorSpec>& tensors) {
  {
    ModelWriter writer(dir, tensors);
    for (std::size_t t = 0; t < tensors.size(); ++t) {
      std::vector<unsigned char> zeros(tensors[t].nbytes());
      writer.write(t, 0, zeros.data(), zeros.size());
    }
    writer.write_file("config.json", R"({"model_type": "llama", "num_hidden_layers": 1})");
    writer.commit();
  }
}

std::string two_model_yaml(const fs::path& a, const fs::path& b) {
  return "merge_method: linear\nmodels:\n  - model: " + a.string() +
         "\n    parameters: {weight: 1}\n  - model: " + b.string() +
         "\n    parameters: {weight: 1}\n";
}

TEST(SilentMergesNonFloat, Float8AndIntegerWeightsAreRefusedByThePlan) {
  for (const DType dtype : {DType::F8_E4M3, DType::F8_E5M2, DType::I32, DType::BOOL}) {
    TempDir work;
    const std::vector<TensorSpec> tensors = {
        {"model.embed_tokens.weight", DType::BF16, {8, 4}},
        {"model.layers.0.mlp.weight", dtype, {4, 4}},
    };
    write_model(work / "a", tensors);
    write_model(work / "b", tensors);
    ErrorKind kind{};
    const std::string message =
        error_of([&] { plan_yaml(two_model_yaml(work / "a", work / "b")); }, &kind);
    EXPECT_EQ(kind, ErrorKind::unsupported) << message;
    EXPECT_TRUE(
        contains(message, "'model.layers.0.mlp.weight' is " + std::string(dtype_name(dtype))))
        << message;
  }
}

TEST(SilentMergesNonFloat, IntegerBuffersAreCopiedAndThePlanSaysSo) {
  TempDir work;
  const std::vector<TensorSpec> tensors = {
      {"model.embed_tokens.weight", DType::BF16, {8, 4}},
      {"model.layers.0.mlp.weight", DType::BF16, {4, 4}},
      {"model.position_ids", DType::I64, {1, 8}},
  };
  write_model(work / "a", tensors);
  write_model(work / "b", tensors);
  const MergePlan plan = plan_yaml(two_model_yaml(work / "a", work / "b"));
  const auto it = std::find_if(plan.tensors.begin(), plan.tensors.end(),
                               [](const auto& t) { return t.name == "model.position_ids"; });
  ASSERT_NE(it, plan.tensors.end());
  EXPECT_EQ(it->method, nullptr);
  EXPECT_EQ(it->dtype, DType::I64);
  bool noted = false;
  for (const auto& note : plan.notes)
    noted |= contains(note, "'model.position_ids' (I64)") && contains(note, "copied unmerged");
  EXPECT_TRUE(noted);
}

// ---- 4: parameters that cannot give a finite f32 result ----

TEST_F(SilentMerges, ParametersOutsideTheF32RangeAreRefused) {
  const auto with = [&](const std::string& w0, const std::string& w1) {
    return "merge_method: linear\nmodels:\n  - model: " + m("bf16a") +
           "\n    parameters: {weight: " + w0 + "}\n  - model: " + m("bf16b") +
           "\n    parameters: {weight: " + w1 + "}\n";
  };
  for (const std::string w : {"1e39", "-1e39", "1e-320", "1e-39"}) {
    const std::string message = error_of([&] { plan_yaml(with(w, "1")); });
    EXPECT_TRUE(contains(message, "cannot give a finite result in f32")) << w << ": " << message;
  }
  // Weights that cancel in f32, though not in double.
  const std::string cancel = error_of([&] { plan_yaml(with("1", "-0.99999999999")); });
  EXPECT_TRUE(contains(cancel, "sum to zero (in f32 arithmetic)")) << cancel;
  // Lambda, a global parameter of the task-vector methods.
  const std::string yaml = "merge_method: task_arithmetic\nbase_model: " + m("bf16a") +
                           "\nparameters: {lambda: 1e39}\nmodels:\n  - model: " + m("bf16b") +
                           "\n    parameters: {weight: 1}\n";
  const std::string lambda = error_of([&] { plan_yaml(yaml); });
  EXPECT_TRUE(contains(lambda, "parameter 'lambda' cannot give a finite result")) << lambda;
  EXPECT_TRUE(contains(lambda, "(value 1e+39;")) << lambda;
  EXPECT_NO_THROW(plan_yaml(with("1e20", "1e-20")));
}

// ---- 5: layers are contiguous ----

TEST(SilentMergesLayers, AStrayHugeLayerIndexIsRefusedNotAMillionLayers) {
  TempDir work;
  {
    ModelWriter writer(work / "m", {{"model.embed_tokens.weight", DType::BF16, {8, 4}},
                                    {"model.layers.1000000.mlp.weight", DType::BF16, {4, 4}}});
    std::vector<unsigned char> zeros(64);
    writer.write(0, 0, zeros.data(), 64);
    writer.write(1, 0, zeros.data(), 32);
    writer.write_file("config.json", R"({"model_type": "llama"})");
    writer.commit();
  }
  ErrorKind kind{};
  const std::string message = error_of([&] { Model::open(work / "m"); }, &kind);
  EXPECT_EQ(kind, ErrorKind::format) << message;
  EXPECT_TRUE(contains(message, "not contiguous: 'model.layers.0' has no tensors")) << message;
  const std::string gap = error_of([&] {
    detect_layers({"model.layers.0.w", "model.layers.2.w"}, nlohmann::json::object(), "m");
  });
  EXPECT_TRUE(contains(gap, "'model.layers.1' has no tensors")) << gap;
}

// ---- 6: a missing weight is a config error at the model entry ----

TEST_F(SilentMerges, MissingWeightExitsTwoWithTheModelEntryLocationAndAHint) {
  TempDir work;
  struct Case {
    std::string yaml;
    std::string hint;
  };
  const std::vector<Case> cases = {
      {"merge_method: linear\nmodels:\n  - model: " + m("bf16a") + "\n  - model: " + m("bf16b") +
           "\n    parameters: {weight: 0.5}\n",
       "add `parameters: {weight: 1.0}` to the model entry"},
      {"merge_method: multislerp\nmodels:\n  - model: " + m("bf16a") +
           "\n  - model: " + m("bf16b") + "\n    parameters: {weight: 0.5}\n",
       "add `parameters: {weight: 1.0}` to the model entry"},
      {"merge_method: linear\nmodels:\n  - model: " + m("bf16a") +
           "\n    parameters:\n      weight:\n        - filter: mlp\n          value: 0.3\n"
           "  - model: " +
           m("bf16b") + "\n    parameters: {weight: 0.5}\n",
       "no filter matches these tensors"},
  };
  for (const auto& c : cases) {
    testing::write_text(work / "m.yaml", c.yaml);
    std::string log;
    const int rc = testing::run_cli("plan " + (work / "m.yaml").string(), &log);
    EXPECT_EQ(rc, 2) << log;
    EXPECT_TRUE(contains(log, "m.yaml:3:5: ")) << log;
    EXPECT_TRUE(contains(log, c.hint)) << log;
    EXPECT_FALSE(contains(log, "internal error")) << log;
  }
}

// ---- 7: YAML merge keys ----

TEST(SilentMergesYaml, MergeKeysAreExpandedAsPyYamlDoes) {
  const MergeConfig c = parse_config(R"(
merge_method: ties
base_model: base
models:
  - model: a
    parameters: &defaults {weight: 0.5, density: 0.7}
  - model: b
    parameters:
      <<: *defaults
      weight: 0.25
  - &entry
    model: c
    parameters:
      <<: [{density: 0.1}, *defaults]
  - <<: *entry
    model: d
)",
                                     "m.yaml");
  ASSERT_EQ(c.models.size(), 4u);
  const auto value = [&](std::size_t model, const char* name) {
    const ParameterEntry* e = find_parameter(c.models[model].parameters, name);
    return e ? e->value.number : -1.0;
  };
  EXPECT_EQ(value(1, "weight"), 0.25);  // the mapping's own key wins
  EXPECT_EQ(value(1, "density"), 0.7);
  EXPECT_EQ(value(2, "density"), 0.1);  // earlier sources win over later ones
  EXPECT_EQ(value(2, "weight"), 0.5);
  EXPECT_EQ(c.models[3].model, "d");
  EXPECT_EQ(value(3, "density"), 0.1);
  // A merged key is still checked against the schema.
  const std::string message = error_of([] {
    parse_config("merge_method: linear\nmodels:\n  - <<: {modle: a}\n    model: b\n", "m.yaml");
  });
  EXPECT_TRUE(contains(message, "unknown key 'modle'")) << message;
}

// ---- 21: control bytes in the config ----

TEST(SilentMergesYaml, ControlBytesAreNamedWithTheirPosition) {
  using namespace std::string_literals;
  const std::string nul =
      error_of([] { parse_config("merge_method: linear\nmodels:\n  - model: a\0b\n"s, "m.yaml"); });
  EXPECT_TRUE(
      contains(nul, "m.yaml:3:13: invalid YAML: control byte 0x00 (NUL) at line 3, column 13"))
      << nul;
  EXPECT_FALSE(contains(nul, "unknown escape")) << nul;
  const std::string esc =
      error_of([] { parse_config("merge_method: \"\x1b[31mlinear\"\n", "m.yaml"); });
  EXPECT_TRUE(contains(esc, "control byte 0x1B at line 1, column 16")) << esc;
}

// ---- 23: a donor without config.json ----

TEST_F(SilentMerges, DonorFolderWithoutConfigJsonIsRefusedNamingTheFile) {
  TempDir work;
  fs::copy(m("bf16a"), work / "a", fs::copy_options::recursive);
  fs::remove(work / "a" / "config.json");
  const std::string yaml = "merge_method: linear\nmodels:\n  - model: " + (work / "a").string() +
                           "\n    parameters: {weight: 1}\n  - model: " + m("bf16b") +
                           "\n    parameters: {weight: 1}\n";
  ErrorKind kind{};
  const std::string message = error_of([&] { plan_yaml(yaml); }, &kind);
  EXPECT_EQ(kind, ErrorKind::io) << message;
  EXPECT_TRUE(contains(message, (work / "a" / "config.json").string() + "' does not exist"))
      << message;
  EXPECT_TRUE(contains(message, "config.json would be {}")) << message;
}

// ---- 25: Ctrl-C during planning ----

TEST_F(SilentMerges, CancelDuringPlanningStopsItWithinASecond) {
  // An alias keeps the text short whatever the path's length (the config cap is 1 MiB).
  std::string yaml = "merge_method: passthrough\nslices:\n  - sources: [{model: &m " + m("bf16a") +
                     ", layer_range: [0, 2]}]\n";
  for (int i = 1; i < 20000; ++i)
    yaml += "  - sources: [{model: *m, layer_range: [0, 2]}]\n";
  const MergeConfig config = parse_config(yaml, "m.yaml");
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  (void)make_plan(config, PlanSettings{});
  const auto full = Clock::now() - start;
  ASSERT_GT(full, std::chrono::milliseconds(100)) << "the recipe plans too fast to interrupt";

  const CancelToken token;
  std::thread ctrl_c([token] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    token.cancel();
  });
  ErrorKind kind{};
  const auto begin = Clock::now();
  const std::string message = error_of(
      [&] {
        const CancelScope scope(token);
        (void)make_plan(config, PlanSettings{});
      },
      &kind);
  const auto took = Clock::now() - begin;
  ctrl_c.join();
  EXPECT_EQ(kind, ErrorKind::interrupted) << message;
  EXPECT_LT(took, std::chrono::milliseconds(20) + std::chrono::seconds(1));
  EXPECT_LT(took, full);
}

}  // namespace
}  // namespace llmerge
