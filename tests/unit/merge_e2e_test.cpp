// End to end through the CLI: example configs on synthetic models, values,
// determinism, output folder contents, and bad configs writing nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "io/model.h"
#include "test_util.h"

namespace llmerge {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

// Runs the CLI with `dir` as the working directory; `output` gets stdout (and
// stderr unless `stdout_only`).
int run_in(const fs::path& dir, const std::string& args, std::string* output = nullptr,
           bool stdout_only = false) {
  TempDir tmp;
  const auto log = tmp / "log.txt";
  const std::string cmd = "cd '" + dir.string() + "' && " + LLMERGE_CLI_PATH + " " + args + " >'" +
                          log.string() + "' " + (stdout_only ? "2>/dev/null" : "2>&1");
  const int status = std::system(cmd.c_str());
  if (output) *output = testing::read_text(log);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::vector<float> read_floats(const Model& m, const std::string& name) {
  const TensorRef* ref = m.find(name);
  if (!ref) throw std::runtime_error("missing " + name);
  std::vector<unsigned char> raw(ref->info->nbytes());
  ref->file->read(*ref->info, 0, raw.data(), raw.size());
  std::vector<float> out(static_cast<std::size_t>(ref->info->numel()));
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (ref->info->dtype == DType::BF16) {
      std::uint16_t h;
      std::memcpy(&h, raw.data() + 2 * i, 2);
      out[i] = bf16_to_f32(h);
    } else if (ref->info->dtype == DType::F32) {
      std::memcpy(&out[i], raw.data() + 4 * i, 4);
    } else {
      throw std::runtime_error("unexpected dtype");
    }
  }
  return out;
}

std::string file_bytes(const fs::path& p) {
  return testing::read_text(p);
}

class MergeEndToEnd : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const std::string script = std::string(LLMERGE_SOURCE_DIR) + "/scripts/make-demo-models.sh";
    const std::string cmd = "cd '" + dir_->path().string() + "' && bash '" + script + "' " +
                            LLMERGE_CLI_PATH + " demo/models >/dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    ready_ = true;
    fs::create_directories(dir_->path() / "examples");
    for (const auto& e : fs::directory_iterator(fs::path(LLMERGE_SOURCE_DIR) / "examples")) {
      fs::copy_file(e.path(), dir_->path() / "examples" / e.path().filename(),
                    fs::copy_options::overwrite_existing);
    }
  }
  static void TearDownTestSuite() { delete dir_; }
  // A failed fixture must fail every test, not skip it.
  void SetUp() override { ASSERT_TRUE(ready_) << "demo models could not be made"; }
  static fs::path root() { return dir_->path(); }
  static TempDir* dir_;
  static bool ready_;
};

TempDir* MergeEndToEnd::dir_ = nullptr;
bool MergeEndToEnd::ready_ = false;

TEST_F(MergeEndToEnd, EveryExampleConfigMerges) {
  int count = 0;
  for (const auto& e : fs::directory_iterator(root() / "examples")) {
    if (e.path().extension() != ".yaml") continue;  // the C++ example and its CMakeLists
    const std::string name = e.path().stem().string();
    std::string log;
    ASSERT_EQ(
        run_in(root(), "run examples/" + name + ".yaml -o out/" + name + " --force --quiet", &log),
        0)
        << name << ": " << log;
    const Model out = Model::open(root() / "out" / name);
    EXPECT_GT(out.tensor_count(), 0u) << name;
    ++count;
  }
  EXPECT_GE(count, 9);
  // Layer counts: passthrough stacks 4 + 4 layers; different-depth gives 4 + 2.
  EXPECT_EQ(Model::open(root() / "out/passthrough").layers().count, 8);
  EXPECT_EQ(Model::open(root() / "out/passthrough").config()["num_hidden_layers"], 8);
  EXPECT_EQ(Model::open(root() / "out/different-depth").layers().count, 6);
}

TEST_F(MergeEndToEnd, LinearOutputEqualsTheWeightedAverageOfTheInputs) {
  ASSERT_EQ(run_in(root(), "run examples/linear.yaml -o out/lin-check --force --quiet"), 0);
  const Model a = Model::open(root() / "demo/models/a");
  const Model b = Model::open(root() / "demo/models/b");
  const Model out = Model::open(root() / "out/lin-check");
  for (const std::string name :
       {"model.layers.3.mlp.down_proj.weight", "model.embed_tokens.weight", "model.norm.weight"}) {
    const auto xa = read_floats(a, name);
    const auto xb = read_floats(b, name);
    const auto y = read_floats(out, name);
    ASSERT_EQ(y.size(), xa.size());
    std::size_t exact = 0;
    for (std::size_t i = 0; i < y.size(); ++i) {
      // f32 math as mergekit 0.1.5 (addcmul_ is fused): fma(0.4, b, 0.6 a) / (0.6 + 0.4), then
      // bf16.
      const float expect = std::fma(0.4f, xb[i], 0.6f * xa[i]) / (0.6f + 0.4f);
      const float rounded = bf16_to_f32(f32_to_bf16(expect));
      exact += y[i] == rounded;
      ASSERT_NEAR(y[i], expect, std::abs(expect) * 0.008 + 1e-30) << name << "[" << i << "]";
    }
    EXPECT_EQ(exact, y.size()) << name;
  }
}

