// The public API (include/llmerge/) as the CLI, Python and the web server use it:
// structured problems, several runs in one process, per-run cancellation,
// parallel runs, the options table. Only public headers are included here.
#include <atomic>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "llmerge/llmerge.h"
#include "llmerge/synth.h"
#include "test_util.h"

namespace llmerge {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

// Every file of a model folder but the model card (whose title is the
// folder's name), by name, as a hash of its bytes.
std::map<std::string, std::size_t> folder_bytes(const fs::path& dir) {
  std::map<std::string, std::size_t> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename() == "README.md") continue;
    out[e.path().filename().string()] = std::hash<std::string>{}(testing::read_text(e.path()));
  }
  return out;
}

class Api : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    SynthSpec base;
    base.layers = 4;
    base.hidden = 64;
    synth((*dir_ / "base").string(), base);
    SynthSpec like;
    like.like = (*dir_ / "base").string();
    like.seed = 1;
    synth((*dir_ / "a").string(), like);
    like.seed = 2;
    synth((*dir_ / "b").string(), like);
    SynthSpec wide;
    wide.hidden = 128;
    synth((*dir_ / "wide").string(), wide);
    // Big enough (about 30 MB a model) that a merge takes many chunks.
    SynthSpec big;
    big.layers = 6;
    big.hidden = 512;
    big.intermediate = 1536;
    big.vocab = 4096;
    big.dtype = "f32";
    synth((*dir_ / "big_base").string(), big);
    SynthSpec big_like;
    big_like.like = (*dir_ / "big_base").string();
    big_like.seed = 3;
    synth((*dir_ / "big_a").string(), big_like);
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::string path(const std::string& name) { return (*dir_ / name).string(); }

  static Config ties(const std::string& parameters) {
    return Config::parse("merge_method: ties\nbase_model: " + path("base") +
                             "\nmodels:\n  - model: " + path("a") + "\n  - model: " + path("b") +
                             "\nparameters:\n  " + parameters + "\n",
                         "ties.yaml");
  }

  static Config big_slerp() {
    return Config::parse("merge_method: slerp\nbase_model: " + path("big_base") +
                             "\nmodels:\n  - model: " + path("big_base") +
                             "\n  - model: " + path("big_a") + "\nparameters:\n  t: 0.3\n",
                         "slerp.yaml");
  }

  static Error plan_error(const Config& config, const PlanOptions& options = {}) {
    try {
      (void)plan(config, options);
    } catch (const Error& e) {
      return e;
    }
    ADD_FAILURE() << "plan succeeded";
    return Error(ErrorKind::internal, "no error");
  }

  static TempDir* dir_;
};

TempDir* Api::dir_ = nullptr;

TEST_F(Api, OneBadParameterIsOneProblemWithItsCountLocationAndValue) {
  const Error e = plan_error(ties("weight: 0.5\n  density: 1.5"));
  ASSERT_EQ(e.problems().size(), 1u) << e.what();
  const Problem& p = e.problems().front();
  EXPECT_EQ(p.kind, ErrorKind::config);
  EXPECT_EQ(p.file, "ties.yaml");
  EXPECT_EQ(p.line, 8);
  EXPECT_EQ(p.column, 3);  // the `density:` key
  EXPECT_EQ(p.yaml_path, "parameters.density");
  EXPECT_EQ(p.values, std::vector<std::string>{"1.5"});
  const std::size_t tensors = plan(ties("weight: 0.5\n  density: 0.5")).tensors().size();
  EXPECT_EQ(p.count, tensors) << "one count for every tensor the parameter applies to";
  EXPECT_EQ(p.tensors.size(), 3u);  // a few examples, not all
  EXPECT_NE(std::string(e.what()).find("applies to " + std::to_string(tensors) + " tensors"),
            std::string::npos)
      << e.what();
}

TEST_F(Api, DifferentHiddenSizesAreOneRootCauseProblem) {
  const Error e =
      plan_error(Config::parse("merge_method: linear\nmodels:\n  - model: " + path("a") +
                               "\n    parameters: {weight: 1}\n  - model: " + path("wide") +
                               "\n    parameters: {weight: 1}\n"));
  ASSERT_EQ(e.problems().size(), 1u) << e.what();
  EXPECT_EQ(e.kind(), ErrorKind::shape);
  EXPECT_NE(e.problems()[0].message.find("hidden size 64 in"), std::string::npos) << e.what();
  EXPECT_NE(e.problems()[0].message.find("vs 128 in"), std::string::npos) << e.what();
  EXPECT_FALSE(e.problems()[0].hint.empty());
}

