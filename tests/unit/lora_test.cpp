// LoRA adapters ("model+adapter", `llmerge fuse`): parity with peft's
// merge_and_unload on committed data (tests/lora/peft/, made by
// tools/lora/generate_peft.py), an mlx-lm adapter against the formula
// computed here, the reference in every place a model is named, and hostile
// adapters refused by the plan before any work.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/error.h"
#include "io/model.h"
#include "llmerge/llmerge.h"
#include "safetensors_bytes.h"
#include "test_util.h"

namespace llmerge {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

const fs::path k_peft_dir = fs::path(LLMERGE_SOURCE_DIR) / "tests" / "lora" / "peft";

const std::string k_llama =
    "--family llama --layers 2 --hidden 32 --intermediate 48 --heads 4 --kv-heads 2 "
    "--vocab 100";

void synth(const fs::path& out, const std::string& args) {
  std::string log;
  ASSERT_EQ(testing::run_cli("synth " + out.string() + " " + args + " --force", &log), 0) << log;
}

std::vector<float> read_f32(const Model& model, const std::string& name, DType* dtype = nullptr) {
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
  if (dtype) *dtype = ref->info->dtype;
  return v;
}

MergeOptions quiet_options() {
  MergeOptions o;
  o.run.threads = 2;
  o.run.write_model_card = false;
  return o;
}

// ------------------------------------------------------------- peft parity

// Every tensor of merge_and_unload's model, against llmerge's fuse of the
// same base and adapter. f32: within a few f32 roundings (the sum over the
// rank may be ordered differently from torch's matmul). bf16: peft adds the
// f32 update into the bf16 weight with one rounding, as llmerge does; at most
// one bf16 step apart where the two f32 sums fall on either side of a
// rounding boundary (none on this case today).
void check_peft_case(const std::string& name) {
  SCOPED_TRACE(name);
  const fs::path dir = k_peft_dir / name;
  const auto info = nlohmann::json::parse(testing::read_text(dir / "case.json"));
  std::string args;
  for (const auto& a : info["synth"])
    args += a.get<std::string>() + " ";
  TempDir tmp;
  synth(tmp / "base", args);
  fuse((tmp / "base").string(), (dir / "adapter").string(), (tmp / "out").string(),
       quiet_options());
  const Model expected = Model::open(dir / "expected.safetensors");
  const Model out = Model::open(tmp / "out");
  const Model base = Model::open(tmp / "base");
  std::size_t changed = 0;
  std::size_t off_by_one_step = 0;
  std::size_t elements = 0;
  for (const auto& t : expected.tensor_names()) {
    SCOPED_TRACE(t);
    DType dtype = DType::F32;
    const auto want = read_f32(expected, t);
    const auto got = read_f32(out, t, &dtype);
    const auto before = read_f32(base, t);
    ASSERT_EQ(want.size(), got.size());
    changed += want != before ? 1 : 0;
    float largest = 0;
    for (float x : want)
      largest = std::max(largest, std::fabs(x));
    for (std::size_t i = 0; i < want.size(); ++i) {
      ++elements;
      if (dtype == DType::F32) {
        // A few f32 roundings of the tensor's largest value (2^-24 each).
        ASSERT_NEAR(got[i], want[i], 5e-7 * largest) << "element " << i;
      } else if (got[i] != want[i]) {
        // One bf16 step: 2^-7 relative.
        ASSERT_LE(std::fabs(got[i] - want[i]), std::fabs(want[i]) * (1.0 / 128) * 1.01)
            << "element " << i;
        ++off_by_one_step;
      }
    }
  }
  EXPECT_GT(changed, 3u) << "the adapter changed nothing: the test would prove nothing";
  EXPECT_LE(off_by_one_step, elements / 100) << "more than 1% of bf16 values differ";
  EXPECT_EQ(out.tensor_names(), base.tensor_names());
}

TEST(LoraPeft, FuseEqualsMergeAndUnloadWithRankAndAlphaPatternsEmbeddingAndModulesToSave) {
  check_peft_case("llama_f32_patterns");
}

TEST(LoraPeft, FuseEqualsMergeAndUnloadWithRsloraOnABf16Base) {
  check_peft_case("llama_bf16_rslora");
}

TEST(LoraPeft, FuseEqualsMergeAndUnloadForFanInFanOutConv1D) {
  check_peft_case("gpt2_f32_fan_in_fan_out");
}

// ------------------------------------------------------------ hand-made adapters

struct Tensor {
  std::string name;
  std::vector<std::int64_t> shape;
  std::vector<float> values;  // empty: filled with a pattern
};

void write_safetensors(const fs::path& path, std::vector<Tensor> tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (auto& t : tensors) {
    std::int64_t n = 1;
    for (auto d : t.shape)
      n *= d;
    if (t.values.empty()) {
      for (std::int64_t i = 0; i < n; ++i)
        t.values.push_back(0.01F * static_cast<float>((i * 7 + 3) % 11) - 0.05F);
    }
    const auto begin = data.size();
    data.append(reinterpret_cast<const char*>(t.values.data()), t.values.size() * 4);
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
  }
  std::string h = header.dump();
  while (h.size() % 8)
    h += ' ';
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << testing::safetensors_bytes(h, data);
}

void write_json(const fs::path& path, const nlohmann::json& j) {
  testing::write_text(path, j.dump(2));
}

nlohmann::json peft_config(nlohmann::json extra = nlohmann::json::object()) {
  nlohmann::json j = {{"peft_type", "LORA"},
                      {"r", 2},
                      {"lora_alpha", 4},
                      {"target_modules", {"q_proj"}},
                      {"bias", "none"}};
  j.update(extra);
  return j;
}

const std::string k_q0 = "base_model.model.model.layers.0.self_attn.q_proj";

// A PEFT adapter on layer 0's q_proj ([32, 32] in the llama synth base).
void peft_adapter(const fs::path& dir, nlohmann::json config, std::vector<Tensor> tensors) {
  write_json(dir / "adapter_config.json", config);
  write_safetensors(dir / "adapter_model.safetensors", std::move(tensors));
}

std::vector<Tensor> q0_factors(std::int64_t rank = 2, std::int64_t out = 32, std::int64_t in = 32) {
  return {{k_q0 + ".lora_A.weight", {rank, in}, {}}, {k_q0 + ".lora_B.weight", {out, rank}, {}}};
}

// Plans "base+adapter" and expects one Error of `kind` whose text has `needle`.
void expect_refused(const fs::path& base, const fs::path& adapter, ErrorKind kind,
                    const std::string& needle) {
  try {
    (void)plan(fuse_config(base.string(), adapter.string()));
    FAIL() << "planned; expected an error with: " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

class LoraAdapters : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    synth((*dir_) / "base", k_llama + " --dtype f32 --seed 5");
  }
  static void TearDownTestSuite() { delete dir_; }
  static fs::path base() { return (*dir_) / "base"; }
  fs::path adapter(const std::string& name) const { return tmp_ / name; }
  TempDir tmp_dir_;
  fs::path tmp_ = tmp_dir_.path();
  static TempDir* dir_;
};
TempDir* LoraAdapters::dir_ = nullptr;

// mlx-lm layout: lora_a [in, r], lora_b [r, out], W' = W + scale * b^T a^T,
// scale as written. Computed here in double from the factors' values.
TEST_F(LoraAdapters, MlxAdapterAddsScaleTimesBTransposeATranspose) {
  const fs::path ad = adapter("mlx");
  write_json(ad / "adapter_config.json",
             {{"fine_tune_type", "lora"},
              {"num_layers", 2},
              {"lora_parameters", {{"rank", 3}, {"scale", 20.0}, {"dropout", 0.0}}}});
  const std::string m = "model.layers.1.mlp.up_proj";  // W [48, 32]
  std::vector<float> a(32 * 3);
  std::vector<float> b(3 * 48);
  for (std::size_t i = 0; i < a.size(); ++i)
    a[i] = 0.001F * static_cast<float>(static_cast<int>(i % 13) - 6);
  for (std::size_t i = 0; i < b.size(); ++i)
    b[i] = 0.002F * static_cast<float>(static_cast<int>(i % 7) - 3);
  write_safetensors(ad / "adapters.safetensors",
                    {{m + ".lora_a", {32, 3}, a}, {m + ".lora_b", {3, 48}, b}});
  fuse(base().string(), ad.string(), (tmp_ / "out").string(), quiet_options());
  const Model before = Model::open(base());
  const Model out = Model::open(tmp_ / "out");
  const auto w = read_f32(before, m + ".weight");
  const auto got = read_f32(out, m + ".weight");
  for (std::size_t row = 0; row < 48; ++row) {
    for (std::size_t col = 0; col < 32; ++col) {
      double delta = 0;
      for (std::size_t k = 0; k < 3; ++k)
        delta += 20.0 * b[k * 48 + row] * a[col * 3 + k];
      const std::size_t i = row * 32 + col;
      ASSERT_NEAR(got[i], w[i] + delta, 1e-6) << row << "," << col;
    }
  }
  // Tensors the adapter does not touch are the base's, bit for bit.
  EXPECT_EQ(read_f32(out, "model.layers.0.mlp.up_proj.weight"),
            read_f32(before, "model.layers.0.mlp.up_proj.weight"));
}

// A fused model is the adapted model, not a conversion of its base: its recipe
// is the passthrough of base+adapter (which mergekit replays), its card does
// not claim a conversion, and the plan's errors are located in `<llmerge fuse>`.
TEST_F(LoraAdapters, FuseIsRecordedAsTheAdaptedModelNotAsAConversion) {
  const fs::path ad = adapter("peft");
  peft_adapter(ad, peft_config(), q0_factors());
  auto o = quiet_options();
  o.run.write_model_card = true;
  fuse(base().string(), ad.string(), (tmp_ / "out").string(), o);
  const std::string recipe = testing::read_text(tmp_ / "out" / "mergekit_config.yml");
  EXPECT_NE(recipe.find("passthrough"), std::string::npos) << recipe;
  EXPECT_NE(recipe.find(base().string() + "+" + ad.string()), std::string::npos) << recipe;
  const std::string card = testing::read_text(tmp_ / "out" / "README.md");
  EXPECT_EQ(card.find("converted to MLX"), std::string::npos) << card;
  try {
    (void)plan(fuse_config(base().string(), (tmp_ / "missing").string()));
    FAIL() << "a missing adapter planned";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("<llmerge fuse>"), std::string::npos) << e.what();
  }
}

