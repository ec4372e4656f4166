// resolve_model_reference: local paths and the local Hugging Face hub cache.
//
// Cache layout (huggingface_hub, "Understand caching"):
//   <cache>/models--<org>--<name>/refs/<revision>       file holding a commit hash
//   <cache>/models--<org>--<name>/snapshots/<commit>/   the files of that commit
#include <cstdlib>

#include <fmt/core.h>

#include "core/error.h"
#include "io/files.h"
#include "io/model.h"

namespace llmerge {

namespace fs = std::filesystem;

namespace {

struct HubId {
  std::string org;
  std::string name;
  std::string revision;  // empty: "main"
};

bool is_safe_component(std::string_view s) {
  return !s.empty() && s != "." && s != ".." && s.find('\\') == std::string_view::npos &&
         s.find('\0') == std::string_view::npos;
}

// "org/name[@revision]": exactly one '/', no leading '.' or '/'.
std::optional<HubId> parse_hub_id(std::string_view reference) {
  if (reference.empty() || reference.front() == '.' || reference.front() == '/' ||
      reference.front() == '~') {
    return std::nullopt;
  }
  HubId id;
  if (const auto at = reference.find('@'); at != std::string_view::npos) {
    id.revision = reference.substr(at + 1);
    reference = reference.substr(0, at);
    if (id.revision.empty()) return std::nullopt;
    // Branch names may contain '/' ("refs/pr/1"), but no component may climb out.
    std::string_view rest = id.revision;
    while (true) {
      const auto slash = rest.find('/');
      if (!is_safe_component(rest.substr(0, slash))) return std::nullopt;
      if (slash == std::string_view::npos) break;
      rest.remove_prefix(slash + 1);
    }
  }
  const auto slash = reference.find('/');
  if (slash == std::string_view::npos || reference.find('/', slash + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  id.org = reference.substr(0, slash);
  id.name = reference.substr(slash + 1);
  if (!is_safe_component(id.org) || !is_safe_component(id.name)) return std::nullopt;
  return id;
}

bool is_commit_hash(std::string_view s) {
  return s.size() == 40 && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

fs::path hub_cache_dir() {
  for (const char* var : {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"}) {
    if (const char* v = std::getenv(var); v && *v) return v;
  }
  if (const char* home = std::getenv("HF_HOME"); home && *home) return fs::path(home) / "hub";
  if (const char* home = std::getenv("HOME"); home && *home) {
    return fs::path(home) / ".cache" / "huggingface" / "hub";
  }
  return {};
}

// The commit named by a ref file; "" if there is none. A FIFO or device in
// its place is refused without blocking (read_regular_file).
std::string read_ref(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(path, ec)) || !fs::exists(fs::status(path, ec))) return "";
  std::string hash = read_regular_file(path, 4096);
  if (const auto eol = hash.find('\n'); eol != std::string::npos) hash.resize(eol);
  while (!hash.empty() && (hash.back() == '\r' || hash.back() == ' ' || hash.back() == '\t')) {
    hash.pop_back();
  }
  return hash;
}

}  // namespace

fs::path resolve_model_reference(std::string_view reference, const fs::path& base_dir) {
  if (reference.empty()) throw Error(ErrorKind::io, "empty model reference");
  std::vector<std::string> looked;
  std::error_code ec;

  const fs::path as_path(reference);
  std::vector<fs::path> local;
  if (as_path.is_absolute()) {
    local.push_back(as_path);
  } else {
    if (!base_dir.empty()) local.push_back(base_dir / as_path);
    if (base_dir.empty() || fs::absolute(base_dir, ec) != fs::current_path(ec)) {
      local.push_back(as_path);
    }
  }
  for (const auto& candidate : local) {
    if (fs::exists(candidate, ec)) return candidate.lexically_normal();
    // A relative path is looked up relative to the current directory
    // (mergekit's rule); say so, since that is rarely where the config is.
    looked.push_back(candidate.is_relative()
                         ? fmt::format("{} (a local path, relative to the current directory {})",
                                       candidate.string(), fs::current_path(ec).string())
                         : fmt::format("{} (a local path)", candidate.string()));
  }

  const auto id = parse_hub_id(reference);
  if (id) {
    const fs::path cache = hub_cache_dir();
    if (cache.empty()) {
      looked.push_back("the Hugging Face cache (neither HF_HUB_CACHE, HF_HOME nor HOME is set)");
    } else {
      const fs::path repo = cache / fmt::format("models--{}--{}", id->org, id->name);
      const std::string revision = id->revision.empty() ? "main" : id->revision;
      if (is_commit_hash(revision)) {
        const fs::path snapshot = repo / "snapshots" / revision;
        if (fs::is_directory(snapshot, ec)) return snapshot;
        looked.push_back(snapshot.string());
      }
      const fs::path ref = repo / "refs" / revision;
      const std::string hash = read_ref(ref);
      if (hash.empty()) {
        looked.push_back(fmt::format("{} (revision '{}')", ref.string(), revision));
      } else if (!is_safe_component(hash) || hash.find('/') != std::string::npos) {
        throw Error(ErrorKind::format, fmt::format("'{}' is not a commit hash", hash),
                    {.file = ref.string()});
      } else {
        const fs::path snapshot = repo / "snapshots" / hash;
        if (fs::is_directory(snapshot, ec)) return snapshot;
        looked.push_back(fmt::format("{} (named by {})", snapshot.string(), ref.string()));
      }
    }
  }

  std::string message = fmt::format("model '{}' not found; looked in:", reference);
  for (const auto& place : looked)
    message += "\n  " + place;
  if (id) {
    message += fmt::format("\n  download it with: hf download {}/{}", id->org, id->name);
    if (!id->revision.empty()) message += " --revision " + id->revision;
  }
  throw Error(ErrorKind::io, message);
}

}  // namespace llmerge
