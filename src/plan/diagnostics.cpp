#include "plan/diagnostics.h"

#include <algorithm>

namespace llmerge {

namespace {
// Examples kept per grouped problem: enough to recognise the pattern.
constexpr std::size_t k_examples_max = 3;
}  // namespace

void Diagnostics::add(ErrorKind kind, SourceLocation where, const std::string& message,
                      ProblemDetail detail) {
  const Key key{static_cast<int>(kind), where.line, where.column, message, detail.hint};
  auto [it, inserted] = index_.try_emplace(key, problems_.size());
  if (inserted) {
    Problem p;
    p.kind = kind;
    p.file = file_;
    p.line = where.line;
    p.column = where.line > 0 ? where.column : 0;
    p.yaml_path = detail.yaml_path;
    if (p.yaml_path.empty() && config_ && where.line > 0) {
      const auto it_path = config_->yaml_paths.find({where.line, where.column});
      if (it_path != config_->yaml_paths.end()) p.yaml_path = it_path->second;
    }
    p.message = message;
    p.hint = detail.hint;
    problems_.push_back(std::move(p));
    tensors_seen_.emplace_back();
  }
  Problem& p = problems_[it->second];
  if (!detail.value.empty() && p.values.size() < k_examples_max &&
      std::find(p.values.begin(), p.values.end(), detail.value) == p.values.end()) {
    p.values.push_back(detail.value);
  }
  if (!detail.tensor.empty() && tensors_seen_[it->second].emplace(detail.tensor, true).second) {
    ++p.count;
    if (p.tensors.size() < k_examples_max) p.tensors.push_back(detail.tensor);
  }
}

void Diagnostics::throw_if_any() const {
  if (!problems_.empty()) throw Error(problems_);
}

}  // namespace llmerge
