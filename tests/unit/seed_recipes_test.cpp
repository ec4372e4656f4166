// The seed project's config format, per-slice merge methods, and multi-stage
// recipes (docs/recipes.md).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "llmerge/llmerge.h"
#include "test_util.h"

namespace llmerge {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

void synth(const fs::path& out, const std::string& args) {
  std::string log;
  ASSERT_EQ(testing::run_cli("synth " + out.string() + " " + args + " --force", &log), 0) << log;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

// Every .safetensors file of a model folder, by name, byte for byte.
std::map<std::string, std::string> weights(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".safetensors")
      out[e.path().filename().string()] = testing::read_text(e.path());
  return out;
}

// The seed's own example (mergekit/examples/qwq_bielik_merge.yaml in
// LibraxisAI/mlx-lm-customs, branch mlx-mergekit), with {qwq} and {bielik}
// standing for the model paths.
constexpr const char* k_seed_example = R"(models:
  - name: qwq
    path: {qwq}
    base_model: true
  - name: bielik
    path: {bielik}

slices:
  - sources:
      - model: qwq
        layer_range: [0, 40]
      - model: bielik
        layer_range: [0, 40]
    merge_method: slerp
    parameters:
      t:
        - filter: self_attn
          value: [0, 0.3, 0.6, 0.8, 1]
        - filter: mlp
          value: [1, 0.7, 0.4, 0.2, 0]
        - filter: embed
          value: 0
        - value: 0.5

  - sources:
      - model: qwq
        layer_range: [40, 64]
    merge_method: passthrough

tokenizer:
  source: qwq
  preserve_embeddings: true

advanced:
  low_memory: false
)";

// Synth models with the seed's layer counts (64 and 50) and a tiny hidden size.
class SeedTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const std::string shape =
        "--family qwen2 --hidden 32 --intermediate 64 --heads 4 "
        "--kv-heads 2 --vocab 64";
    synth((*dir_) / "qwq", shape + " --layers 64 --seed 1");
    synth((*dir_) / "bielik", shape + " --layers 50 --seed 2");
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::string example() {
    return replace_all(replace_all(k_seed_example, "{qwq}", ((*dir_) / "qwq").string()), "{bielik}",
                       ((*dir_) / "bielik").string());
  }
  static std::string models(std::string yaml) {
    return replace_all(std::move(yaml), "{dir}", dir_->path().string());
  }
  static TempDir* dir_;
};
TempDir* SeedTest::dir_ = nullptr;

TEST_F(SeedTest, ExampleConfigPlansWithANoteForEachOptionThatMeansNothing) {
  const Plan plan = llmerge::plan(Config::parse(example(), "seed.yaml"));
  EXPECT_EQ(plan.output_layers(), 64);
  const auto j = nlohmann::json::parse(plan.json());
  EXPECT_EQ(j["slice_methods"], nlohmann::json({"slerp", "passthrough"}));
  int means_nothing = 0;
  for (const auto& n : plan.notes())
    means_nothing += n.find("means nothing here") != std::string::npos;
  EXPECT_EQ(means_nothing, 2);  // preserve_embeddings, low_memory
  const std::string text = plan.describe();
  EXPECT_NE(text.find("(slerp, slice 0)"), std::string::npos) << text;
  EXPECT_NE(text.find("(passthrough, slice 1)"), std::string::npos) << text;
  // Layers 40..63 are qwq's 40..63, copied; layers below 40 are slerped.
  for (const auto& t : plan.tensors()) {
    if (t.layer >= 40) {
      EXPECT_EQ(t.inputs, 1u) << t.name;
    } else if (t.layer >= 0) {
      EXPECT_EQ(t.method, "slerp") << t.name;
    }
  }
}

TEST_F(SeedTest, ExampleConfigRunsAndEqualsItsMergekitMultiConversion) {
  TempDir out;
  const Config seed = Config::parse(example(), "seed.yaml");
  merge(seed, (out / "direct").string());
  // convert-config's recipe: slice 0 as its own slerp stage, then a passthrough.
  const std::string converted = convert_config(example(), "seed.yaml");
  EXPECT_NE(converted.find("---"), std::string::npos) << converted;
  const Recipe recipe = Recipe::parse(converted, "converted.yaml");
  ASSERT_EQ(recipe.size(), 2u);
  const RecipeResult r = run_recipe(recipe, (out / "staged").string());
  EXPECT_EQ(r.stages_run.size(), 2u);
  EXPECT_GT(r.intermediate_bytes, 0u);
  const auto a = weights(out / "direct");
  const auto b = weights(out / "staged");
  ASSERT_FALSE(a.empty());
  EXPECT_TRUE(a == b) << "the per-slice config and its mergekit-multi recipe differ";
  const auto cfg = nlohmann::json::parse(testing::read_text(out / "direct" / "config.json"));
  EXPECT_EQ(cfg["num_hidden_layers"], 64);
  // The temporary stage folder is gone.
  for (const auto& e : fs::directory_iterator(out.path()))
    EXPECT_EQ(e.path().filename().string().find(".llmerge-stages"), std::string::npos);
}

