// One-pass recipes (docs/recipes.md §3): a recipe whose stages are
// element-wise runs in one streaming pass, with the bytes of the staged run.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <numeric>
#include <random>

#include <fmt/core.h>

#include "llmerge/llmerge.h"
#include "merge/method.h"
#include "merge/random.h"
#include "method_driver.h"
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

// Every file of a model folder, by name, byte for byte.
std::map<std::string, std::string> files(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    out[e.path().filename().string()] = testing::read_text(e.path());
  return out;
}

// Three stages and a layer restack, every one element-wise: a bf16 linear
// soup, task arithmetic over it saved as f16 (out_dtype), a passthrough that
// restacks its layers (0, 1, 1, 2: layer 1 is read, so computed, twice), and
// DARE (its mask keyed by the seed; no rescale) on top.
constexpr const char* k_recipe = R"(name: soup
merge_method: linear
dtype: bfloat16
models:
  - {model: {dir}/a, parameters: {weight: 0.6}}
  - {model: {dir}/b, parameters: {weight: 0.4}}
---
name: arith
merge_method: task_arithmetic
base_model: {dir}/base
dtype: float32
out_dtype: float16
models:
  - {model: soup, parameters: {weight: 0.7}}
  - {model: {dir}/a, parameters: {weight: 0.3}}
---
name: stack
merge_method: passthrough
slices:
  - sources: [{model: arith, layer_range: [0, 2]}]
  - sources: [{model: arith, layer_range: [1, 3]}]
---
merge_method: dare_linear
base_model: {dir}/base
dtype: bfloat16
parameters: {rescale: false}
models:
  - {model: stack, parameters: {weight: 0.8, density: 0.5}}
  - {model: {dir}/b, parameters: {weight: 0.5, density: 0.7}}
)";

class OnePassTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    // Tensors of 81920 and 128000 elements: more than one chunk of 65536
    // and a partial last one.
    const std::string shape = "--hidden 128 --intermediate 640 --vocab 1000 --layers 4";
    synth((*dir_) / "base", shape + " --seed 1");
    synth((*dir_) / "a", "--like " + ((*dir_) / "base").string() + " --seed 2 --delta-scale 0.05");
    synth((*dir_) / "b", "--like " + ((*dir_) / "base").string() + " --seed 3 --delta-scale 0.05");
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string models(std::string yaml) {
    return replace_all(std::move(yaml), "{dir}", dir_->path().string());
  }
  static MergeOptions options(int threads, std::int64_t chunk) {
    MergeOptions o;
    o.run.threads = threads;
    o.run.chunk_elements = chunk;
    o.run.random_seed = 7;
    return o;
  }
  static TempDir* dir_;
};
TempDir* OnePassTest::dir_ = nullptr;

TEST_F(OnePassTest, EqualsTheStagedRunAtAnyThreadCountAndChunkSize) {
  const Recipe recipe = Recipe::parse(models(k_recipe), "recipe.yaml");
  TempDir out;
  MergeOptions staged = options(2, 65536);
  staged.run.staged = true;
  staged.run.intermediate_dir = (out / "stages").string();
  const RecipeResult s = run_recipe(recipe, (out / "staged").string(), staged);
  EXPECT_FALSE(s.one_pass);
  EXPECT_GT(s.intermediate_bytes, 0u);
  const auto expected = files(out / "staged");
  ASSERT_TRUE(expected.count("model.safetensors"));

  int run = 0;
  for (const int threads : {1, 2}) {
    for (const std::int64_t chunk : {65536, 131072}) {
      SCOPED_TRACE(::testing::Message() << threads << " thread(s), chunk " << chunk);
      MergeOptions o = options(threads, chunk);
      o.run.intermediate_dir = (out / "unused").string();
      std::vector<std::string> notes;
      o.run.note = [&](const std::string& n) { notes.push_back(n); };
      const fs::path target = out / fmt::format("one-pass-{}", run++);
      const RecipeResult r = run_recipe(recipe, target.string(), o);
      EXPECT_TRUE(r.one_pass) << r.staged_because;
      EXPECT_EQ(r.intermediate_bytes, 0u);
      EXPECT_EQ(r.stages_run, (std::vector<std::string>{"soup", "arith", "stack", ""}));
      // Nothing was written for the stages, neither there nor next to the output.
      EXPECT_FALSE(fs::exists(out / "unused"));
      for (const auto& e : fs::directory_iterator(out.path()))
        EXPECT_EQ(e.path().filename().string().find(".llmerge-stages"), std::string::npos);
      const auto got = files(target);
      ASSERT_EQ(got.size(), expected.size());
      for (const auto& [name, bytes] : expected) {
        // The model card lists the models merged: the staged run's are the
        // stages' folders, the one-pass run's the stages' names.
        if (name == "README.md") continue;
        EXPECT_TRUE(got.at(name) == bytes) << name << " differs";
      }
      EXPECT_NE(got.at("README.md").find("* stack"), std::string::npos);
    }
  }
}

