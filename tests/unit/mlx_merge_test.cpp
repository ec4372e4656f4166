// Merging MLX-quantized models: reading quantized inputs, writing quantized
// output, --dequantize, and the config.json / metadata mlx-lm needs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "io/mlx_quant.h"
#include "io/model.h"
#include "test_util.h"

namespace llmerge {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

std::vector<unsigned char> raw(const SafetensorsFile& file, const TensorInfo& info) {
  std::vector<unsigned char> out(info.nbytes());
  file.read(info, 0, out.data(), out.size());
  return out;
}

// The logical float values of a tensor, dequantizing MLX-quantized weights.
std::vector<float> values(const Model& m, const std::string& name) {
  const TensorRef* ref = m.find(name);
  if (!ref) throw std::runtime_error("missing " + name);
  std::int64_t numel = 1;
  for (auto d : ref->shape())
    numel *= d;
  std::vector<float> out(static_cast<std::size_t>(numel));
  if (ref->quant) {
    const auto& q = *ref->quant;
    const auto words = raw(*ref->file, *ref->info);
    const auto scales = raw(*q.scales_file, *q.scales);
    const auto biases = raw(*q.biases_file, *q.biases);
    std::vector<std::uint32_t> packed(words.size() / 4);
    std::memcpy(packed.data(), words.data(), words.size());
    const std::int64_t cols = ref->shape().back();
    dequantize_rows(q.params, packed.data(), scales.data(), biases.data(), q.scales->dtype,
                    numel / cols, cols, out.data());
    return out;
  }
  const auto bytes = raw(*ref->file, *ref->info);
  for (std::size_t i = 0; i < out.size(); ++i) {
    std::uint16_t h;
    std::memcpy(&h, bytes.data() + 2 * i, 2);
    out[i] = bf16_to_f32(h);
  }
  return out;
}

class MlxMerge : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const std::string shape =
        "--family llama --hidden 128 --intermediate 256 --heads 4 --kv-heads 2 "
        "--vocab 256 --layers 2";
    auto ok = [](const std::string& args) { return testing::run_cli(args + " --force") == 0; };
    ready_ =
        ok("synth " + path("base") + " " + shape + " --seed 1") &&
        ok("synth " + path("a") + " --like " + path("base") + " --delta-scale 0.05 --seed 2") &&
        ok("quantize " + path("a") + " -o " + path("a4") + " -q --quiet") &&
        ok("quantize " + path("base") + " -o " + path("base3") +
           " -q --q-bits 3 --q-group-size 32 --quiet");
  }
  static void TearDownTestSuite() { delete dir_; }
  void SetUp() override { ASSERT_TRUE(ready_) << "models could not be made"; }
  static std::string path(const std::string& name) { return (dir_->path() / name).string(); }

  static int run(const std::string& yaml, const std::string& out, const std::string& flags,
                 std::string* log = nullptr) {
    testing::write_text(dir_->path() / "config.yaml", yaml);
    return testing::run_cli(
        "run " + path("config.yaml") + " -o " + path(out) + " --force --quiet " + flags, log);
  }

  static TempDir* dir_;
  static bool ready_;
};

TempDir* MlxMerge::dir_ = nullptr;
bool MlxMerge::ready_ = false;

TEST_F(MlxMerge, QuantizeWritesWhatMlxLmLoads) {
  const Model q = Model::open(path("a4"));
  EXPECT_TRUE(q.quantization().quantized);
  EXPECT_EQ(q.quantization().bits, 4);
  // Linear and embedding weights are quantized; norms are not.
  const TensorRef* proj = q.find("model.layers.1.mlp.up_proj.weight");
  ASSERT_NE(proj, nullptr);
  ASSERT_NE(proj->quant, nullptr);
  EXPECT_EQ(proj->info->dtype, DType::U32);
  EXPECT_EQ(proj->info->shape, (std::vector<std::int64_t>{256, 128 * 4 / 32}));
  EXPECT_EQ(proj->shape(), (std::vector<std::int64_t>{256, 128}));
  EXPECT_EQ(q.find("model.embed_tokens.weight")->quant != nullptr, true);
  EXPECT_EQ(q.find("model.norm.weight")->quant, nullptr);
  EXPECT_EQ(q.find("model.layers.1.mlp.up_proj.scales"), nullptr);  // folded into the weight
  const auto cfg = nlohmann::json::parse(testing::read_text(fs::path(path("a4")) / "config.json"));
  EXPECT_EQ(cfg["quantization"]["bits"], 4);
  EXPECT_EQ(cfg["quantization"]["group_size"], 64);
  EXPECT_EQ(cfg["quantization_config"], cfg["quantization"]);
  EXPECT_EQ(q.files().front().metadata().at("format"), "mlx");
}

TEST_F(MlxMerge, QuantizedValuesStayCloseToTheDenseOnes) {
  const Model dense = Model::open(path("a"));
  const Model q = Model::open(path("a4"));
  const auto x = values(dense, "model.layers.0.self_attn.q_proj.weight");
  const auto y = values(q, "model.layers.0.self_attn.q_proj.weight");
  ASSERT_EQ(x.size(), y.size());
  float range = 0;
  for (float v : x)
    range = std::max(range, std::abs(v));
  // 4 bits over a group's range: each value within about one step of the original.
  for (std::size_t i = 0; i < x.size(); ++i)
    ASSERT_NEAR(y[i], x[i], 2 * range / 15) << i;
}