TEST_F(SeedTest, SeedFormatWithOneMethodPlansAsItsMergekitForm) {
  const std::string seed = models(R"(models:
  - {name: a, path: {dir}/qwq, base_model: true}
  - {name: b, path: {dir}/bielik}
method: slerp
slices:
  - sources: [{model: a, layer_range: [0, 8]}, {model: b, layer_range: [2, 10]}]
    parameters: {t: [0, 1]}
tokenizer: {source: b}
advanced: {low_memory: true, dtype: float32}
)");
  const std::string mergekit = models(R"(merge_method: slerp
base_model: {dir}/qwq
slices:
  - sources: [{model: {dir}/qwq, layer_range: [0, 8]}, {model: {dir}/bielik, layer_range: [2, 10]}]
    parameters: {t: [0, 1]}
tokenizer_source: {dir}/bielik
dtype: float32
)");
  auto a = nlohmann::json::parse(llmerge::plan(Config::parse(seed, "s.yaml")).json());
  auto b = nlohmann::json::parse(llmerge::plan(Config::parse(mergekit, "m.yaml")).json());
  ASSERT_FALSE(a["notes"].empty());
  a.erase("notes");
  b.erase("notes");
  EXPECT_EQ(a, b);
  // convert-config gives one mergekit document with the same plan.
  const std::string converted = convert_config(seed, "s.yaml");
  EXPECT_EQ(converted.find("---"), std::string::npos) << converted;
  auto c = nlohmann::json::parse(llmerge::plan(Config::parse(converted, "c.yaml")).json());
  c.erase("notes");
  EXPECT_EQ(c, b);
}

TEST_F(SeedTest, StrictMergekitRefusesTheSeedFormatAndPerSliceMethodsWithTheirLocation) {
  PlanOptions strict;
  strict.strict_mergekit = true;
  try {
    llmerge::plan(Config::parse(example(), "seed.yaml"), strict);
    FAIL() << "the seed format planned under --strict-mergekit";
  } catch (const Error& e) {
    ASSERT_EQ(e.problems().size(), 1u);
    EXPECT_EQ(e.problems()[0].line, 2);  // `name:` of the first model
  }
  const std::string per_slice = models(R"(base_model: {dir}/qwq
slices:
  - sources: [{model: {dir}/qwq, layer_range: [0, 4]}, {model: {dir}/bielik, layer_range: [0, 4]}]
    merge_method: linear
    parameters: {weight: 0.5}
  - sources: [{model: {dir}/qwq, layer_range: [4, 8]}]
)");
  EXPECT_NO_THROW(llmerge::plan(Config::parse(per_slice, "p.yaml")));
  try {
    llmerge::plan(Config::parse(per_slice, "p.yaml"), strict);
    FAIL() << "per-slice methods planned under --strict-mergekit";
  } catch (const Error& e) {
    ASSERT_EQ(e.problems().size(), 2u);  // linear, and the implied passthrough
    EXPECT_EQ(e.problems()[0].line, 4);
    EXPECT_EQ(e.problems()[0].column, 19);
    EXPECT_NE(e.problems()[0].message.find("slices[0].merge_method"), std::string::npos);
  }
}

TEST_F(SeedTest, PerSliceMethodsCheckEachSlicesParametersAgainstItsOwnMethod) {
  // `t` belongs to slerp; the linear slice has no such parameter.
  const std::string yaml = models(R"(base_model: {dir}/qwq
slices:
  - sources: [{model: {dir}/qwq, layer_range: [0, 4]}, {model: {dir}/bielik, layer_range: [0, 4]}]
    merge_method: slerp
    parameters: {t: 0.3}
  - sources: [{model: {dir}/qwq, layer_range: [4, 8]}, {model: {dir}/bielik, layer_range: [4, 8]}]
    merge_method: linear
    parameters: {t: 0.3}
)");
  try {
    llmerge::plan(Config::parse(yaml, "p.yaml"));
    FAIL() << "linear took slerp's parameter";
  } catch (const Error& e) {
    ASSERT_EQ(e.problems().size(), 1u) << e.what();
    EXPECT_EQ(e.problems()[0].line, 8);
    EXPECT_NE(e.problems()[0].message.find("'linear' has no parameter 't'"), std::string::npos);
  }
  // A slice of several sources needs a method when there is no top-level one.
  const std::string no_method = models(R"(slices:
  - sources: [{model: {dir}/qwq, layer_range: [0, 4]}, {model: {dir}/bielik, layer_range: [0, 4]}]
)");
  EXPECT_THROW(Config::parse(no_method, "n.yaml"), Error);
}

