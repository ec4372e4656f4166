// methods_json() and methods_text() (`llmerge methods [--json]`): every merge method with its
// parameters, generated from the registry (merge/method.h), so it cannot drift from what the
// planner accepts.
#include <cmath>
#include <memory>
#include <string>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "llmerge/llmerge.h"
#include "merge/method.h"

namespace llmerge {

namespace {

const char* base_use_name(MethodSpec::BaseUse use) {
  switch (use) {
    case MethodSpec::BaseUse::none:
      return "not used (a base model is just another input)";
    case MethodSpec::BaseUse::required:
      return "required";
    case MethodSpec::BaseUse::optional:
      return "optional";
  }
  return "?";
}

const char* base_use_key(MethodSpec::BaseUse use) {
  switch (use) {
    case MethodSpec::BaseUse::none:
      return "none";
    case MethodSpec::BaseUse::required:
      return "required";
    case MethodSpec::BaseUse::optional:
      return "optional";
  }
  return "?";
}

bool bounded_below(const ParameterSpec& p) {
  return p.min > -1e299;
}
bool bounded_above(const ParameterSpec& p) {
  return p.max < 1e299;
}

std::string number(double v) {
  return fmt::format("{:g}", v);
}

std::string default_text(const ParameterSpec& p) {
  if (!p.default_value) return "required";
  if (std::isnan(*p.default_value)) return "unset";
  if (p.type == ParameterSpec::Type::boolean) return *p.default_value != 0.0 ? "true" : "false";
  return number(*p.default_value);
}

// "(0, 1]", ">= 0", "any"; booleans have no range to show.
std::string range_text(const ParameterSpec& p) {
  if (p.type == ParameterSpec::Type::boolean) return "";
  const bool lo = bounded_below(p), hi = bounded_above(p);
  if (lo && hi) {
    return fmt::format("{}{}, {}{}", p.min_open ? "(" : "[", number(p.min), number(p.max),
                       p.max_open ? ")" : "]");
  }
  if (lo) return fmt::format("{} {}", p.min_open ? ">" : ">=", number(p.min));
  if (hi) return fmt::format("{} {}", p.max_open ? "<" : "<=", number(p.max));
  return "any";
}

// Counted as mergekit users count them: a required base is one of the models
// (slerp takes two models, one of them the base). models_min and models_max
// (and the JSON) count the models besides the base.
std::string models_text(const MethodSpec& spec) {
  const bool base = spec.base_use == MethodSpec::BaseUse::required;
  const std::size_t lo = spec.models_min + (base ? 1 : 0);
  const std::size_t hi = spec.models_max + (base ? 1 : 0);
  const char* of_them = base ? ", the base included" : "";
  if (spec.models_max == 0) return fmt::format("{} or more{}", lo, of_them);
  if (spec.models_max == spec.models_min) return fmt::format("exactly {}{}", lo, of_them);
  return fmt::format("{} to {}{}", lo, hi, of_them);
}

std::string print_text() {
  std::string out;
  for (const MethodSpec& spec : method_registry()) {
    out += fmt::format("{:<18} {}\n", spec.name, spec.description);
    out += fmt::format("{:<18} {}; base model: {}; models: {}{}\n", "", spec.pretty_name,
                       base_use_name(spec.base_use), models_text(spec),
                       spec.random ? "; random (uses the seed)" : "");
    for (const ParameterSpec& p : spec.parameters) {
      const bool global = p.scope == ParameterSpec::Scope::global;
      const std::string range = range_text(p);
      out += fmt::format("{:<18}   {:<18} {:<9} {:<8} {:<10} {}\n", "", p.name,
                         global ? "global" : "per-model", default_text(p), range, p.help);
    }
    out += "\n";
  }
  return out;
}

nlohmann::json to_json() {
  nlohmann::json methods = nlohmann::json::array();
  for (const MethodSpec& spec : method_registry()) {
    nlohmann::json parameters = nlohmann::json::array();
    for (const ParameterSpec& p : spec.parameters) {
      nlohmann::json j = {
          {"name", p.name},
          {"scope", p.scope == ParameterSpec::Scope::global ? "global" : "per_model"},
          {"type", p.type == ParameterSpec::Type::boolean ? "boolean" : "number"},
          {"required", !p.default_value.has_value()},
          {"help", p.help},
      };
      if (p.default_value && !std::isnan(*p.default_value)) {
        if (p.type == ParameterSpec::Type::boolean) {
          j["default"] = *p.default_value != 0.0;
        } else {
          j["default"] = *p.default_value;
        }
      } else {
        j["default"] = nullptr;
      }
      if (p.type == ParameterSpec::Type::number) {
        j["min"] = bounded_below(p) ? nlohmann::json(p.min) : nlohmann::json(nullptr);
        j["max"] = bounded_above(p) ? nlohmann::json(p.max) : nlohmann::json(nullptr);
        j["min_open"] = p.min_open;
        j["max_open"] = p.max_open;
      }
      parameters.push_back(std::move(j));
    }
    methods.push_back({
        {"name", spec.name},
        {"pretty_name", spec.pretty_name},
        {"description", spec.description},
        {"reference", spec.reference},
        {"base_model", base_use_key(spec.base_use)},
        {"models_min", spec.models_min},
        {"models_max",
         spec.models_max == 0 ? nlohmann::json(nullptr) : nlohmann::json(spec.models_max)},
        {"random", spec.random},
        {"parameters", std::move(parameters)},
    });
  }
  return methods;
}

}  // namespace

std::string methods_json() {
  return to_json().dump(2);
}

std::string methods_text() {
  return print_text();
}

}  // namespace llmerge
