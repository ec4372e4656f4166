#include "plan/chat_templates.h"

#include <map>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "io/files.h"
#include "io/tokenizer.h"

namespace llmerge {

namespace {

// "chatml.jinja" -> "chatml".
std::string_view template_name(const BuiltinChatTemplate& t) {
  return t.path.substr(0, t.path.rfind('.'));
}

std::string trimmed(const std::string& s) {
  const auto space = " \t\n\r\f\v";
  const auto first = s.find_first_not_of(space);
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(space) - first + 1);
}

}  // namespace

std::optional<std::string> resolve_chat_template(const MergePlan& plan, Diagnostics& diag) {
  const auto& config = plan.config;
  if (!config.chat_template) return std::nullopt;
  const std::string& value = *config.chat_template;
  const SourceLocation at = config.chat_template_location;
  if (value == "auto") {
    std::vector<std::string> order;
    std::map<std::string, int> count;
    for (std::size_t i = 0; i < plan.models.size(); ++i) {
      const auto& dir = plan.models[i].path();
      if (!std::filesystem::is_directory(dir)) continue;
      try {
        if (auto t = read_chat_template(dir)) {
          const std::string s = trimmed(*t);
          if (s.empty()) continue;
          if (count[s]++ == 0) order.push_back(s);
        }
      } catch (const Error& e) {
        diag.add(e.kind(), at,
                 fmt::format("chat template of model '{}': {}", plan.model_refs[i], e.what()));
      }
    }
    std::optional<std::string> best;
    int best_count = 0;
    for (const auto& s : order) {
      if (count[s] > best_count) {
        best = s;
        best_count = count[s];
      }
    }
    return best;
  }
  const bool name_like = value.size() < 256 && value.find('\n') == std::string::npos &&
                         value.find('{') == std::string::npos;
  if (name_like) {
    for (const auto& b : builtin_chat_templates())
      if (value == template_name(b)) return std::string(b.data);
    if (value.ends_with(".jinja")) {
      std::filesystem::path path = value;
      if (path.is_relative() && !plan.options.base_dir.empty()) path = plan.options.base_dir / path;
      try {
        return read_regular_file(path);
      } catch (const Error& e) {
        diag.add(e.kind(), at, fmt::format("chat_template file: {}", e.what()));
        return std::nullopt;
      }
    }
  }
  if (value.size() >= 20 && value.find('{') != std::string::npos) return value;
  std::vector<std::string> names;
  for (const auto& b : builtin_chat_templates())
    names.emplace_back(template_name(b));
  diag.add(ErrorKind::config, at,
           fmt::format("chat_template '{}' is not a built-in ({}), 'auto', a .jinja file or a "
                       "Jinja template",
                       value, fmt::join(names, ", ")));
  return std::nullopt;
}

}  // namespace llmerge
