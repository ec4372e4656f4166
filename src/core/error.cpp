#include "core/error.h"

#include <fmt/core.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

namespace llmerge {

namespace {

std::string location_prefix(const std::string& file, int line, int column) {
  if (file.empty()) return {};
  std::string out = file;
  if (line > 0) {
    out += ":" + std::to_string(line);
    if (column > 0) out += ":" + std::to_string(column);
  }
  return out + ": ";
}

// Past this many, the rest are counted, not printed (problems_json() has them all).
constexpr std::size_t k_printed_max = 25;

std::string join_what(const std::vector<Problem>& problems) {
  if (problems.size() == 1) return problems.front().to_string();
  std::string out = fmt::format("{} problems found:", problems.size());
  for (std::size_t i = 0; i < problems.size() && i < k_printed_max; ++i) {
    const Problem& p = problems[i];
    std::string text = p.to_string();
    std::string indented;
    for (char c : text) {
      indented += c;
      if (c == '\n') indented += "  ";
    }
    out += "\n  " + indented;
  }
  if (problems.size() > k_printed_max) {
    out += fmt::format("\n  ... and {} more", problems.size() - k_printed_max);
  }
  return out;
}

}  // namespace

std::string_view error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::config:
      return "config";
    case ErrorKind::io:
      return "io";
    case ErrorKind::format:
      return "format";
    case ErrorKind::shape:
      return "shape";
    case ErrorKind::unsupported:
      return "unsupported";
    case ErrorKind::interrupted:
      return "interrupted";
    case ErrorKind::internal:
      return "internal";
  }
  return "internal";
}

std::string Problem::to_string() const {
  std::string out = location_prefix(file, line, column) + message;
  std::vector<std::string> extra;
  if (!values.empty()) {
    extra.push_back(
        fmt::format("{} {}", values.size() == 1 ? "value" : "values", fmt::join(values, ", ")));
  }
  if (count > 1) {
    extra.push_back(fmt::format("applies to {} tensors, e.g. {}", count, fmt::join(tensors, ", ")));
  } else if (count == 1 && !tensors.empty()) {
    extra.push_back(fmt::format("tensor {}", tensors.front()));
  }
  if (!extra.empty()) out += fmt::format(" ({})", fmt::join(extra, "; "));
  if (!hint.empty()) out += "\n  hint: " + hint;
  return out;
}

Error::Error(ErrorKind kind, const std::string& message, ErrorContext context)
    : std::runtime_error(location_prefix(context.file, context.line, context.column) + message),
      kind_(kind),
      context_(std::move(context)),
      message_(message) {
  Problem p;
  p.kind = kind;
  p.file = context_.file;
  p.line = context_.line;
  p.column = context_.column;
  p.message = message;
  if (!context_.tensor.empty()) {
    p.tensors.push_back(context_.tensor);
    p.count = 1;
  }
  problems_.push_back(std::move(p));
}

Error::Error(std::vector<Problem> problems)
    : std::runtime_error(problems.empty() ? std::string("internal error: no problem given")
                                          : join_what(problems)),
      kind_(problems.empty() ? ErrorKind::internal : problems.front().kind),
      problems_(std::move(problems)) {
  if (problems_.empty()) return;
  const Problem& first = problems_.front();
  context_ = {first.file, first.line, first.column,
              first.tensors.empty() ? std::string() : first.tensors.front()};
  message_ = first.message;
}

std::string Error::problems_json() const {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const auto& p : problems_) {
    list.push_back({{"kind", error_kind_name(p.kind)},
                    {"file", p.file},
                    {"line", p.line},
                    {"column", p.column},
                    {"yaml_path", p.yaml_path},
                    {"message", p.message},
                    {"hint", p.hint},
                    {"values", p.values},
                    {"tensors", p.tensors},
                    {"count", p.count}});
  }
  nlohmann::ordered_json j = {
      {"kind", error_kind_name(kind_)}, {"message", what()}, {"problems", std::move(list)}};
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

int exit_code_for(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::internal:
      return 1;
    case ErrorKind::interrupted:
      return 130;
    default:
      return 2;
  }
}

}  // namespace llmerge
