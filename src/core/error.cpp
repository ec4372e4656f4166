#include "core/error.h"

namespace llmerge {

namespace {

std::string format_what(const ErrorContext& c, const std::string& message) {
  std::string out;
  if (!c.file.empty()) {
    out += c.file;
    if (c.line > 0) {
      out += ":" + std::to_string(c.line);
      if (c.column > 0) out += ":" + std::to_string(c.column);
    }
    out += ": ";
  }
  out += message;
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

Error::Error(ErrorKind kind, const std::string& message, ErrorContext context)
    : std::runtime_error(format_what(context, message)),
      kind_(kind),
      context_(std::move(context)),
      message_(message) {}

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