TEST_F(MergeEndToEnd, OutputIsByteIdenticalForAnyThreadCountAndChunkSize) {
  // della's keep-bit pool is shared by the workers (merge/methods/della.cpp),
  // arcee_fusion and sce keep per-row and per-chunk state: each at 1 and 4 threads.
  for (const std::string method : {"ties", "dare_ties", "slerp", "della", "arcee_fusion", "sce"}) {
    const std::string cfg = "examples/" + method + ".yaml";
    ASSERT_EQ(run_in(root(), "run " + cfg +
                                 " -o out/d1 --force --quiet --threads 1 --chunk-elements 65536"),
              0);
    ASSERT_EQ(run_in(root(), "run " + cfg +
                                 " -o out/d2 --force --quiet --threads 4 --chunk-elements 1000000"),
              0);
    for (const auto& e : fs::directory_iterator(root() / "out/d1")) {
      const auto other = root() / "out/d2" / e.path().filename();
      if (e.path().filename() == "README.md") continue;  // the title is the folder name
      ASSERT_TRUE(fs::exists(other)) << other;
      EXPECT_TRUE(file_bytes(e.path()) == file_bytes(other))
          << method << ": " << e.path().filename();
    }
  }
}

TEST_F(MergeEndToEnd, OutputFolderHasConfigTokenizerCardAndSourceYaml) {
  ASSERT_EQ(run_in(root(), "run examples/ties.yaml out/card --force --quiet"), 0);
  const auto out = root() / "out/card";
  auto cfg = nlohmann::json::parse(file_bytes(out / "config.json"));
  EXPECT_EQ(cfg["num_hidden_layers"], 6);
  EXPECT_EQ(cfg["torch_dtype"], "bfloat16");
  EXPECT_TRUE(fs::exists(out / "tokenizer.json"));
  EXPECT_TRUE(fs::exists(out / "tokenizer_config.json"));
  EXPECT_EQ(file_bytes(out / "mergekit_config.yml"), file_bytes(root() / "examples/ties.yaml"));
  const auto card = file_bytes(out / "README.md");
  // base_model: lists Hub ids only, as mergekit's card does; these models are local folders.
  EXPECT_EQ(card.rfind("---\nlibrary_name: transformers\n", 0), 0u) << card;
  EXPECT_EQ(card.substr(0, card.find("\n---", 3)).find("base_model:"), std::string::npos) << card;
  EXPECT_NE(card.find("- llmerge"), std::string::npos);
  EXPECT_NE(card.find("TIES"), std::string::npos);
}

TEST_F(MergeEndToEnd, ShardedOutputHasAnIndexCoveringEveryTensor) {
  ASSERT_EQ(run_in(root(),
                   "run examples/linear.yaml -o out/sharded --force --quiet --out-shard-size 2MB"),
            0);
  const auto index =
      nlohmann::json::parse(file_bytes(root() / "out/sharded/model.safetensors.index.json"));
  const Model out = Model::open(root() / "out/sharded");
  EXPECT_GT(out.files().size(), 2u);
  EXPECT_EQ(index["weight_map"].size(), out.tensor_count());
}

TEST_F(MergeEndToEnd, BadConfigExitsTwoWithLocationAndWritesNothing) {
  testing::write_text(root() / "bad.yaml",
                      "merge_method: ties\nbase_model: demo/models/base\n"
                      "models:\n  - model: demo/models/a\n    parameters:\n"
                      "      weight: 1\n      desity: 0.5\n");
  std::string log;
  EXPECT_EQ(run_in(root(), "run bad.yaml -o out/bad", &log), 2);
  EXPECT_NE(log.find("bad.yaml:7:7:"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(root() / "out/bad"));
  // Nothing temporary left next to it either.
  if (!fs::exists(root() / "out")) return;
  for (const auto& e : fs::directory_iterator(root() / "out")) {
    EXPECT_EQ(e.path().filename().string().find("bad."), std::string::npos) << e.path();
  }
}

TEST_F(MergeEndToEnd, OutputInsideAnInputModelIsRefusedBeforeAnyWork) {
  std::string log;
  EXPECT_EQ(run_in(root(), "run examples/linear.yaml -o demo/models/a/merged", &log), 2);
  EXPECT_NE(log.find("is inside input model"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(root() / "demo/models/a/merged"));
}

TEST_F(MergeEndToEnd, ExistingOutputNeedsForce) {
  fs::create_directories(root() / "out/existing");
  testing::write_text(root() / "out/existing/keep.txt", "precious");
  std::string log;
  EXPECT_EQ(run_in(root(), "run examples/linear.yaml -o out/existing --quiet", &log), 2);
  EXPECT_NE(log.find("--force"), std::string::npos) << log;
  EXPECT_EQ(file_bytes(root() / "out/existing/keep.txt"), "precious");
}

TEST_F(MergeEndToEnd, PlanPrintsLayerMapAndJsonListsEveryTensor) {
  std::string text;
  ASSERT_EQ(run_in(root(), "plan examples/passthrough.yaml", &text), 0) << text;
  EXPECT_NE(text.find("layers: 8 in the output"), std::string::npos) << text;
  EXPECT_NE(text.find("peak memory estimate"), std::string::npos) << text;
  std::string json_text;
  ASSERT_EQ(run_in(root(), "plan examples/passthrough.yaml --json", &json_text, true), 0);
  const auto j = nlohmann::json::parse(json_text);
  EXPECT_EQ(j["out_layers"], 8);
  // 8 layers x 9 tensors + embeddings, final norm, lm_head.
  EXPECT_EQ(j["tensors"].size(), 8u * 9u + 3u);
}

}  // namespace
}  // namespace llmerge
