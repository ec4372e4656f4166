// The planner: slices, layer renumbering, parameter resolution, validation.
#include <gtest/gtest.h>

#include <cmath>

#include "config/config.h"
#include "core/error.h"
#include "plan/plan.h"
#include "test_util.h"

namespace llmerge {
namespace {

using testing::TempDir;

// Writes a small synthetic llama through the CLI (the same path users take).
void synth(const std::filesystem::path& out, const std::string& args) {
  std::string log;
  ASSERT_EQ(testing::run_cli("synth " + out.string() + " " + args + " --force", &log), 0) << log;
}

class PlannerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const std::string arch = "--family llama --hidden 64 --intermediate 128 --heads 4 --kv-heads 2";
    const std::string shape = arch + " --vocab 128";
    synth((*dir_) / "base", shape + " --layers 6 --seed 1");
    synth((*dir_) / "a", "--like " + ((*dir_) / "base").string() + " --delta-scale 0.05 --seed 2");
    synth((*dir_) / "b", "--like " + ((*dir_) / "base").string() + " --delta-scale 0.05 --seed 3");
    synth((*dir_) / "shallow", shape + " --layers 4 --seed 4");
    synth((*dir_) / "wide",
          "--family llama --hidden 128 --intermediate 128 --heads 4 --kv-heads 2 "
          "--vocab 128 --layers 6 --seed 5");
    synth((*dir_) / "bigvocab", arch + " --layers 6 --vocab 160 --seed 6");
    ready_ = !::testing::Test::HasFatalFailure();
  }
  static void TearDownTestSuite() { delete dir_; }

  // Replaces {dir} in the YAML with the models' folder.
  static std::string yaml(std::string text) {
    const std::string key = "{dir}";
    for (auto pos = text.find(key); pos != std::string::npos; pos = text.find(key)) {
      text.replace(pos, key.size(), dir_->path().string());
    }
    return text;
  }

  static MergePlan plan(const std::string& text) {
    return make_plan(parse_config(yaml(text), "config.yaml"), PlanSettings{});
  }

