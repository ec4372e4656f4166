// Hostile configs and metadata: each must end in an llmerge::Error (or a
// documented harmless outcome) in bounded time and memory, never a crash or
// a hang. Cases already covered elsewhere (alias bombs, deep YAML nesting,
// oversized text, weights summing to zero, the safetensors catalogue) are
// listed with their tests in docs/RELIABILITY.md rather than repeated here.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <limits>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "core/error.h"
#include "io/model.h"
#include "output/run_merge.h"
#include "plan/plan.h"
#include "synth/synth.h"
#include "test_util.h"

namespace llmerge {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;
using Clock = std::chrono::steady_clock;

const auto k_quick = std::chrono::seconds(5) * testing::k_sanitizer_slowdown;

struct Outcome {
  bool threw = false;
  ErrorKind kind{};
  std::string what;
  Clock::duration took{};
};

Outcome outcome_of(const std::function<void()>& f) {
  Outcome o;
  const auto start = Clock::now();
  try {
    f();
  } catch (const Error& e) {
    o.threw = true;
    o.kind = e.kind();
    o.what = e.what();
  }
  o.took = Clock::now() - start;
  return o;
}

class HostileInputs : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    SynthOptions o;
    o.layers = 2;
    o.hidden = 16;
    o.intermediate = 32;
    o.heads = 2;
    o.kv_heads = 1;
    o.vocab = 32;
    o.threads = 1;
    o.seed = 1;
    write_synth_model(o, dir_->path() / "a");
    o.seed = 2;
    write_synth_model(o, dir_->path() / "b");
    o.seed = 3;
    write_synth_model(o, dir_->path() / "base");
    ready_ = true;
  }
  static void TearDownTestSuite() { delete dir_; }
  void SetUp() override { ASSERT_TRUE(ready_) << "fixture models could not be made"; }
  static std::string path(const std::string& name) { return (dir_->path() / name).string(); }

  // Parses and plans `yaml`.
  static Outcome plan(const std::string& yaml) {
    return outcome_of([&] { make_plan(parse_config(yaml, "hostile.yaml"), PlanSettings{}); });
  }
  static std::string linear(const std::string& a_params, const std::string& model_a = "") {
    return "merge_method: linear\nmodels:\n  - model: " + (model_a.empty() ? path("a") : model_a) +
           "\n    parameters: {" + a_params + "}\n  - model: " + path("b") +
           "\n    parameters: {weight: 1}\n";
  }
  // A copy of model a whose config.json is `config_text`.
  static fs::path with_config(const TempDir& work, const std::string& config_text,
                              const std::string& name = "m") {
    fs::copy(dir_->path() / "a", work / name, fs::copy_options::recursive);
    testing::write_text(work / name / "config.json", config_text);
    return work / name;
  }
  static TempDir* dir_;
  static bool ready_;
};
TempDir* HostileInputs::dir_ = nullptr;
bool HostileInputs::ready_ = false;

// ---- YAML ----

// Fuzzing finding: yaml-cpp 0.7's LoadAll loops forever, allocating, on a
// ',' in block context (jbeder/yaml-cpp#1040).
TEST_F(HostileInputs, StrayCommaInBlockContextIsAnErrorNotAHang) {
  for (const std::string& yaml : {std::string(","), std::string("- a\n, b\n"),
                                  std::string("[a], b"), std::string("models:\n,  x: 1\n")}) {
    const Outcome o = outcome_of([&] { parse_config(yaml, "comma.yaml"); });
    EXPECT_TRUE(o.threw) << yaml;
    EXPECT_EQ(o.kind, ErrorKind::config) << o.what;
    EXPECT_NE(o.what.find("invalid YAML"), std::string::npos) << o.what;
    EXPECT_LT(o.took, k_quick) << yaml;
  }
}

