// llmerge's one error type, shared by the library and every front end.
//
// Anything caused by the caller's input (a config, a model folder, a file on
// disk, an option value) is reported by throwing llmerge::Error. Library code
// never calls exit() or abort(). An Error holds one or more Problems: the
// planner collects every problem it finds and reports each cause once, with
// the number of tensors (or places) it concerns and a few examples.
//
// Front ends catch Error in exactly one place each: the CLI maps kind() to an
// exit code (exit_code_for), the Python package to an exception class, the web
// server to a JSON body (problems_json()).
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace llmerge {

enum class ErrorKind {
  config,       // the YAML config or an option is wrong (unknown key, bad value, ...)
  io,           // the OS refused: missing file, permission, disk full, short read
  format,       // a file is malformed: corrupt safetensors, bad JSON, ...
  shape,        // tensors that must agree do not (shapes, dtypes, missing tensors)
  unsupported,  // valid input that llmerge does not handle (yet)
  interrupted,  // the run was cancelled (Ctrl-C, CancelToken::cancel)
  internal,     // a bug in llmerge
};

// "config", "io", ... (stable: used in JSON and by the Python exception map).
std::string_view error_kind_name(ErrorKind kind);

// Process exit code for an error: 2 for anything the user can fix (config,
// io, format, shape, unsupported), 130 for interrupted, 1 for internal.
int exit_code_for(ErrorKind kind);

// Where an error happened. Every field is optional.
struct ErrorContext {
  std::string file;    // a config, a safetensors shard, a config.json ...
  int line = 0;        // 1-based YAML/JSON line, 0 if unknown
  int column = 0;      // 1-based column, 0 if unknown
  std::string tensor;  // tensor name, if the error is about one tensor
};

// One cause of failure. A cause that applies to many tensors (a parameter out
// of range for every layer) is one Problem with `count` > 1.
struct Problem {
  ErrorKind kind = ErrorKind::config;
  std::string file;                  // the config (or model file) the location refers to
  int line = 0;                      // 1-based; 0 when there is no location
  int column = 0;                    // 1-based; 0 when unknown
  std::string yaml_path;             // e.g. "slices[0].sources[1].parameters", when known
  std::string message;               // what is wrong (no location prefix, no tensor list)
  std::string hint;                  // how to fix it, when one is likely
  std::vector<std::string> values;   // the distinct values involved (first few)
  std::vector<std::string> tensors;  // the tensors concerned (first few examples)
  std::size_t count = 0;             // how many tensors it concerns (0: not about tensors)

  // "file:line:col: message (... applies to 57 tensors, e.g. a, b, c)" and,
  // on the next line, "  hint: ...".
  std::string to_string() const;
};

class Error : public std::runtime_error {
 public:
  // One problem. `message` says what is wrong and, where one is likely, how
  // to fix it. what() is "<file>:<line>:<col>: <message>" (the parts set).
  Error(ErrorKind kind, const std::string& message, ErrorContext context = {});
  // Several problems; kind() is the first one's. `problems` must not be empty.
  explicit Error(std::vector<Problem> problems);

  ErrorKind kind() const { return kind_; }
  const ErrorContext& context() const { return context_; }
  // The first problem's message, without the location prefix.
  const std::string& message() const { return message_; }
  const std::vector<Problem>& problems() const { return problems_; }
  // {"kind": ..., "message": what(), "problems": [{kind, file, line, column,
  // yaml_path, message, hint, values, tensors, count}, ...]}
  std::string problems_json() const;

 private:
  ErrorKind kind_;
  ErrorContext context_;
  std::string message_;
  std::vector<Problem> problems_;
};

}  // namespace llmerge
