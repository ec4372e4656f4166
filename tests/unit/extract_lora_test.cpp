// `llmerge extract-lora`: the SVD (exact and randomized) against the
// Eckart-Young error, the extracted adapter fused back onto its base against
// the fine-tune, mergekit-extract-lora's singular values (committed by
// tools/lora/generate_extract_golden.py), mergekit's module classes and
// options, the mlx format, and refusals before any work.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/error.h"
#include "extract/svd.h"
#include "io/lora.h"
#include "io/model.h"
#include "llmerge/llmerge.h"
#include "llmerge/lora.h"
#include "test_util.h"

namespace llmerge {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

std::vector<float> read_f32(const Model& model, const std::string& name) {
  const TensorRef* ref = model.find(name);
  if (ref == nullptr) throw std::runtime_error("missing tensor " + name);
  std::vector<unsigned char> raw(ref->info->nbytes());
  ref->file->read(*ref->info, 0, raw.data(), raw.size());
  std::vector<float> v(static_cast<std::size_t>(ref->info->numel()));
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (ref->info->dtype == DType::BF16) {
      std::uint16_t h;
      std::memcpy(&h, raw.data() + 2 * i, 2);
      v[i] = bf16_to_f32(h);
    } else {
      std::memcpy(&v[i], raw.data() + 4 * i, 4);
    }
  }
  return v;
}

double frobenius(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    s += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
  return std::sqrt(s);
}

// A matrix with a known spectrum: U diag(s) V^T for random orthonormal U, V
// (Gram-Schmidt of Gaussian columns), s_k = 0.8^k for the first `components`
// (zero after).
std::vector<float> known_spectrum(std::int64_t rows, std::int64_t cols, std::vector<double>& s,
                                  std::int64_t components) {
  std::mt19937 gen(7);
  std::normal_distribution<double> normal;
  const std::int64_t n = std::min({rows, cols, components});
  auto orthonormal = [&](std::int64_t len) {
    std::vector<std::vector<double>> q;
    for (std::int64_t k = 0; k < n; ++k) {
      std::vector<double> v(static_cast<std::size_t>(len));
      for (auto& x : v)
        x = normal(gen);
      for (const auto& p : q) {
        double d = 0;
        for (std::int64_t i = 0; i < len; ++i)
          d += v[i] * p[i];
        for (std::int64_t i = 0; i < len; ++i)
          v[i] -= d * p[i];
      }
      double norm = 0;
      for (double x : v)
        norm += x * x;
      for (auto& x : v)
        x /= std::sqrt(norm);
      q.push_back(v);
    }
    return q;
  };
  const auto u = orthonormal(rows);
  const auto v = orthonormal(cols);
  s.resize(static_cast<std::size_t>(n));
  for (std::int64_t k = 0; k < n; ++k)
    s[k] = std::pow(0.8, static_cast<double>(k));
  std::vector<float> m(static_cast<std::size_t>(rows * cols));
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j) {
      double x = 0;
      for (std::int64_t k = 0; k < n; ++k)
        x += u[k][i] * s[k] * v[k][j];
      m[static_cast<std::size_t>(i * cols + j)] = static_cast<float>(x);
    }
  return m;
}

// ||D - B A||_F equals sqrt(sum of the dropped s_k^2) (Eckart-Young); the
// singular values found equal the spectrum; both SVD paths.
void check_svd(std::int64_t rows, std::int64_t cols, std::int64_t rank, bool randomized,
               std::int64_t components) {
  std::vector<double> s;
  const auto d = known_spectrum(rows, cols, s, components);
  ASSERT_EQ(uses_randomized_svd(rows, cols, rank), randomized);
  for (bool distribute : {true, false}) {
    const LowRank lr = truncated_svd(d.data(), rows, cols, rank, distribute, 1);
    EXPECT_EQ(lr.randomized, randomized);
    for (std::int64_t k = 0; k < rank; ++k)
      EXPECT_NEAR(lr.singular[static_cast<std::size_t>(k)], s[k], 1e-4 * s[0]) << k;
    std::vector<float> approx(d.size());
    for (std::int64_t i = 0; i < rows; ++i)
      for (std::int64_t j = 0; j < cols; ++j) {
        double x = 0;
        for (std::int64_t k = 0; k < rank; ++k)
          x += static_cast<double>(lr.b[i * rank + k]) * lr.a[k * cols + j];
        approx[i * cols + j] = static_cast<float>(x);
      }
    double dropped = 0;
    for (std::size_t k = static_cast<std::size_t>(rank); k < s.size(); ++k)
      dropped += s[k] * s[k];
    EXPECT_NEAR(frobenius(d, approx), std::sqrt(dropped), 1e-3 * std::sqrt(dropped) + 1e-5);
    // distribute_scale: B's column norms are sqrt(s_k); otherwise 1.
    double norm = 0;
    for (std::int64_t i = 0; i < rows; ++i)
      norm += static_cast<double>(lr.b[i * rank]) * lr.b[i * rank];
    EXPECT_NEAR(norm, distribute ? s[0] : 1.0, 1e-4);
  }
}