TEST_F(HostileInputs, HugeModelReferenceIsANotFoundErrorInBoundedTime) {
  const Outcome o = plan(linear("weight: 1", std::string(900'000, 'x')));
  EXPECT_TRUE(o.threw);
  EXPECT_EQ(o.kind, ErrorKind::io) << o.what.substr(0, 300);
  EXPECT_NE(o.what.find("not found"), std::string::npos);
  EXPECT_LT(o.took, k_quick);
}

TEST_F(HostileInputs, HugeLayerRangesAreRejectedWithoutOverflow) {
  const std::string max = std::to_string(std::numeric_limits<std::int64_t>::max());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"[0, " + max + "]", "2 layers"},
      {"[9223372036854775806, " + max + "]", "2 layers"},
      {"[" + max + ", " + max + "]", "is empty"},
  };
  for (const auto& [range, expected] : cases) {
    const Outcome o =
        plan("merge_method: passthrough\nslices:\n  - sources:\n      - model: " + path("a") +
             "\n        layer_range: " + range + "\n");
    EXPECT_TRUE(o.threw) << range;
    EXPECT_NE(o.what.find("layer_range"), std::string::npos) << o.what;
    EXPECT_NE(o.what.find(expected), std::string::npos) << o.what;
  }
  // Past int64: a YAML integer that does not fit is a type error at parse time.
  const Outcome o =
      plan("merge_method: passthrough\nslices:\n  - sources:\n      - model: " + path("a") +
           "\n        layer_range: [0, 99999999999999999999]\n");
  EXPECT_EQ(o.kind, ErrorKind::config) << o.what;
  EXPECT_NE(o.what.find("hostile.yaml:5:"), std::string::npos) << o.what;
}

TEST_F(HostileInputs, NanAndInfiniteWeightsAreRejected) {
  for (const std::string w : {".nan", ".inf", "-.inf"}) {
    const Outcome o = plan(linear("weight: " + w));
    EXPECT_EQ(o.kind, ErrorKind::config) << w << ": " << o.what;
    EXPECT_NE(o.what.find("must be a finite number"), std::string::npos) << o.what;
    EXPECT_NE(o.what.find("hostile.yaml:4:"), std::string::npos) << o.what;
  }
}

TEST_F(HostileInputs, DensityOfZeroOrAboveOneIsRejected) {
  for (const std::string d : {"0", "1.5", "-0.1"}) {
    const Outcome o = plan("merge_method: ties\nbase_model: " + path("base") +
                           "\nmodels:\n  - model: " + path("a") +
                           "\n    parameters: {weight: 1, density: " + d + "}\n");
    EXPECT_EQ(o.kind, ErrorKind::config) << d << ": " << o.what;
    EXPECT_NE(o.what.find("parameter 'density' is out of range"), std::string::npos) << o.what;
    EXPECT_NE(o.what.find("(value " + d + ";"), std::string::npos) << o.what;
    EXPECT_NE(o.what.find("it must be (0, 1]"), std::string::npos) << o.what;
  }
}

TEST_F(HostileInputs, ThousandsOfMissingModelsAreOneShortErrorInBoundedTime) {
  std::string yaml = "merge_method: linear\nmodels:\n";
  for (int i = 0; i < 5000; ++i)
    yaml += "  - model: missing" + std::to_string(i) + "\n    parameters: {weight: 1}\n";
  const Outcome o = plan(yaml);
  EXPECT_EQ(o.kind, ErrorKind::io) << o.what.substr(0, 300);
  EXPECT_NE(o.what.find("... and "), std::string::npos) << "problems are not capped";
  EXPECT_LT(o.what.size(), 20'000u);
  EXPECT_LT(o.took, k_quick);
}

TEST_F(HostileInputs, ThousandsOfSlicesPlanInBoundedTime) {
  std::string yaml = "merge_method: passthrough\nslices:\n";
  for (int i = 0; i < 3000; ++i)
    yaml += "  - sources:\n      - model: " + path("a") + "\n        layer_range: [0, 1]\n";
  std::optional<MergePlan> p;
  const auto start = Clock::now();
  ASSERT_NO_THROW(p = make_plan(parse_config(yaml, "hostile.yaml"), PlanSettings{}));
  EXPECT_LT(Clock::now() - start, k_quick);
  EXPECT_EQ(p->out_layers, 3000);
  EXPECT_EQ(p->out_config["num_hidden_layers"], 3000);
}

// ---- model paths that are not model folders ----

TEST_F(HostileInputs, ModelPathThatIsATextFileIsAFormatError) {
  TempDir work;
  testing::write_text(work / "notes.txt", "hello, this is not a model\n");
  const Outcome o = plan(linear("weight: 1", (work / "notes.txt").string()));
  EXPECT_EQ(o.kind, ErrorKind::format) << o.what;
  EXPECT_NE(o.what.find("not a safetensors file"), std::string::npos) << o.what;
}

TEST_F(HostileInputs, ModelPathThatIsADeviceIsRefused) {
  for (const std::string dev : {"/dev/zero", "/dev/null", "/dev/urandom"}) {
    if (!fs::exists(dev)) continue;
    const Outcome o = plan(linear("weight: 1", dev));
    EXPECT_EQ(o.kind, ErrorKind::io) << dev << ": " << o.what;
    EXPECT_NE(o.what.find(dev + ": is not a regular file"), std::string::npos) << o.what;
    EXPECT_LT(o.took, k_quick);
  }
}

// Opening a FIFO for reading waits for a writer; llmerge must not. A child
// process does the open, with an alarm that kills it if it blocks.
TEST_F(HostileInputs, ModelPathThatIsAFifoIsRefusedWithoutBlocking) {
  TempDir work;
  const fs::path fifo = work / "weights.safetensors";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::alarm(static_cast<unsigned>(10 * testing::k_sanitizer_slowdown));
    try {
      Model::open(fifo);
    } catch (const Error& e) {
      const bool clear = e.kind() == ErrorKind::io &&
                         std::string(e.what()).find("is not a regular file") != std::string::npos;
      ::_exit(clear ? 0 : 2);
    }
    ::_exit(3);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "blocked (killed by signal " << WTERMSIG(status) << ")";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "2: unclear error, 3: accepted";
}

// ---- config.json ----

// Fuzzing finding: nlohmann throws out_of_range (not parse_error) for a
// number beyond double; it escaped Model::open as a non-llmerge exception.
TEST_F(HostileInputs, ConfigJsonNumberTooLargeForADoubleIsAFormatError) {
  TempDir work;
  const fs::path m = with_config(work, R"({"num_hidden_layers": 2, "rope_theta": 1e999})");
  const Outcome o = outcome_of([&] { Model::open(m); });
  EXPECT_EQ(o.kind, ErrorKind::format) << o.what;
  EXPECT_NE(o.what.find("config.json: invalid JSON: number overflow"), std::string::npos) << o.what;
}

TEST_F(HostileInputs, ConfigJsonIntegerBeyondInt64IsIgnoredNotWrapped) {
  TempDir work;
  const fs::path m =
      with_config(work, R"({"num_hidden_layers": 18446744073709551616, "vocab_size": -1})");
  const Model model = Model::open(m);
  EXPECT_EQ(model.layers().count, 2);  // from the tensor names
  EXPECT_EQ(model.layers().config_key, "");
  EXPECT_EQ(model.config_int("num_hidden_layers"), std::nullopt);
}

// nlohmann keeps the last of duplicate keys, as Python's json does.
TEST_F(HostileInputs, ConfigJsonDuplicateKeysTakeTheLastValue) {
  TempDir work;
  const fs::path m = with_config(work, R"({"num_hidden_layers": 2, "num_hidden_layers": 7})");
  const Outcome o = outcome_of([&] { Model::open(m); });
  EXPECT_EQ(o.kind, ErrorKind::format) << o.what;
  EXPECT_NE(o.what.find("config.json says num_hidden_layers = 7"), std::string::npos) << o.what;
}

// Wrong types are ignored where llmerge reads config.json, and the merge
// still completes; the donor's config is carried over as it was.
TEST_F(HostileInputs, ConfigJsonWithWrongTypesStillMerges) {
  TempDir work;
  nlohmann::json config = nlohmann::json::parse(testing::read_text(dir_->path() / "a/config.json"));
  config["num_hidden_layers"] = "two";
  config["tie_word_embeddings"] = 3;
  config["text_config"] = nlohmann::json::array({1});
  config["architectures"] = 5;
  config["torch_dtype"] = nlohmann::json::object();
  config["hidden_size"] = nullptr;
  const fs::path m = with_config(work, config.dump());
  const Model model = Model::open(m);
  EXPECT_EQ(model.layers().count, 2);
  EXPECT_EQ(model.config_int("num_hidden_layers"), std::nullopt);
  const MergePlan p = make_plan(parse_config(linear("weight: 1", m.string()), "hostile.yaml"), {});
  run_merge(p, RunSettings{.out_dir = work / "out", .execute = {.threads = 1}});
  EXPECT_EQ(Model::open(work / "out").tensor_count(), model.tensor_count());
}

// Found while writing this test: a deeply nested config.json parsed fine but
// overflowed the stack when the planner copied and dumped it (SIGSEGV).
TEST_F(HostileInputs, ConfigJsonNestedTooDeeplyIsAFormatError) {
  TempDir work;
  const std::string deep = std::string(200'000, '[') + std::string(200'000, ']');
  const fs::path m = with_config(work, R"({"num_hidden_layers": 2, "x": )" + deep + "}");
  const Outcome o = outcome_of([&] { Model::open(m); });
  EXPECT_EQ(o.kind, ErrorKind::format) << o.what;
  EXPECT_NE(o.what.find("nested more than 1000 levels"), std::string::npos) << o.what;
  // Brackets inside strings do not count.
  const fs::path ok = with_config(
      work, R"({"num_hidden_layers": 2, "s": ")" + std::string(5000, '[') + "\"}", "ok");
  EXPECT_NO_THROW(Model::open(ok));
}

}  // namespace
}  // namespace llmerge