TEST_F(SeedTest, SeedFormatErrorsHaveLocations) {
  const std::string two_bases = models(R"(models:
  - {name: a, path: {dir}/qwq, base_model: true}
  - {name: b, path: {dir}/bielik, base_model: true}
method: linear
)");
  try {
    Config::parse(two_bases, "s.yaml");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.context().line, 3);
    EXPECT_NE(std::string(e.what()).find("only one model can be the base"), std::string::npos);
  }
  const std::string unknown = models(R"(models:
  - {name: a, path: {dir}/qwq}
method: passthrough
advanced: {low_memroy: true}
)");
  try {
    Config::parse(unknown, "s.yaml");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.context().line, 4);
    EXPECT_NE(std::string(e.what()).find("low_memroy"), std::string::npos);
  }
}

TEST_F(SeedTest, ConvertConfigCommandPrintsTheMergekitForm) {
  TempDir tmp;
  testing::write_text(tmp / "seed.yaml", example());
  std::string log;
  ASSERT_EQ(testing::run_cli("convert-config " + (tmp / "seed.yaml").string(), &log), 0) << log;
  EXPECT_NE(log.find("name: slice-0"), std::string::npos) << log;
  EXPECT_NE(log.find("merge_method: passthrough"), std::string::npos) << log;
  EXPECT_EQ(log.find("advanced"), std::string::npos) << log;
  EXPECT_EQ(log.find("preserve_embeddings"), std::string::npos) << log;
}

// ------------------------------------------------------- the motivating case

struct HeaderOnlySpec {
  std::string model_type;
  int layers, hidden, intermediate, heads, kv_heads, vocab;
  bool qkv_bias;
};

