// Faults during a merge: a full disk, Ctrl-C / SIGTERM, inputs that change
// under us, outputs that overlap inputs, two runs racing for one output, and
// input files that cannot be read. Each must end in a clear error (or exit
// code) with no partial output and the target and inputs untouched.
// docs/RELIABILITY.md lists these tests; scripts/check_reliability_table.py
// keeps that table honest.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "config/config.h"
#include "core/error.h"
#include "io/model.h"
#include "output/layout.h"
#include "output/run_merge.h"
#include "output/sinks.h"
#include "plan/plan.h"
#include "synth/synth.h"
#include "test_util.h"

extern char** environ;

#if defined(__SANITIZE_THREAD__)
constexpr bool k_thread_sanitizer = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr bool k_thread_sanitizer = true;
#else
constexpr bool k_thread_sanitizer = false;
#endif
#else
constexpr bool k_thread_sanitizer = false;
#endif

// cli/signals.h's k_term_grace_s (the CLI is not a library the tests link).
constexpr int k_term_grace_s_for_tests = 3;

namespace llmerge {
namespace {

using testing::error_of;

namespace fs = std::filesystem;
using testing::TempDir;
using Clock = std::chrono::steady_clock;

SynthOptions small_model(std::uint64_t seed) {
  SynthOptions o;
  o.layers = 2;
  o.hidden = 64;
  o.intermediate = 128;
  o.heads = 2;
  o.kv_heads = 1;
  o.vocab = 256;
  o.seed = seed;
  o.threads = 1;
  return o;
}

std::string linear_yaml(const fs::path& a, const fs::path& b) {
  return "merge_method: linear\nmodels:\n  - model: " + a.string() +
         "\n    parameters: {weight: 0.5}\n  - model: " + b.string() +
         "\n    parameters: {weight: 0.5}\n";
}

MergePlan plan_for(const std::string& yaml) {
  return make_plan(parse_config(yaml, "faults.yaml"), PlanSettings{});
}

// Names in `dir` that llmerge leaves only while working: temp dirs and locks.
std::vector<std::string> leftovers(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.find(".llmerge-") != std::string::npos) out.push_back(name);
  }
  return out;
}

class Faults : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    write_synth_model(small_model(1), dir_->path() / "a");
    write_synth_model(small_model(2), dir_->path() / "b");
    ready_ = true;
  }
  static void TearDownTestSuite() { delete dir_; }
  void SetUp() override { ASSERT_TRUE(ready_) << "fixture models could not be made"; }
  static fs::path a() { return dir_->path() / "a"; }
  static fs::path b() { return dir_->path() / "b"; }
  static TempDir* dir_;
  static bool ready_;
};
TempDir* Faults::dir_ = nullptr;
bool Faults::ready_ = false;

// ---- disk full ----

// RLIMIT_FSIZE makes any write past 4 KiB fail with EFBIG, as ENOSPC would on
// a full disk, after the writer has created its files: the failure hits the
// executor's pwrite in the middle of the merge. A child process takes the
// limit so the test runner keeps its own.
TEST_F(Faults, DiskFullMidWriteIsAnIoErrorAndLeavesTheTargetUntouched) {
  TempDir work;
  const fs::path out = work / "out";
  // A previous output, which --force may replace (but only once the new one is complete).
  testing::write_text(out / "config.json", "{}");
  testing::write_text(out / "model.safetensors", "precious");
  const MergePlan plan = plan_for(linear_yaml(a(), b()));
  const fs::path report = work / "report.txt";

  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int code = 10;
    {
      ModelWriter writer(out, plan_tensor_specs(plan), ModelWriterOptions{.force = true});
      ::signal(SIGXFSZ, SIG_IGN);
      const rlimit limit{4096, 4096};
      ::setrlimit(RLIMIT_FSIZE, &limit);
      try {
        WriterSinks sinks(plan, writer);
        execute_plan(plan, sinks, ExecuteOptions{.threads = 1});
        writer.commit();
      } catch (const Error& e) {
        code = e.kind() == ErrorKind::io ? 0 : 11;
        testing::write_text(report, e.what());  // short: under the limit
      }
    }  // the writer's destructor runs here, as it would in llmerge
    ::_exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "child died of signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10: no error, 11: wrong kind";
  const std::string message = testing::read_text(report);
  EXPECT_NE(message.find("cannot write"), std::string::npos) << message;
  EXPECT_NE(message.find("File too large"), std::string::npos) << message;
  EXPECT_EQ(testing::read_text(out / "model.safetensors"), "precious");
  EXPECT_EQ(std::distance(fs::directory_iterator(out), fs::directory_iterator()), 2);
  EXPECT_TRUE(leftovers(work.path()).empty()) << leftovers(work.path())[0];
}

