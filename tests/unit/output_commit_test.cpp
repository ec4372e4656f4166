// Committing the output, and the untrusted files copied into it
// (docs/RELIABILITY.md, "Committing the output"; issue 12, classes 8-14, 18,
// 22, 24). Tests that need mount(2) skip themselves where it is not allowed.
#include <gtest/gtest.h>

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "config/config.h"
#include "core/error.h"
#include "io/files.h"
#include "io/model.h"
#include "output/layout.h"
#include "output/run_merge.h"
#include "output/sinks.h"
#include "plan/plan.h"
#include "synth/synth.h"
#include "test_util.h"

namespace llmerge {
namespace {

using testing::contains;
using testing::error_of;

namespace fs = std::filesystem;
using testing::TempDir;
using Clock = std::chrono::steady_clock;

std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> leftovers(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& name : listing(dir)) {
    if (contains(name, ".llmerge-")) out.push_back(name);
  }
  return out;
}

// A mount that is undone when the test ends; ok() is false where mounting is not allowed.
class Mount {
 public:
  Mount(const std::string& source, const fs::path& target, const char* type, unsigned long flags,
        const char* data = nullptr)
      : target_(target) {
    ok_ = ::mount(source.c_str(), target.c_str(), type, flags, data) == 0;
  }
  ~Mount() {
    if (ok_) ::umount2(target_.c_str(), MNT_DETACH);
  }
  bool ok() const { return ok_; }

 private:
  fs::path target_;
  bool ok_ = false;
};

class OutputCommit : public ::testing::Test {
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
    ready_ = true;
  }
  static void TearDownTestSuite() { delete dir_; }
  void SetUp() override { ASSERT_TRUE(ready_) << "fixture models could not be made"; }
  static fs::path a() { return dir_->path() / "a"; }
  static fs::path b() { return dir_->path() / "b"; }
  static std::string linear(const fs::path& x, const fs::path& y) {
    return "merge_method: linear\nmodels:\n  - model: " + x.string() +
           "\n    parameters: {weight: 0.5}\n  - model: " + y.string() +
           "\n    parameters: {weight: 0.5}\n";
  }
  static MergePlan plan(const std::string& yaml) {
    return make_plan(parse_config(yaml, "m.yaml"), PlanSettings{});
  }
  static TempDir* dir_;
  static bool ready_;
};
TempDir* OutputCommit::dir_ = nullptr;
bool OutputCommit::ready_ = false;

// ---- 8: the shards are checked at the rename ----

TEST_F(OutputCommit, TempFolderRemovedMidRunFailsTheCommitInsteadOfAnEmptyOutput) {
  TempDir work;
  const MergePlan p = plan(linear(a(), b()));
  ModelWriter writer(work / "out", plan_tensor_specs(p));
  WriterSinks sinks(p, writer);
  execute_plan(p, sinks, ExecuteOptions{.threads = 1});
  fs::remove_all(writer.temp_dir());  // a cleanup script, mid-run
  ErrorKind kind{};
  const std::string message = error_of(
      [&] {
        writer.write_file("config.json", "{}");
        writer.commit();
      },
      &kind);
  EXPECT_EQ(kind, ErrorKind::io) << message;
  EXPECT_FALSE(fs::exists(work / "out"));
}

TEST_F(OutputCommit, ShardRemovedOrTruncatedMidRunFailsTheCommit) {
  for (const bool truncate : {false, true}) {
    TempDir work;
    const MergePlan p = plan(linear(a(), b()));
    ModelWriter writer(work / "out", plan_tensor_specs(p));
    WriterSinks sinks(p, writer);
    execute_plan(p, sinks, ExecuteOptions{.threads = 1});
    const fs::path shard = writer.temp_dir() / "model.safetensors";
    if (truncate) {
      fs::resize_file(shard, 100);
    } else {
      fs::remove(shard);
    }
    const std::string message = error_of([&] { writer.commit(); });
    EXPECT_TRUE(contains(message, truncate ? "is 100 bytes, not" : "is missing")) << message;
    EXPECT_TRUE(contains(message, "the output was not written")) << message;
    EXPECT_FALSE(fs::exists(work / "out"));
  }
}

// ---- 9: the lock never follows a symlink ----

