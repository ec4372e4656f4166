#include "io/model.h"

#include <cstdlib>
#include <functional>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "synth/synth.h"
#include "test_util.h"

namespace llmerge {
namespace {

using testing::contains;

namespace fs = std::filesystem;
using testing::read_text;
using testing::TempDir;
using testing::write_text;

constexpr const char* k_hash_main = "0123456789abcdef0123456789abcdef01234567";
constexpr const char* k_hash_dev = "89abcdef0123456789abcdef0123456789abcdef";

// Runs `f`, expecting an llmerge::Error of `kind`; returns it for further checks.
Error expect_error(ErrorKind kind, const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    return e;
  }
  ADD_FAILURE() << "no error thrown";
  return Error(ErrorKind::internal, "none");
}

fs::path make_sharded(const TempDir& tmp, const std::string& name = "sharded") {
  SynthOptions o;
  o.shard_size = 40'000;
  write_synth_model(o, tmp / name);
  return tmp / name;
}

nlohmann::json read_json(const fs::path& p) {
  return nlohmann::json::parse(read_text(p));
}

void edit_json(const fs::path& p, const std::function<void(nlohmann::json&)>& edit) {
  auto j = read_json(p);
  edit(j);
  write_text(p, j.dump(2));
}

// Sets an environment variable for the scope, restoring the old value after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(ModelFolder, ShardedAndSingleFileModelsHoldTheSameTensors) {
  TempDir tmp;
  const fs::path sharded = make_sharded(tmp);
  write_synth_model({}, tmp / "single");
  const Model a = Model::open(sharded);
  const Model b = Model::open(tmp / "single");
  EXPECT_GT(a.files().size(), 2u);
  EXPECT_EQ(b.files().size(), 1u);
  ASSERT_EQ(a.tensor_names(), b.tensor_names());
  EXPECT_EQ(a.parameter_count(), b.parameter_count());
  for (const auto& name : a.tensor_names()) {
    const TensorRef* x = a.find(name);
    const TensorRef* y = b.find(name);
    ASSERT_EQ(x->info->shape, y->info->shape) << name;
    ASSERT_EQ(x->info->dtype, y->info->dtype) << name;
    std::string bx(x->info->nbytes(), '\0'), by(y->info->nbytes(), '\0');
    x->file->read(*x->info, 0, bx.data(), bx.size());
    y->file->read(*y->info, 0, by.data(), by.size());
    EXPECT_TRUE(bx == by) << name;
  }
  EXPECT_EQ(a.layers().count, 4);
  EXPECT_EQ(a.find("model.bogus"), nullptr);
  EXPECT_GT(a.size_on_disk(), b.size_on_disk() - 1000);
}

TEST(ModelFolder, ModelFactsComeFromConfigAndHeaders) {
  TempDir tmp;
  SynthOptions o;
  o.layers = 3;
  write_synth_model(o, tmp / "m");
  const Model m = Model::open(tmp / "m", "org/tiny");
  EXPECT_EQ(m.display_name(), "org/tiny");
  EXPECT_TRUE(m.has_config());
  EXPECT_EQ(m.config_string("model_type"), "llama");
  EXPECT_EQ(m.config_int("hidden_size"), 64);
  EXPECT_EQ(m.config_int("no_such_key"), std::nullopt);
  EXPECT_EQ(m.config_int("model_type"), std::nullopt);  // a string, not an int
  EXPECT_EQ(m.size_on_disk(), fs::file_size(tmp / "m" / "model.safetensors"));
  // 128*64 embedding + lm_head, 3 layers of (64*64*2 + 32*64*2 + 128*64*3 + 64*2), norm.
  EXPECT_EQ(m.parameter_count(), 2u * 128 * 64 + 3u * (8192 + 4096 + 24576 + 128) + 64);
  ASSERT_EQ(m.dtype_counts().size(), 1u);
  EXPECT_EQ(m.dtype_counts()[0], std::make_pair(DType::BF16, m.tensor_count()));
  EXPECT_FALSE(m.tied_embeddings());
  EXPECT_FALSE(m.quantization().quantized);
}