TEST_F(Faults, DiskFullThroughTheCliExitsTwoAndLeavesNothing) {
  TempDir work;
  testing::write_text(work / "m.yaml", linear_yaml(a(), b()));
  std::string log;
  // A few KiB (sh counts ulimit -f in 512- or 1024-byte blocks): shard creation fails.
  // Without SIGXFSZ ignored the CLI would be killed instead.
  const int rc = testing::run_cli(
      "--version >/dev/null; ulimit -f 8; " + std::string(LLMERGE_CLI_PATH) + " run " +
          (work / "m.yaml").string() + " -o " + (work / "out").string() + " --quiet",
      &log);
  EXPECT_EQ(rc, 2) << log;
  EXPECT_NE(log.find("File too large"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(work / "out"));
  EXPECT_TRUE(leftovers(work.path()).empty());
}

// ---- Ctrl-C and SIGTERM ----

class Interrupt : public ::testing::Test {
 protected:
  // Eight inputs (symlinks to one 23 MB model, which llmerge opens as eight
  // models) through dare_ties on one thread, in small chunks: a merge of a
  // few seconds, so a signal lands in the middle of it.
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    SynthOptions o = small_model(3);
    o.layers = 4;
    o.hidden = 512;
    o.intermediate = 1024;
    o.heads = 4;
    o.kv_heads = 2;
    o.vocab = 2048;
    write_synth_model(o, dir_->path() / "base");
    o.seed = 4;
    write_synth_model(o, dir_->path() / "a");
    std::string yaml = "merge_method: dare_ties\nbase_model: base\nmodels:\n";
    for (int i = 0; i < 8; ++i) {
      fs::create_directory_symlink("a", dir_->path() / ("a" + std::to_string(i)));
      yaml += "  - model: a" + std::to_string(i) + "\n    parameters: {weight: 1, density: 0.5}\n";
    }
    testing::write_text(dir_->path() / "slow.yaml", yaml);
    ready_ = true;
  }
  static void TearDownTestSuite() { delete dir_; }
  void SetUp() override { ASSERT_TRUE(ready_) << "fixture models could not be made"; }

  // Starts the merge, waits until its temporary output exists, sends
  // `signum`, and checks the exit: 130, within a second, nothing left.
  static void interrupt_with(int signum, int second_signum = 0) {
    const fs::path root = dir_->path();
    const std::string out = "out-" + std::to_string(signum);
    const std::string cmd = "cd '" + root.string() + "' && exec " + LLMERGE_CLI_PATH +
                            " run slow.yaml -o " + out +
                            " --threads 1 --chunk-elements 65536 --quiet 2>err.txt";
    const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
    pid_t pid = 0;
    ASSERT_EQ(::posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ),
              0);
    // `exec` keeps the pid, so the temp dir is named after it.
    const fs::path temp = root / (out + ".llmerge-tmp-" + std::to_string(pid));
    int status = 0;
    bool exited = false;
    for (const auto start = Clock::now(); !fs::exists(temp);) {
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        exited = true;
        break;
      }
      ASSERT_LT(Clock::now() - start, std::chrono::seconds(60)) << "merge never started";
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ASSERT_FALSE(exited) << "merge ended before the signal: "
                         << testing::read_text(root / "err.txt");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // into the tensors
    ASSERT_EQ(::kill(pid, signum), 0);
    if (second_signum != 0) {
      ASSERT_EQ(::kill(pid, second_signum), 0);  // the impatient user
    }
    const auto sent = Clock::now();
    while (::waitpid(pid, &status, WNOHANG) != pid) {
      if (Clock::now() - sent > std::chrono::seconds(20)) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        FAIL() << "no exit 20 s after the signal";
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    const auto took = Clock::now() - sent;
    ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
    EXPECT_EQ(WEXITSTATUS(status), 128 + signum) << testing::read_text(root / "err.txt");
    EXPECT_LT(took, std::chrono::seconds(1))
        << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
    EXPECT_FALSE(fs::exists(root / out));
    EXPECT_TRUE(leftovers(root).empty()) << leftovers(root)[0];
  }
  static TempDir* dir_;
  static bool ready_;
};
TempDir* Interrupt::dir_ = nullptr;
bool Interrupt::ready_ = false;