TEST(OutputCommitLock, SymlinkPlantedAtTheLockPathIsNotFollowed) {
  TempDir work;
  testing::write_text(work / "victim", "precious");
  fs::create_symlink(work / "victim", work / "out.llmerge-lock");
  ErrorKind kind{};
  const std::string message = error_of(
      [&] {
        ModelWriter writer(work / "out", {{"a", DType::U8, {2}}});
      },
      &kind);
  EXPECT_EQ(kind, ErrorKind::io) << message;
  EXPECT_TRUE(contains(message, "is a symlink")) << message;
  EXPECT_EQ(testing::read_text(work / "victim"), "precious");
  EXPECT_FALSE(fs::exists(work / "out"));
}

// ---- 10: --force replaces only a previous output ----

TEST_F(OutputCommit, ForceRefusesAFolderThatIsNotAPreviousOutput) {
  TempDir work;
  testing::write_text(work / "out" / "merge.yaml", linear(a(), b()));
  std::string log;
  const std::string cfg = (work / "out" / "merge.yaml").string();
  const int rc =
      testing::run_cli("run " + cfg + " -o " + (work / "out").string() + " --force --quiet", &log);
  EXPECT_EQ(rc, 2) << log;
  EXPECT_TRUE(contains(log, "'merge.yaml' is not a file llmerge writes")) << log;
  EXPECT_EQ(listing(work / "out"), std::vector<std::string>{"merge.yaml"});
  // A folder inside is not something llmerge writes either.
  TempDir other;
  fs::create_directories(other / "out" / "checkpoints");
  testing::write_text(other / "out" / "model.safetensors", "x");
  const std::string message = error_of([&] {
    ModelWriter writer(other / "out", {{"a", DType::U8, {2}}}, ModelWriterOptions{.force = true});
  });
  EXPECT_TRUE(contains(message, "'checkpoints' is a folder")) << message;
  // A previous output is replaced.
  TempDir rerun;
  ASSERT_EQ(testing::run_cli("run " + cfg + " -o " + (rerun / "out").string() + " --quiet", &log),
            0)
      << log;
  EXPECT_EQ(
      testing::run_cli("run " + cfg + " -o " + (rerun / "out").string() + " --force --quiet", &log),
      0)
      << log;
}

// ---- 12: the temporary folder is on the output's file system ----

TEST(OutputCommitMounts, OutputThatIsAMountPointIsRefusedBeforeAnyWork) {
  TempDir work;
  fs::create_directories(work / "mnt");
  Mount tmpfs("tmpfs", work / "mnt", "tmpfs", 0, "size=1m");
  if (!tmpfs.ok()) GTEST_SKIP() << "mount(2) not permitted here";
  ErrorKind kind{};
  const std::string message = error_of(
      [&] {
        ModelWriter writer(work / "mnt", {{"a", DType::U8, {2}}});
      },
      &kind);
  EXPECT_EQ(kind, ErrorKind::io) << message;
  EXPECT_TRUE(contains(message, "is a mount point")) << message;
  EXPECT_EQ(listing(work.path()), std::vector<std::string>{"mnt"});  // no temp folder, no lock
  // A folder inside the mount works.
  {
    ModelWriter writer(work / "mnt" / "model", {{"a", DType::U8, {2}}});
    const unsigned char bytes[2] = {1, 2};
    writer.write(0, 0, bytes, 2);
    writer.commit();
  }
  EXPECT_TRUE(fs::exists(work / "mnt" / "model" / "model.safetensors"));
}

// ---- 13: outputs that resolve onto an input or elsewhere ----

TEST_F(OutputCommit, OutputBindMountedOntoAnInputIsRefusedBeforeAnyWork) {
  TempDir work;
  fs::create_directories(work / "out");
  Mount bind(a().string(), work / "out", nullptr, MS_BIND);
  if (!bind.ok()) GTEST_SKIP() << "mount(2) not permitted here";
  const MergePlan p = plan(linear(a(), b()));
  for (const fs::path& out : {work / "out", work / "out" / "sub"}) {
    const std::string message =
        error_of([&] { run_merge(p, RunSettings{.out_dir = out, .writer = {.force = true}}); });
    EXPECT_TRUE(contains(message, out == work / "out" ? "is input model" : "is inside input model"))
        << message;
  }
  EXPECT_TRUE(fs::exists(a() / "model.safetensors"));
  EXPECT_TRUE(leftovers(work.path()).empty());
}

