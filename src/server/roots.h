// The folders the web server may touch, and the one check every path goes
// through before the server reads or writes anything.
//
// Rule (docs/serve.md, RELIABILITY rows 90-): a path is resolved with every
// symlink followed (realpath) and only then compared, component by component,
// with the resolved roots. Reads may reach the roots and the local Hugging Face
// cache; writes (merge outputs) only the roots. An output's parent must exist
// and resolve inside a root, and its last component must be a plain name that
// is not a symlink, so the folder the writer creates is the one we checked.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace llmerge::server {

class Roots {
 public:
  // Resolves every root (each must be an existing folder). `hf_cache` may be
  // empty or missing; when it exists it is a read-only root.
  Roots(const std::vector<std::string>& roots, const std::string& hf_cache);

  const std::vector<std::filesystem::path>& roots() const { return roots_; }
  const std::optional<std::filesystem::path>& hf_cache() const { return hf_cache_; }

  // The resolved form of an existing `path` (relative paths against the first
  // root) when it lies in a root or the HF cache; nullopt otherwise, or when it
  // does not exist.
  std::optional<std::filesystem::path> readable(const std::string& path) const;
  // Where a merge may write `path`: its resolved parent joined with its last
  // component. nullopt when the parent is missing or outside every root, the
  // name is empty, "." or "..", the path is a root itself, or it is a symlink.
  std::optional<std::filesystem::path> writable(const std::string& path) const;

  // The first root: relative paths in configs and forms resolve against it.
  const std::filesystem::path& base() const { return roots_.front(); }

 private:
  std::filesystem::path absolute(const std::string& path) const;
  std::vector<std::filesystem::path> roots_;
  std::optional<std::filesystem::path> hf_cache_;
};

// True when `path` is `root` or lies below it (both already resolved).
bool is_within(const std::filesystem::path& path, const std::filesystem::path& root);

// The local Hugging Face hub cache, as huggingface_hub finds it: $HF_HUB_CACHE,
// else $HF_HOME/hub, else ~/.cache/huggingface/hub ("" when none can be named).
std::string default_hf_cache();

}  // namespace llmerge::server
