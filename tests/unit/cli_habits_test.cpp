// mergekit-yaml's and mlx_lm.convert's command-line habits, typed at llmerge.
// Each row of a table is one flag as a user coming from those tools types
// it, and what it must do here: honoured (its effect is visible), accepted
// with a note saying why it has no effect, or refused with `llmerge: error:`
// and a did-you-mean.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace llmerge {
namespace {

using testing::contains;

namespace fs = std::filesystem;
using testing::read_text;
using testing::run_cli;
using testing::TempDir;
using testing::write_text;

std::size_t count(const std::string& s, const std::string& part) {
  std::size_t n = 0;
  for (auto at = s.find(part); at != std::string::npos; at = s.find(part, at + 1))
    ++n;
  return n;
}

class CliHabits : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const std::string shape =
        "--hidden 64 --intermediate 128 --heads 4 --kv-heads 2 --vocab 128 --layers 2";
    auto ok = [](const std::string& args) { return run_cli(args + " --force") == 0; };
    ready_ =
        ok("synth " + path("base") + " --family llama " + shape + " --seed 1") &&
        ok("synth " + path("a") + " --like " + path("base") + " --delta-scale 0.05 --seed 2") &&
        ok("synth " + path("m") + " --family mistral " + shape + " --seed 3") &&
        ok("synth " + path("qwen") + " --family qwen2 " + shape + " --seed 4");
    write_text(dir_->path() / "linear.yaml",
               "merge_method: linear\nmodels:\n  - model: " + path("base") +
                   "\n    parameters: {weight: 0.5}\n  - model: " + path("a") +
                   "\n    parameters: {weight: 0.5}\ndtype: bfloat16\n");
    write_text(dir_->path() / "biases.yaml",
               "merge_method: linear\nmodels:\n  - model: " + path("base") +
                   "\n    parameters: {weight: 0.5}\n  - model: " + path("qwen") +
                   "\n    parameters: {weight: 0.5}\n");
    write_text(dir_->path() / "crimes.yaml",
               "merge_method: linear\nmodels:\n  - model: " + path("base") +
                   "\n    parameters: {weight: 0.5}\n  - model: " + path("m") +
                   "\n    parameters: {weight: 0.5}\n");
  }
  static void TearDownTestSuite() { delete dir_; }
  void SetUp() override { ASSERT_TRUE(ready_) << "models could not be made"; }
  static std::string path(const std::string& name) { return (dir_->path() / name).string(); }

  static TempDir* dir_;
  static bool ready_;
};

TempDir* CliHabits::dir_ = nullptr;
bool CliHabits::ready_ = false;

// ---------------------------------------------------------------- mergekit

enum class Does { honoured, noted, refused };

struct Habit {
  std::string flags;  // typed after `llmerge plan CONFIG`
  Does does;
  std::string output;  // text the output must contain
};