TEST(LoraSvd, ExactSvdErrorIsTheDroppedSingularValues) {
  check_svd(48, 40, 6, false, 40);
}

TEST(LoraSvd, RandomizedSvdOfALargeMatrixMatchesTheSpectrum) {
  check_svd(k_randomized_min_side + 64, k_randomized_min_side + 8, 8, true, 48);
}

// ------------------------------------------------------------ end to end

const fs::path k_golden = fs::path(LLMERGE_SOURCE_DIR) / "tests" / "lora" / "extract";

std::string join(const nlohmann::json& list) {
  std::string s;
  for (const auto& a : list)
    s += a.get<std::string>() + " ";
  return s;
}

class ExtractLora : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    golden_ = new nlohmann::json(
        nlohmann::json::parse(testing::read_text(k_golden / "singular_values.json")));
    std::string log;
    ASSERT_EQ(testing::run_cli(
                  "synth " + base().string() + " " + join((*golden_)["base"]) + " --force", &log),
              0)
        << log;
    ASSERT_EQ(testing::run_cli("synth " + ft().string() + " --like " + base().string() + " " +
                                   join((*golden_)["tune"]) + " --force",
                               &log),
              0)
        << log;
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete golden_;
  }
  static fs::path base() { return (*dir_) / "base"; }
  static fs::path ft() { return (*dir_) / "ft"; }
  ExtractLoraResult extract(const fs::path& out, ExtractLoraOptions o = {}) {
    return extract_lora(ft().string(), base().string(), out.string(), o);
  }
  void fuse_back(const fs::path& adapter, const fs::path& out) {
    MergeOptions o;
    o.run.write_model_card = false;
    fuse(base().string(), adapter.string(), out.string(), o);
  }
  TempDir tmp_;
  static TempDir* dir_;
  static nlohmann::json* golden_;
};
TempDir* ExtractLora::dir_ = nullptr;
nlohmann::json* ExtractLora::golden_ = nullptr;