TEST(ModelFolder, IndexNamingAMissingShardIsAnIoErrorNamingShardAndTensor) {
  TempDir tmp;
  const fs::path dir = make_sharded(tmp);
  const auto map = read_json(dir / "model.safetensors.index.json")["weight_map"];
  const std::string shard = map["model.norm.weight"];
  fs::remove(dir / shard);
  const Error e = expect_error(ErrorKind::io, [&] { Model::open(dir); });
  EXPECT_TRUE(contains(e.what(), shard)) << e.what();
  EXPECT_TRUE(contains(e.context().file, "model.safetensors.index.json")) << e.what();
  EXPECT_FALSE(e.context().tensor.empty());
  EXPECT_EQ(map[e.context().tensor], shard);
}

TEST(ModelFolder, DanglingShardSymlinkSaysTheDownloadIsIncomplete) {
  TempDir tmp;
  const fs::path dir = make_sharded(tmp);
  const std::string shard =
      read_json(dir / "model.safetensors.index.json")["weight_map"]["lm_head.weight"];
  fs::remove(dir / shard);
  fs::create_symlink(tmp / "blobs" / "deadbeef", dir / shard);
  const Error e = expect_error(ErrorKind::io, [&] { Model::open(dir); });
  EXPECT_TRUE(contains(e.what(), "dangling symlink")) << e.what();
  EXPECT_TRUE(contains(e.what(), shard)) << e.what();
}

TEST(ModelFolder, IndexNamingATensorTheShardLacksIsAFormatError) {
  TempDir tmp;
  const fs::path dir = make_sharded(tmp);
  std::string shard;
  edit_json(dir / "model.safetensors.index.json", [&](nlohmann::json& j) {
    shard = j["weight_map"]["model.norm.weight"];
    j["weight_map"]["model.layers.9.mlp.up_proj.weight"] = shard;
  });
  const Error e = expect_error(ErrorKind::format, [&] { Model::open(dir); });
  EXPECT_EQ(e.context().tensor, "model.layers.9.mlp.up_proj.weight");
  EXPECT_TRUE(contains(e.message(), shard)) << e.what();
}

TEST(ModelFolder, IndexPointingATensorAtTheWrongShardIsAFormatError) {
  TempDir tmp;
  const fs::path dir = make_sharded(tmp);
  edit_json(dir / "model.safetensors.index.json", [&](nlohmann::json& j) {
    j["weight_map"]["lm_head.weight"] = j["weight_map"]["model.embed_tokens.weight"];
  });
  const Error e = expect_error(ErrorKind::format, [&] { Model::open(dir); });
  EXPECT_EQ(e.context().tensor, "lm_head.weight");
}

TEST(ModelFolder, IndexShardNamesMustStayInsideTheFolder) {
  TempDir tmp;
  const fs::path dir = make_sharded(tmp);
  for (const std::string hostile : {"../single/model.safetensors", "/etc/passwd", "..", ""}) {
    edit_json(dir / "model.safetensors.index.json",
              [&](nlohmann::json& j) { j["weight_map"]["model.norm.weight"] = hostile; });
    const Error e = expect_error(ErrorKind::format, [&] { Model::open(dir); });
    EXPECT_EQ(e.context().tensor, "model.norm.weight") << hostile;
  }
}

TEST(ModelFolder, IndexWithoutAWeightMapObjectIsAFormatError) {
  TempDir tmp;
  const fs::path dir = make_sharded(tmp);
  for (const std::string text :
       {R"({"metadata": {}})", R"({"weight_map": []})", "[]", R"({"weight_map": {"a": 3}})"}) {
    write_text(dir / "model.safetensors.index.json", text);
    expect_error(ErrorKind::format, [&] { Model::open(dir); });
  }
}