// mergekit/options.py, flag by flag, typed at `llmerge plan` (which takes
// the same flags as `run` and writes nothing).
const std::vector<Habit> k_mergekit_habits = {
    {"--num-threads 3", Does::honoured, ""},
    {"-j 3", Does::honoured, ""},
    {"--num-threads many", Does::refused, "--num-threads takes a whole number, not 'many'"},
    {"--out-shard-size 1MB", Does::honoured, "shard(s) of at most 1.00 MB"},
    {"--random-seed 7", Does::honoured, ""},
    {"-v", Does::noted, "-v has no effect"},
    {"-vv", Does::noted, "-vv has no effect"},
    {"--device cpu", Does::honoured, ""},
    {"--device auto", Does::noted, "--device auto has no effect: llmerge computes on the CPU"},
    {"--cuda", Does::noted, "--cuda has no effect"},
    {"--no-cuda", Does::noted, "--no-cuda has no effect"},
    {"--low-cpu-memory", Does::noted, "--low-cpu-memory has no effect"},
    {"--no-low-cpu-memory", Does::noted, "--no-low-cpu-memory has no effect"},
    {"--trust-remote-code", Does::noted, "never runs a model's code"},
    {"--no-trust-remote-code", Does::noted, "--no-trust-remote-code has no effect"},
    {"--lazy-unpickle", Does::noted, "never unpickled"},
    {"--no-lazy-unpickle", Does::noted, "--no-lazy-unpickle has no effect"},
    {"--lora-merge-cache /tmp/lora", Does::noted, "--lora-merge-cache has no effect"},
    {"--lora-merge-dtype bfloat16", Does::noted, "--lora-merge-dtype has no effect"},
    {"--clone-tensors", Does::noted, "--clone-tensors has no effect"},
    {"--no-clone-tensors", Does::noted, "--no-clone-tensors has no effect"},
    {"--safe-serialization", Does::noted, "always writes safetensors"},
    {"--no-safe-serialization", Does::noted, "always writes safetensors"},
    {"--async-write", Does::noted, "--async-write has no effect"},
    {"--no-async-write", Does::noted, "--no-async-write has no effect"},
    {"--write-threads 4", Does::noted, "--write-threads has no effect"},
    {"--read-to-gpu", Does::noted, "--read-to-gpu has no effect: llmerge uses no GPU"},
    {"--no-read-to-gpu", Does::noted, "--no-read-to-gpu has no effect"},
    {"--multi-gpu", Does::noted, "--multi-gpu has no effect"},
    {"--no-multi-gpu", Does::noted, "--no-multi-gpu has no effect"},
    {"--gpu-rich", Does::noted, "--gpu-rich has no effect"},
    {"--no-gpu-rich", Does::noted, "--no-gpu-rich has no effect"},
    {"--unsafe-truncate-embeddings", Does::noted, "--unsafe-truncate-embeddings has no effect"},
    {"--no-unsafe-truncate-embeddings", Does::noted,
     "--no-unsafe-truncate-embeddings has no effect"},
    {"--num-thread 3", Does::refused, "unknown flag '--num-thread'; did you mean '--num-threads'?"},
    {"--lazy-unpickel", Does::refused, "did you mean '--lazy-unpickle'?"},
    {"--no-alow-crimes", Does::refused, "did you mean '--no-allow-crimes'?"},
};

TEST_F(CliHabits, MergekitFlagsAreHonouredNotedOrRefusedWithASuggestion) {
  for (const Habit& h : k_mergekit_habits) {
    std::string log;
    const int rc = run_cli("plan " + path("linear.yaml") + " " + h.flags, &log);
    SCOPED_TRACE(h.flags + "\n" + log);
    EXPECT_TRUE(contains(log, h.output));
    switch (h.does) {
      case Does::honoured:
        EXPECT_EQ(rc, 0);
        EXPECT_FALSE(contains(log, "note:"));
        break;
      case Does::noted:
        EXPECT_EQ(rc, 0);
        EXPECT_EQ(count(log, "note: "), 1u);
        break;
      case Does::refused:
        EXPECT_EQ(rc, 2);
        EXPECT_TRUE(log.starts_with("llmerge: error: ")) << "starts: " << log.substr(0, 40);
        break;
    }
  }
}

TEST_F(CliHabits, CopyTokenizerAndModelCardFlagsChangeWhatRunWrites) {
  const std::string out = path("no-side-files");
  ASSERT_EQ(run_cli("run " + path("linear.yaml") + " " + out +
                    " --force --quiet --no-copy-tokenizer --no-write-model-card"),
            0);
  EXPECT_FALSE(fs::exists(fs::path(out) / "README.md"));
  EXPECT_FALSE(fs::exists(fs::path(out) / "tokenizer.json"));
  ASSERT_EQ(run_cli("run " + path("linear.yaml") + " " + out + " --force --quiet"), 0);
  EXPECT_TRUE(fs::exists(fs::path(out) / "README.md"));
}

TEST_F(CliHabits, AllowCrimesAndItsNoFormDecideWhetherArchitecturesMayDiffer) {
  std::string log;
  EXPECT_EQ(run_cli("plan " + path("crimes.yaml"), &log), 2);
  EXPECT_TRUE(contains(log, "--allow-crimes")) << log;
  EXPECT_EQ(run_cli("plan " + path("crimes.yaml") + " --allow-crimes --no-allow-crimes", &log), 2);
  EXPECT_EQ(run_cli("plan " + path("crimes.yaml") + " --allow-crimes", &log), 0) << log;
}

TEST_F(CliHabits, AllowCrimesNeverDropsATensorThatOnlySomeModelsHave) {
  // qwen2 has q/k/v biases that llama lacks; mergekit (taking llama's tensor
  // list) would drop them unseen. Here the plan names them and is refused.
  std::string log;
  EXPECT_EQ(run_cli("plan " + path("biases.yaml") + " --allow-crimes", &log), 2);
  EXPECT_TRUE(contains(log, "lacks tensors that the merge needs")) << log;
  EXPECT_TRUE(contains(log, "_proj.bias")) << log;
  EXPECT_TRUE(contains(log, path("base"))) << log;
}

