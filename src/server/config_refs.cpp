#include "config_refs.h"

#include <filesystem>
#include <regex>

#include "llmerge/llmerge.h"

namespace llmerge::server {

namespace {

// "org/name" or "org/name@revision", as the Hugging Face hub spells repo ids.
bool is_hub_id(const std::string& s) {
  static const std::regex id(
      R"(^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*(@[A-Za-z0-9._/-]+)?$)");
  if (!std::regex_match(s, id)) return false;
  return s.find("..") == std::string::npos;
}

}  // namespace

std::optional<std::string> refuse_reference(const std::string& ref, const Roots& roots) {
  if (ref == "base" || ref == "union" || ref.empty()) return std::nullopt;
  std::vector<std::string> parts{ref};
  if (!roots.readable(ref) && ref.find('+') != std::string::npos) {
    parts = {ref.substr(0, ref.find('+')), ref.substr(ref.find('+') + 1)};
  }
  for (const auto& part : parts) {
    if (roots.readable(part)) continue;
    // A path that exists but resolves outside the roots is refused even when
    // it also looks like a hub id: the library would read the path.
    std::error_code ec;
    const std::filesystem::path p(part);
    const bool exists_outside = std::filesystem::exists(p.is_absolute() ? p : roots.base() / p, ec);
    if (!exists_outside && is_hub_id(part)) continue;
    return exists_outside ? "model '" + part + "' is outside the server's roots"
                          : "model '" + part + "' is not a folder under the server's roots";
  }
  return std::nullopt;
}

std::vector<Problem> check_config_references(const std::string& yaml, const std::string& name,
                                             const Roots& roots) {
  std::vector<Problem> problems;
  for (const ConfigReference& ref : config_references(yaml, name)) {
    const auto why = refuse_reference(ref.value, roots);
    if (!why) continue;
    Problem p;
    p.kind = ErrorKind::config;
    p.file = name;
    p.line = ref.line;
    p.column = ref.column;
    p.yaml_path = ref.yaml_path;
    p.message = *why;
    p.hint = "pick a model under a --root folder or in the Hugging Face cache";
    p.values = {ref.value};
    problems.push_back(std::move(p));
  }
  return problems;
}

}  // namespace llmerge::server