// mergekit's classes: matrices decomposed, norms and embeddings (and
// lm_head) saved whole; the config as mergekit writes it; the singular
// values as mergekit-extract-lora kept them.
TEST_F(ExtractLora, PeftAdapterMatchesMergekitExtractLora) {
  ExtractLoraOptions o;
  o.max_rank = (*golden_)["r"].get<std::int64_t>();
  const auto r = extract(tmp_ / "out", o);
  EXPECT_EQ(r.rank, o.max_rank);
  EXPECT_EQ(r.lora_modules, (*golden_)["singular_values"].size());
  const auto config =
      nlohmann::json::parse(testing::read_text(tmp_ / "out" / "adapter_config.json"));
  EXPECT_EQ(config["r"], o.max_rank);
  EXPECT_EQ(config["lora_alpha"], o.max_rank);
  EXPECT_EQ(config["target_modules"], (*golden_)["target_modules"]);
  auto saved = config["modules_to_save"].get<std::vector<std::string>>();
  auto want = (*golden_)["modules_to_save"].get<std::vector<std::string>>();
  std::sort(saved.begin(), saved.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(saved, want);
  const Model adapter_file = Model::open(tmp_ / "out" / "adapter_model.safetensors");
  for (const auto& [module, values] : (*golden_)["singular_values"].items()) {
    SCOPED_TRACE(module);
    const auto b = read_f32(adapter_file, "base_model.model." + module + ".lora_B.weight");
    const auto rank = static_cast<std::size_t>(o.max_rank);
    for (std::size_t k = 0; k < rank; ++k) {
      double s = 0;
      for (std::size_t i = k; i < b.size(); i += rank)
        s += static_cast<double>(b[i]) * b[i];
      const double theirs = values[k].get<double>();
      EXPECT_NEAR(s, theirs, 1e-4 * theirs) << "singular value " << k;
    }
  }
}

// Base + extracted adapter reconstructs the fine-tune: each module within the
// error its dropped singular values predict, whole tensors exactly.
TEST_F(ExtractLora, FusedBackTheErrorIsWhatTheDroppedSingularValuesPredict) {
  ExtractLoraOptions o;
  o.max_rank = 5;
  const auto r = extract(tmp_ / "ad", o);
  fuse_back(tmp_ / "ad", tmp_ / "back");
  const Model b = Model::open(base());
  const Model f = Model::open(ft());
  const Model back = Model::open(tmp_ / "back");
  for (const std::string name :
       {"model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.down_proj.weight"}) {
    SCOPED_TRACE(name);
    auto d = read_f32(f, name);
    const auto w = read_f32(b, name);
    for (std::size_t i = 0; i < d.size(); ++i)
      d[i] -= w[i];
    const auto shape = f.find(name)->shape();
    const auto s = singular_values(d.data(), shape[0], shape[1]);
    double dropped = 0;
    for (std::size_t k = 5; k < s.size(); ++k)
      dropped += static_cast<double>(s[k]) * s[k];
    EXPECT_NEAR(frobenius(read_f32(back, name), read_f32(f, name)), std::sqrt(dropped),
                1e-3 * std::sqrt(dropped));
  }
  for (const std::string name :
       {"model.norm.weight", "model.embed_tokens.weight", "model.layers.1.input_layernorm.weight"})
    EXPECT_EQ(read_f32(back, name), read_f32(f, name)) << name;
  EXPECT_GT(r.relative_error, 0.0);
  EXPECT_LT(r.relative_error, 1.0);
}

TEST_F(ExtractLora, FullRankReconstructsTheFineTune) {
  ExtractLoraOptions o;
  o.max_rank = 1000;  // more than any side: each module at its full rank
  o.embed_lora = true;
  const auto r = extract(tmp_ / "ad", o);
  EXPECT_EQ(r.rank, 64);  // the hidden size: the smaller side of every matrix
  fuse_back(tmp_ / "ad", tmp_ / "back");
  const Model f = Model::open(ft());
  const Model back = Model::open(tmp_ / "back");
  for (const auto& name : f.tensor_names()) {
    const auto want = read_f32(f, name);
    const auto got = read_f32(back, name);
    double scale = 0;
    for (float x : want)
      scale = std::max(scale, static_cast<double>(std::fabs(x)));
    EXPECT_LT(frobenius(got, want) / std::sqrt(static_cast<double>(want.size())), 1e-5 * scale)
        << name;
  }
  // --embed-lora: the embedding as lora_embedding_A/B; lm_head as a Linear.
  const Model a = Model::open(tmp_ / "ad" / "adapter_model.safetensors");
  EXPECT_NE(a.find("base_model.model.model.embed_tokens.lora_embedding_A"), nullptr);
  EXPECT_NE(a.find("base_model.model.lm_head.lora_A.weight"), nullptr);
}

TEST_F(ExtractLora, SvEpsilonLowersRanksIntoRankAndAlphaPatterns) {
  // Between the 4th and 5th singular value of one module (mergekit's, which
  // the golden test shows are llmerge's): that module gets rank 4.
  const std::string module = "model.layers.0.mlp.down_proj";
  const auto& values = (*golden_)["singular_values"][module];
  ExtractLoraOptions o;
  o.max_rank = 8;
  o.sv_epsilon = (values[3].get<double>() + values[4].get<double>()) / 2;
  extract(tmp_ / "ad", o);
  const auto config =
      nlohmann::json::parse(testing::read_text(tmp_ / "ad" / "adapter_config.json"));
  EXPECT_EQ(config["rank_pattern"], config["alpha_pattern"]);
  const Adapter adapter = Adapter::open(tmp_ / "ad", "ad");  // ranks agree with the tensors
  EXPECT_EQ(adapter.modules().at(module + ".weight").rank, 4);
  std::set<std::int64_t> ranks;
  for (const auto& [target, m] : adapter.modules()) {
    ranks.insert(m.rank);
    EXPECT_LE(m.rank, config["r"].get<std::int64_t>());
    EXPECT_DOUBLE_EQ(m.scale, 1.0) << target;  // alpha = r per module
  }
  EXPECT_EQ(*ranks.rbegin(), config["r"].get<std::int64_t>());
  if (ranks.size() > 1) {
    EXPECT_FALSE(config["rank_pattern"].empty());
  }
}

TEST_F(ExtractLora, RegexesSaveModuleAndSkipUndecomposableChooseTheModules) {
  ExtractLoraOptions o;
  o.max_rank = 4;
  o.include_regexes = {"layers\\.0\\."};
  o.exclude_regexes = {"v_proj"};
  o.save_modules = {"o_proj"};
  o.skip_undecomposable = true;
  extract(tmp_ / "ad", o);
  const Model a = Model::open(tmp_ / "ad" / "adapter_model.safetensors");
  const std::string p = "base_model.model.model.layers.";
  EXPECT_NE(a.find(p + "0.self_attn.q_proj.lora_A.weight"), nullptr);
  EXPECT_EQ(a.find(p + "1.self_attn.q_proj.lora_A.weight"), nullptr);  // not included
  EXPECT_EQ(a.find(p + "0.self_attn.v_proj.lora_A.weight"), nullptr);  // excluded
  EXPECT_NE(a.find(p + "0.self_attn.o_proj.weight"), nullptr);         // saved whole
  EXPECT_NE(a.find(p + "1.self_attn.o_proj.weight"), nullptr);
  EXPECT_EQ(a.find(p + "0.input_layernorm.weight"), nullptr);                // skipped
  EXPECT_NE(a.find("base_model.model.model.embed_tokens.weight"), nullptr);  // embeddings whole
}

// mlx-lm format: lora_a [in, r], lora_b [r, out], one rank, scale 1, keys
// inside the layers; fused back it is the same update as the PEFT one.
TEST_F(ExtractLora, MlxFormatFusesBackLikeThePeftAdapter) {
  ExtractLoraOptions o;
  o.max_rank = 4;
  o.format = AdapterFileFormat::mlx;
  extract(tmp_ / "mlx", o);
  const auto config =
      nlohmann::json::parse(testing::read_text(tmp_ / "mlx" / "adapter_config.json"));
  EXPECT_EQ(config["lora_parameters"]["rank"], 4);
  EXPECT_EQ(config["num_layers"], 2);
  EXPECT_EQ(config["lora_parameters"]["keys"].size(), 7u);
  const Model a = Model::open(tmp_ / "mlx" / "adapters.safetensors");
  const auto* la = a.find("model.layers.0.mlp.down_proj.lora_a");
  ASSERT_NE(la, nullptr);
  EXPECT_EQ(la->shape(), (std::vector<std::int64_t>{96, 4}));
  o.format = AdapterFileFormat::peft;
  extract(tmp_ / "peft", o);
  fuse_back(tmp_ / "mlx", tmp_ / "from-mlx");
  fuse_back(tmp_ / "peft", tmp_ / "from-peft");
  const Model m = Model::open(tmp_ / "from-mlx");
  const Model p = Model::open(tmp_ / "from-peft");
  const std::string name = "model.layers.1.self_attn.k_proj.weight";
  EXPECT_LT(frobenius(read_f32(m, name), read_f32(p, name)), 1e-5);
}

TEST_F(ExtractLora, ShapeMismatchesAreRefusedBeforeAnyOutput) {
  std::string log;
  ASSERT_EQ(testing::run_cli("synth " + (tmp_ / "other").string() +
                                 " --family llama --layers 2 --hidden 64 --intermediate 128 "
                                 "--heads 4 --kv-heads 2 --vocab 100 --dtype f32 --force",
                             &log),
            0);
  try {
    extract_lora((tmp_ / "other").string(), base().string(), (tmp_ / "out").string());
    FAIL() << "extracted across different shapes";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::shape) << e.what();
    EXPECT_NE(std::string(e.what()).find("mlp.up_proj"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(tmp_ / "out"));
  ExtractLoraOptions bad;
  bad.include_regexes = {"("};
  EXPECT_THROW(extract(tmp_ / "out", bad), Error);
  bad = {};
  bad.max_rank = 0;
  EXPECT_THROW(extract(tmp_ / "out", bad), Error);
  EXPECT_FALSE(fs::exists(tmp_ / "out"));
}

}  // namespace
}  // namespace llmerge
