#include "plan/diagnostics.h"

#include <fmt/core.h>

namespace llmerge {

namespace {
// Past this many, the rest are counted, not printed: one root cause (say, a
// wrong model) can fail thousands of tensors.
constexpr std::size_t k_printed_max = 25;
}  // namespace

void Diagnostics::add(ErrorKind kind, SourceLocation where, const std::string& message) {
  std::string line = where.line > 0
                         ? fmt::format("{}:{}:{}: {}", file_, where.line, where.column, message)
                         : fmt::format("{}: {}", file_, message);
  if (!seen_.insert(line).second) return;
  if (lines_.empty()) first_kind_ = kind;
  lines_.push_back(std::move(line));
}

void Diagnostics::throw_if_any() const {
  if (lines_.empty()) return;
  if (lines_.size() == 1) throw Error(first_kind_, lines_.front());
  std::string message = fmt::format("{} problems found:", lines_.size());
  for (std::size_t i = 0; i < lines_.size() && i < k_printed_max; ++i)
    message += "\n  " + lines_[i];
  if (lines_.size() > k_printed_max) {
    message += fmt::format("\n  ... and {} more", lines_.size() - k_printed_max);
  }
  throw Error(first_kind_, message);
}

}  // namespace llmerge
