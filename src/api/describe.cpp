// `llmerge plan` output: text for people, JSON for tools.
#include <algorithm>
#include <cmath>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include "api/describe.h"
#include "core/format.h"
#include "output/layout.h"
#include "plan/planner_internal.h"
#include "plan/vocabulary.h"

namespace llmerge {

namespace {

using plan_detail::shape_string;

bool is_boolean(const MergePlan& plan, const std::string& name) {
  for (const auto& p : plan.method->parameters)
    if (p.name == name) return p.type == ParameterSpec::Type::boolean;
  for (const MethodSpec* m : plan.slice_methods) {
    for (const auto& p : m->parameters)
      if (p.name == name) return p.type == ParameterSpec::Type::boolean;
  }
  return false;
}

// The method of config slice `slice` (per-slice methods, docs/recipes.md).
const MethodSpec& slice_method(const MergePlan& plan, std::size_t slice) {
  return slice < plan.slice_methods.size() ? *plan.slice_methods[slice] : *plan.method;
}

// Booleans (normalize, rescale, ...) print as true/false in text and JSON,
// as they are written in the config. NaN marks an optional parameter left
// unset (passthrough's scale).
std::string value_string(const MergePlan& plan, const std::string& name, double v) {
  if (std::isnan(v)) return "unset";
  if (is_boolean(plan, name)) return v != 0 ? "true" : "false";
  return fmt::format("{:g}", v);
}

nlohmann::json value_json(const MergePlan& plan, const std::string& name, double v) {
  if (is_boolean(plan, name) && !std::isnan(v)) return v != 0;
  return v;
}

std::string params_string(const MergePlan& plan, const PlannedTensor& t) {
  std::string out;
  for (const auto& [name, v] : t.params.global)
    out += fmt::format(" {}={}", name, value_string(plan, name, v));
  for (std::size_t i = 0; i < t.params.per_model.size(); ++i) {
    if (t.params.per_model[i].empty()) continue;
    out += fmt::format(" | {}:", plan.model_refs[t.inputs[i].model]);
    for (const auto& [name, v] : t.params.per_model[i])
      out += fmt::format(" {}={}", name, value_string(plan, name, v));
  }
  return out;
}

// A few representative tensors: the embedding, first/middle/last layer, the head.
std::vector<const PlannedTensor*> samples(const MergePlan& plan) {
  std::vector<const PlannedTensor*> out;
  std::vector<std::int64_t> wanted_layers{0, plan.out_layers / 2, plan.out_layers - 1};
  const PlannedTensor* first_outside = nullptr;
  const PlannedTensor* last_outside = nullptr;
  for (const auto& t : plan.tensors) {
    if (!t.method) continue;
    if (t.layer < 0) {
      if (!first_outside) first_outside = &t;
      last_outside = &t;
    }
  }
  if (first_outside) out.push_back(first_outside);
  for (auto layer : wanted_layers) {
    for (const auto& t : plan.tensors) {
      if (t.layer == layer && t.method && t.name.find("proj") != std::string::npos) {
        if (std::find(out.begin(), out.end(), &t) == out.end()) out.push_back(&t);
        break;
      }
    }
  }
  if (last_outside && last_outside != first_outside) out.push_back(last_outside);
  return out;
}

// "vocabulary: union of 3 tokenizers, 160 tokens (32 added), 160 rows" and, per
// token table, how many rows come from where.
std::string describe_vocabulary(const MergePlan& plan) {
  if (!plan.vocabulary) return "";
  const VocabularyPlan& v = *plan.vocabulary;
  std::string s = fmt::format(
      "vocabulary: {} (tokenizer of {}, {}), {} tokens ({} added{}), {} embedding rows\n",
      v.source == "union" || v.source == "base" ? v.source : "model " + v.source,
      plan.model_refs[v.tokenizer_model], v.model_type, v.size, v.appended.size(),
      v.stripped.empty() ? "" : fmt::format(", {} stripped past vocab_size", v.stripped.size()),
      v.rows);
  for (const auto& c : v.counts) {
    std::vector<std::string> parts;
    auto part = [&parts](std::int64_t n, const char* what) {
      if (n) parts.push_back(fmt::format("{} {}", n, what));
    };
    part(c.shared, "own rows in every model");
    part(c.one_model, "from the one model that has the token");
    part(c.base, "from the base");
    part(c.mean, "mean of the models that have it");
    part(c.overridden, "from `tokens:`");
    part(c.zero, "zero (no model has it)");
    part(c.padding, "padding (mean of each model's rows)");
    s += fmt::format("  {}: {}\n", c.tensor, fmt::join(parts, ", "));
  }
  return s;
}

}  // namespace

std::string describe_plan(const MergePlan& plan, int threads, std::int64_t chunk_elements) {
  std::string s;
  if (plan.config.per_slice_methods()) {
    std::vector<std::string> names;
    for (const MethodSpec* m : plan.slice_methods)
      if (std::find(names.begin(), names.end(), m->name) == names.end()) names.push_back(m->name);
    s += fmt::format("merge method: per slice ({})\n", fmt::join(names, ", "));
  } else {
    s += fmt::format("merge method: {} ({})\n", plan.method->name, plan.method->pretty_name);
  }
  s += "models:\n";
  for (std::size_t i = 0; i < plan.models.size(); ++i) {
    const auto& m = plan.models[i];
    s += fmt::format("  [{}] {}{}{}: {} layers, {} params, {}\n", i, plan.model_refs[i],
                     plan.base_model && *plan.base_model == i ? " (base)" : "",
                     plan.donor == i ? " (config donor)" : "", m.layers().count,
                     human_count(m.parameter_count()),
                     m.is_stage_output()
                         ? fmt::format("a recipe stage of {}, computed as it is read",
                                       human_bytes(m.size_on_disk() - m.files()[0].data_offset()))
                         : human_bytes(m.size_on_disk()));
  }
  s += fmt::format("layers: {} in the output\n", plan.out_layers);
  // Runs of output layers that read consecutive source layers of the same slice.
  for (std::size_t i = 0; i < plan.layer_map.size();) {
    std::size_t j = i;
    while (j + 1 < plan.layer_map.size() && plan.layer_map[j + 1].slice == plan.layer_map[i].slice)
      ++j;
    const auto& a = plan.layer_map[i];
    const auto& b = plan.layer_map[j];
    std::vector<std::string> sources;
    for (std::size_t k = 0; k < a.sources.size(); ++k) {
      sources.push_back(fmt::format("{}[{}, {})", plan.model_refs[a.sources[k].first],
                                    a.sources[k].second, b.sources[k].second + 1));
    }
    s += fmt::format("  {:>4} .. {:<4} <- {}  ({}, slice {})\n", a.out_layer, b.out_layer,
                     fmt::join(sources, " + "), slice_method(plan, a.slice).name, a.slice);
    i = j + 1;
  }
  s += describe_vocabulary(plan);
  s += "parameters (sample tensors):\n";
  for (const auto* t : samples(plan))
    s += fmt::format("  {}:{}\n", t->name, params_string(plan, *t));
  const auto shards = plan_shards(plan_tensor_specs(plan), plan.options.shard_size_max);
  s += fmt::format("output: {} tensors, {}, {} shard(s) of at most {}\n", plan.tensors.size(),
                   human_bytes(plan.output_bytes()), shards.files.size(),
                   human_bytes(plan.options.shard_size_max));
  s += fmt::format("peak memory estimate: {} ({} thread(s), chunks of {} elements)\n",
                   human_bytes(plan.peak_memory_estimate(threads, chunk_elements)),
                   threads > 0 ? threads : plan.options.threads,
                   chunk_elements > 0 ? chunk_elements : plan.options.chunk_elements);
  for (const auto& note : plan.notes)
    s += "note: " + note + "\n";
  return s;
}

nlohmann::json plan_to_json(const MergePlan& plan, int threads, std::int64_t chunk_elements) {
  using nlohmann::json;
  json j;
  j["merge_method"] = plan.method->name;
  j["slice_methods"] = json::array();
  for (const MethodSpec* m : plan.slice_methods)
    j["slice_methods"].push_back(m->name);
  j["models"] = json::array();
  for (std::size_t i = 0; i < plan.models.size(); ++i) {
    j["models"].push_back({{"reference", plan.model_refs[i]},
                           {"path", plan.models[i].path().string()},
                           {"layers", plan.models[i].layers().count}});
  }
  j["base_model"] = plan.base_model ? json(plan.model_refs[*plan.base_model]) : json(nullptr);
  j["config_donor"] = plan.model_refs[plan.donor];
  j["out_layers"] = plan.out_layers;
  j["layer_map"] = json::array();
  for (const auto& m : plan.layer_map) {
    json sources = json::array();
    for (const auto& [model, layer] : m.sources) {
      sources.push_back({{"model", plan.model_refs[model]}, {"layer", layer}});
    }
    j["layer_map"].push_back(
        {{"out_layer", m.out_layer}, {"slice", m.slice}, {"t", m.t}, {"sources", sources}});
  }
  auto input_json = [&](const PlannedInput& in) {
    return json{{"model", plan.model_refs[in.model]},
                {"tensor", in.tensor},
                {"dtype", dtype_name(in.ref.dtype())},
                {"quantized", in.ref.quant != nullptr},
                {"shape", in.shape}};
  };
  j["tensors"] = json::array();
  for (const auto& t : plan.tensors) {
    json tj{{"name", t.name},
            {"dtype", dtype_name(t.dtype)},
            {"shape", t.shape},
            {"method", t.method ? json(t.method->name) : json("copy")}};
    if (t.base) tj["base"] = input_json(*t.base);
    tj["inputs"] = json::array();
    for (const auto& in : t.inputs)
      tj["inputs"].push_back(input_json(in));
    json global = json::object();
    for (const auto& [name, v] : t.params.global)
      global[name] = value_json(plan, name, v);
    json per_model = json::array();
    for (const auto& p : t.params.per_model) {
      json m = json::object();
      for (const auto& [name, v] : p)
        m[name] = value_json(plan, name, v);
      per_model.push_back(m);
    }
    tj["parameters"] = {{"global", global}, {"per_model", per_model}};
    j["tensors"].push_back(std::move(tj));
  }
  const auto shards = plan_shards(plan_tensor_specs(plan), plan.options.shard_size_max);
  j["output_bytes"] = plan.output_bytes();
  j["shards"] = shards.files;
  j["peak_memory_estimate"] = plan.peak_memory_estimate(threads, chunk_elements);
  j["config"] = plan.out_config;
  j["notes"] = plan.notes;
  if (plan.vocabulary) {
    const VocabularyPlan& v = *plan.vocabulary;
    json counts = json::array();
    for (const auto& c : v.counts) {
      counts.push_back({{"tensor", c.tensor},
                        {"shared", c.shared},
                        {"one_model", c.one_model},
                        {"base", c.base},
                        {"mean", c.mean},
                        {"overridden", c.overridden},
                        {"zero", c.zero},
                        {"padding", c.padding}});
    }
    j["vocabulary"] = {{"source", v.source},
                       {"tokenizer_model", plan.model_refs[v.tokenizer_model]},
                       {"type", v.model_type},
                       {"tokens", v.size},
                       {"added", v.appended.size()},
                       {"stripped", v.stripped.size()},
                       {"rows", v.rows},
                       {"rows_by_source", counts}};
  } else {
    j["vocabulary"] = nullptr;
  }
  return j;
}

}  // namespace llmerge
