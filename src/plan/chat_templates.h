// `chat_template:` (mergekit's _set_chat_template; docs/tokenizers.md §4).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plan/diagnostics.h"
#include "plan/plan.h"

namespace llmerge {

// One file of plan/chat_templates/ (embedded at build time by
// cmake/embed_assets.cmake): `path` is "chatml.jinja", the template's name
// without the extension.
struct BuiltinChatTemplate {
  std::string_view path;
  std::string_view mime;
  std::string_view data;
};
const std::vector<BuiltinChatTemplate>& builtin_chat_templates();

// Resolves `chat_template:` for the plan: a built-in name, `auto` (the most
// common template among the models, after trimming whitespace; the first in
// model order on a tie; none if no model has one), a path to a `.jinja` file
// (relative to the plan's base_dir), or a literal Jinja template (20 or more
// characters with a '{', mergekit's test). Anything else is reported to
// `diag` at the key's location.
std::optional<std::string> resolve_chat_template(const MergePlan& plan, Diagnostics& diag);

}  // namespace llmerge