TEST_F(CliHabits, TransformersCacheIsTheHubCacheModelsAreLookedUpIn) {
  // A Hub cache with org/a in it, as huggingface_hub lays it out.
  const fs::path cache = dir_->path() / "hub";
  const std::string commit(40, 'a');
  const fs::path snapshot = cache / "models--org--a" / "snapshots" / commit;
  fs::create_directories(snapshot.parent_path());
  fs::copy(path("a"), snapshot, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  fs::create_directories(cache / "models--org--a" / "refs");
  write_text(cache / "models--org--a" / "refs" / "main", commit);
  write_text(dir_->path() / "hub.yaml",
             "merge_method: linear\nmodels:\n  - model: " + path("base") +
                 "\n    parameters: {weight: 0.5}\n  - model: org/a\n    parameters: {weight: "
                 "0.5}\n");
  std::string log;
  const std::string out = path("hub-merge");
  ASSERT_EQ(run_cli("run " + path("hub.yaml") + " " + out + " --force --transformers-cache " +
                        cache.string(),
                    &log),
            0)
      << log;
  EXPECT_FALSE(contains(log, "note:")) << log;
  // The card lists the Hub model as a base_model, and not the local one (mergekit's rule).
  const std::string card = read_text(fs::path(out) / "README.md");
  EXPECT_TRUE(contains(card, "base_model:\n- org/a\n")) << card;
  EXPECT_FALSE(contains(card.substr(0, card.find("\n---", 3)), path("base"))) << card;
  // Without it, org/a is not found, and the hint is huggingface_hub's current command.
  setenv("HF_HUB_CACHE", (dir_->path() / "empty-cache").c_str(), 1);
  EXPECT_EQ(run_cli("plan " + path("hub.yaml"), &log), 2);
  unsetenv("HF_HUB_CACHE");
  EXPECT_TRUE(contains(log, "hf download org/a")) << log;
  EXPECT_FALSE(contains(log, "huggingface-cli")) << log;
}

TEST_F(CliHabits, MergeCardOfLocalModelsHasNoBaseModel) {
  const std::string out = path("local-card");
  ASSERT_EQ(run_cli("run " + path("linear.yaml") + " " + out + " --force --quiet"), 0);
  const std::string card = read_text(fs::path(out) / "README.md");
  EXPECT_FALSE(contains(card, "base_model:")) << card;
  EXPECT_TRUE(contains(card, "library_name: transformers")) << card;
}

TEST_F(CliHabits, UnknownCommandGetsASuggestion) {
  std::string log;
  EXPECT_EQ(run_cli("rnu " + path("linear.yaml"), &log), 2);
  EXPECT_TRUE(log.starts_with("llmerge: error: unknown command 'rnu'; did you mean 'run'?")) << log;
}

TEST_F(CliHabits, HelpShowsEachDefaultOnce) {
  std::string log;
  ASSERT_EQ(run_cli("run --help", &log), 0);
  EXPECT_FALSE(contains(log, "{false}")) << log;
  EXPECT_FALSE(contains(log, "{true}")) << log;
  EXPECT_TRUE(contains(log, "--no-copy-tokenizer")) << log;
  EXPECT_TRUE(contains(log, "(default: true)")) << log;
  EXPECT_TRUE(contains(log, "--lazy-unpickle")) << log;
}

// ---------------------------------------------------------------- mlx-lm

struct QuantHabit {
  std::string flags;  // typed after `llmerge quantize`, {in} and {out} replaced
  int bits;           // expected config.json quantization bits
  int group_size;
};

// mlx_lm.convert's spellings: -q, --q-bits (default 4), --q-group-size,
// --hf-path, --mlx-path.
const std::vector<QuantHabit> k_quantize_habits = {
    {"--hf-path {in} --mlx-path {out} -q", 4, 64},
    {"{in} -o {out} --quantize", 4, 64},
    {"{in} {out} -q --q-bits 3", 3, 64},
    {"{in} -o {out} --q-bits 8 --q-group-size 32", 8, 32},  // a --q- flag implies -q
    {"{in} -o {out} -q --bits 6", 6, 64},                   // llmerge's older spelling
};

std::string fill(std::string s, const std::string& in, const std::string& out) {
  for (const auto& [key, value] : {std::pair{"{in}", in}, std::pair{"{out}", out}}) {
    for (auto at = s.find(key); at != std::string::npos; at = s.find(key))
      s.replace(at, std::string(key).size(), value);
  }
  return s;
}

TEST_F(CliHabits, QuantizeTakesMlxLmConvertFlags) {
  for (const QuantHabit& h : k_quantize_habits) {
    const std::string out = path("q");
    std::string log;
    const int rc = run_cli("quantize " + fill(h.flags, path("a"), out) + " --force", &log);
    SCOPED_TRACE(h.flags + "\n" + log);
    ASSERT_EQ(rc, 0);
    const auto config = nlohmann::json::parse(read_text(fs::path(out) / "config.json"));
    EXPECT_EQ(config["quantization"]["bits"], h.bits);
    EXPECT_EQ(config["quantization"]["group_size"], h.group_size);
    // As mlx_lm.convert ends.
    EXPECT_TRUE(contains(log, "bits per weight")) << log;
  }
}

TEST_F(CliHabits, RunQuantizesWithTheSameFlags) {
  const std::string out = path("run-q");
  std::string log;
  ASSERT_EQ(run_cli("run " + path("linear.yaml") + " -o " + out + " --force -q --q-bits 3", &log),
            0)
      << log;
  const auto config = nlohmann::json::parse(read_text(fs::path(out) / "config.json"));
  EXPECT_EQ(config["quantization"]["bits"], 3);
  EXPECT_TRUE(contains(log, "bits per weight")) << log;
}

TEST_F(CliHabits, QuietIsSpelledOut) {
  std::string log;
  ASSERT_EQ(
      run_cli("quantize " + path("a") + " -o " + path("quiet") + " -q --quiet --force 2>&1", &log),
      0);
  EXPECT_FALSE(contains(log, "bits per weight")) << log;
  EXPECT_FALSE(contains(log, "tensors")) << log;
}

TEST_F(CliHabits, QuantizeErrorsNameTheFlagTyped) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--q-bits 7", "--q-bits takes one of 2, 3, 4, 5, 6, 8, not 7"},
      {"--bits 7", "--bits takes one of 2, 3, 4, 5, 6, 8, not 7"},
      {"-q --q-group-size 48", "--q-group-size takes one of 32, 64, 128, not 48"},
      {"-q --q-mode nf4", "--q-mode takes one of"},
      {"--q-bitz 4", "unknown flag '--q-bitz'; did you mean '--q-bits'?"},
      {"", "say what to write: -q"},
      {"-q --quant-predicate mixed_3_6", "mixed-bit recipes are not supported"},
      {"-q --upload-repo me/model", "hf upload me/model OUT"},
  };
  for (const auto& [flags, message] : cases) {
    std::string log;
    const std::string out = path("bad");
    EXPECT_EQ(run_cli("quantize " + path("a") + " -o " + out + " " + flags, &log), 2) << flags;
    EXPECT_TRUE(log.starts_with("llmerge: error: ")) << log;
    EXPECT_TRUE(contains(log, message)) << flags << "\n" << log;
    EXPECT_FALSE(contains(log, "--quantize:")) << log;
    EXPECT_FALSE(fs::exists(out)) << flags;
  }
}