TEST_F(Interrupt, SigintMidMergeExits130WithinASecondAndLeavesNothing) {
  interrupt_with(SIGINT);
}

TEST_F(Interrupt, SigtermMidMergeExits143WithinASecondAndLeavesNothing) {
  interrupt_with(SIGTERM);
}

// The terminal closing (SIGHUP) and the reader of our output going away
// (SIGPIPE) end the run as Ctrl-C does.
TEST_F(Interrupt, SighupMidMergeExits129WithinASecondAndLeavesNothing) {
  interrupt_with(SIGHUP);
}

TEST_F(Interrupt, SigpipeMidMergeExits141WithinASecondAndLeavesNothing) {
  interrupt_with(SIGPIPE);
}

// An impatient second Ctrl-C does not cut the cleanup short.
TEST_F(Interrupt, SecondSigintStillCleansUp) {
  interrupt_with(SIGINT, SIGINT);
}

// SIGTERM ends the process even where no cancellation point is reached: here
// llmerge blocks opening a config that is a FIFO nobody writes to.
TEST_F(Interrupt, SigtermEndsTheProcessEvenWhenItIsBlocked) {
  if (k_thread_sanitizer) {
    GTEST_SKIP() << "ThreadSanitizer runs signal handlers only once the blocking call returns";
  }
  TempDir work;
  const fs::path fifo = work / "config.yaml";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  const std::string cmd = "exec " + std::string(LLMERGE_CLI_PATH) + " plan " + fifo.string() +
                          " 2>" + (work / "err.txt").string();
  const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
  pid_t pid = 0;
  ASSERT_EQ(::posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // blocked in open()
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, WNOHANG), 0) << "it did not block";
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  const auto sent = Clock::now();
  while (::waitpid(pid, &status, WNOHANG) != pid) {
    if (Clock::now() - sent > std::chrono::seconds(20)) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      FAIL() << "SIGTERM did not end the process";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 143);
  EXPECT_LT(Clock::now() - sent, std::chrono::seconds(k_term_grace_s_for_tests + 2));
}

// ---- inputs that change during the merge ----

