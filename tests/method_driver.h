// Drives a merge method through the chunk protocol of merge/method.h exactly
// as the executor does, for the method tests and bench/methods_bench.cpp
// (so it uses no test framework).
#pragma once

#include <algorithm>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "merge/method.h"
#include "merge/random.h"

namespace llmerge::testing {

using Values = std::map<std::string, double>;
using Tensors = std::vector<std::vector<float>>;
using Shape = std::vector<std::int64_t>;

inline ResolvedParameters resolve(const MethodSpec& spec, std::size_t models, const Values& globals,
                                  const std::vector<Values>& per_model) {
  ResolvedParameters r;
  r.per_model.resize(models);
  for (const ParameterSpec& p : spec.parameters) {
    if (p.scope == ParameterSpec::Scope::global) {
      const auto it = globals.find(p.name);
      r.global.emplace_back(p.name, it != globals.end() ? it->second : p.default_value.value());
    } else {
      for (std::size_t i = 0; i < models; ++i) {
        const Values& v = i < per_model.size() ? per_model[i] : Values{};
        const auto it = v.find(p.name);
        r.per_model[i].emplace_back(p.name, it != v.end() ? it->second : p.default_value.value());
      }
    }
  }
  return r;
}

struct MergeRun {
  std::string method;
  Values globals;
  std::vector<Values> per_model;
  Shape shape;  // empty: 1-D
  std::uint64_t seed = 0;
  std::string tensor = "model.layers.0.mlp.up_proj.weight";
  std::uint64_t scratch_bytes = TensorContext{}.scratch_bytes;
};

// Drives spec.make(...) exactly as the executor does, in chunks of `chunk`
// elements. `reads`, when given, gets how many times the inputs were read
// (statistics passes + 1).
inline std::vector<float> merge(const MergeRun& run, const std::vector<float>* base,
                                const Tensors& models, std::int64_t chunk = 0,
                                int* reads = nullptr) {
  const MethodSpec* spec = find_method(run.method);
  if (spec == nullptr) throw std::invalid_argument("no method " + run.method);
  const ResolvedParameters params = resolve(*spec, models.size(), run.globals, run.per_model);
  const auto numel = static_cast<std::int64_t>(models[0].size());
  if (chunk <= 0) chunk = std::max<std::int64_t>(numel, 1);
  TensorContext context;
  context.name = run.tensor;
  context.shape = run.shape.empty() ? Shape{numel} : run.shape;
  context.numel = numel;
  context.model_count = models.size();
  context.has_base = base != nullptr;
  context.params = &params;
  context.seed = run.seed;
  context.tensor_key = hash_tensor_name(run.tensor);
  context.scratch_bytes = run.scratch_bytes;
  const auto tensor_merge = spec->make(context);
  std::vector<const float*> pointers(models.size());
  const auto make_chunk = [&](std::int64_t begin) {
    Chunk c;
    c.begin = begin;
    c.size = std::min(chunk, numel - begin);
    c.base = base != nullptr ? base->data() + begin : nullptr;
    for (std::size_t i = 0; i < models.size(); ++i)
      pointers[i] = models[i].data() + begin;
    c.models = pointers;
    return c;
  };
  for (int pass = 0; pass < tensor_merge->passes(); ++pass) {
    for (std::int64_t begin = 0; begin < numel; begin += chunk)
      tensor_merge->observe(pass, make_chunk(begin));
    tensor_merge->end_pass(pass);
  }
  if (reads != nullptr) *reads = tensor_merge->passes() + 1;
  std::vector<float> out(static_cast<std::size_t>(numel), -12345.0f);
  for (std::int64_t begin = 0; begin < numel; begin += chunk)
    tensor_merge->compute(make_chunk(begin), out.data() + begin);
  return out;
}

}  // namespace llmerge::testing
