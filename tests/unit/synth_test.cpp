#include "synth/synth.h"

#include <cmath>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/cancel.h"
#include "core/error.h"
#include "io/model.h"
#include "test_util.h"

namespace llmerge {
namespace {

using testing::read_text;
using testing::TempDir;

const TensorSpec* find_spec(const std::vector<TensorSpec>& specs, const std::string& name) {
  for (const auto& s : specs) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

std::vector<std::int64_t> spec_shape(const std::vector<TensorSpec>& specs,
                                     const std::string& name) {
  const TensorSpec* s = find_spec(specs, name);
  return s ? s->shape : std::vector<std::int64_t>{-1};
}

std::vector<float> read_f32(const Model& m, const std::string& name) {
  const TensorRef* t = m.find(name);
  EXPECT_NE(t, nullptr) << name;
  EXPECT_EQ(t->info->dtype, DType::F32);
  std::vector<float> out(static_cast<std::size_t>(t->info->numel()));
  t->file->read(*t->info, 0, out.data(), t->info->nbytes());
  return out;
}

double mean_abs(const std::vector<float>& v) {
  double s = 0;
  for (float x : v)
    s += std::fabs(x);
  return s / static_cast<double>(v.size());
}

TEST(Synth, SameSeedGivesIdenticalBytesWhateverTheThreadCount) {
  TempDir tmp;
  SynthOptions o;
  o.hidden = 512;
  o.heads = 8;
  o.kv_heads = 4;
  o.vocab = 8192;  // a 8 MB embedding: more than one chunk
  o.layers = 2;
  o.seed = 42;
  o.threads = 1;
  write_synth_model(o, tmp / "a");
  o.threads = 3;
  write_synth_model(o, tmp / "b");
  const std::string a = read_text(tmp / "a" / "model.safetensors");
  ASSERT_GT(a.size(), 8u << 20);
  EXPECT_TRUE(a == read_text(tmp / "b" / "model.safetensors"));
}

TEST(Synth, DifferentSeedGivesDifferentWeights) {
  TempDir tmp;
  SynthOptions o;
  o.seed = 1;
  write_synth_model(o, tmp / "a");
  o.seed = 2;
  write_synth_model(o, tmp / "b");
  const std::string a = read_text(tmp / "a" / "model.safetensors");
  const std::string b = read_text(tmp / "b" / "model.safetensors");
  ASSERT_EQ(a.size(), b.size());
  std::size_t same = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    same += a[i] == b[i];
  // Only the header and the occasional equal byte may match.
  EXPECT_LT(same, a.size() / 4);
}

TEST(Synth, WeightsHaveStdAboutTwoHundredthsAndNormsAboutOne) {
  TempDir tmp;
  SynthOptions o;
  o.dtype = DType::F32;
  write_synth_model(o, tmp / "m");
  const Model m = Model::open(tmp / "m");
  const auto w = read_f32(m, "model.layers.0.mlp.up_proj.weight");
  double sum = 0, sq = 0;
  for (float x : w)
    sum += x, sq += double(x) * x;
  const double mean = sum / w.size();
  EXPECT_NEAR(mean, 0.0, 0.002);
  EXPECT_NEAR(std::sqrt(sq / w.size() - mean * mean), 0.02, 0.002);
  for (float x : read_f32(m, "model.norm.weight")) {
    EXPECT_GE(x, 0.95f);
    EXPECT_LE(x, 1.05f);
  }
}

TEST(Synth, LlamaTensorsHaveTransformersNamesAndShapes) {
  SynthOptions o;  // hidden 64, 4 heads (head_dim 16), 2 kv heads, intermediate 128, vocab 128
  const auto specs = synth_tensor_specs(o);
  EXPECT_EQ(specs.size(), 1u + 4 * 9 + 1 + 1);
  using Shape = std::vector<std::int64_t>;
  EXPECT_EQ(spec_shape(specs, "model.embed_tokens.weight"), (Shape{128, 64}));
  EXPECT_EQ(spec_shape(specs, "model.layers.3.self_attn.q_proj.weight"), (Shape{64, 64}));
  EXPECT_EQ(spec_shape(specs, "model.layers.3.self_attn.k_proj.weight"), (Shape{32, 64}));
  EXPECT_EQ(spec_shape(specs, "model.layers.3.self_attn.v_proj.weight"), (Shape{32, 64}));
  EXPECT_EQ(spec_shape(specs, "model.layers.3.self_attn.o_proj.weight"), (Shape{64, 64}));
  EXPECT_EQ(spec_shape(specs, "model.layers.0.mlp.gate_proj.weight"), (Shape{128, 64}));
  EXPECT_EQ(spec_shape(specs, "model.layers.0.mlp.up_proj.weight"), (Shape{128, 64}));
  EXPECT_EQ(spec_shape(specs, "model.layers.0.mlp.down_proj.weight"), (Shape{64, 128}));
  EXPECT_EQ(spec_shape(specs, "model.layers.0.input_layernorm.weight"), (Shape{64}));
  EXPECT_EQ(spec_shape(specs, "model.layers.0.post_attention_layernorm.weight"), (Shape{64}));
  EXPECT_EQ(spec_shape(specs, "model.norm.weight"), (Shape{64}));
  EXPECT_EQ(spec_shape(specs, "lm_head.weight"), (Shape{128, 64}));
  EXPECT_EQ(find_spec(specs, "model.layers.4.input_layernorm.weight"), nullptr);
  for (const auto& s : specs)
    EXPECT_EQ(s.dtype, DType::BF16) << s.name;

  o.tied = true;
  EXPECT_EQ(find_spec(synth_tensor_specs(o), "lm_head.weight"), nullptr);
}

TEST(Synth, FamiliesAddTheirOwnTensors) {
  using Shape = std::vector<std::int64_t>;
  SynthOptions o;
  o.family = "qwen2";
  auto specs = synth_tensor_specs(o);
  EXPECT_EQ(spec_shape(specs, "model.layers.1.self_attn.q_proj.bias"), (Shape{64}));
  EXPECT_EQ(spec_shape(specs, "model.layers.1.self_attn.k_proj.bias"), (Shape{32}));
  EXPECT_EQ(find_spec(specs, "model.layers.1.self_attn.o_proj.bias"), nullptr);

  o.family = "phi3";
  specs = synth_tensor_specs(o);
  EXPECT_EQ(spec_shape(specs, "model.layers.0.self_attn.qkv_proj.weight"),
            (Shape{64 + 2 * 32, 64}));
  EXPECT_EQ(spec_shape(specs, "model.layers.0.mlp.gate_up_proj.weight"), (Shape{256, 64}));
  EXPECT_EQ(find_spec(specs, "model.layers.0.self_attn.q_proj.weight"), nullptr);

  o.family = "gemma2";
  specs = synth_tensor_specs(o);
  EXPECT_EQ(spec_shape(specs, "model.layers.2.pre_feedforward_layernorm.weight"), (Shape{64}));
  EXPECT_EQ(spec_shape(specs, "model.layers.2.post_feedforward_layernorm.weight"), (Shape{64}));
  EXPECT_EQ(find_spec(specs, "lm_head.weight"), nullptr);  // gemma2 ties

  o.family = "gpt2";
  specs = synth_tensor_specs(o);
  EXPECT_EQ(spec_shape(specs, "transformer.h.0.attn.c_attn.weight"), (Shape{64, 192}));
  EXPECT_EQ(spec_shape(specs, "transformer.h.0.mlp.c_fc.weight"), (Shape{64, 128}));
  EXPECT_EQ(spec_shape(specs, "transformer.wpe.weight"), (Shape{1024, 64}));
}

TEST(Synth, ConfigJsonHasTheFieldsTransformersReads) {
  TempDir tmp;
  SynthOptions o;
  o.family = "mistral";
  o.layers = 3;
  write_synth_model(o, tmp / "m");
  const auto c = nlohmann::json::parse(read_text(tmp / "m" / "config.json"));
  EXPECT_EQ(c["architectures"][0], "MistralForCausalLM");
  EXPECT_EQ(c["model_type"], "mistral");
  EXPECT_EQ(c["hidden_size"], 64);
  EXPECT_EQ(c["intermediate_size"], 128);
  EXPECT_EQ(c["num_hidden_layers"], 3);
  EXPECT_EQ(c["num_attention_heads"], 4);
  EXPECT_EQ(c["num_key_value_heads"], 2);
  EXPECT_EQ(c["vocab_size"], 128);
  EXPECT_EQ(c["torch_dtype"], "bfloat16");
  EXPECT_EQ(c["tie_word_embeddings"], false);
  EXPECT_TRUE(c["rms_norm_eps"].is_number_float());
  EXPECT_TRUE(c["rope_theta"].is_number());
  EXPECT_TRUE(c["max_position_embeddings"].is_number_integer());
  const auto g = nlohmann::json::parse(read_text(tmp / "m" / "generation_config.json"));
  EXPECT_EQ(g["eos_token_id"], c["eos_token_id"]);
}

TEST(Synth, TokenizerJsonHasExactlyVocabDistinctIds) {
  TempDir tmp;
  SynthOptions o;
  o.vocab = 300;
  write_synth_model(o, tmp / "m");
  const auto t = nlohmann::json::parse(read_text(tmp / "m" / "tokenizer.json"));
  EXPECT_EQ(t["model"]["type"], "WordLevel");
  const auto& vocab = t["model"]["vocab"];
  ASSERT_EQ(vocab.size(), 300u);
  std::vector<bool> seen(300, false);
  for (const auto& [token, id] : vocab.items()) {
    ASSERT_TRUE(id.is_number_integer());
    const int i = id.get<int>();
    ASSERT_GE(i, 0);
    ASSERT_LT(i, 300);
    EXPECT_FALSE(seen[i]) << token;
    seen[i] = true;
  }
  EXPECT_EQ(vocab["<unk>"], 0);
  EXPECT_EQ(t["model"]["unk_token"], "<unk>");
  EXPECT_EQ(t["added_tokens"].size(), 3u);
  EXPECT_EQ(t["pre_tokenizer"]["type"], "Whitespace");
  const auto tc = nlohmann::json::parse(read_text(tmp / "m" / "tokenizer_config.json"));
  EXPECT_EQ(tc["eos_token"], "</s>");
}

TEST(Synth, LikeAddsDeltasOfTheRequestedScaleAndKeepsEverythingElse) {
  TempDir tmp;
  SynthOptions base;
  base.dtype = DType::F32;
  base.family = "qwen2";
  write_synth_model(base, tmp / "base");

  SynthOptions like;
  like.like = tmp / "base";
  like.delta_scale = 0.01;
  like.seed = 7;
  write_synth_model(like, tmp / "like");

  EXPECT_EQ(read_text(tmp / "base" / "config.json"), read_text(tmp / "like" / "config.json"));
  EXPECT_EQ(read_text(tmp / "base" / "tokenizer.json"), read_text(tmp / "like" / "tokenizer.json"));
  const Model a = Model::open(tmp / "base");
  const Model b = Model::open(tmp / "like");
  ASSERT_EQ(a.tensor_names(), b.tensor_names());
  for (const auto& name : a.tensor_names()) {
    EXPECT_EQ(a.find(name)->info->shape, b.find(name)->info->shape);
    EXPECT_EQ(b.find(name)->info->dtype, DType::F32);
  }
  for (const std::string name : {"model.layers.0.self_attn.q_proj.weight", "model.norm.weight"}) {
    const auto wa = read_f32(a, name);
    const auto wb = read_f32(b, name);
    std::vector<float> delta(wa.size());
    for (std::size_t i = 0; i < wa.size(); ++i)
      delta[i] = wb[i] - wa[i];
    // |delta| = 0.01 * mean|w| * |u|, u ~ uniform(-1, 1), so mean |delta| = 0.005 * mean|w|.
    EXPECT_NEAR(mean_abs(delta) / mean_abs(wa), 0.005, 0.0005) << name;
  }
}

TEST(Synth, LikeWithZeroScaleCopiesTheWeightsExactly) {
  TempDir tmp;
  write_synth_model({}, tmp / "base");
  SynthOptions like;
  like.like = tmp / "base";
  like.delta_scale = 0;
  write_synth_model(like, tmp / "copy");
  EXPECT_TRUE(read_text(tmp / "base" / "model.safetensors") ==
              read_text(tmp / "copy" / "model.safetensors"));
}

TEST(Synth, SmallShardSizeWritesAnIndexedModel) {
  TempDir tmp;
  SynthOptions o;
  o.shard_size = 40'000;
  write_synth_model(o, tmp / "m");
  EXPECT_TRUE(std::filesystem::exists(tmp / "m" / "model.safetensors.index.json"));
  EXPECT_FALSE(std::filesystem::exists(tmp / "m" / "model.safetensors"));
  const Model m = Model::open(tmp / "m");
  EXPECT_GT(m.files().size(), 2u);
  EXPECT_EQ(m.tensor_count(), synth_tensor_specs(o).size());
}

TEST(Synth, RejectsInconsistentShapes) {
  SynthOptions o;
  o.heads = 5;  // does not divide 64
  EXPECT_THROW(synth_tensor_specs(o), Error);
  o.heads = 4;
  o.kv_heads = 3;
  EXPECT_THROW(synth_tensor_specs(o), Error);
  o.kv_heads = 2;
  o.family = "bloom";
  try {
    synth_tensor_specs(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::config);
    EXPECT_NE(e.message().find("qwen2"), std::string::npos) << e.message();
  }
}

TEST(Synth, OneBillionPresetHasLlama32OneBillionParameters) {
  const auto specs = synth_tensor_specs(synth_preset("1B"));
  std::uint64_t params = 0;
  for (const auto& s : specs) {
    std::uint64_t n = 1;
    for (auto d : s.shape)
      n *= static_cast<std::uint64_t>(d);
    params += n;
  }
  // Llama-3.2-1B: 1,235,814,400 parameters (tied embeddings).
  EXPECT_EQ(params, 1'235'814'400u);
  EXPECT_THROW(synth_preset("2B"), Error);
}

TEST(Synth, CancelLeavesNoOutput) {
  TempDir tmp;
  SynthOptions options;
  options.cancel.cancel();
  try {
    write_synth_model(options, tmp / "m");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::interrupted);
  }
  EXPECT_FALSE(std::filesystem::exists(tmp / "m"));
  EXPECT_TRUE(std::filesystem::is_empty(tmp.path()));  // no temporary directory left either
  // The next write, with a fresh token, works: there is no global flag.
  write_synth_model({}, tmp / "m");
  EXPECT_TRUE(std::filesystem::exists(tmp / "m" / "config.json"));
}

}  // namespace
}  // namespace llmerge
