// Per-slice merge methods, llmerge's extension of mergekit's schema
// (docs/recipes.md §2): which method each slice runs, and the
// --strict-mergekit refusal of what mergekit would not read.
#include <set>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include "plan/planner_internal.h"

namespace llmerge {

namespace {

const MethodSpec* lookup_method(const std::string& name, SourceLocation where,
                                std::set<std::string>& reported, Diagnostics& diag) {
  if (const MethodSpec* m = find_method(name)) return m;
  if (!reported.insert(name).second) return nullptr;  // one problem per unknown name
  std::vector<std::string> names;
  for (const auto& m : method_registry())
    names.push_back(m.name);
  auto hint = closest_match(name, names);
  diag.add(ErrorKind::config, where,
           fmt::format("unknown merge_method '{}'{}", name,
                       hint ? fmt::format("; did you mean '{}'?", *hint)
                            : fmt::format("; known methods: {}", fmt::join(names, ", "))));
  return nullptr;
}

}  // namespace

void resolve_methods(MergePlan& plan, Diagnostics& diag) {
  const MergeConfig& config = plan.config;
  std::set<std::string> reported;
  const MethodSpec* top = nullptr;
  if (!config.merge_method.empty())
    top = lookup_method(config.merge_method, config.merge_method_location, reported, diag);
  plan.slice_methods.clear();
  if (config.slices.empty()) {
    plan.slice_methods.push_back(top);
  } else {
    for (std::size_t i = 0; i < config.slices.size(); ++i) {
      const auto& s = config.slices[i];
      plan.slice_methods.push_back(
          s.merge_method ? lookup_method(*s.merge_method, s.merge_method_location, reported, diag)
                         : top);
    }
  }
  plan.method = top ? top : plan.slice_methods.front();
}

void check_strict_mergekit(const MergePlan& plan, Diagnostics& diag) {
  if (!plan.options.strict_mergekit) return;
  const MergeConfig& config = plan.config;
  if (config.dialect == MergeConfig::Dialect::seed) {
    diag.add(ErrorKind::config, config.dialect_location,
             "this config is in the seed project's format (models as {name, path}, advanced:), "
             "which mergekit does not read; --strict-mergekit refuses it",
             {.hint = "`llmerge convert-config CONFIG` prints it in mergekit's schema"});
    return;  // its per-slice methods are the same cause
  }
  for (std::size_t i = 0; i < config.slices.size(); ++i) {
    const auto& s = config.slices[i];
    if (!s.merge_method) continue;
    diag.add(ErrorKind::config, s.merge_method_location,
             fmt::format("slices[{}].merge_method: a per-slice method is llmerge's extension; "
                         "mergekit reads one merge_method per config, so --strict-mergekit "
                         "refuses it",
                         i),
             {.hint = "`llmerge convert-config CONFIG` writes the same merge as a mergekit-multi "
                      "recipe"});
  }
}

}  // namespace llmerge