TEST_F(OnePassTest, LazyReadsStagesAlreadyWrittenAndComputesTheRest) {
  const Recipe recipe = Recipe::parse(models(k_recipe), "recipe.yaml");
  TempDir out;
  MergeOptions staged = options(2, 65536);
  staged.run.staged = true;
  staged.run.intermediate_dir = (out / "stages").string();
  run_recipe(recipe, (out / "staged").string(), staged);
  // The output stage's memory estimate counts the stages computed under it.
  auto last_estimate = [](const std::string& text) {
    const std::string key = "peak memory estimate: ";
    const auto at = text.rfind(key);
    EXPECT_NE(at, std::string::npos) << text;
    return std::stod(text.substr(at + key.size()));
  };
  const double written = last_estimate(recipe.describe(staged));
  const double one_pass = last_estimate(recipe.describe(options(2, 65536)));
  EXPECT_GT(one_pass, written);
  // Keep only the first stage: the others are computed from it.
  fs::remove_all(out / "stages" / "arith");
  fs::remove_all(out / "stages" / "stack");
  MergeOptions o = options(1, 65536);
  o.run.intermediate_dir = (out / "stages").string();
  const RecipeResult r = run_recipe(recipe, (out / "lazy").string(), o);
  EXPECT_TRUE(r.one_pass);
  EXPECT_EQ(r.stages_skipped, (std::vector<std::string>{"soup"}));
  EXPECT_FALSE(fs::exists(out / "stages" / "arith"));
  EXPECT_TRUE(files(out / "lazy").at("model.safetensors") ==
              files(out / "staged").at("model.safetensors"));
}