TEST_F(OutputCommit, OutputThatIsASymlinkToAnotherFolderIsRefusedBeforeAnyWork) {
  TempDir work;
  fs::create_directories(work / "elsewhere");
  fs::create_directory_symlink(work / "elsewhere", work / "out");
  const MergePlan p = plan(linear(a(), b()));
  ErrorKind kind{};
  const std::string message =
      error_of([&] { run_merge(p, RunSettings{.out_dir = work / "out"}); }, &kind);
  EXPECT_EQ(kind, ErrorKind::config) << message;
  EXPECT_TRUE(contains(message, "is a symlink")) << message;
  EXPECT_TRUE(leftovers(work.path()).empty());
  EXPECT_TRUE(fs::is_empty(work / "elsewhere"));
}

// ---- 14: stale temporary folders ----

TEST(OutputCommitStale, TempFoldersOfAKilledRunAreRemovedAndReportedWithTheirSize) {
  TempDir work;
  testing::write_text(work / "out.llmerge-tmp-99999" / "model.safetensors", std::string(1000, 'x'));
  fs::create_directories(work / "out.llmerge-old-12345");
  testing::write_text(work / "out.llmerge-tmp-notapid" / "keep", "mine");
  testing::write_text(work / "other.llmerge-tmp-1" / "keep", "mine");
  std::vector<std::string> notes;
  ModelWriterOptions options;
  options.note = [&](const std::string& n) { notes.push_back(n); };
  {
    ModelWriter writer(work / "out", {{"a", DType::U8, {2}}}, options);
    EXPECT_FALSE(fs::exists(work / "out.llmerge-tmp-99999"));
    EXPECT_FALSE(fs::exists(work / "out.llmerge-old-12345"));
  }
  EXPECT_TRUE(fs::exists(work / "out.llmerge-tmp-notapid" / "keep"));
  EXPECT_TRUE(fs::exists(work / "other.llmerge-tmp-1" / "keep"));
  ASSERT_EQ(notes.size(), 2u);
  const std::string all = notes[0] + notes[1];
  EXPECT_TRUE(contains(all, "out.llmerge-tmp-99999' (1000 bytes)")) << all;
  EXPECT_TRUE(contains(all, "interrupted llmerge run")) << all;
}

// ---- 22: a loose .safetensors file as an input ----

TEST_F(OutputCommit, LooseSafetensorsInputProtectsTheFileNotItsFolder) {
  TempDir work;
  fs::copy_file(a() / "model.safetensors", work / "x.safetensors");
  const MergePlan p = plan(linear(work / "x.safetensors", b()));
  EXPECT_NO_THROW(check_output_path(p, work / "out"));
  EXPECT_TRUE(contains(error_of([&] { check_output_path(p, work.path()); }), "contains input"));
  EXPECT_TRUE(
      contains(error_of([&] { check_output_path(p, work / "x.safetensors"); }), "is input model"));
}

// ---- 24: the real cause of a failed copy ----

TEST(OutputCommitErrors, CopyOntoAFullDeviceSaysNoSpaceLeftOnDevice) {
  TempDir work;
  testing::write_text(work / "tokenizer.json", std::string(100000, 'x'));
  const std::string message =
      error_of([&] { copy_regular_file(work / "tokenizer.json", "/dev/full"); });
  EXPECT_TRUE(contains(message, "No space left on device")) << message;
}

TEST_F(OutputCommit, SideFileCopyOnAFullFileSystemSaysNoSpaceLeftOnDevice) {
  TempDir work;
  fs::create_directories(work / "mnt");
  fs::copy(a(), work / "a", fs::copy_options::recursive);
  // A side file larger than the room left on a 2 MiB file system.
  testing::write_text(work / "a" / "tokenizer.model", std::string(3 << 20, 'x'));
  Mount tmpfs("tmpfs", work / "mnt", "tmpfs", 0, "size=2m");
  if (!tmpfs.ok()) GTEST_SKIP() << "mount(2) not permitted here";
  const MergePlan p = plan(linear(work / "a", b()));
  const std::string message =
      error_of([&] { run_merge(p, RunSettings{.out_dir = work / "mnt" / "out"}); });
  EXPECT_TRUE(contains(message, "No space left on device")) << message;
  EXPECT_FALSE(contains(message, "Input/output error")) << message;
  EXPECT_TRUE(listing(work / "mnt").empty());
}

// ---- 11: side files are untrusted ----