// A model folder whose safetensors file has a real header for every tensor
// of the architecture and no data: the file is extended with ftruncate to the
// size the header promises (a sparse file), so the planner sees a full-size
// model and reads only its header.
void write_header_only_model(const fs::path& dir, const HeaderOnlySpec& m) {
  fs::create_directories(dir);
  const std::int64_t head_dim = m.hidden / m.heads;
  const std::int64_t kv = head_dim * m.kv_heads;
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> tensors;
  tensors.push_back({"model.embed_tokens.weight", {m.vocab, m.hidden}});
  tensors.push_back({"model.norm.weight", {m.hidden}});
  tensors.push_back({"lm_head.weight", {m.vocab, m.hidden}});
  for (int l = 0; l < m.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    tensors.push_back({p + "input_layernorm.weight", {m.hidden}});
    tensors.push_back({p + "post_attention_layernorm.weight", {m.hidden}});
    tensors.push_back({p + "self_attn.q_proj.weight", {m.hidden, m.hidden}});
    tensors.push_back({p + "self_attn.k_proj.weight", {kv, m.hidden}});
    tensors.push_back({p + "self_attn.v_proj.weight", {kv, m.hidden}});
    tensors.push_back({p + "self_attn.o_proj.weight", {m.hidden, m.hidden}});
    if (m.qkv_bias) {
      tensors.push_back({p + "self_attn.q_proj.bias", {m.hidden}});
      tensors.push_back({p + "self_attn.k_proj.bias", {kv}});
      tensors.push_back({p + "self_attn.v_proj.bias", {kv}});
    }
    tensors.push_back({p + "mlp.gate_proj.weight", {m.intermediate, m.hidden}});
    tensors.push_back({p + "mlp.up_proj.weight", {m.intermediate, m.hidden}});
    tensors.push_back({p + "mlp.down_proj.weight", {m.hidden, m.intermediate}});
  }
  nlohmann::ordered_json header;
  std::uint64_t offset = 0;
  for (const auto& [name, shape] : tensors) {
    std::uint64_t bytes = 2;  // bf16
    for (auto d : shape)
      bytes *= static_cast<std::uint64_t>(d);
    header[name] = {
        {"dtype", "BF16"}, {"shape", shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string file(8, '\0');
  const std::uint64_t n = text.size();
  for (int i = 0; i < 8; ++i)
    file[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  file += text;
  const fs::path weights = dir / "model.safetensors";
  testing::write_text(weights, file);
  ASSERT_EQ(::truncate(weights.c_str(), static_cast<off_t>(file.size() + offset)), 0)
      << std::strerror(errno);
  const nlohmann::json config = {
      {"architectures", {m.model_type == "qwen2" ? "Qwen2ForCausalLM" : "MistralForCausalLM"}},
      {"model_type", m.model_type},
      {"hidden_size", m.hidden},
      {"intermediate_size", m.intermediate},
      {"num_hidden_layers", m.layers},
      {"num_attention_heads", m.heads},
      {"num_key_value_heads", m.kv_heads},
      {"vocab_size", m.vocab},
      {"torch_dtype", "bfloat16"}};
  testing::write_text(dir / "config.json", config.dump(2));
}

TEST(SeedMotivatingCase, QwenAndMistralFailFastWithOneRootCause) {
  TempDir dir;
  // QwQ-32B (qwen2) and Bielik-11B-v2.3 (mistral), shapes from their config.json files.
  write_header_only_model(dir / "qwq", {"qwen2", 64, 5120, 27648, 40, 8, 152064, true});
  write_header_only_model(dir / "bielik", {"mistral", 50, 4096, 14336, 32, 8, 32128, false});
  ASSERT_GT(fs::file_size(dir / "qwq" / "model.safetensors"), std::uintmax_t{60} << 30);
  const std::string yaml = replace_all(replace_all(k_seed_example, "{qwq}", (dir / "qwq").string()),
                                       "{bielik}", (dir / "bielik").string());
  const auto start = std::chrono::steady_clock::now();
  try {
    llmerge::plan(Config::parse(yaml, "qwq_bielik_merge.yaml"));
    FAIL() << "QwQ-32B and Bielik-11B planned";
  } catch (const Error& e) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(seconds, 1.0 * testing::k_sanitizer_slowdown);
    ASSERT_EQ(e.problems().size(), 1u) << "one root cause, one problem: " << e.what();
    const Problem& p = e.problems()[0];
    EXPECT_EQ(p.kind, ErrorKind::shape);
    // Why: the widths, with each model's architecture and vocab.
    EXPECT_NE(p.message.find("hidden size 5120"), std::string::npos) << p.message;
    EXPECT_NE(p.message.find("(qwen2, 64 layers, vocab 152064)"), std::string::npos) << p.message;
    EXPECT_NE(p.message.find("4096"), std::string::npos) << p.message;
    EXPECT_NE(p.message.find("(mistral, 50 layers, vocab 32128)"), std::string::npos) << p.message;
    EXPECT_NE(p.message.find("no weight merge can combine"), std::string::npos) << p.message;
    // What can work.
    EXPECT_NE(p.hint.find("same architecture and hidden size"), std::string::npos) << p.hint;
    EXPECT_NE(p.hint.find("Polish fine-tune"), std::string::npos) << p.hint;
  }
  // The CLI prints the same single problem, exit code 2.
  TempDir tmp;
  testing::write_text(tmp / "qwq_bielik_merge.yaml", yaml);
  std::string log;
  EXPECT_EQ(testing::run_cli("plan " + (tmp / "qwq_bielik_merge.yaml").string(), &log), 2) << log;
  EXPECT_EQ(log.find("problems found"), std::string::npos) << log;
  EXPECT_NE(log.find("hidden size 5120"), std::string::npos) << log;
}

// ----------------------------------------------------------------- recipes

TEST_F(SeedTest, RecipeRunsStagesInDependencyOrderAndLazySkipsWrittenOnes) {
  // The output stage comes first in the file; it uses `mix`, which uses `half`.
  const std::string yaml = models(R"(merge_method: passthrough
slices:
  - sources: [{model: mix, layer_range: [0, 4]}]
  - sources: [{model: {dir}/qwq, layer_range: [60, 64]}]
---
name: mix
merge_method: linear
models:
  - {model: half, parameters: {weight: 0.5}}
  - {model: {dir}/bielik, parameters: {weight: 0.5}}
---
name: half
merge_method: passthrough
slices:
  - sources: [{model: {dir}/bielik, layer_range: [0, 64]}]
)");
  // bielik has 50 layers: the third stage is wrong, and its plan says so.
  const Recipe bad = Recipe::parse(yaml, "r.yaml");
  EXPECT_EQ(bad.stage_names(), (std::vector<std::string>{"half", "mix", ""}));
  TempDir out;
  EXPECT_THROW(run_recipe(bad, (out / "x").string()), Error);
  // Nothing is left: no output, no temporary stage folder (`half` was written there).
  EXPECT_TRUE(fs::is_empty(out.path()));

  const std::string recipe_text = replace_all(yaml, "[0, 64]}]", "[0, 50]}]");
  MergeOptions options;
  options.run.intermediate_dir = (out / "stages").string();
  options.run.staged = true;  // write the stages (one pass, the default, writes none)
  const Recipe recipe = Recipe::parse(recipe_text, "r.yaml");
  const RecipeResult first = run_recipe(recipe, (out / "a").string(), options);
  EXPECT_EQ(first.stages_run, (std::vector<std::string>{"half", "mix", ""}));
  EXPECT_TRUE(fs::exists(out / "stages" / "half" / "config.json"));
  EXPECT_TRUE(fs::exists(out / "stages" / "mix" / "config.json"));
  const RecipeResult second = run_recipe(recipe, (out / "b").string(), options);
  EXPECT_EQ(second.stages_skipped, (std::vector<std::string>{"half", "mix"}));
  EXPECT_TRUE(weights(out / "a") == weights(out / "b"));
  options.run.lazy = false;
  const RecipeResult third = run_recipe(recipe, (out / "c").string(), options);
  EXPECT_TRUE(third.stages_skipped.empty());
  // In one pass, lazy reads the written stages too; without them it computes them.
  options.run.staged = false;
  options.run.lazy = true;
  const RecipeResult fourth = run_recipe(recipe, (out / "d").string(), options);
  EXPECT_TRUE(fourth.one_pass);
  EXPECT_EQ(fourth.stages_skipped, (std::vector<std::string>{"half", "mix"}));
  fs::remove_all(out / "stages");
  const RecipeResult fifth = run_recipe(recipe, (out / "e").string(), options);
  EXPECT_TRUE(fifth.one_pass);
  EXPECT_TRUE(fifth.stages_skipped.empty());
  EXPECT_FALSE(fs::exists(out / "stages"));
  EXPECT_TRUE(weights(out / "a") == weights(out / "d"));
  EXPECT_TRUE(weights(out / "a") == weights(out / "e"));
}

TEST(Recipe, ACycleIsOneErrorAtTheReferenceThatClosesIt) {
  const std::string yaml = R"(name: a
merge_method: linear
models: [{model: b, parameters: {weight: 1}}, {model: x, parameters: {weight: 1}}]
---
name: b
merge_method: linear
models: [{model: x, parameters: {weight: 1}}, {model: a, parameters: {weight: 1}}]
---
merge_method: passthrough
models: [{model: b}]
)";
  try {
    Recipe::parse(yaml, "r.yaml");
    FAIL() << "a cycle parsed";
  } catch (const Error& e) {
    ASSERT_EQ(e.problems().size(), 1u);
    EXPECT_EQ(e.context().line, 7);  // b's reference to a closes a -> b -> a
    EXPECT_NE(std::string(e.what()).find("a -> b -> a"), std::string::npos) << e.what();
  }
  // A stage that uses itself is a cycle too.
  EXPECT_THROW(Recipe::parse("name: s\nmerge_method: passthrough\nmodels: [{model: s}]\n", "r"),
               Error);
}

TEST(Recipe, StageNamesMustBeUniqueAndOnlyOneStageUnnamed) {
  const std::string twice =
      "name: s\nmerge_method: passthrough\nmodels: [{model: m}]\n---\n"
      "name: s\nmerge_method: passthrough\nmodels: [{model: m}]\n";
  try {
    Recipe::parse(twice, "r.yaml");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.context().line, 5);
  }
  const std::string unnamed =
      "merge_method: passthrough\nmodels: [{model: m}]\n---\n"
      "merge_method: passthrough\nmodels: [{model: n}]\n";
  EXPECT_THROW(Recipe::parse(unnamed, "r.yaml"), Error);
  // A single config is a recipe of one stage; Config::parse refuses several documents.
  EXPECT_EQ(Recipe::parse("merge_method: passthrough\nmodels: [{model: m}]\n").size(), 1u);
  EXPECT_THROW(Config::parse(twice), Error);
}

}  // namespace
}  // namespace llmerge
