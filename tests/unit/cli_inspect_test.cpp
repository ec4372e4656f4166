#include <cstdlib>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "io/model.h"
#include "test_util.h"

namespace llmerge {
namespace {

using testing::contains;

using testing::run_cli;
using testing::TempDir;
using testing::write_text;

TEST(CliInspect, SynthThenInspectShowsLayersAndParameters) {
  TempDir tmp;
  const auto out = (tmp / "m").string();
  std::string log;
  ASSERT_EQ(run_cli("synth " + out + " --layers 3 --family qwen2 --seed 5", &log), 0) << log;
  const Model m = Model::open(out);
  ASSERT_EQ(run_cli("inspect " + out, &log), 0) << log;
  EXPECT_TRUE(contains(log, "Qwen2ForCausalLM (model_type qwen2)")) << log;
  EXPECT_TRUE(contains(log, "3 (model.layers.N, config num_hidden_layers)")) << log;
  EXPECT_TRUE(contains(log, "(" + std::to_string(m.parameter_count()) + ")")) << log;
  EXPECT_TRUE(contains(log, "BF16 x " + std::to_string(m.tensor_count()))) << log;
  EXPECT_TRUE(contains(log, "1 (model.safetensors)")) << log;
  EXPECT_FALSE(contains(log, "q_proj")) << "tensors listed without --tensors";
}

TEST(CliInspect, JsonOutputParsesWithTheSameFacts) {
  TempDir tmp;
  const auto out = (tmp / "m").string();
  std::string log;
  ASSERT_EQ(run_cli("synth " + out + " --tied --dtype f32 --out-shard-size 30KB", &log), 0) << log;
  const Model m = Model::open(out);
  ASSERT_EQ(run_cli("inspect " + out + " --json --tensors", &log), 0) << log;
  const auto j = nlohmann::json::parse(log);
  EXPECT_EQ(j["architecture"], "LlamaForCausalLM");
  EXPECT_EQ(j["layers"]["count"], 4);
  EXPECT_EQ(j["layers"]["prefix"], "model.layers");
  EXPECT_EQ(j["hidden_size"], 64);
  EXPECT_EQ(j["vocab_size"], 128);
  EXPECT_EQ(j["parameters"], m.parameter_count());
  EXPECT_EQ(j["size_on_disk"], m.size_on_disk());
  EXPECT_EQ(j["dtypes"]["F32"], m.tensor_count());
  EXPECT_EQ(j["tied_embeddings"], true);
  EXPECT_TRUE(j["quantization"].is_null());
  EXPECT_EQ(j["shards"].size(), m.files().size());
  EXPECT_GT(m.files().size(), 1u);
  ASSERT_EQ(j["tensors"].size(), m.tensor_count());
  for (const auto& t : j["tensors"]) {
    const TensorRef* ref = m.find(t["name"].get<std::string>());
    ASSERT_NE(ref, nullptr) << t;
    EXPECT_EQ(t["shape"].get<std::vector<std::int64_t>>(), ref->info->shape);
    EXPECT_EQ(t["file"], ref->file->path().filename().string());
  }
}

// A folder name need not be UTF-8 (Latin-1 "café" from another system): the
// JSON says U+FFFD there instead of the CLI failing with a JSON library error.
TEST(CliInspect, AFolderNameThatIsNotUtf8GivesValidJson) {
  TempDir tmp;
  const std::string out = (tmp / "caf\xe9").string();
  std::string log;
  ASSERT_EQ(run_cli("synth '" + out + "' --layers 1", &log), 0) << log;
  ASSERT_EQ(run_cli("inspect --json '" + out + "'", &log), 0) << log;
  const auto j = nlohmann::json::parse(log);  // throws on bytes that are not UTF-8
  EXPECT_NE(j["path"].get<std::string>().find("caf\xef\xbf\xbd"), std::string::npos) << log;
  EXPECT_EQ(j["layers"]["count"], 1);
}

TEST(CliInspect, TensorsTableListsNameDtypeShapeAndFile) {
  TempDir tmp;
  const auto out = (tmp / "m").string();
  std::string log;
  ASSERT_EQ(run_cli("synth " + out, &log), 0) << log;
  ASSERT_EQ(run_cli("inspect " + out + " --tensors", &log), 0) << log;
  const auto pos = log.find("model.layers.2.self_attn.k_proj.weight");
  ASSERT_NE(pos, std::string::npos) << log;
  const std::string row = log.substr(pos, log.find('\n', pos) - pos);
  EXPECT_TRUE(contains(row, "BF16")) << row;
  EXPECT_TRUE(contains(row, "[32, 64]")) << row;
  EXPECT_TRUE(contains(row, "model.safetensors")) << row;
}

TEST(CliInspect, CorruptFileExitsTwoNamingTheFile) {
  TempDir tmp;
  write_text(tmp / "broken.safetensors", std::string("\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10));
  std::string log;
  EXPECT_EQ(run_cli("inspect " + (tmp / "broken.safetensors").string(), &log), 2);
  EXPECT_TRUE(contains(log, "broken.safetensors")) << log;
}

TEST(CliInspect, UnknownHubIdExitsTwoWithDownloadHint) {
  TempDir tmp;
  setenv("HF_HUB_CACHE", tmp.path().c_str(), 1);
  std::string log;
  EXPECT_EQ(run_cli("inspect nobody/nothing", &log), 2);
  unsetenv("HF_HUB_CACHE");
  EXPECT_TRUE(contains(log, "hf download nobody/nothing")) << log;
}

TEST(CliSynth, PresetShapesCanBeOverridden) {
  TempDir tmp;
  const auto out = (tmp / "m").string();
  std::string log;
  ASSERT_EQ(run_cli("synth " + out + " --params 1B --layers 1 --intermediate 64 --vocab 300", &log),
            0)
      << log;
  const Model m = Model::open(out);
  EXPECT_EQ(m.config_int("hidden_size"), 2048);  // from the preset
  EXPECT_EQ(m.config_int("num_key_value_heads"), 8);
  EXPECT_EQ(m.layers().count, 1);
  EXPECT_EQ(m.find("model.layers.0.mlp.up_proj.weight")->info->shape,
            (std::vector<std::int64_t>{64, 2048}));
  EXPECT_TRUE(m.tied_embeddings());
}

TEST(CliSynth, RefusesANonEmptyOutputUnlessForced) {
  TempDir tmp;
  const auto out = (tmp / "m").string();
  write_text(tmp / "m" / "keep.txt", "mine");
  std::string log;
  EXPECT_EQ(run_cli("synth " + out, &log), 2) << log;
  EXPECT_EQ(testing::read_text(tmp / "m" / "keep.txt"), "mine");
  // --force replaces only a previous output, never a folder of other files.
  EXPECT_EQ(run_cli("synth " + out + " --force", &log), 2) << log;
  EXPECT_TRUE(contains(log, "not a previous llmerge output")) << log;
  EXPECT_EQ(testing::read_text(tmp / "m" / "keep.txt"), "mine");
  std::filesystem::remove(tmp / "m" / "keep.txt");
  EXPECT_EQ(run_cli("synth " + out, &log), 0) << log;
  EXPECT_EQ(run_cli("synth " + out + " --force --seed 7", &log), 0) << log;
  EXPECT_TRUE(std::filesystem::exists(tmp / "m" / "model.safetensors"));
}

TEST(CliSynth, BadOptionsExitTwo) {
  TempDir tmp;
  std::string log;
  EXPECT_EQ(run_cli("synth " + (tmp / "m").string() + " --family bloom", &log), 2);
  EXPECT_TRUE(contains(log, "unknown model family 'bloom'")) << log;
  EXPECT_EQ(run_cli("synth " + (tmp / "m").string() + " --dtype int8", &log), 2);
  EXPECT_FALSE(std::filesystem::exists(tmp / "m"));
}

}  // namespace
}  // namespace llmerge
