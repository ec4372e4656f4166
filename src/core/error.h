// llmerge's one error type.
//
// Policy (see docs/ARCHITECTURE.md): anything caused by the user's input --
// a config, a model folder, a file on disk -- is reported by throwing
// llmerge::Error. Library code never calls exit() or abort(). Errors are
// caught in exactly three places: the CLI (mapped to exit codes), the Python
// bindings and the web server. Broken invariants inside llmerge itself are
// ErrorKind::internal.
#pragma once

#include <stdexcept>
#include <string>

namespace llmerge {

enum class ErrorKind {
  config,       // the YAML config is wrong (unknown key, bad value, ...)
  io,           // the OS refused: missing file, permission, disk full, short read
  format,       // a file is malformed: corrupt safetensors, bad JSON, ...
  shape,        // tensors that must agree do not (shapes, dtypes, missing tensors)
  unsupported,  // valid input that llmerge does not handle (yet)
  interrupted,  // SIGINT / SIGTERM asked us to stop
  internal,     // a bug in llmerge
};

std::string_view error_kind_name(ErrorKind kind);

// Where an error happened. Every field is optional; what() prints the ones set.
struct ErrorContext {
  std::string file;    // a config, a safetensors shard, a config.json ...
  int line = 0;        // 1-based YAML/JSON line, 0 if unknown
  int column = 0;      // 1-based column, 0 if unknown
  std::string tensor;  // tensor name, if the error is about one tensor
};

class Error : public std::runtime_error {
 public:
  // `message` says what is wrong and, where one is likely, how to fix it.
  // what() is "<file>:<line>:<col>: <message>" (only the parts that are set).
  Error(ErrorKind kind, const std::string& message, ErrorContext context = {});

  ErrorKind kind() const { return kind_; }
  const ErrorContext& context() const { return context_; }
  // The message without the location prefix.
  const std::string& message() const { return message_; }

 private:
  ErrorKind kind_;
  ErrorContext context_;
  std::string message_;
};

// Process exit code for an error: 2 for anything the user can fix (config,
// io, format, shape, unsupported), 130 for interrupted, 1 for internal.
int exit_code_for(ErrorKind kind);

}  // namespace llmerge
