// Collects every problem the planner finds, so that one run reports them all.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/error.h"

namespace llmerge {

class Diagnostics {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}

  // Records a problem at a YAML location (line 0: no location). Identical
  // messages are reported once (a gradient can fail the same check on every layer).
  void add(ErrorKind kind, SourceLocation where, const std::string& message);
  bool empty() const { return lines_.empty(); }
  // Throws one Error holding every problem, if there were any.
  void throw_if_any() const;

 private:
  std::string file_;
  std::vector<std::string> lines_;
  std::set<std::string> seen_;
  ErrorKind first_kind_ = ErrorKind::config;
};

}  // namespace llmerge