TEST_F(Faults, InputTruncatedAfterPlanningIsAnIoErrorNotSigbus) {
  TempDir work;
  fs::copy(a(), work / "a", fs::copy_options::recursive);
  const MergePlan plan = plan_for(linear_yaml(work / "a", b()));
  const fs::path shard = work / "a" / "model.safetensors";
  fs::resize_file(shard, fs::file_size(shard) / 2);
  ErrorKind kind{};
  const std::string message = error_of(
      [&] { run_merge(plan, RunSettings{.out_dir = work / "out", .execute = {.threads = 2}}); },
      &kind);
  EXPECT_EQ(kind, ErrorKind::io) << message;
  EXPECT_NE(message.find("the file ended at byte"), std::string::npos) << message;
  EXPECT_NE(message.find("truncated or replaced"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(work / "out"));
  EXPECT_TRUE(leftovers(work.path()).empty());
}

// Replacing a file by rename (as a re-download does) leaves the open file
// intact: the merge reads the data it planned with, consistently.
TEST_F(Faults, InputReplacedByRenameAfterPlanningMergesTheOriginalData) {
  TempDir work;
  fs::copy(a(), work / "a", fs::copy_options::recursive);
  const MergePlan plan = plan_for(linear_yaml(work / "a", b()));
  const fs::path shard = work / "a" / "model.safetensors";
  testing::write_text(work / "junk", "not a model");
  fs::rename(work / "junk", shard);
  run_merge(plan, RunSettings{.out_dir = work / "out", .execute = {.threads = 1}});
  TempDir clean;
  run_merge(plan_for(linear_yaml(a(), b())),
            RunSettings{.out_dir = clean / "out", .execute = {.threads = 1}});
  EXPECT_EQ(testing::read_text(work / "out" / "model.safetensors"),
            testing::read_text(clean / "out" / "model.safetensors"));
}

// ---- output overlapping an input ----

TEST_F(Faults, OutputEqualToAnInputModelIsRefusedBeforeAnyWork) {
  const MergePlan plan = plan_for(linear_yaml(a(), b()));
  ErrorKind kind{};
  const std::string message = error_of(
      [&] { run_merge(plan, RunSettings{.out_dir = a(), .writer = {.force = true}}); }, &kind);
  EXPECT_EQ(kind, ErrorKind::config) << message;
  EXPECT_NE(message.find("is input model"), std::string::npos) << message;
  EXPECT_TRUE(fs::exists(a() / "model.safetensors"));
  EXPECT_TRUE(leftovers(a().parent_path()).empty());
}

TEST_F(Faults, OutputContainingAnInputModelIsRefusedBeforeAnyWork) {
  const MergePlan plan = plan_for(linear_yaml(a(), b()));
  ErrorKind kind{};
  const std::string message = error_of(
      [&] {
        run_merge(plan, RunSettings{.out_dir = a().parent_path(), .writer = {.force = true}});
      },
      &kind);
  EXPECT_EQ(kind, ErrorKind::config) << message;
  EXPECT_NE(message.find("contains input model"), std::string::npos) << message;
  EXPECT_TRUE(fs::exists(a() / "model.safetensors"));
  EXPECT_TRUE(leftovers(a().parent_path().parent_path()).empty());
}

// The same folder reached through a symlink is still the input.
TEST_F(Faults, OutputThatIsASymlinkToAnInputModelIsRefused) {
  TempDir work;
  fs::create_directory_symlink(a(), work / "link");
  const MergePlan plan = plan_for(linear_yaml(a(), b()));
  const std::string message = error_of(
      [&] { run_merge(plan, RunSettings{.out_dir = work / "link", .writer = {.force = true}}); });
  EXPECT_NE(message.find("is input model"), std::string::npos) << message;
  EXPECT_TRUE(fs::exists(a() / "model.safetensors"));
}

// ---- two runs, one output ----

TEST_F(Faults, SecondWriterToTheSameOutputIsRefusedAndTheFirstCompletes) {
  TempDir work;
  const MergePlan plan = plan_for(linear_yaml(a(), b()));
  const auto specs = plan_tensor_specs(plan);
  {
    ModelWriter first(work / "out", specs);
    EXPECT_TRUE(fs::exists(work / "out.llmerge-lock"));
    ErrorKind kind{};
    const std::string message =
        error_of([&] { ModelWriter second(work / "out", specs, {.force = true}); }, &kind);
    EXPECT_EQ(kind, ErrorKind::io) << message;
    EXPECT_NE(message.find("another llmerge run (pid " + std::to_string(::getpid()) + ")"),
              std::string::npos)
        << message;
    WriterSinks sinks(plan, first);
    execute_plan(plan, sinks, ExecuteOptions{.threads = 1});
    first.commit();
  }
  EXPECT_NO_THROW(Model::open(work / "out"));
  EXPECT_TRUE(leftovers(work.path()).empty()) << leftovers(work.path())[0];
  // Released: a later run may replace it.
  EXPECT_NO_THROW(run_merge(plan, RunSettings{.out_dir = work / "out", .writer = {.force = true}}));
}

// Another process holding the lock (as a running llmerge does) makes the CLI
// refuse with exit 2 before writing anything.
TEST_F(Faults, CliRefusesAnOutputLockedByAnotherProcess) {
  TempDir work;
  testing::write_text(work / "m.yaml", linear_yaml(a(), b()));
  const int fd = ::open((work / "out.llmerge-lock").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "4242\n", 5), 5);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  std::string log;
  const int rc = testing::run_cli(
      "run " + (work / "m.yaml").string() + " -o " + (work / "out").string(), &log);
  ::close(fd);
  EXPECT_EQ(rc, 2) << log;
  EXPECT_NE(log.find("another llmerge run (pid 4242) is writing this output"), std::string::npos)
      << log;
  EXPECT_FALSE(fs::exists(work / "out"));
}