TEST_F(CliHabits, Mxfp4OutputIsRefusedBeforeTheModelIsRead) {
  std::string log;
  // The model does not even exist: the mode is refused first.
  EXPECT_EQ(
      run_cli("quantize " + path("absent") + " -o " + path("fp4") + " -q --q-mode mxfp4", &log), 2);
  EXPECT_TRUE(contains(log, "--q-mode: writing mxfp4 is not supported yet")) << log;
  EXPECT_FALSE(contains(log, "absent")) << log;
  EXPECT_FALSE(fs::exists(path("fp4")));
}

TEST_F(CliHabits, QuantizeWritesAnMlxCardAndKeepsTheInputsRecipe) {
  // A merged model (with its card and mergekit_config.yml), then converted.
  const std::string merged = path("merged");
  ASSERT_EQ(run_cli("run " + path("linear.yaml") + " " + merged + " --force --quiet"), 0);
  const std::string out = path("merged-4bit");
  ASSERT_EQ(run_cli("quantize " + merged + " " + out + " -q --force --quiet"), 0);
  const std::string card = read_text(fs::path(out) / "README.md");
  EXPECT_TRUE(contains(card, "library_name: mlx\npipeline_tag: text-generation\n")) << card;
  EXPECT_TRUE(contains(card, "tags:\n- merge\n- llmerge\n- mlx\n")) << card;
  EXPECT_FALSE(contains(card, "library_name: transformers")) << card;
  EXPECT_TRUE(contains(card, "converted to MLX format (MLX-quantized, 4 bits, group size 64"))
      << card;
  EXPECT_FALSE(contains(card, "passthrough")) << card;
  // The input's card text (the merge's recipe) follows.
  EXPECT_TRUE(contains(card, "merge_method: linear")) << card;
  EXPECT_EQ(read_text(fs::path(out) / "mergekit_config.yml"),
            read_text(fs::path(merged) / "mergekit_config.yml"));
}

