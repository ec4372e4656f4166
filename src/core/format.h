// Human-readable numbers for messages and reports.
#pragma once

#include "llmerge/text.h"  // terminal_safe

#include <cstdint>
#include <string>
#include <string_view>

namespace llmerge {

// 9437184000 -> "9,437,184,000"
std::string with_commas(std::uint64_t n);
// 1234567890 -> "1.23B", 7000000 -> "7.00M", 999 -> "999"
std::string human_count(std::uint64_t n);

}  // namespace llmerge
