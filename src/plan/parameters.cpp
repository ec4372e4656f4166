// Parameter names, types, resolution and ranges (docs/mergekit-semantics.md §2.4-§2.7).
#include <cmath>
#include <limits>

#include <fmt/core.h>

#include "plan/planner_internal.h"

namespace llmerge {

namespace {

std::vector<std::string> parameter_names(const MethodSpec& method) {
  std::vector<std::string> names;
  for (const auto& p : method.parameters)
    names.push_back(p.name);
  return names;
}

// Checks that `value` (and every value inside its conditions) fits the type.
void check_value_type(const ParameterValue& value, const ParameterSpec& spec,
                      const std::string& where, Diagnostics& diag) {
  using Kind = ParameterValue::Kind;
  switch (value.kind) {
    case Kind::conditions:
      for (const auto& c : value.conditions) {
        if (c.value) check_value_type(*c.value, spec, where, diag);
      }
      return;
    case Kind::string:
      diag.add(ErrorKind::config, value.location,
               fmt::format(
                   "{}: parameter '{}' expects a {}, found the string '{}'", where, spec.name,
                   spec.type == ParameterSpec::Type::boolean ? "boolean" : "number", value.string));
      return;
    case Kind::gradient:
      if (spec.type == ParameterSpec::Type::boolean) {
        diag.add(ErrorKind::config, value.location,
                 fmt::format("{}: parameter '{}' is a boolean and cannot take a gradient", where,
                             spec.name));
      }
      return;
    case Kind::number:
    case Kind::boolean:
      return;
  }
}

void check_map(const ParameterMap& map, const MethodSpec& method, bool per_model_level,
               const std::string& where, Diagnostics& diag) {
  for (const auto& entry : map) {
    const ParameterSpec* spec = method.find_parameter(entry.name);
    if (!spec) {
      auto names = parameter_names(method);
      auto hint = closest_match(entry.name, names);
      std::string known = names.empty() ? "it takes no parameters" : "it takes: ";
      for (std::size_t i = 0; i < names.size(); ++i)
        known += (i ? ", " : "") + names[i];
      diag.add(ErrorKind::config, entry.location,
               fmt::format("{}: merge method '{}' has no parameter '{}'{}", where, method.name,
                           entry.name,
                           hint ? fmt::format("; did you mean '{}'?", *hint) : "; " + known));
      continue;
    }
    if (per_model_level && spec->scope == ParameterSpec::Scope::global) {
      diag.add(ErrorKind::config, entry.location,
               fmt::format("{}: '{}' is a global parameter of '{}' and has no effect per model; "
                           "move it to the top-level (or slice) parameters",
                           where, entry.name, method.name));
      continue;
    }
    check_value_type(entry.value, *spec, where, diag);
  }
}

std::string describe_range(const ParameterSpec& spec) {
  const bool has_min = spec.min > -1e299;
  const bool has_max = spec.max < 1e299;
  if (has_min && has_max) {
    return fmt::format("{}{}, {}{}", spec.min_open ? "(" : "[", spec.min, spec.max,
                       spec.max_open ? ")" : "]");
  }
  if (has_min) return fmt::format("{} {}", spec.min_open ? ">" : ">=", spec.min);
  if (has_max) return fmt::format("{} {}", spec.max_open ? "<" : "<=", spec.max);
  return "finite";
}

bool in_range(double v, const ParameterSpec& spec) {
  if (spec.min_open ? !(v > spec.min) : !(v >= spec.min)) return false;
  if (spec.max_open ? !(v < spec.max) : !(v <= spec.max)) return false;
  return true;
}

struct Found {
  double value = 0;
  SourceLocation location;
};

// First level that sets the parameter wins; `name` is what filters match against.
std::optional<Found> lookup(std::initializer_list<const ParameterMap*> levels,
                            const std::string& param, std::string_view name, double t) {
  for (const ParameterMap* map : levels) {
    if (!map) continue;
    const ParameterEntry* entry = find_parameter(*map, param);
    if (!entry) continue;
    auto v = evaluate_parameter(entry->value, name, t);
    if (!v) continue;  // no condition matched: fall through to the next level
    if (const double* d = std::get_if<double>(&*v)) return Found{*d, entry->location};
    if (const bool* b = std::get_if<bool>(&*v)) return Found{*b ? 1.0 : 0.0, entry->location};
    return std::nullopt;  // strings were rejected by check_parameter_names
  }
  return std::nullopt;
}

// Methods compute in f32 (about 1e-38 to 3e38). A parameter multiplies
// weights, is summed, and is divided by, so a value that passes a check in
// double can still give inf or 0/0 in f32: 1e39 is inf, 1e-320 is 0. Nonzero
// parameters must lie in [1e-30, 1e30], which leaves eight orders of
// magnitude for the tensors' own values (docs/RELIABILITY.md, class 4).
constexpr double k_parameter_abs_max = 1e30;
constexpr double k_parameter_abs_min = 1e-30;

void check_value(double value, const ParameterSpec& spec, SourceLocation where,
                 const std::string& tensor, Diagnostics& diag) {
  if (!std::isfinite(value)) {
    diag.add(ErrorKind::config, where,
             fmt::format("parameter '{}' must be a finite number", spec.name),
             {.tensor = tensor, .value = fmt::format("{}", value)});
  } else if (spec.type == ParameterSpec::Type::number && value != 0 &&
             (std::abs(value) > k_parameter_abs_max || std::abs(value) < k_parameter_abs_min)) {
    diag.add(ErrorKind::config, where,
             fmt::format("parameter '{}' cannot give a finite result in f32 arithmetic; a nonzero "
                         "value must have a magnitude between {} and {}",
                         spec.name, k_parameter_abs_min, k_parameter_abs_max),
             {.tensor = tensor, .value = fmt::format("{}", value)});
  } else if (!in_range(value, spec)) {
    diag.add(ErrorKind::config, where,
             fmt::format("parameter '{}' is out of range; it must be {}", spec.name,
                         describe_range(spec)),
             {.tensor = tensor, .value = fmt::format("{}", value)});
  }
}

}  // namespace

void check_parameter_names(const MergeConfig& config, const MethodSpec& method,
                           const std::vector<const MethodSpec*>& slice_methods, Diagnostics& diag) {
  const auto method_of = [&](std::size_t s) -> const MethodSpec& {
    return s < slice_methods.size() && slice_methods[s] ? *slice_methods[s] : method;
  };
  // Top-level parameters: checked against the one method, or, when slices
  // differ, against the first slice method that takes each (the others ignore it).
  bool one_method = true;
  for (std::size_t s = 0; s < config.slices.size(); ++s)
    one_method &= &method_of(s) == &method;
  if (one_method) {
    check_map(config.parameters, method, false, "parameters", diag);
  } else {
    for (const auto& entry : config.parameters) {
      const MethodSpec* taker = &method;
      for (std::size_t s = 0; s < config.slices.size(); ++s) {
        if (method_of(s).find_parameter(entry.name)) {
          taker = &method_of(s);
          break;
        }
      }
      check_map(ParameterMap{entry}, *taker, false, "parameters", diag);
    }
  }
  for (std::size_t i = 0; i < config.models.size(); ++i) {
    check_map(config.models[i].parameters, method, true, fmt::format("models[{}].parameters", i),
              diag);
  }
  for (std::size_t s = 0; s < config.slices.size(); ++s) {
    check_map(config.slices[s].parameters, method_of(s), false,
              fmt::format("slices[{}].parameters", s), diag);
    for (std::size_t k = 0; k < config.slices[s].sources.size(); ++k) {
      check_map(config.slices[s].sources[k].parameters, method_of(s), true,
                fmt::format("slices[{}].sources[{}].parameters", s, k), diag);
    }
  }
}

void resolve_parameters(const MergeConfig& config, const MethodSpec& method,
                        const ParameterMap* slice_parameters, SourceLocation slice_location,
                        const std::vector<InputParameterSource>& inputs,
                        const std::string& out_name, double t, ResolvedParameters& out,
                        Diagnostics& diag) {
  out.global.clear();
  out.per_model.assign(inputs.size(), {});
  bool missing = false;
  for (const auto& spec : method.parameters) {
    if (spec.scope == ParameterSpec::Scope::global) {
      auto found = lookup({slice_parameters, &config.parameters}, spec.name, out_name, t);
      if (found) {
        check_value(found->value, spec, found->location, out_name, diag);
        out.global.emplace_back(spec.name, found->value);
      } else if (spec.default_value) {
        out.global.emplace_back(spec.name, *spec.default_value);
      } else {
        missing = true;
        diag.add(ErrorKind::config, config.merge_method_location,
                 fmt::format("merge method '{}' needs parameter '{}'", method.name, spec.name),
                 {.tensor = out_name,
                  .hint = fmt::format("add `{}:` under the top-level `parameters:`", spec.name)});
      }
      continue;
    }
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      const auto& in = inputs[i];
      auto found =
          lookup({in.parameters, slice_parameters, &config.parameters}, spec.name, in.tensor, t);
      if (found) {
        check_value(found->value, spec, found->location, in.tensor, diag);
        out.per_model[i].emplace_back(spec.name, found->value);
      } else if (spec.default_value) {
        out.per_model[i].emplace_back(spec.name, *spec.default_value);
      } else {
        missing = true;
        // Set nowhere: one message per model entry. Set only through filters
        // that miss this tensor: name the tensor, and suggest a default.
        const bool filtered = (in.parameters && find_parameter(*in.parameters, spec.name)) ||
                              (slice_parameters && find_parameter(*slice_parameters, spec.name)) ||
                              find_parameter(config.parameters, spec.name);
        diag.add(ErrorKind::config, in.location.line ? in.location : slice_location,
                 filtered
                     ? fmt::format("merge method '{}' needs parameter '{}' for this model, and no "
                                   "filter matches these tensors",
                                   method.name, spec.name)
                     : fmt::format("merge method '{}' needs parameter '{}' for this model",
                                   method.name, spec.name),
                 {.tensor = in.tensor,
                  .hint = filtered ? "add a default: a last entry `- value: 1.0` with no filter"
                                   : fmt::format("add `parameters: {{{}: 1.0}}` to the model entry",
                                                 spec.name)});
      }
    }
  }
  // A check reads every parameter; with one missing there is nothing to check.
  if (method.check && !missing && out.per_model.size() == inputs.size()) {
    const std::string problem = method.check(out);
    if (!problem.empty()) {
      diag.add(ErrorKind::config, slice_location, problem, {.tensor = out_name});
    }
  }
}

}  // namespace llmerge