TEST_F(OnePassTest, AStageThatIsNotElementWiseFallsBackWithANoteAndEqualsStaged) {
  // slerp reads each tensor's norms and angle: the stage must be written first.
  const std::string yaml = models(R"(name: curve
merge_method: slerp
base_model: {dir}/base
parameters: {t: 0.3}
models: [{model: {dir}/base}, {model: {dir}/a}]
---
merge_method: linear
models:
  - {model: curve, parameters: {weight: 0.5}}
  - {model: {dir}/b, parameters: {weight: 0.5}}
)");
  const Recipe recipe = Recipe::parse(yaml, "recipe.yaml");
  TempDir out;
  std::vector<std::string> notes;
  MergeOptions o = options(2, 65536);
  o.run.note = [&](const std::string& n) { notes.push_back(n); };
  const RecipeResult r = run_recipe(recipe, (out / "fallback").string(), o);
  EXPECT_FALSE(r.one_pass);
  EXPECT_NE(r.staged_because.find("stage 'curve'"), std::string::npos) << r.staged_because;
  EXPECT_NE(r.staged_because.find("slerp is not element-wise"), std::string::npos);
  EXPECT_TRUE(std::any_of(notes.begin(), notes.end(), [](const std::string& n) {
    return n.starts_with("one pass: stage 'curve'");
  }));
  MergeOptions s = options(1, 131072);
  s.run.staged = true;
  run_recipe(recipe, (out / "staged").string(), s);
  EXPECT_TRUE(files(out / "fallback").at("model.safetensors") ==
              files(out / "staged").at("model.safetensors"));

  // DARE's mask is per element; its default L1 rescale is not.
  const Recipe rescaled = Recipe::parse(
      replace_all(models(k_recipe), "parameters: {rescale: false}", "parameters: {rescale: true}"),
      "recipe.yaml");
  EXPECT_NE(rescaled.describe().find("one pass"), std::string::npos);  // only the output rescales
  const Recipe inner = Recipe::parse(models(R"(name: sparse
merge_method: dare_ties
base_model: {dir}/base
models: [{model: {dir}/a, parameters: {weight: 1, density: 0.5}}]
---
merge_method: linear
models: [{model: sparse, parameters: {weight: 1}}]
)"),
                                     "recipe.yaml");
  const std::string text = inner.describe();
  EXPECT_NE(text.find("staged: stage 'sparse' cannot be computed as the next stage reads it"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("rescale: true"), std::string::npos) << text;
}

TEST_F(OnePassTest, StagesTheOutputDoesNotUseAreNotComputed) {
  // `curve` (slerp) and `late`, which reads it, feed nothing: the output is
  // `soup` with b, in one pass; `curve` is planned, `late` cannot be.
  const std::string yaml = models(R"(name: soup
merge_method: linear
models:
  - {model: {dir}/a, parameters: {weight: 0.6}}
  - {model: {dir}/b, parameters: {weight: 0.4}}
---
name: curve
merge_method: slerp
base_model: {dir}/base
parameters: {t: 0.3}
models: [{model: {dir}/base}, {model: soup}]
---
name: late
merge_method: linear
models: [{model: curve, parameters: {weight: 1}}]
---
merge_method: linear
models:
  - {model: soup, parameters: {weight: 0.5}}
  - {model: {dir}/b, parameters: {weight: 0.5}}
)");
  const Recipe recipe = Recipe::parse(yaml, "recipe.yaml");
  TempDir out;
  std::vector<std::string> notes;
  MergeOptions o = options(2, 65536);
  o.run.note = [&](const std::string& n) { notes.push_back(n); };
  const RecipeResult r = run_recipe(recipe, (out / "x").string(), o);
  EXPECT_TRUE(r.one_pass) << r.staged_because;
  EXPECT_EQ(r.stages_run, (std::vector<std::string>{"soup", ""}));
  auto noted = [&](const std::string& text) {
    return std::any_of(notes.begin(), notes.end(),
                       [&](const std::string& n) { return n.find(text) != std::string::npos; });
  };
  EXPECT_TRUE(noted("stage 'curve': the output does not use it"));
  EXPECT_TRUE(noted("stage 'late': the output does not use it and it uses stage 'curve'"));
  EXPECT_NO_THROW(recipe.describe());

  // Without tokenizer files a stage has no folder to stand for; an output
  // in the current directory is still no input's.
  const fs::path cwd = fs::current_path();
  fs::current_path(out.path());
  o.run.copy_tokenizer = false;
  EXPECT_NO_THROW(run_recipe(recipe, "bare", o));
  fs::current_path(cwd);
  EXPECT_TRUE(fs::exists(out / "bare" / "model.safetensors"));
  EXPECT_FALSE(fs::exists(out / "bare" / "tokenizer.json"));
}

TEST_F(OnePassTest, AStageOfAnotherVocabularyIsReadCutOrGatheredAsStaged) {
  // `w` has 1100 embedding rows, the base 1000: linear reads the first 1000
  // of the stage's embed_tokens and lm_head, computed as they are read.
  synth((*dir_) / "wide", "--hidden 128 --intermediate 640 --vocab 1100 --layers 4 --seed 9");
  const Recipe recipe = Recipe::parse(models(R"(name: w
merge_method: linear
models: [{model: {dir}/wide, parameters: {weight: 0.5}}]
parameters: {normalize: false}
---
merge_method: linear
models:
  - {model: {dir}/base, parameters: {weight: 0.5}}
  - {model: w, parameters: {weight: 0.5}}
)"),
                                      "recipe.yaml");
  TempDir out;
  MergeOptions staged = options(1, 65536);
  staged.run.staged = true;
  run_recipe(recipe, (out / "staged").string(), staged);
  const RecipeResult r = run_recipe(recipe, (out / "one").string(), options(2, 131072));
  EXPECT_TRUE(r.one_pass) << r.staged_because;
  EXPECT_TRUE(files(out / "one").at("model.safetensors") ==
              files(out / "staged").at("model.safetensors"));

  // A vocabulary union over the stage: its rows are gathered from the
  // stage's tables, and the tokenizer is built from the files the stage's
  // folder would hold.
  const Recipe union_recipe = Recipe::parse(models(R"(name: w
merge_method: linear
models: [{model: {dir}/wide, parameters: {weight: 0.5}}]
parameters: {normalize: false}
---
merge_method: linear
tokenizer_source: union
models:
  - {model: {dir}/a, parameters: {weight: 0.5}}
  - {model: w, parameters: {weight: 0.5}}
)"),
                                            "union.yaml");
  run_recipe(union_recipe, (out / "union-staged").string(), staged);
  EXPECT_TRUE(run_recipe(union_recipe, (out / "union-one").string(), options(2, 65536)).one_pass);
  const auto expected = files(out / "union-staged");
  const auto got = files(out / "union-one");
  ASSERT_EQ(got.size(), expected.size());
  ASSERT_TRUE(expected.count("tokenizer.json"));
  for (const auto& [name, bytes] : expected) {
    if (name != "README.md") {
      EXPECT_TRUE(got.at(name) == bytes) << name << " differs";
    }
  }
}

TEST_F(OnePassTest, PlanErrorsComeBeforeAnythingIsWrittenWithTheStagedLocations) {
  // The last stage has a parameter out of range.
  const std::string yaml = replace_all(models(k_recipe), "density: 0.7", "density: 1.5");
  const Recipe recipe = Recipe::parse(yaml, "recipe.yaml");
  TempDir out;
  auto problems_of = [&](MergeOptions o, const std::string& name) {
    std::vector<Problem> problems;
    try {
      run_recipe(recipe, (out / name).string(), o);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      problems = e.problems();
    }
    return problems;
  };
  MergeOptions staged = options(1, 65536);
  staged.run.staged = true;
  const auto a = problems_of(options(1, 65536), "one-pass");
  EXPECT_TRUE(fs::is_empty(out.path()));  // nothing was written, not even a stage
  const auto b = problems_of(staged, "staged");
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(a[0].line, b[0].line);
  EXPECT_EQ(a[0].column, b[0].column);
  EXPECT_EQ(a[0].message, b[0].message);
  EXPECT_TRUE(fs::is_empty(out.path()));

  // `llmerge plan` plans every stage from headers, the later ones too.
  const std::string text = Recipe::parse(models(k_recipe), "recipe.yaml").describe();
  EXPECT_EQ(text.find("planned when run"), std::string::npos) << text;
  EXPECT_NE(text.find("one pass:"), std::string::npos) << text;
}

TEST_F(OnePassTest, ACancelledRunLeavesNothingBehind) {
  const Recipe recipe = Recipe::parse(models(k_recipe), "recipe.yaml");
  TempDir out;
  MergeOptions o = options(2, 65536);
  o.run.progress_interval_s = 0.0;
  // As Ctrl-C in Python: the token is cancelled and the callback raises. The
  // callback is called at least once, at the end, before the output is committed.
  const CancelToken token = o.run.cancel;
  o.run.progress = [token](const Progress&) {
    token.cancel();
    throw Error(ErrorKind::interrupted, "cancelled by the test");
  };
  EXPECT_THROW(run_recipe(recipe, (out / "x").string(), o), Error);
  EXPECT_TRUE(fs::is_empty(out.path()));
}

// The methods that say they merge element by element do: compute() on
// pieces of any size, in any order, gives the bits of one call on the whole.
TEST(ElementwiseMethods, ComputeOnAnyRangeInAnyOrderGivesTheSameBits) {
  const std::int64_t n = 2 * k_reduce_block + 4099;
  std::mt19937 gen(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto random_tensor = [&] {
    std::vector<float> v(static_cast<std::size_t>(n));
    for (auto& x : v)
      x = normal(gen);
    return v;
  };
  const std::vector<float> base = random_tensor();
  const testing::Tensors inputs{random_tensor(), random_tensor(), random_tensor()};
  int checked = 0;
  for (const MethodSpec& spec : method_registry()) {
    if (spec.elementwise == nullptr) continue;
    const std::size_t m = spec.models_max == 0 ? 3 : spec.models_max;
    testing::Values globals{{"t", 0.4}, {"rescale", 0.0}};
    std::vector<testing::Values> per_model;
    for (std::size_t i = 0; i < m; ++i)
      per_model.push_back({{"weight", 0.3 + 0.2 * static_cast<double>(i)}, {"density", 0.6}});
    // Only the parameters the method has.
    auto keep = [&](testing::Values v) {
      testing::Values out;
      for (const auto& [k, x] : v)
        if (spec.find_parameter(k)) out[k] = x;
      return out;
    };
    globals = keep(globals);
    for (auto& v : per_model)
      v = keep(v);
    const ResolvedParameters params = testing::resolve(spec, m, globals, per_model);
    if (!spec.elementwise(params).empty()) continue;  // ties at density < 1, say
    SCOPED_TRACE(spec.name);
    TensorContext ctx;
    ctx.name = "model.layers.0.mlp.up_proj.weight";
    ctx.shape = {n};
    ctx.numel = n;
    ctx.model_count = m;
    ctx.has_base = spec.base_use != MethodSpec::BaseUse::none;
    ctx.params = &params;
    ctx.seed = 11;
    ctx.tensor_key = hash_tensor_name(ctx.name);
    auto run = [&](const std::vector<std::pair<std::int64_t, std::int64_t>>& ranges) {
      auto merge = spec.make(ctx);
      EXPECT_EQ(merge->passes(), 0);
      std::vector<float> out(static_cast<std::size_t>(n));
      std::vector<const float*> models(m);
      for (const auto& [begin, size] : ranges) {
        Chunk c;
        c.begin = begin;
        c.size = size;
        c.base = ctx.has_base ? base.data() + begin : nullptr;
        for (std::size_t i = 0; i < m; ++i)
          models[i] = inputs[i].data() + begin;
        c.models = models;
        merge->compute(c, out.data() + begin);
      }
      return out;
    };
    const std::vector<float> whole = run({{0, n}});
    // Odd pieces (a row segment of 7, a piece straddling a block), shuffled.
    std::vector<std::pair<std::int64_t, std::int64_t>> pieces;
    for (std::int64_t begin = 0; begin < n;) {
      const std::int64_t size = std::min<std::int64_t>(n - begin, 7 + (begin * 31) % 40000);
      pieces.emplace_back(begin, size);
      begin += size;
    }
    std::shuffle(pieces.begin(), pieces.end(), gen);
    const std::vector<float> pieced = run(pieces);
    EXPECT_EQ(0, std::memcmp(whole.data(), pieced.data(), whole.size() * sizeof(float)));
    ++checked;
  }
  // linear, task_arithmetic, ties/dare at these densities or without rescale, ram, nearswap,
  // passthrough.
  EXPECT_GE(checked, 7);
}

}  // namespace
}  // namespace llmerge
