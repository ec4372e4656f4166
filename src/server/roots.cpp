#include "roots.h"

#include <sys/stat.h>

#include <cstdlib>
#include <system_error>

#include "llmerge/error.h"

namespace llmerge::server {

namespace fs = std::filesystem;

namespace {

// realpath(): every symlink resolved; nullopt when the path does not exist.
std::optional<fs::path> resolved(const fs::path& path) {
  std::error_code ec;
  fs::path p = fs::canonical(path, ec);
  if (ec) return std::nullopt;
  return p;
}

}  // namespace

bool is_within(const fs::path& path, const fs::path& root) {
  auto p = path.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++p) {
    if (r->empty()) continue;  // a trailing separator
    if (p == path.end() || *p != *r) return false;
  }
  return true;
}

std::string default_hf_cache() {
  if (const char* hub = std::getenv("HF_HUB_CACHE"); hub && *hub) return hub;
  if (const char* home = std::getenv("HF_HOME"); home && *home) return (fs::path(home) / "hub");
  if (const char* home = std::getenv("HOME"); home && *home) {
    return fs::path(home) / ".cache" / "huggingface" / "hub";
  }
  return "";
}

Roots::Roots(const std::vector<std::string>& roots, const std::string& hf_cache) {
  for (const auto& r : roots) {
    const auto p = resolved(r);
    std::error_code ec;
    if (!p || !fs::is_directory(*p, ec)) {
      throw Error(ErrorKind::io, "root '" + r + "' is not an existing folder");
    }
    roots_.push_back(*p);
  }
  if (roots_.empty()) throw Error(ErrorKind::config, "give at least one --root folder");
  if (!hf_cache.empty()) {
    if (const auto p = resolved(hf_cache)) hf_cache_ = *p;
  }
}

fs::path Roots::absolute(const std::string& path) const {
  const fs::path p(path);
  return p.is_absolute() ? p : base() / p;
}

std::optional<fs::path> Roots::readable(const std::string& path) const {
  if (path.empty() || path.find('\0') != std::string::npos) return std::nullopt;
  const auto p = resolved(absolute(path));
  if (!p) return std::nullopt;
  for (const auto& r : roots_) {
    if (is_within(*p, r)) return p;
  }
  if (hf_cache_ && is_within(*p, *hf_cache_)) return p;
  return std::nullopt;
}

std::optional<fs::path> Roots::writable(const std::string& path) const {
  if (path.empty() || path.find('\0') != std::string::npos) return std::nullopt;
  fs::path p = absolute(path);
  while (!p.empty() && p.filename().empty())
    p = p.parent_path();  // "out/" names "out"
  const fs::path name = p.filename();
  if (name.empty() || name == "." || name == "..") return std::nullopt;
  const auto parent = resolved(p.parent_path());
  if (!parent) return std::nullopt;
  const fs::path out = *parent / name;
  struct stat st {};
  if (::lstat(out.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) return std::nullopt;
  for (const auto& r : roots_) {
    if (out != r && is_within(out, r)) return out;
  }
  return std::nullopt;
}

}  // namespace llmerge::server