  static std::string plan_error(const std::string& text) {
    try {
      plan(text);
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  }

  static const PlannedTensor& tensor(const MergePlan& p, const std::string& name) {
    for (const auto& t : p.tensors) {
      if (t.name == name) return t;
    }
    throw std::runtime_error("no tensor " + name);
  }

  // A failed fixture must fail every test, not skip it.
  void SetUp() override { ASSERT_TRUE(ready_) << "synthetic models could not be made"; }

  static TempDir* dir_;
  static bool ready_;
};

TempDir* PlannerTest::dir_ = nullptr;
bool PlannerTest::ready_ = false;

TEST_F(PlannerTest, SlicesOfDifferentModelsAreRenumberedConsecutively) {
  const MergePlan p = plan(R"(
merge_method: passthrough
slices:
  - sources: [{model: {dir}/a, layer_range: [0, 4]}]
  - sources: [{model: {dir}/shallow, layer_range: [1, 4]}]
)");
  EXPECT_EQ(p.out_layers, 7);
  ASSERT_EQ(p.layer_map.size(), 7u);
  // Output layer 5 is the second layer of the second slice: shallow's layer 2.
  const auto& t = tensor(p, "model.layers.5.mlp.up_proj.weight");
  ASSERT_EQ(t.inputs.size(), 1u);
  EXPECT_EQ(t.inputs[0].tensor, "model.layers.2.mlp.up_proj.weight");
  EXPECT_EQ(p.model_refs[t.inputs[0].model], dir_->path().string() + "/shallow");
  EXPECT_EQ(p.out_config["num_hidden_layers"], 7);
  // Embeddings come from the first slice, the final norm from the last.
  EXPECT_EQ(p.model_refs[tensor(p, "model.embed_tokens.weight").inputs[0].model],
            dir_->path().string() + "/a");
  EXPECT_EQ(p.model_refs[tensor(p, "model.norm.weight").inputs[0].model],
            dir_->path().string() + "/shallow");
}

TEST_F(PlannerTest, GradientsSpanEachSliceAndFiltersMatchSubstrings) {
  const MergePlan p = plan(R"(
merge_method: slerp
base_model: {dir}/base
slices:
  - sources:
      - {model: {dir}/base, layer_range: [0, 3]}
      - {model: {dir}/a, layer_range: [0, 3]}
  - sources:
      - {model: {dir}/base, layer_range: [3, 6]}
      - {model: {dir}/a, layer_range: [3, 6]}
parameters:
  t:
    - filter: self_attn
      value: [0, 1]
    - value: 0.25
)");
  // Slice 1 has 3 layers: its middle layer (output 4) has t = 1/2 of the gradient.
  EXPECT_DOUBLE_EQ(tensor(p, "model.layers.4.self_attn.q_proj.weight").params.global_value("t"),
                   0.5);
  EXPECT_DOUBLE_EQ(tensor(p, "model.layers.3.self_attn.q_proj.weight").params.global_value("t"),
                   0.0);
  EXPECT_DOUBLE_EQ(tensor(p, "model.layers.5.self_attn.o_proj.weight").params.global_value("t"),
                   1.0);
  EXPECT_DOUBLE_EQ(tensor(p, "model.layers.4.mlp.up_proj.weight").params.global_value("t"), 0.25);
  // Outside the layers t = 0; the fallback applies to the embeddings.
  EXPECT_DOUBLE_EQ(tensor(p, "model.embed_tokens.weight").params.global_value("t"), 0.25);
  // The base is the slerp t = 0 end.
  const auto& q = tensor(p, "model.layers.0.self_attn.q_proj.weight");
  ASSERT_TRUE(q.base.has_value());
  EXPECT_EQ(p.model_refs[q.base->model], dir_->path().string() + "/base");
}

TEST_F(PlannerTest, PerModelParametersFollowSourceThenSliceThenTopLevel) {
  const MergePlan p = plan(R"(
merge_method: ties
base_model: {dir}/base
slices:
  - sources:
      - model: {dir}/base
        layer_range: [0, 6]
      - model: {dir}/a
        layer_range: [0, 6]
        parameters:
          weight:
            - filter: mlp
              value: 0.9
      - model: {dir}/b
        layer_range: [0, 6]
    parameters:
      weight: 0.3
parameters:
  weight: 0.1
  density: [0.2, 0.8]
)");
  const auto& mlp = tensor(p, "model.layers.0.mlp.down_proj.weight");
  ASSERT_EQ(mlp.inputs.size(), 2u);
  EXPECT_DOUBLE_EQ(mlp.params.model_value(0, "weight"), 0.9);  // source level, filter matches
  EXPECT_DOUBLE_EQ(mlp.params.model_value(1, "weight"), 0.3);  // slice level
  const auto& attn = tensor(p, "model.layers.0.self_attn.k_proj.weight");
  EXPECT_DOUBLE_EQ(attn.params.model_value(0, "weight"), 0.3);  // filter misses: falls to the slice
  // density gradient over 6 layers: layer 3 has t = 3/5 -> 0.2 + 0.6 * 0.6.
  const auto& l3 = tensor(p, "model.layers.3.self_attn.k_proj.weight");
  EXPECT_NEAR(l3.params.model_value(1, "density"), 0.2 + 0.6 * 0.6, 1e-12);
  // ties defaults.
  EXPECT_DOUBLE_EQ(l3.params.global_value("normalize"), 1.0);
  EXPECT_DOUBLE_EQ(l3.params.global_value("lambda"), 1.0);
}

TEST_F(PlannerTest, ModelsFormAppendsAnUnlistedBaseForTaskVectorMethods) {
  const MergePlan p = plan(R"(
merge_method: task_arithmetic
base_model: {dir}/base
models:
  - model: {dir}/a
    parameters: {weight: 1.0}
)");
  const auto& t = tensor(p, "model.layers.2.mlp.gate_proj.weight");
  ASSERT_TRUE(t.base.has_value());
  EXPECT_EQ(t.inputs.size(), 1u);
  EXPECT_EQ(p.out_config["num_hidden_layers"], 6);
}

TEST_F(PlannerTest, DifferentVocabSizesAreCutToTheCommonRowsAsMergekitDoes) {
  const MergePlan p = plan(R"(
merge_method: linear
models:
  - {model: {dir}/base, parameters: {weight: 1}}
  - {model: {dir}/bigvocab, parameters: {weight: 1}}
)");
  const auto& embed = tensor(p, "model.embed_tokens.weight");
  EXPECT_EQ(embed.shape, (std::vector<std::int64_t>{128, 64}));
  EXPECT_EQ(embed.inputs[1].ref.info->shape[0], 160);
  EXPECT_EQ(p.out_config["vocab_size"], 128);
}

TEST_F(PlannerTest, OutputConfigRecordsDtypeAndTiedEmbeddingsExplicitly) {
  const MergePlan p = plan(R"(
merge_method: linear
models:
  - {model: {dir}/a, parameters: {weight: 1}}
  - {model: {dir}/b, parameters: {weight: 1}}
out_dtype: float16
)");
  EXPECT_EQ(p.out_config["torch_dtype"], "float16");
  EXPECT_EQ(p.out_config["tie_word_embeddings"], false);  // the synth models have an lm_head
  EXPECT_EQ(tensor(p, "lm_head.weight").dtype, DType::F16);
}

TEST_F(PlannerTest, UnknownMethodSuggestsTheClosestName) {
  const auto msg = plan_error("merge_method: tiez\nmodels:\n  - model: {dir}/a\n");
  EXPECT_NE(msg.find("config.yaml:1:15: unknown merge_method 'tiez'; did you mean 'ties'?"),
            std::string::npos)
      << msg;
}

TEST_F(PlannerTest, MisspelledParameterIsAnErrorWithLocationAndSuggestion) {
  const auto msg = plan_error(R"(merge_method: ties
base_model: {dir}/base
models:
  - model: {dir}/a
    parameters:
      weight: 0.5
      desity: 0.5
)");
  EXPECT_NE(msg.find("config.yaml:7:7:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("no parameter 'desity'; did you mean 'density'?"), std::string::npos) << msg;
}

TEST_F(PlannerTest, ReportsEveryProblemAtOnce) {
  const auto msg = plan_error(R"(merge_method: ties
base_model: {dir}/base
models:
  - model: {dir}/a
    parameters:
      weight: .nan
      density: 1.5
  - model: {dir}/b
)");
  EXPECT_NE(msg.find("problems found"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'weight' must be a finite number (value nan;"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'density' is out of range; it must be (0, 1] (value 1.5;"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("needs parameter 'weight'"), std::string::npos) << msg;  // model b has none
}

TEST_F(PlannerTest, LayerRangePastTheEndNamesTheModelDepth) {
  const auto msg = plan_error(R"(merge_method: passthrough
slices:
  - sources:
      - model: {dir}/shallow
        layer_range: [2, 6]
)");
  EXPECT_NE(msg.find("config.yaml:5:22:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("layer_range [2, 6] is past the end of model"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(4 layers)"), std::string::npos) << msg;
}

TEST_F(PlannerTest, SlicesWithSourcesOfDifferentLengthsAreRejected) {
  const auto msg = plan_error(R"(merge_method: linear
slices:
  - sources:
      - {model: {dir}/a, layer_range: [0, 4], parameters: {weight: 1}}
      - {model: {dir}/b, layer_range: [0, 3], parameters: {weight: 1}}
)");
  EXPECT_NE(msg.find("different numbers of layers (4 for"), std::string::npos) << msg;
}

TEST_F(PlannerTest, ShapeMismatchNamesBothModelsAndHiddenSizes) {
  const auto msg = plan_error(R"(merge_method: linear
models:
  - {model: {dir}/a, parameters: {weight: 1}}
  - {model: {dir}/wide, parameters: {weight: 1}}
)");
  EXPECT_NE(msg.find("hidden size 64 in '"), std::string::npos) << msg;
  EXPECT_NE(msg.find("/a' (llama, 6 layers, vocab 128) vs 128 in '"), std::string::npos) << msg;
  EXPECT_NE(msg.find("/wide' (llama, 6 layers, vocab 128): no weight merge can combine these"),
            std::string::npos)
      << msg;
  EXPECT_EQ(msg.find("problems found"), std::string::npos)
      << "one root cause, one problem: " << msg;
}

TEST_F(PlannerTest, SlerpTakesExactlyOneModelBesidesTheBase) {
  const auto msg = plan_error(R"(merge_method: slerp
base_model: {dir}/base
models:
  - model: {dir}/a
  - model: {dir}/b
parameters: {t: 0.5}
)");
  EXPECT_NE(msg.find("takes exactly 1 model(s) besides the base, but 2 given"), std::string::npos)
      << msg;
}

TEST_F(PlannerTest, MissingBaseForTaskVectorMethodIsExplained) {
  const auto msg = plan_error(R"(merge_method: ties
models:
  - {model: {dir}/a, parameters: {weight: 1}}
)");
  EXPECT_NE(msg.find("needs a base_model"), std::string::npos) << msg;
}

TEST_F(PlannerTest, LinearWeightsSummingToZeroAreRejected) {
  const auto msg = plan_error(R"(merge_method: linear
models:
  - {model: {dir}/a, parameters: {weight: 1}}
  - {model: {dir}/b, parameters: {weight: -1}}
)");
  EXPECT_NE(msg.find("sum to zero"), std::string::npos) << msg;
}

TEST_F(PlannerTest, DellaKeepProbabilitiesMustStayInsideZeroOne) {
  const auto msg = plan_error(R"(merge_method: della
base_model: {dir}/base
models:
  - {model: {dir}/a, parameters: {weight: 1, density: 0.1, epsilon: 0.15}}
)");
  EXPECT_NE(msg.find("della needs 0 < density - epsilon"), std::string::npos) << msg;
  EXPECT_NE(msg.find("density 0.1 and epsilon 0.15"), std::string::npos) << msg;
}

TEST_F(PlannerTest, MissingModelSaysWhereItLooked) {
  try {
    plan("merge_method: linear\nmodels:\n  - {model: {dir}/nope, parameters: {weight: 1}}\n");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::io);
    EXPECT_NE(std::string(e.what()).find("config.yaml:3:5: model '"), std::string::npos)
        << e.what();
  }
}

TEST_F(PlannerTest, MemoryEstimateDoesNotDependOnModelSize) {
  const MergePlan small =
      plan("merge_method: linear\nmodels:\n  - {model: {dir}/shallow, parameters: {weight: 1}}\n");
  const MergePlan large =
      plan("merge_method: linear\nmodels:\n  - {model: {dir}/wide, parameters: {weight: 1}}\n");
  // Only headers differ; buffers are chunk-sized.
  EXPECT_LT(std::llabs(static_cast<long long>(small.peak_memory_estimate()) -
                       static_cast<long long>(large.peak_memory_estimate())),
            1 << 20);
}

}  // namespace
}  // namespace llmerge
