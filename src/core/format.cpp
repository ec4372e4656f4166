#include "core/format.h"

#include <fmt/core.h>

namespace llmerge {

std::string with_commas(std::uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  const std::size_t lead = digits.size() % 3;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i != 0 && (i - lead) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string human_count(std::uint64_t n) {
  const double v = static_cast<double>(n);
  if (n >= 1'000'000'000) return fmt::format("{:.2f}B", v / 1e9);
  if (n >= 1'000'000) return fmt::format("{:.2f}M", v / 1e6);
  if (n >= 10'000) return fmt::format("{:.1f}K", v / 1e3);
  return std::to_string(n);
}

std::string human_bytes(std::uint64_t n) {
  // SI units, as `inspect`, `run` and mergekit's shard sizes ("5B" = 5e9 bytes) count.
  static constexpr const char* k_units[] = {"bytes", "KB", "MB", "GB", "TB"};
  double v = static_cast<double>(n);
  int unit = 0;
  while (v >= 1000 && unit < 4) {
    v /= 1000;
    ++unit;
  }
  return unit == 0 ? fmt::format("{} bytes", n) : fmt::format("{:.2f} {}", v, k_units[unit]);
}

}  // namespace llmerge

namespace llmerge {

std::string terminal_safe(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
      static constexpr char k_hex[] = "0123456789abcdef";
      out += "\\x";
      out += k_hex[c >> 4];
      out += k_hex[c & 15];
    } else {
      out += ch;
    }
  }
  return out;
}

}  // namespace llmerge
