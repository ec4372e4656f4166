// Parameter evaluation (mergekit config.py evaluate_setting; docs/mergekit-semantics.md
// §2.4) and the "did you mean" helper.
#include <algorithm>
#include <cmath>

#include "config/config.h"
#include "core/error.h"

namespace llmerge {

namespace {

// Longer words are not typos of a config key; also bounds the O(n*m) table.
constexpr std::size_t k_match_word_max = 128;

double interpolate_gradient(const std::vector<double>& anchors, double t) {
  const std::size_t n = anchors.size();
  if (n == 1) return anchors[0];  // also keeps 0 * inf out of the formula
  // mergekit never passes t outside [0, 1]; clamping keeps the indices in range.
  if (!(t >= 0)) t = 0;  // also NaN
  if (t > 1) t = 1;
  const double scaled = t * static_cast<double>(n - 1);
  const std::size_t i0 = std::min(n - 1, static_cast<std::size_t>(scaled));  // int(scaled)
  const std::size_t i1 = std::min(n - 1, i0 + 1);
  const double frac = scaled - static_cast<double>(i0);
  return (1 - frac) * anchors[i0] + frac * anchors[i1];
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      const std::size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      row[j] = std::min({above + 1, row[j - 1] + 1, substitute});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

std::optional<ParameterScalar> evaluate_parameter(const ParameterValue& value,
                                                  std::string_view tensor_name, double t) {
  switch (value.kind) {
    case ParameterValue::Kind::number:
      return ParameterScalar{value.number};
    case ParameterValue::Kind::boolean:
      return ParameterScalar{value.boolean};
    case ParameterValue::Kind::string:
      return ParameterScalar{value.string};
    case ParameterValue::Kind::gradient:
      if (value.gradient.empty()) throw Error(ErrorKind::internal, "empty gradient parameter");
      return ParameterScalar{interpolate_gradient(value.gradient, t)};
    case ParameterValue::Kind::conditions:
      for (const ParameterCondition& cond : value.conditions) {
        const bool matches = !cond.filter || *cond.filter == "*" ||
                             tensor_name.find(*cond.filter) != std::string_view::npos;
        if (!matches) continue;
        if (!cond.value) throw Error(ErrorKind::internal, "conditional parameter without a value");
        return evaluate_parameter(*cond.value, tensor_name, t);
      }
      return std::nullopt;
  }
  throw Error(ErrorKind::internal, "unknown parameter kind");
}

const ParameterEntry* find_parameter(const ParameterMap& map, std::string_view name) {
  for (const ParameterEntry& entry : map) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

std::optional<std::string> closest_match(std::string_view word,
                                         const std::vector<std::string>& candidates) {
  if (word.size() > k_match_word_max) return std::nullopt;
  const std::size_t threshold = std::max<std::size_t>(1, word.size() / 3);
  const std::string* best = nullptr;
  std::size_t best_distance = threshold + 1;
  for (const std::string& candidate : candidates) {
    if (candidate.size() > k_match_word_max) continue;
    const std::size_t d = edit_distance(word, candidate);
    if (d < best_distance) {  // strict: ties keep the earlier candidate
      best = &candidate;
      best_distance = d;
    }
  }
  if (!best) return std::nullopt;
  return *best;
}

}  // namespace llmerge