TEST(ModelFolder, TensorInTwoShardsIsAFormatError) {
  TempDir tmp;
  write_synth_model({}, tmp / "a");
  SynthOptions other;
  other.seed = 9;
  write_synth_model(other, tmp / "b");
  const fs::path dir = tmp / "dup";
  fs::create_directories(dir);
  fs::copy_file(tmp / "a" / "model.safetensors", dir / "one.safetensors");
  fs::copy_file(tmp / "b" / "model.safetensors", dir / "two.safetensors");
  nlohmann::json index = {
      {"metadata", nlohmann::json::object()},
      {"weight_map",
       {{"model.norm.weight", "one.safetensors"}, {"lm_head.weight", "two.safetensors"}}}};
  write_text(dir / "model.safetensors.index.json", index.dump());
  const Error e = expect_error(ErrorKind::format, [&] { Model::open(dir); });
  EXPECT_TRUE(contains(e.message(), "two shards")) << e.what();
  EXPECT_TRUE(contains(e.message(), "one.safetensors")) << e.what();
  EXPECT_TRUE(contains(e.message(), "two.safetensors")) << e.what();
}

TEST(ModelFolder, LoneSafetensorsFileIsAModelWithoutConfig) {
  TempDir tmp;
  SynthOptions o;
  o.tied = true;
  write_synth_model(o, tmp / "m");
  const Model m = Model::open(tmp / "m" / "model.safetensors");
  EXPECT_FALSE(m.has_config());
  EXPECT_TRUE(m.config().is_object());
  EXPECT_TRUE(m.config().empty());
  EXPECT_EQ(m.tensor_count(), synth_tensor_specs(o).size());
  EXPECT_EQ(m.layers().count, 4);
  EXPECT_EQ(m.layers().prefix, "model.layers");
  EXPECT_EQ(m.layers().config_key, "");
  // No config: an embedding without lm_head.weight means tied.
  EXPECT_TRUE(m.tied_embeddings());
}

TEST(ModelFolder, FolderWithoutWeightsSaysWhatItLookedFor) {
  TempDir tmp;
  write_text(tmp / "m" / "config.json", "{}");
  Error e = expect_error(ErrorKind::io, [&] { Model::open(tmp / "m"); });
  EXPECT_TRUE(contains(e.message(), "model.safetensors.index.json")) << e.what();
  EXPECT_FALSE(contains(e.message(), "pytorch_model.bin"));
  write_text(tmp / "m" / "pytorch_model.bin", "pickle");
  e = expect_error(ErrorKind::io, [&] { Model::open(tmp / "m"); });
  EXPECT_TRUE(contains(e.message(), "convert to safetensors")) << e.what();
  expect_error(ErrorKind::io, [&] { Model::open(tmp / "nowhere"); });
}

TEST(ModelFolder, MalformedConfigJsonReportsFileLineAndColumn) {
  TempDir tmp;
  write_synth_model({}, tmp / "m");
  write_text(tmp / "m" / "config.json", "{\n  \"hidden_size\": 64,\n  \"x\": ]\n}\n");
  const Error e = expect_error(ErrorKind::format, [&] { Model::open(tmp / "m"); });
  EXPECT_TRUE(contains(e.context().file, "config.json"));
  EXPECT_EQ(e.context().line, 3);
  EXPECT_EQ(e.context().column, 8);
  write_text(tmp / "m" / "config.json", "[1, 2]");
  expect_error(ErrorKind::format, [&] { Model::open(tmp / "m"); });
}

TEST(ModelFolder, ConfigLayerCountDisagreeingWithTensorsIsAFormatError) {
  TempDir tmp;
  write_synth_model({}, tmp / "m");
  edit_json(tmp / "m" / "config.json", [](nlohmann::json& j) { j["num_hidden_layers"] = 6; });
  const Error e = expect_error(ErrorKind::format, [&] { Model::open(tmp / "m"); });
  EXPECT_TRUE(contains(e.message(), "num_hidden_layers = 6")) << e.what();
  EXPECT_TRUE(contains(e.message(), "4 layers")) << e.what();
}