TEST_F(Api, ProblemsSerialiseToJson) {
  const Error e = plan_error(ties("weight: 0.5\n  density: 1.5"));
  const std::string j = e.problems_json();
  EXPECT_NE(j.find("\"kind\": \"config\""), std::string::npos) << j;
  EXPECT_NE(j.find("\"line\": 8"), std::string::npos) << j;
  EXPECT_NE(j.find("\"values\": [\n        \"1.5\""), std::string::npos) << j;
}

TEST_F(Api, PlanJsonOnTheCliGivesStructuredProblems) {
  TempDir tmp;
  testing::write_text(tmp / "bad.yaml", ties("weight: 0.5\n  density: 1.5").text());
  std::string out;
  EXPECT_EQ(testing::run_cli("plan --json " + (tmp / "bad.yaml").string(), &out), 2) << out;
  EXPECT_NE(out.find("\"problems\": ["), std::string::npos) << out;
  EXPECT_NE(out.find("\"count\": "), std::string::npos) << out;
}

TEST_F(Api, RunsAfterACancelledRunWorkAndCancelIsPerRun) {
  TempDir tmp;
  const Plan p = plan(big_slerp());
  // Run 1: cancelled from its own progress callback once it has started writing.
  RunOptions cancelled;
  cancelled.threads = 1;
  cancelled.progress_interval_s = 0.001;
  cancelled.progress = [&cancelled](const Progress& pr) {
    if (pr.bytes_done > 0) cancelled.cancel.cancel();
  };
  try {
    run(p, (tmp / "one").string(), cancelled);
    ADD_FAILURE() << "the cancelled run finished";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::interrupted) << e.what();
  }
  EXPECT_FALSE(fs::exists(tmp / "one"));
  std::size_t entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(tmp.path()))
    ++entries;
  EXPECT_EQ(entries, 0u) << "nothing of the cancelled run is left behind";
  // Runs 2 and 3, in the same process, complete.
  const RunResult two = run(p, (tmp / "two").string());
  const RunResult three = merge(big_slerp(), (tmp / "three").string());
  EXPECT_EQ(two.tensors, p.tensors().size());
  EXPECT_EQ(folder_bytes(tmp / "two"), folder_bytes(tmp / "three"));
}

TEST_F(Api, AProgressCallbackThatThrowsAbortsTheRunAndLeavesNothing) {
  TempDir tmp;
  RunOptions o;
  o.threads = 2;
  o.progress_interval_s = 0.001;
  o.progress = [](const Progress& p) {
    if (p.bytes_done > 0) throw std::runtime_error("stop from the callback");
  };
  try {
    run(plan(big_slerp()), (tmp / "out").string(), o);
    ADD_FAILURE() << "the run finished";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "stop from the callback");
  }
  EXPECT_TRUE(fs::is_empty(tmp.path()));
}

TEST_F(Api, ParallelRunsGiveTheBytesOfSerialRuns) {
  TempDir tmp;
  const Config slerp = big_slerp();
  const Config t = ties("weight: 0.5\n  density: 0.5");
  run(plan(slerp), (tmp / "serial_slerp").string());
  run(plan(t), (tmp / "serial_ties").string());
  std::exception_ptr error;
  std::thread other([&] {
    try {
      RunOptions o;
      o.threads = 2;
      run(plan(slerp), (tmp / "parallel_slerp").string(), o);
    } catch (...) {
      error = std::current_exception();
    }
  });
  RunOptions o;
  o.threads = 2;
  run(plan(t), (tmp / "parallel_ties").string(), o);
  other.join();
  if (error) std::rethrow_exception(error);
  EXPECT_EQ(folder_bytes(tmp / "serial_slerp"), folder_bytes(tmp / "parallel_slerp"));
  EXPECT_EQ(folder_bytes(tmp / "serial_ties"), folder_bytes(tmp / "parallel_ties"));
}

TEST_F(Api, CancellingBeforePlanningInterruptsThePlan) {
  CancelToken token;
  token.cancel();
  try {
    (void)plan(ties("weight: 0.5\n  density: 0.5"), {}, token);
    ADD_FAILURE() << "planned despite the cancel";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::interrupted);
  }
  // A fresh token: planning works again.
  EXPECT_NO_THROW((void)plan(ties("weight: 0.5\n  density: 0.5")));
}

TEST_F(Api, RelativeModelPathsResolveAgainstTheBaseDir) {
  const Config c = Config::parse(
      "merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: 1}\n  - model: b\n"
      "    parameters: {weight: 1}\n");
  PlanOptions o;
  o.base_dir = dir_->path().string();
  EXPECT_GT(plan(c, o).tensors().size(), 0u);
  EXPECT_THROW((void)plan(c), Error);  // the current directory has no model 'a'
}