// With `tokenizer_source: union` the token tables are gathered into the output
// vocabulary (plan/vocabulary.h); an adapter's lm_head update belongs to the
// model's own rows, before the gather. So merging base+adapter gives the bytes
// of merging the fused model, although its 100 rows become 120 in the output.
TEST_F(LoraAdapters, AnAdaptedTokenTableIsAlignedToAUnionVocabularyAfterItsUpdate) {
  synth(tmp_ / "big",
        k_llama.substr(0, k_llama.find("--vocab")) + "--vocab 120 --dtype f32 --seed 6");
  const fs::path ad = adapter("head");
  peft_adapter(ad, peft_config({{"target_modules", {"lm_head"}}}),
               {{"base_model.model.lm_head.lora_A.weight", {2, 32}, {}},
                {"base_model.model.lm_head.lora_B.weight", {100, 2}, {}}});
  fuse(base().string(), ad.string(), (tmp_ / "fused").string(), quiet_options());
  auto union_of = [&](const std::string& second) {
    return "merge_method: linear\nmodels:\n  - model: " + (tmp_ / "big").string() +
           "\n    parameters: {weight: 0.5}\n  - model: " + second +
           "\n    parameters: {weight: 0.5}\ntokenizer_source: union\ndtype: float32\n";
  };
  merge(Config::parse(union_of(base().string() + "+" + ad.string()), "u.yaml"),
        (tmp_ / "adapted").string(), quiet_options());
  merge(Config::parse(union_of((tmp_ / "fused").string()), "u.yaml"), (tmp_ / "reference").string(),
        quiet_options());
  merge(Config::parse(union_of(base().string()), "u.yaml"), (tmp_ / "plain").string(),
        quiet_options());
  const Model adapted = Model::open(tmp_ / "adapted");
  ASSERT_EQ(adapted.find("lm_head.weight")->info->shape, (std::vector<std::int64_t>{120, 32}));
  EXPECT_EQ(testing::read_text(tmp_ / "adapted" / "model.safetensors"),
            testing::read_text(tmp_ / "reference" / "model.safetensors"));
  EXPECT_NE(read_f32(adapted, "lm_head.weight"),
            read_f32(Model::open(tmp_ / "plain"), "lm_head.weight"));
}