TEST(ModelFolder, DetectsLayersForEverySynthFamily) {
  TempDir tmp;
  for (const auto& family : synth_families()) {
    SynthOptions o;
    o.family = family;
    o.layers = 3;
    write_synth_model(o, tmp / family);
    const Model m = Model::open(tmp / family);
    const bool gpt2 = family == "gpt2";
    EXPECT_EQ(m.layers().count, 3) << family;
    EXPECT_EQ(m.layers().prefix, gpt2 ? "transformer.h" : "model.layers") << family;
    EXPECT_EQ(m.layers().config_key, gpt2 ? "n_layer" : "num_hidden_layers") << family;
    EXPECT_EQ(m.tied_embeddings(), family == "gemma2" || gpt2) << family;
  }
}

TEST(ModelFolder, DetectLayersUsesTheMostCommonPrefixAndNestedConfigKeys) {
  const std::vector<std::string> names = {
      "model.layers.0.mlp.weight",
      "model.layers.0.attn.weight",
      "model.layers.0.norm.weight",
      "model.layers.0.ffn.weight",
      "model.layers.1.mlp.weight",
      "model.layers.1.attn.weight",
      "model.layers.1.norm.weight",
      "model.layers.1.ffn.weight",
      "vision.blocks.0.weight",
      "vision.blocks.1.weight",
      "vision.blocks.2.weight",
      "vision.blocks.3.weight",
      "vision.blocks.4.weight",
      "vision.blocks.5.weight",
      "model.embed_tokens.weight",
      "layers.7",  // the index is the last component: not a layered name
  };
  auto l = detect_layers(names, nlohmann::json::object(), "m");
  EXPECT_EQ(l.prefix, "model.layers");
  EXPECT_EQ(l.count, 2);
  EXPECT_EQ(l.config_key, "");

  l = detect_layers(names, {{"text_config", {{"num_hidden_layers", 2}}}}, "m");
  EXPECT_EQ(l.config_key, "text_config.num_hidden_layers");

  // A config count that matches a less common prefix selects it (multimodal models).
  l = detect_layers(names, {{"num_layers", 6}}, "m");
  EXPECT_EQ(l.prefix, "vision.blocks");
  EXPECT_EQ(l.count, 6);

  expect_error(ErrorKind::format, [&] { detect_layers(names, {{"n_layer", 3}}, "m"); });
  expect_error(ErrorKind::format, [&] {
    detect_layers({"lm_head.weight"}, {{"num_hidden_layers", 3}}, "m");
  });
  // An absurd index is not taken as a layer count.
  EXPECT_EQ(detect_layers({"a.99999999999.b"}, nlohmann::json::object(), "m").count, 0);
}

TEST(ModelFolder, ConfigOverridesTiedEmbeddingHeuristic) {
  TempDir tmp;
  SynthOptions o;
  o.tied = true;
  write_synth_model(o, tmp / "m");
  edit_json(tmp / "m" / "config.json", [](nlohmann::json& j) {
    j.erase("tie_word_embeddings");
    j["text_config"] = {{"tie_word_embeddings", false}};
  });
  EXPECT_FALSE(Model::open(tmp / "m").tied_embeddings());
}

TEST(ModelFolder, DetectsMlxQuantizationFromConfig) {
  TempDir tmp;
  write_synth_model({}, tmp / "m");
  edit_json(tmp / "m" / "config.json", [](nlohmann::json& j) {
    j["quantization"] = {{"group_size", 64}, {"bits", 4}};
  });
  const auto q = Model::open(tmp / "m").quantization();
  EXPECT_TRUE(q.quantized);
  EXPECT_EQ(q.bits, 4);
  EXPECT_EQ(q.group_size, 64);
  EXPECT_EQ(q.mode, "affine");
  EXPECT_EQ(q.quantized_tensor_count, 0);
}