TEST_F(Faults, StaleLockFileOfADeadProcessIsTakenOver) {
  TempDir work;
  testing::write_text(work / "out.llmerge-lock", "999999999\n");  // nobody holds it
  run_merge(plan_for(linear_yaml(a(), b())), RunSettings{.out_dir = work / "out"});
  EXPECT_NO_THROW(Model::open(work / "out"));
  EXPECT_FALSE(fs::exists(work / "out.llmerge-lock"));
}

// ---- unreadable inputs ----

TEST_F(Faults, UnreadableShardIsAnIoErrorNamingTheFile) {
  if (::geteuid() == 0) GTEST_SKIP() << "running as root: file permissions do not block reads";
  TempDir work;
  fs::copy(a(), work / "a", fs::copy_options::recursive);
  fs::permissions(work / "a" / "model.safetensors", fs::perms::none);
  ErrorKind kind{};
  const std::string message = error_of([&] { Model::open(work / "a"); }, &kind);
  fs::permissions(work / "a" / "model.safetensors", fs::perms::owner_all);
  EXPECT_EQ(kind, ErrorKind::io) << message;
  EXPECT_NE(message.find("model.safetensors: cannot open: Permission denied"), std::string::npos)
      << message;
}

TEST_F(Faults, UnreadableConfigJsonIsAnIoError) {
  if (::geteuid() == 0) GTEST_SKIP() << "running as root: file permissions do not block reads";
  TempDir work;
  fs::copy(a(), work / "a", fs::copy_options::recursive);
  fs::permissions(work / "a" / "config.json", fs::perms::none);
  ErrorKind kind{};
  const std::string message = error_of([&] { Model::open(work / "a"); }, &kind);
  fs::permissions(work / "a" / "config.json", fs::perms::owner_all);
  EXPECT_EQ(kind, ErrorKind::io) << message;
  EXPECT_NE(message.find("config.json"), std::string::npos) << message;
}

// What root cannot be denied: a shard that is a directory is still refused clearly.
TEST_F(Faults, ShardThatIsADirectoryIsAnIoError) {
  TempDir work;
  fs::copy(a(), work / "a", fs::copy_options::recursive);
  fs::remove(work / "a" / "model.safetensors");
  fs::create_directory(work / "a" / "model.safetensors");
  ErrorKind kind{};
  const std::string message = error_of([&] { Model::open(work / "a"); }, &kind);
  EXPECT_EQ(kind, ErrorKind::io) << message;
  EXPECT_NE(message.find("is a directory, not a safetensors file"), std::string::npos) << message;
}

TEST_F(Faults, DanglingSymlinkAsTheWeightsFileIsAnIoError) {
  TempDir work;
  fs::copy(a() / "config.json", work / "config.json");
  fs::create_symlink(work / "gone.safetensors", work / "model.safetensors");
  ErrorKind kind{};
  const std::string message = error_of([&] { Model::open(work.path()); }, &kind);
  EXPECT_EQ(kind, ErrorKind::io) << message;
  EXPECT_NE(message.find("cannot open: No such file or directory"), std::string::npos) << message;
}

TEST_F(Faults, DanglingSymlinkAsTheModelFolderIsNotFound) {
  TempDir work;
  fs::create_directory_symlink(work / "gone", work / "model");
  ErrorKind kind{};
  const std::string message = error_of([&] { Model::open(work / "model", "org/model"); }, &kind);
  EXPECT_EQ(kind, ErrorKind::io) << message;
  EXPECT_NE(message.find("model 'org/model' not found"), std::string::npos) << message;
}

}  // namespace
}  // namespace llmerge
