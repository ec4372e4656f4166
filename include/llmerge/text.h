// Text helpers every front end needs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace llmerge {

// Text from untrusted sources (YAML values, tensor names, config.json values,
// paths) made safe for a terminal: control bytes other than newline and tab
// (ESC sequences could rewrite the screen) become "\xNN".
std::string terminal_safe(std::string_view text);

// A byte count in SI units, as `inspect`, `plan`, `run` and mergekit's shard
// sizes ("5B" = 5e9 bytes) count: "1.32 MB", "512 bytes".
std::string human_bytes(std::uint64_t n);

}  // namespace llmerge