TEST_F(Api, SetOptionValidatesAndNamesTheOption) {
  MergeOptions o;
  set_option(o, "threads", "3");
  set_option(o, "out-shard-size", "2GiB");
  set_option(o, "bits", "3");  // an alias of q_bits; it turns quantize on
  set_option(o, "copy_tokenizer", "false");
  EXPECT_EQ(o.run.threads, 3);
  EXPECT_EQ(o.plan.out_shard_size, "2GiB");
  EXPECT_EQ(o.plan.q_bits, 3);
  EXPECT_TRUE(o.plan.quantize);
  EXPECT_FALSE(o.run.copy_tokenizer);
  for (const auto& [name, value] :
       std::vector<std::pair<std::string, std::string>>{{"threads", "many"},
                                                        {"force", "maybe"},
                                                        {"q_mode", "nf4"},
                                                        {"q_bits", "7"},
                                                        {"nonsense", "1"}}) {
    try {
      set_option(o, name, value);
      ADD_FAILURE() << name << "=" << value << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::config);
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
}

TEST_F(Api, EveryTableOptionIsInTheSchemaAndOnTheCommandLine) {
  const std::string schema = options_schema_json();
  std::string run_help;
  ASSERT_EQ(testing::run_cli("run --help", &run_help), 0);
  for (const OptionInfo& o : option_table()) {
    EXPECT_NE(schema.find("\"" + o.name + "\": {"), std::string::npos) << o.name;
    std::string flag = "--" + o.name;
    std::replace(flag.begin(), flag.end(), '_', '-');
    const bool on_run = std::find(o.commands.begin(), o.commands.end(), "run") != o.commands.end();
    EXPECT_EQ(run_help.find(flag) != std::string::npos, on_run) << flag << "\n" << run_help;
    if (on_run) {
      EXPECT_NE(run_help.find("(default: " + o.default_text + ")"), std::string::npos) << flag;
    }
  }
}

TEST_F(Api, PlanViewsDescribeTheSameTensors) {
  const Plan p = plan(ties("weight: 0.5\n  density: 0.5"));
  const auto tensors = p.tensors();
  ASSERT_FALSE(tensors.empty());
  const std::string json = p.json();
  for (const auto& t : tensors)
    EXPECT_NE(json.find("\"" + t.name + "\""), std::string::npos) << t.name;
  EXPECT_NE(p.describe().find("merge method: ties"), std::string::npos);
  RunOptions one, four;
  one.threads = 1;
  four.threads = 4;
  EXPECT_LT(p.memory_estimate(one), p.memory_estimate(four));
}

// docs/RELIABILITY.md class 20: the plan's memory estimate is an upper bound of
// what the run uses (measured: the CLI's peak RSS), and not a wild one.
TEST_F(Api, MemoryEstimateBoundsTheMeasuredPeak) {
  if (!fs::exists("/usr/bin/time")) GTEST_SKIP() << "needs /usr/bin/time (scripts/install-deps.sh)";
  if (testing::k_sanitizer_slowdown > 1) GTEST_SKIP() << "sanitizers change the memory use";
  TempDir tmp;
  for (const std::string method : {"ties", "della", "linear"}) {
    const std::string yaml =
        "merge_method: " + method + "\nbase_model: " + path("big_base") +
        "\nmodels:\n  - model: " + path("big_a") + "\n    parameters: {weight: 1" +
        (method == "linear" ? "" : ", density: 0.5") + "}\n  - model: " + path("big_base") +
        "\n    parameters: {weight: 1" + (method == "linear" ? "" : ", density: 0.5") + "}\n";
    testing::write_text(tmp / (method + ".yaml"), yaml);
    RunOptions two;
    two.threads = 2;
    const std::uint64_t estimate = plan(Config::parse(yaml)).memory_estimate(two);
    const std::string out = (tmp / ("out-" + method)).string();
    const std::string cfg = (tmp / (method + ".yaml")).string();
    // Through /usr/bin/time: a child spawned from this (larger) process would
    // inherit its peak RSS across exec.
    const fs::path rss = tmp / (method + ".rss");
    const std::string cmd = "/usr/bin/time -f %M -o " + rss.string() + " " + LLMERGE_CLI_PATH +
                            " run " + cfg + " -o " + out + " -j 2 --quiet";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    const std::uint64_t peak = std::stoull(testing::read_text(rss)) * 1024;  // KiB
    EXPECT_LE(peak, estimate) << method << ": measured " << peak << " > estimate " << estimate;
    // Issue 21 asks for 20 % (bench/results.md measures it: 1.06-1.18 on 0.5B
    // models); here 1.05-1.13, with room for another machine's libraries.
    EXPECT_LE(estimate, peak + peak / 2) << method << ": estimate " << estimate << " vs " << peak;
  }
}

TEST_F(Api, InspectAndMethodsAreJson) {
  const ModelInfo info = inspect(path("a"));
  EXPECT_NE(info.json.find("\"hidden_size\": 64"), std::string::npos) << info.json;
  EXPECT_NE(info.describe.find("hidden size:"), std::string::npos) << info.describe;
  EXPECT_NE(methods_json().find("\"name\": \"della\""), std::string::npos);
  EXPECT_STREQ(version(), LLMERGE_VERSION);
}

// The references a front end must vet before planning, in every dialect and
// document, with their locations; and nothing that is not one.
TEST(ApiConfigText, ReferencesAreEveryModelAndFileTheConfigNames) {
  const std::string yaml =
      "merge_method: linear\n"
      "base_model: org/base@main\n"
      "models:\n"
      "  - model: ./a+./lora\n"
      "  - model: b\n"
      "tokenizer: {source: union}\n"
      "chat_template: tpl.jinja\n"
      "---\n"
      "models:\n"
      "  - {name: q, path: /models/q, base_model: true}\n"
      "slices:\n"
      "  - sources: [{model: q, layer_range: [0, 2]}]\n";
  const std::vector<ConfigReference> refs = config_references(yaml, "<t>");
  std::vector<std::string> got;
  for (const auto& r : refs)
    got.push_back(r.value + "@" + r.yaml_path + ":" + std::to_string(r.line) + ":" +
                  std::to_string(r.column));
  // `union`, the seed's `base_model: true` and its slice's `model: q` (a name) are not.
  EXPECT_EQ(got, (std::vector<std::string>{"org/base@main@base_model:2:13",
                                           "./a+./lora@models[0].model:4:12",
                                           "b@models[1].model:5:12", "tpl.jinja@chat_template:7:16",
                                           "/models/q@models[0].path:10:21"}));
}

TEST(ApiConfigText, HostileTextIsRefusedWithALocationNotWalked) {
  // Ten levels of aliases of aliases name 4^9 * 8 values.
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x]\n";
  for (char k = 'b'; k <= 'j'; ++k) {
    const std::string prev(1, static_cast<char>(k - 1));
    bomb += std::string(1, k) + ": &" + k + " [*" + prev + ", *" + prev + ", *" + prev + ", *" +
            prev + "]\n";
  }
  EXPECT_THROW(config_references(bomb, "<t>"), Error);
  EXPECT_THROW(config_to_json(bomb, "<t>"), Error);
  // An alias inside its own anchor is a cycle in yaml-cpp's tree
  // (fuzz_config_plan: the walk overflowed the stack).
  const std::string cycle = "slices:\n  - sources: &l0 [a, *l0]\n";
  EXPECT_THROW(config_references(cycle, "<t>"), Error);
  EXPECT_THROW(config_to_json(cycle, "<t>"), Error);
  // yaml-cpp would loop forever on a stray comma; a control byte is not text;
  // nor is a byte that is not UTF-8 (found by fuzz_config_plan: nlohmann's
  // dump threw its own type_error on it).
  for (const std::string& bad :
       {std::string("models:\n  - model: a\n,\n"), std::string("merge_method: li\x01near\n"),
        std::string("\xbfg"), std::string("models:\n  - model: caf\xe9\n")}) {
    try {
      config_references(bad, "<t>");
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.context().file, "<t>");
    }
  }
  // The form edits one config: a recipe is refused, one document is typed data.
  EXPECT_THROW(config_to_json("name: a\nmerge_method: linear\n---\nmerge_method: ties\n", "<t>"),
               Error);
  EXPECT_EQ(config_to_json("t: [0, 0.5, 1]\nx: '1'\ny: ~\nz: true\n", "<t>"),
            R"({"t":[0,0.5,1],"x":"1","y":null,"z":true})");
  // Numbers past int64 or double stay text (fuzz_config_plan: std::stod threw).
  EXPECT_EQ(config_to_json("a: [0, 9223E775807]\nb: 99999999999999999999\n", "<t>"),
            R"({"a":[0,"9223E775807"],"b":"99999999999999999999"})");
}

}  // namespace
}  // namespace llmerge
