// Model names written into the YAML configs compare emits: quoted when YAML
// would read them as something else, and never able to end a comment line.
#pragma once

#include <string>
#include <string_view>

namespace llmerge {

// A double-quoted YAML scalar when `s` is not a plain path-like word.
std::string yaml_scalar(std::string_view s);
// `s` with newlines and control characters replaced, for a "# ..." comment.
std::string yaml_comment_safe(std::string_view s);

}  // namespace llmerge