// The same bytes whatever the chunk size and thread count.
TEST_F(LoraAdapters, FusedBytesDoNotDependOnChunksOrThreads) {
  const fs::path ad = adapter("peft");
  peft_adapter(ad, peft_config(), q0_factors());
  auto o1 = quiet_options();
  o1.run.threads = 1;
  auto o2 = quiet_options();
  o2.run.threads = 3;
  o2.run.chunk_elements = 1 << 17;
  fuse(base().string(), ad.string(), (tmp_ / "one").string(), o1);
  fuse(base().string(), ad.string(), (tmp_ / "two").string(), o2);
  EXPECT_EQ(testing::read_text(tmp_ / "one" / "model.safetensors"),
            testing::read_text(tmp_ / "two" / "model.safetensors"));
}

// "model+adapter" works wherever a model is named: base_model, models and
// slices. A linear merge of X+A with weight 1 is the fused model.
TEST_F(LoraAdapters, ModelPlusAdapterWorksAsBaseModelModelAndSliceSource) {
  const fs::path ad = adapter("peft");
  peft_adapter(ad, peft_config(), q0_factors());
  fuse(base().string(), ad.string(), (tmp_ / "fused").string(), quiet_options());
  const std::string ref = nlohmann::json(base().string() + "+" + ad.string()).dump();
  const std::string plain = nlohmann::json(base().string()).dump();
  const std::string configs[] = {
      "merge_method: linear\nmodels:\n  - model: " + ref + "\n    parameters: {weight: 1}\n",
      // base + 1 * ((X+A) - base)
      "merge_method: task_arithmetic\nbase_model: " + plain + "\nmodels:\n  - model: " + ref +
          "\n    parameters: {weight: 1}\n",
      // (X+A) + 0 * (base - (X+A))
      "merge_method: task_arithmetic\nbase_model: " + ref + "\nmodels:\n  - model: " + plain +
          "\n    parameters: {weight: 0}\n",
      "merge_method: passthrough\nslices:\n  - sources:\n      - model: " + ref +
          "\n        layer_range: [0, 2]\n"};
  const Model fused = Model::open(tmp_ / "fused");
  int n = 0;
  for (const auto& yaml : configs) {
    SCOPED_TRACE(yaml);
    const fs::path out = tmp_ / ("m" + std::to_string(n++));
    merge(Config::parse(yaml, "config.yaml"), out.string(), quiet_options());
    const Model got = Model::open(out);
    const std::string t = "model.layers.0.self_attn.q_proj.weight";
    EXPECT_EQ(read_f32(got, t), read_f32(fused, t));
  }
}

