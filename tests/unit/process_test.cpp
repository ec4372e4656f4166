// The llmerge process and its surroundings: a full or closed stderr, a pipe
// whose reader left, memory and threads running out, untrusted strings on
// the terminal and in the model card (docs/RELIABILITY.md, "The process";
// issue 12, classes 15-17, 19).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config/config.h"
#include "core/error.h"
#include "output/output_files.h"
#include "output/run_merge.h"
#include "plan/plan.h"
#include "synth/synth.h"
#include "test_util.h"

extern char** environ;

namespace llmerge {
namespace {

using testing::contains;
using testing::error_of;

namespace fs = std::filesystem;
using testing::TempDir;

// Runs `sh -c script` and returns its exit code (-1 if killed by a signal).
int sh(const std::string& script) {
  const int status = std::system(script.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

class Process : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    SynthOptions o;
    o.layers = 2;
    o.hidden = 64;
    o.intermediate = 128;
    o.heads = 2;
    o.kv_heads = 1;
    o.vocab = 256;
    o.threads = 1;
    o.seed = 1;
    write_synth_model(o, dir_->path() / "a");
    o.seed = 2;
    write_synth_model(o, dir_->path() / "b");
    testing::write_text(dir_->path() / "m.yaml", linear(a(), b()));
    ready_ = true;
  }
  static void TearDownTestSuite() { delete dir_; }
  void SetUp() override { ASSERT_TRUE(ready_) << "fixture models could not be made"; }
  static fs::path a() { return dir_->path() / "a"; }
  static fs::path b() { return dir_->path() / "b"; }
  static fs::path config() { return dir_->path() / "m.yaml"; }
  static std::string linear(const fs::path& x, const fs::path& y) {
    return "merge_method: linear\nmodels:\n  - model: \"" + x.string() +
           "\"\n    parameters: {weight: 0.5}\n  - model: \"" + y.string() +
           "\"\n    parameters: {weight: 0.5}\n";
  }
  static TempDir* dir_;
  static bool ready_;
};
TempDir* Process::dir_ = nullptr;
bool Process::ready_ = false;

const std::string k_cli = LLMERGE_CLI_PATH;

// ---- 16: an unwritable or closed stderr ----

TEST_F(Process, FullStderrNeverAbortsTheMerge) {
  TempDir work;
  // Not --quiet: progress, notes and the summary all go to a full device.
  EXPECT_EQ(sh(k_cli + " run " + config().string() + " -o " + (work / "out").string() +
               " 2>/dev/full >/dev/full"),
            0);
  EXPECT_TRUE(fs::exists(work / "out" / "model.safetensors"));
  // An error report to a full stderr still gives the error's exit code.
  EXPECT_EQ(sh(k_cli + " plan " + (work / "missing.yaml").string() + " 2>/dev/full"), 2);
}

TEST_F(Process, ClosedStderrIsNeitherFatalNorReusedForOutputFiles) {
  TempDir work;
  ASSERT_EQ(sh(k_cli + " run " + config().string() + " -o " + (work / "ref").string() + " --quiet"),
            0);
  EXPECT_EQ(
      sh(k_cli + " run " + config().string() + " -o " + (work / "out").string() + " 2>&- >&-"), 0);
  // Progress written to a reused fd 2 would have landed in a shard or the lock.
  EXPECT_EQ(testing::read_text(work / "out" / "model.safetensors"),
            testing::read_text(work / "ref" / "model.safetensors"));
  EXPECT_EQ(testing::read_text(work / "out" / "config.json"),
            testing::read_text(work / "ref" / "config.json"));
}

// ---- 15: SIGPIPE from a real pipe ----

TEST_F(Process, ClosedStdoutPipeEndsThePlanWith141) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[0]);  // the reader (`| head -1`) has gone
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  const std::string cfg = config().string();
  const char* argv[] = {k_cli.c_str(), "plan", cfg.c_str(), nullptr};
  // The test runner may ignore SIGPIPE; llmerge installs its own handler anyway.
  pid_t pid = 0;
  ASSERT_EQ(
      ::posix_spawn(&pid, k_cli.c_str(), &actions, nullptr, const_cast<char**>(argv), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 141);
}

// ---- 17: memory and threads running out ----

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LLMERGE_SKIP_UNDER_SANITIZERS() GTEST_SKIP() << "sanitizers reserve address space"
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define LLMERGE_SKIP_UNDER_SANITIZERS() GTEST_SKIP() << "sanitizers reserve address space"
#endif
#endif
#ifndef LLMERGE_SKIP_UNDER_SANITIZERS
#define LLMERGE_SKIP_UNDER_SANITIZERS() (void)0
#endif

TEST_F(Process, HugeChunkElementsIsRefusedByThePlanWithTheMemoryItNeeds) {
  PlanSettings options;
  options.chunk_elements = std::int64_t{1} << 45;
  options.threads = 4;
  ErrorKind kind{};
  const std::string message =
      error_of([&] { make_plan(parse_config(linear(a(), b()), "m.yaml"), options); }, &kind);
  EXPECT_EQ(kind, ErrorKind::config) << message;
  EXPECT_TRUE(contains(message, "--chunk-elements 35184372088832 needs about")) << message;
  EXPECT_TRUE(contains(message, "more than this machine's")) << message;
  std::string log;
  EXPECT_EQ(
      testing::run_cli("plan " + config().string() + " --chunk-elements 35184372088832", &log), 2)
      << log;
}

// Runs `body` in a child process under an address-space limit and returns
// its exit code: 0 means it ended in the expected Error, with no debris.
int in_child_with_memory_limit(std::uint64_t bytes, const std::function<int()>& body) {
  const pid_t child = ::fork();
  if (child == 0) {
    const rlimit limit{bytes, bytes};
    ::setrlimit(RLIMIT_AS, &limit);
    ::_exit(body());
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

TEST_F(Process, AllocationFailureInTheExecutorUnwindsWithoutAbortOrDebris) {
  LLMERGE_SKIP_UNDER_SANITIZERS();
  TempDir work;
  const MergePlan plan = make_plan(parse_config(linear(a(), b()), "m.yaml"), PlanSettings{});
  const int rc = in_child_with_memory_limit(std::uint64_t{1} << 30, [&] {
    try {
      // 2^28-element chunks: 1 GiB per buffer, past the limit.
      run_merge(plan, RunSettings{.out_dir = work / "out",
                                  .execute = {.threads = 1, .chunk_elements = 1 << 28}});
    } catch (const Error& e) {
      return e.kind() == ErrorKind::io && contains(e.what(), "out of memory") ? 0 : 2;
    } catch (...) {
      return 3;
    }
    return 4;
  });
  EXPECT_EQ(rc, 0) << "2: wrong error, 3: not an llmerge Error, 4: no error, 10x: signal";
  EXPECT_EQ(std::distance(fs::directory_iterator(work.path()), fs::directory_iterator()), 0);
}

TEST_F(Process, ThreadCreationFailureUnwindsWithoutAbortOrDebris) {
  LLMERGE_SKIP_UNDER_SANITIZERS();
  TempDir work;
  const MergePlan plan = make_plan(parse_config(linear(a(), b()), "m.yaml"), PlanSettings{});
  // Each thread reserves an 8 MiB stack: 4,000 of them cannot fit in 1 GiB.
  const int rc = in_child_with_memory_limit(std::uint64_t{1} << 30, [&] {
    try {
      run_merge(plan, RunSettings{.out_dir = work / "out", .execute = {.threads = 4000}});
    } catch (const Error& e) {
      return e.kind() == ErrorKind::io && contains(e.what(), "cannot start 4000 worker threads")
                 ? 0
                 : 2;
    } catch (...) {
      return 3;
    }
    return 4;
  });
  EXPECT_EQ(rc, 0) << "2: wrong error, 3: not an llmerge Error, 4: no error, 10x: signal";
  EXPECT_EQ(std::distance(fs::directory_iterator(work.path()), fs::directory_iterator()), 0);
}

// ---- 19: untrusted strings are escaped ----

TEST_F(Process, ModelCardFrontMatterSurvivesPathsWithNewlinesAndColons) {
  TempDir work;
  const fs::path odd = work / "we: ird\nname #x";
  fs::copy(a(), odd, fs::copy_options::recursive);
  std::string yaml =
      "merge_method: linear\nmodels:\n  - model: \"" + work.path().string() +
      "/we: ird\\nname #x\"\n    parameters: {weight: 0.5}\n  - model: " + b().string() +
      "\n    parameters: {weight: 0.5}\n";
  const MergePlan plan = make_plan(parse_config(yaml, "m.yaml"), PlanSettings{});
  const std::string card = model_card(plan, "title\nwith: newline");
  // The front matter is exactly the fixed lines: local paths are never listed
  // under base_model (Hub ids only, as mergekit), so the odd name cannot reach it.
  const auto end = card.find("\n---\n", 4);
  ASSERT_NE(end, std::string::npos) << card;
  std::vector<std::string> lines;
  std::istringstream in(card.substr(0, end));
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  ASSERT_EQ(lines.size(), 5u) << card;
  EXPECT_EQ(lines[1], "library_name: transformers");
  // The title and the model list are one line each.
  EXPECT_TRUE(contains(card, "# title\\x0awith: newline\n")) << card;
}

TEST_F(Process, ModelCardCodeFenceCannotBeClosedByTheConfig) {
  std::string yaml = linear(a(), b()) + "# ```\n# ````\n";
  const MergePlan plan = make_plan(parse_config(yaml, "m.yaml"), PlanSettings{});
  const std::string card = model_card(plan, "t");
  EXPECT_TRUE(contains(card, "`````yaml\n" + yaml + "`````\n")) << card;
}

TEST_F(Process, UntrustedStringsReachTheTerminalEscaped) {
  TempDir work;
  // A YAML escape (no raw control byte in the file) that becomes ESC in a value.
  testing::write_text(work / "m.yaml",
                      "merge_method: \"\\e]0;pwned\\a\\e[2J\"\nmodels:\n"
                      "  - model: " +
                          a().string() + "\n");
  std::string log;
  EXPECT_EQ(testing::run_cli("plan " + (work / "m.yaml").string(), &log), 2) << log;
  EXPECT_FALSE(contains(log, "\x1b")) << log;
  EXPECT_FALSE(contains(log, "\a")) << log;
  EXPECT_TRUE(contains(log, "unknown merge_method '\\x1b]0;pwned\\x07\\x1b[2J'")) << log;
  // A config.json value, echoed in an error.
  fs::copy(a(), work / "c", fs::copy_options::recursive);
  testing::write_text(work / "c" / "config.json",
                      R"({"model_type": "\u001b[31mevil", "num_hidden_layers": 2})");
  testing::write_text(work / "m2.yaml", linear(work / "c", b()));
  EXPECT_EQ(testing::run_cli("plan " + (work / "m2.yaml").string(), &log), 2) << log;
  EXPECT_FALSE(contains(log, "\x1b")) << log;
  EXPECT_TRUE(contains(log, "\\x1b[31mevil")) << log;
  // A tensor name, listed by inspect.
  {
    ModelWriter writer(work / "t", {{"evil\x1b[2Jname", DType::U8, {2}}});
    const unsigned char bytes[2] = {1, 2};
    writer.write(0, 0, bytes, 2);
    writer.commit();
  }
  EXPECT_EQ(testing::run_cli("inspect " + (work / "t").string() + " --tensors", &log), 0) << log;
  EXPECT_FALSE(contains(log, "\x1b")) << log;
  EXPECT_TRUE(contains(log, "evil\\x1b[2Jname")) << log;
}

}  // namespace
}  // namespace llmerge