// ---------------------------------------------------------------- consistency

TEST_F(CliHabits, NonTerminalProgressEndsOnceWithTheElapsedTime) {
  std::string log;
  ASSERT_EQ(run_cli("run " + path("linear.yaml") + " " + path("progress") + " --force", &log), 0);
  const std::string done = "11/11 tensors";
  EXPECT_LE(count(log, "tensors  "), count(log, "\n")) << log;
  // The final state (every tensor written) is printed once.
  const auto last = log.rfind(" tensors  ");
  ASSERT_NE(last, std::string::npos) << log;
  const auto line_start = log.rfind('\n', last) + 1;
  const std::string final_line = log.substr(line_start, log.find('\n', last) - line_start);
  EXPECT_EQ(count(log, final_line), 1u) << log;
  EXPECT_TRUE(contains(log, "s\n")) << log;
  EXPECT_TRUE(contains(log, "layers) in ")) << log;
}

TEST_F(CliHabits, InspectAndRunUseTheSameSizeUnits) {
  const std::string out = path("units");
  std::string run_log, inspect_log;
  ASSERT_EQ(run_cli("run " + path("linear.yaml") + " " + out + " --force", &run_log), 0);
  ASSERT_EQ(run_cli("inspect " + out, &inspect_log), 0);
  const std::regex si_size(R"(\d+\.\d\d (KB|MB|GB))");
  std::smatch in_run, in_inspect;
  ASSERT_TRUE(std::regex_search(run_log, in_run, si_size)) << run_log;
  ASSERT_TRUE(std::regex_search(inspect_log, in_inspect, si_size)) << inspect_log;
  EXPECT_EQ(in_run[1], in_inspect[1]) << run_log << inspect_log;
  EXPECT_FALSE(contains(run_log + inspect_log, "MiB")) << run_log << inspect_log;
}

TEST_F(CliHabits, PlanBooleansAreTrueOrFalseInTextAndJson) {
  write_text(dir_->path() / "ties.yaml",
             "merge_method: ties\nbase_model: " + path("base") +
                 "\nmodels:\n  - model: " + path("a") +
                 "\n    parameters: {weight: 0.5, density: 0.5}\nparameters: "
                 "{normalize: true}\n");
  std::string text, json;
  ASSERT_EQ(run_cli("plan " + path("ties.yaml"), &text), 0) << text;
  ASSERT_EQ(run_cli("plan " + path("ties.yaml") + " --json", &json), 0) << json;
  EXPECT_TRUE(contains(text, "normalize=true")) << text;
  EXPECT_FALSE(contains(text, "normalize=1")) << text;
  EXPECT_TRUE(contains(json, "\"normalize\": true")) << json.substr(0, 2000);
}

TEST_F(CliHabits, AMissingRelativePathIsLookedUpInTheCurrentDirectory) {
  write_text(dir_->path() / "relative.yaml",
             "merge_method: linear\nmodels:\n  - model: no/such-model-here\n    parameters: "
             "{weight: 1}\n");
  std::string log;
  EXPECT_EQ(run_cli("plan " + path("relative.yaml"), &log), 2);
  EXPECT_TRUE(contains(log, "relative to the current directory")) << log;
  EXPECT_EQ(count(log, "no/such-model-here' "), 1u) << log;  // the name is said once
  EXPECT_TRUE(contains(log, "\n  no/such-model-here (a local path")) << log;
}

TEST_F(CliHabits, MethodsCountsSlerpsModelsAsMergekitUsersDo) {
  std::string log;
  ASSERT_EQ(run_cli("methods", &log), 0);
  const auto at = log.find("\nslerp ");
  ASSERT_NE(at, std::string::npos) << log;
  const std::string slerp = log.substr(at, log.find("\n\n", at) - at);
  EXPECT_TRUE(contains(slerp, "models: exactly 2, the base included")) << slerp;
}

}  // namespace
}  // namespace llmerge
