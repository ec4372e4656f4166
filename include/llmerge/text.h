// Text helpers every front end needs.
#pragma once

#include <string>
#include <string_view>

namespace llmerge {

// Text from untrusted sources (YAML values, tensor names, config.json values,
// paths) made safe for a terminal: control bytes other than newline and tab
// (ESC sequences could rewrite the screen) become "\xNN".
std::string terminal_safe(std::string_view text);

}  // namespace llmerge