// An adapter named by its Hub id resolves in the local HF cache, as a model does
// (snapshot folder, refs/main); "base+org/name" in a config.
TEST_F(LoraAdapters, AdapterFromTheHfCacheById) {
  const fs::path repo = tmp_ / "hub" / "models--someone--my-lora";
  const std::string commit = "0123456789abcdef0123456789abcdef01234567";
  peft_adapter(repo / "snapshots" / commit, peft_config(), q0_factors());
  testing::write_text(repo / "refs" / "main", commit);
  peft_adapter(adapter("local"), peft_config(), q0_factors());
  struct CacheEnv {
    explicit CacheEnv(const fs::path& p) { setenv("HF_HUB_CACHE", p.c_str(), 1); }
    ~CacheEnv() { unsetenv("HF_HUB_CACHE"); }
  };
  {
    const CacheEnv env(tmp_ / "hub");
    fuse(base().string(), "someone/my-lora", (tmp_ / "by-id").string(), quiet_options());
    const std::string yaml = "merge_method: passthrough\nmodels:\n  - model: " + base().string() +
                             "+someone/my-lora@main\n";
    merge(Config::parse(yaml, "config.yaml"), (tmp_ / "by-config").string(), quiet_options());
  }
  fuse(base().string(), adapter("local").string(), (tmp_ / "by-path").string(), quiet_options());
  const std::string want = testing::read_text(tmp_ / "by-path" / "model.safetensors");
  EXPECT_EQ(testing::read_text(tmp_ / "by-id" / "model.safetensors"), want);
  EXPECT_EQ(testing::read_text(tmp_ / "by-config" / "model.safetensors"), want);
}