TEST_F(MlxMerge, MergingQuantizedAndDenseModelsAveragesTheDequantizedValues) {
  ASSERT_EQ(run("merge_method: linear\nmodels:\n  - {model: " + path("a4") +
                    ", parameters: {weight: 0.5}}\n  - {model: " + path("base") +
                    ", parameters: {weight: 0.5}}\n",
                "lin-dense", "--dequantize"),
            0);
  const Model a4 = Model::open(path("a4"));
  const Model base = Model::open(path("base"));
  const Model out = Model::open(path("lin-dense"));
  EXPECT_FALSE(out.quantization().quantized);
  const std::string name = "model.layers.1.mlp.down_proj.weight";
  const auto xa = values(a4, name);
  const auto xb = values(base, name);
  const auto y = values(out, name);
  for (std::size_t i = 0; i < y.size(); ++i) {
    const float expect = (0.5f * xa[i] + 0.5f * xb[i]) / (0.5f + 0.5f);
    ASSERT_EQ(y[i], bf16_to_f32(f32_to_bf16(expect))) << i;
  }
}

TEST_F(MlxMerge, QuantizedOutputIsTheQuantizationOfTheDenseMerge) {
  const std::string yaml = "merge_method: linear\nmodels:\n  - {model: " + path("a4") +
                           ", parameters: {weight: 0.7}}\n  - {model: " + path("base") +
                           ", parameters: {weight: 0.3}}\n";
  ASSERT_EQ(run(yaml, "lin-dense2", "--dequantize"), 0);
  ASSERT_EQ(run(yaml, "lin-q", ""), 0);  // quantized like the quantized input
  const Model dense = Model::open(path("lin-dense2"));
  const Model q = Model::open(path("lin-q"));
  EXPECT_EQ(q.quantization().bits, 4);
  const std::string name = "model.layers.0.mlp.gate_proj.weight";
  const TensorRef* ref = q.find(name);
  ASSERT_NE(ref->quant, nullptr);
  // Quantize the dense result ourselves: the stored codes, scales and biases must match.
  const TensorRef* d = dense.find(name);
  const auto w = raw(*d->file, *d->info);
  const std::int64_t rows = d->info->shape[0], cols = d->info->shape[1];
  std::vector<std::uint32_t> packed(static_cast<std::size_t>(rows * cols * 4 / 32));
  std::vector<unsigned char> scales(static_cast<std::size_t>(rows * cols / 64 * 2));
  std::vector<unsigned char> biases(scales.size());
  quantize_rows(ref->quant->params, w.data(), DType::BF16, rows, cols, packed.data(), scales.data(),
                biases.data());
  const auto got_words = raw(*ref->file, *ref->info);
  EXPECT_EQ(std::memcmp(got_words.data(), packed.data(), got_words.size()), 0);
  EXPECT_EQ(raw(*ref->quant->scales_file, *ref->quant->scales),
            std::vector<unsigned char>(scales.begin(), scales.end()));
  EXPECT_EQ(raw(*ref->quant->biases_file, *ref->quant->biases),
            std::vector<unsigned char>(biases.begin(), biases.end()));
}

TEST_F(MlxMerge, InputsOfDifferentBitWidthsMergeAndExplicitQuantizeWins) {
  ASSERT_EQ(run("merge_method: slerp\nbase_model: " + path("base3") + "\nmodels:\n  - model: " +
                    path("base3") + "\n  - model: " + path("a4") + "\nparameters: {t: 0.5}\n",
                "slerp6", "-q --q-bits 6 --q-group-size 128"),
            0);
  const Model out = Model::open(path("slerp6"));
  EXPECT_EQ(out.quantization().bits, 6);
  EXPECT_EQ(out.quantization().group_size, 128);
  EXPECT_EQ(out.find("model.layers.0.self_attn.o_proj.weight")->quant->params.bits, 6);
}

TEST_F(MlxMerge, UnsupportedQuantizationIsRefusedBeforeWriting) {
  std::string log;
  EXPECT_EQ(run("merge_method: passthrough\nmodels:\n  - model: " + path("a") + "\n", "bad7",
                "--q-bits 7", &log),
            2);
  EXPECT_NE(log.find("bits"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(path("bad7")));
  EXPECT_EQ(run("merge_method: passthrough\nmodels:\n  - model: " + path("a") + "\n", "badfp",
                "-q --q-group-size 32 --q-mode mxfp4", &log),
            2);
  EXPECT_NE(log.find("not supported yet"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(path("badfp")));
}

TEST_F(MlxMerge, ScalesWithoutAPackedWeightAreAFormatError) {
  const fs::path broken = dir_->path() / "broken";
  fs::create_directories(broken);
  fs::copy(fs::path(path("a4")) / "config.json", broken / "config.json");
  // The quantized shard, with a config that says one quantized module is not.
  auto cfg = nlohmann::json::parse(testing::read_text(broken / "config.json"));
  cfg["quantization"]["model.layers.0.mlp.up_proj"] = false;
  testing::write_text(broken / "config.json", cfg.dump());
  fs::copy(fs::path(path("a4")) / "model.safetensors", broken / "model.safetensors");
  try {
    Model::open(broken);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::format);
    EXPECT_NE(std::string(e.what()).find("not quantized"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace llmerge
