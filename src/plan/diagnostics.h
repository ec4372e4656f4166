// Collects every problem the planner finds, so that one run reports them all,
// and each cause once.
//
// Problems are grouped by cause: the same kind, location, message and hint.
// A check that fails for many tensors (a density of 1.5 at the top level
// fails for every tensor of every layer) adds one problem per tensor with the
// tensor passed separately, and the group becomes one Problem with a count and
// a few example tensors and values.
#pragma once

#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "config/config.h"
#include "core/error.h"

namespace llmerge {

// The optional parts of a problem.
struct ProblemDetail {
  std::string tensor;     // the tensor it concerns (grouped: counted, a few kept)
  std::string value;      // the value involved (grouped: distinct ones kept)
  std::string hint;       // how to fix it
  std::string yaml_path;  // e.g. "parameters.density"
};

class Diagnostics {
 public:
  // `config` (optional) gives problems the YAML path of their location.
  explicit Diagnostics(std::string file, const MergeConfig* config = nullptr)
      : file_(std::move(file)), config_(config) {}

  // Records a problem at a YAML location (line 0: no location).
  void add(ErrorKind kind, SourceLocation where, const std::string& message,
           ProblemDetail detail = {});
  bool empty() const { return problems_.empty(); }
  // Throws one Error holding every problem, if there were any.
  void throw_if_any() const;

 private:
  using Key = std::tuple<int, int, int, std::string, std::string>;
  std::string file_;
  const MergeConfig* config_ = nullptr;
  std::vector<Problem> problems_;
  std::map<Key, std::size_t> index_;  // cause -> position in problems_
  std::vector<std::map<std::string, bool>> tensors_seen_;
};

}  // namespace llmerge