// ------------------------------------------------------------ refusals (plan)

TEST_F(LoraAdapters, DoraIsRefusedAsUnsupportedInBothFormats) {
  peft_adapter(adapter("dora"), peft_config({{"use_dora", true}}), q0_factors());
  expect_refused(base(), adapter("dora"), ErrorKind::unsupported, "DoRA");
  auto tensors = q0_factors();
  tensors.push_back({k_q0 + ".lora_magnitude_vector", {32}, {}});
  peft_adapter(adapter("dora2"), peft_config(), tensors);
  expect_refused(base(), adapter("dora2"), ErrorKind::unsupported, "DoRA");
  write_json(adapter("mlxdora") / "adapter_config.json",
             {{"fine_tune_type", "dora"}, {"lora_parameters", {{"rank", 2}, {"scale", 1}}}});
  expect_refused(base(), adapter("mlxdora"), ErrorKind::unsupported, "DoRA");
}

TEST_F(LoraAdapters, OtherAdapterTypesAreRefusedAsUnsupported) {
  peft_adapter(adapter("ia3"), peft_config({{"peft_type", "IA3"}}), q0_factors());
  expect_refused(base(), adapter("ia3"), ErrorKind::unsupported, "peft_type IA3");
  write_json(adapter("full") / "adapter_config.json",
             {{"fine_tune_type", "full"}, {"lora_parameters", {{"rank", 2}, {"scale", 1}}}});
  expect_refused(base(), adapter("full"), ErrorKind::unsupported, "fine_tune_type full");
  std::vector<Tensor> conv = {{k_q0 + ".lora_A.weight", {2, 32, 1, 1}, {}},
                              {k_q0 + ".lora_B.weight", {32, 2, 1, 1}, {}}};
  peft_adapter(adapter("conv"), peft_config(), conv);
  expect_refused(base(), adapter("conv"), ErrorKind::unsupported, "only 2-D");
}

TEST_F(LoraAdapters, ShapesThatDoNotFitTheBaseAreRefusedBeforeAnyWork) {
  peft_adapter(adapter("wide"), peft_config(), q0_factors(2, 64, 32));
  expect_refused(base(), adapter("wide"), ErrorKind::shape, "does not fit the base tensor");
  std::vector<Tensor> absent = {
      {"base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight", {2, 32}, {}},
      {"base_model.model.model.layers.9.self_attn.q_proj.lora_B.weight", {32, 2}, {}}};
  peft_adapter(adapter("absent"), peft_config(), absent);
  expect_refused(base(), adapter("absent"), ErrorKind::shape, "does not have");
  peft_adapter(adapter("whole"), peft_config(), {{"base_model.model.lm_head.weight", {7, 32}, {}}});
  expect_refused(base(), adapter("whole"), ErrorKind::shape, "differs in shape");
  // Refused by the plan: nothing was written.
  EXPECT_FALSE(fs::exists(tmp_ / "out"));
}

