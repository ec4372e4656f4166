// Builds raw safetensors bytes by hand, so tests can write headers that no
// well-behaved writer would produce (duplicates, bad UTF-8, holes, ...).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace llmerge::testing {

// The 8-byte little-endian length field.
inline std::string le64(std::uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[static_cast<std::size_t>(i)] = static_cast<char>(n >> (8 * i));
  return out;
}

// `header` is used verbatim (no padding), followed by `data`.
inline std::string safetensors_bytes(std::string_view header, std::string_view data = {}) {
  return le64(header.size()) + std::string(header) + std::string(data);
}

}  // namespace llmerge::testing
