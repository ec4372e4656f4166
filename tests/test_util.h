// Small helpers shared by the tests.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "llmerge/error.h"

namespace llmerge::testing {

// Sanitizer builds (make test-sanitize: Debug + ASan) run 20-50x slower;
// tests that bound wall-clock time multiply their limits by this.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr int k_sanitizer_slowdown = 10;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr int k_sanitizer_slowdown = 10;
#else
inline constexpr int k_sanitizer_slowdown = 1;
#endif
#else
inline constexpr int k_sanitizer_slowdown = 1;
#endif

// A fresh directory, removed when the object goes out of scope.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    const char* root = std::getenv("LLMERGE_TEST_TMP");
    std::filesystem::path base = root ? root : std::filesystem::temp_directory_path();
    path_ = base / ("llmerge-test-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out << text;
}

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs the llmerge CLI built alongside the tests; returns the exit code and
// fills `output` with stdout+stderr.
inline int run_cli(const std::string& args, std::string* output = nullptr) {
  TempDir tmp;
  const auto log = tmp / "out.txt";
  const std::string cmd =
      std::string(LLMERGE_CLI_PATH) + " " + args + " >" + log.string() + " 2>&1";
  const int status = std::system(cmd.c_str());
  if (output) *output = read_text(log);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The message of the llmerge::Error that `f` throws (and its kind), or
// "(no error)".
inline std::string error_of(const std::function<void()>& f, ErrorKind* kind = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (kind) *kind = e.kind();
    return e.what();
  }
  return "(no error)";
}

}  // namespace llmerge::testing