TEST_F(LoraAdapters, InconsistentOrMalformedAdaptersAreFormatErrors) {
  peft_adapter(adapter("rank"), peft_config({{"r", 4}}), q0_factors(2));
  expect_refused(base(), adapter("rank"), ErrorKind::format, "config says r = 4");
  peft_adapter(adapter("pattern"), peft_config({{"rank_pattern", {{"q_proj", 4}}}}), q0_factors(2));
  expect_refused(base(), adapter("pattern"), ErrorKind::format, "config says r = 4");
  peft_adapter(adapter("regex"), peft_config({{"rank_pattern", {{"q_proj(", 2}}}}), q0_factors(2));
  expect_refused(base(), adapter("regex"), ErrorKind::format, "not a regular expression");
  peft_adapter(adapter("half"), peft_config(), {q0_factors()[0]});
  expect_refused(base(), adapter("half"), ErrorKind::format, "no lora_B");
  peft_adapter(adapter("named"), peft_config(), {{k_q0 + ".lora_A.default.weight", {2, 32}, {}}});
  expect_refused(base(), adapter("named"), ErrorKind::unsupported, "adapter name");
  peft_adapter(adapter("prefix"), peft_config(),
               {{"model.layers.0.self_attn.q_proj.lora_A.weight", {2, 32}, {}}});
  expect_refused(base(), adapter("prefix"), ErrorKind::format, "base_model.model.");
  peft_adapter(adapter("r0"), peft_config({{"r", 0}}), q0_factors());
  expect_refused(base(), adapter("r0"), ErrorKind::format, "positive integer");
  peft_adapter(adapter("alpha"), peft_config({{"lora_alpha", "big"}}), q0_factors());
  expect_refused(base(), adapter("alpha"), ErrorKind::format, "not a number");
  testing::write_text(adapter("json") / "adapter_config.json", "[1, 2");
  expect_refused(base(), adapter("json"), ErrorKind::format, "adapter_config.json");
  write_json(adapter("neither") / "adapter_config.json", {{"r", 2}});
  expect_refused(base(), adapter("neither"), ErrorKind::format, "neither 'peft_type'");
  write_json(adapter("noscale") / "adapter_config.json",
             {{"lora_parameters", {{"rank", 2}, {"alpha", 16}}}});
  expect_refused(base(), adapter("noscale"), ErrorKind::format, "no 'scale'");
}

TEST_F(LoraAdapters, MissingAdapterFilesAreIoErrors) {
  expect_refused(base(), adapter("nowhere"), ErrorKind::io, "nowhere");
  write_json(adapter("noweights") / "adapter_config.json", peft_config());
  expect_refused(base(), adapter("noweights"), ErrorKind::io, "adapter_model.safetensors");
  write_json(adapter("pickle") / "adapter_config.json", peft_config());
  testing::write_text(adapter("pickle") / "adapter_model.bin", "pickle");
  expect_refused(base(), adapter("pickle"), ErrorKind::io, "pickle");
}

TEST_F(LoraAdapters, OutputInsideTheAdapterIsRefused) {
  const fs::path ad = adapter("peft");
  peft_adapter(ad, peft_config(), q0_factors());
  try {
    fuse(base().string(), ad.string(), (ad / "out").string(), quiet_options());
    FAIL() << "wrote into the adapter";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::config);
    EXPECT_NE(std::string(e.what()).find("adapter"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(ad / "out"));
}

}  // namespace
}  // namespace llmerge