class HubCache : public ::testing::Test {
 protected:
  HubCache()
      : hub_cache_("HF_HUB_CACHE", (tmp_ / "hub").c_str()),
        legacy_("HUGGINGFACE_HUB_CACHE", nullptr) {
    const fs::path repo = tmp_ / "hub" / "models--org--tiny";
    write_synth_model({}, repo / "snapshots" / k_hash_main);
    SynthOptions dev;
    dev.layers = 2;
    write_synth_model(dev, repo / "snapshots" / k_hash_dev);
    write_text(repo / "refs" / "main", k_hash_main);
    write_text(repo / "refs" / "dev", std::string(k_hash_dev) + "\n");
  }
  fs::path snapshot(const char* hash) const {
    return tmp_ / "hub" / "models--org--tiny" / "snapshots" / hash;
  }

  TempDir tmp_;
  ScopedEnv hub_cache_;
  ScopedEnv legacy_;
};

TEST_F(HubCache, ResolvesAnIdThroughRefsMain) {
  const fs::path p = resolve_model_reference("org/tiny");
  EXPECT_EQ(p, snapshot(k_hash_main));
  EXPECT_EQ(Model::open(p).layers().count, 4);
}

TEST_F(HubCache, ResolvesABranchOrACommitRevision) {
  EXPECT_EQ(resolve_model_reference("org/tiny@dev"), snapshot(k_hash_dev));
  EXPECT_EQ(resolve_model_reference(std::string("org/tiny@") + k_hash_main), snapshot(k_hash_main));
}

TEST_F(HubCache, FallsBackToHfHomeHub) {
  ScopedEnv no_cache("HF_HUB_CACHE", nullptr);
  ScopedEnv home("HF_HOME", tmp_.path().c_str());  // tmp_/hub is $HF_HOME/hub
  EXPECT_EQ(resolve_model_reference("org/tiny"), snapshot(k_hash_main));
}

TEST_F(HubCache, LocalPathWinsOverTheCache) {
  write_synth_model({}, tmp_ / "base" / "org" / "tiny");
  EXPECT_EQ(resolve_model_reference("org/tiny", tmp_ / "base"), tmp_ / "base" / "org" / "tiny");
}

TEST_F(HubCache, MissingModelListsEveryPlaceLookedAndHowToDownload) {
  const Error e =
      expect_error(ErrorKind::io, [&] { resolve_model_reference("org/absent@v2", tmp_ / "base"); });
  const std::string m = e.message();
  EXPECT_TRUE(contains(m, (tmp_ / "base" / "org/absent@v2").string())) << m;
  EXPECT_TRUE(contains(m, (tmp_ / "hub" / "models--org--absent" / "refs" / "v2").string())) << m;
  EXPECT_TRUE(contains(m, "hf download org/absent --revision v2")) << m;
}

TEST_F(HubCache, RefNamingAMissingSnapshotIsNotFound) {
  write_text(tmp_ / "hub" / "models--org--tiny" / "refs" / "gone",
             "ffffffffffffffffffffffffffffffffffffffff");
  const Error e = expect_error(ErrorKind::io, [] { resolve_model_reference("org/tiny@gone"); });
  EXPECT_TRUE(contains(e.message(), "snapshots/ffffffff")) << e.message();
}

TEST_F(HubCache, ReferencesThatAreNotHubIdsAreNotLookedUp) {
  for (const std::string ref : {"./org/tiny", "a/b/c", "org/tiny@../../x", "../tiny"}) {
    const Error e = expect_error(ErrorKind::io, [&] { resolve_model_reference(ref); });
    EXPECT_FALSE(contains(e.message(), "hf download")) << ref << ": " << e.message();
  }
}

}  // namespace
}  // namespace llmerge
