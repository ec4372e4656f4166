// UTF-8 validation for text read from files we do not trust (safetensors
// headers, configs, sentencepiece pieces).
#pragma once

#include <cstddef>
#include <string_view>

namespace llmerge {

// Index of the first byte that is not part of well-formed UTF-8 (RFC 3629: no
// overlongs, no surrogates, nothing above U+10FFFF), or npos.
std::size_t find_invalid_utf8(std::string_view s);

}  // namespace llmerge