TEST_F(OutputCommit, SideFileSymlinkOutOfTheModelFolderIsRefused) {
  TempDir work;
  fs::copy(a(), work / "a", fs::copy_options::recursive);
  testing::write_text(work / "secret", "{}");
  fs::remove(work / "a" / "generation_config.json");
  fs::create_symlink(work / "secret", work / "a" / "generation_config.json");
  const MergePlan p = plan(linear(work / "a", b()));
  ErrorKind kind{};
  const std::string message =
      error_of([&] { run_merge(p, RunSettings{.out_dir = work / "out"}); }, &kind);
  EXPECT_EQ(kind, ErrorKind::io) << message;
  EXPECT_TRUE(contains(message, "outside the model folder")) << message;
  EXPECT_FALSE(fs::exists(work / "out"));
}

TEST_F(OutputCommit, HfCacheSnapshotSymlinksIntoTheBlobStoreAreCopied) {
  TempDir work;
  const fs::path repo = work / "hub" / "models--org--name";
  const fs::path snapshot = repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567";
  fs::create_directories(snapshot);
  fs::create_directories(repo / "blobs");
  int n = 0;
  for (const auto& e : fs::directory_iterator(a())) {
    const fs::path blob = repo / "blobs" / ("blob" + std::to_string(n++));
    fs::copy_file(e.path(), blob);
    fs::create_symlink(fs::path("../../blobs") / blob.filename(), snapshot / e.path().filename());
  }
  const MergePlan p = plan(linear(snapshot, b()));
  run_merge(p, RunSettings{.out_dir = work / "out"});
  EXPECT_EQ(testing::read_text(work / "out" / "tokenizer.json"),
            testing::read_text(a() / "tokenizer.json"));
  EXPECT_FALSE(fs::is_symlink(work / "out" / "tokenizer.json"));
}

TEST_F(OutputCommit, DeeplyNestedTokenizerConfigIsAFormatErrorNotACrash) {
  TempDir work;
  fs::copy(a(), work / "a", fs::copy_options::recursive);
  testing::write_text(work / "a" / "tokenizer_config.json", std::string(200000, '['));
  const std::string yaml = linear(work / "a", b()) + "chat_template: chatml\n";
  ErrorKind kind{};
  const std::string message = error_of([&] { plan(yaml); }, &kind);
  EXPECT_EQ(kind, ErrorKind::format) << message;
  EXPECT_TRUE(contains(message, "nested more than 1000 levels")) << message;
}

TEST_F(OutputCommit, OversizedSideFileIsRefused) {
  TempDir work;
  fs::copy(a(), work / "a", fs::copy_options::recursive);
  { std::ofstream(work / "a" / "merges.txt").put('x'); }
  fs::resize_file(work / "a" / "merges.txt", k_copy_file_max + 1);  // sparse
  const MergePlan p = plan(linear(work / "a", b()));
  const std::string message = error_of([&] { run_merge(p, RunSettings{.out_dir = work / "out"}); });
  EXPECT_TRUE(contains(message, "over the 100000000 byte limit")) << message;
  EXPECT_FALSE(fs::exists(work / "out"));
}

// ---- 18: FIFOs and devices on the lookup path ----

TEST_F(OutputCommit, FifoAsASideFileIsRefusedWithoutBlocking) {
  TempDir work;
  fs::copy(a(), work / "a", fs::copy_options::recursive);
  fs::remove(work / "a" / "tokenizer.json");
  ASSERT_EQ(::mkfifo((work / "a" / "tokenizer.json").c_str(), 0644), 0);
  const auto start = Clock::now();
  const std::string message = error_of([&] { plan(linear(work / "a", b())); });
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  EXPECT_TRUE(contains(message, "not a regular file")) << message;
}

TEST_F(OutputCommit, FifoAsConfigJsonOrHfCacheRefIsRefusedWithoutBlocking) {
  TempDir work;
  fs::copy(a(), work / "a", fs::copy_options::recursive);
  fs::remove(work / "a" / "config.json");
  ASSERT_EQ(::mkfifo((work / "a" / "config.json").c_str(), 0644), 0);
  auto start = Clock::now();
  std::string message = error_of([&] { Model::open(work / "a"); });
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  EXPECT_TRUE(contains(message, "is a FIFO, not a regular file")) << message;

  const fs::path repo = work / "hub" / "models--org--name";
  fs::create_directories(repo / "refs");
  ASSERT_EQ(::mkfifo((repo / "refs" / "main").c_str(), 0644), 0);
  ::setenv("HF_HUB_CACHE", (work / "hub").c_str(), 1);
  start = Clock::now();
  message = error_of([&] { resolve_model_reference("org/name"); });
  ::unsetenv("HF_HUB_CACHE");
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  EXPECT_TRUE(contains(message, "is a FIFO, not a regular file")) << message;
}

}  // namespace
}  // namespace llmerge
