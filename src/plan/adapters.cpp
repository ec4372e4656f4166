// LoRA adapters of "base+adapter" references (docs/lora.md): every update
// must fit a tensor of its base, checked from the headers before any work;
// each input read from an adapted model gets its update attached.
#include <fmt/core.h>

#include "plan/planner_internal.h"

namespace llmerge {

using plan_detail::shape_string;

void check_adapters(const MergePlan& plan, Diagnostics& diag) {
  for (std::size_t i = 0; i < plan.adapters.size(); ++i) {
    const Adapter* adapter = plan.adapters[i].get();
    if (!adapter) continue;
    const Model& model = plan.models[i];
    const std::string& ref = plan.model_refs[i];
    const std::string hint =
        "was the adapter trained on this base model? `llmerge inspect MODEL --tensors` lists "
        "the base's tensors";
    for (const auto& [target, m] : adapter->modules()) {
      const TensorRef* t = model.find(target);
      if (!t) {
        diag.add(ErrorKind::shape, {},
                 fmt::format("'{}': the adapter updates tensors that the base does not have", ref),
                 {.tensor = target, .hint = hint});
        continue;
      }
      const std::vector<std::int64_t> want{m.rows, m.cols};
      if (t->shape() != want) {
        diag.add(ErrorKind::shape, {},
                 fmt::format("'{}': the adapter's update does not fit the base tensor", ref),
                 {.tensor = target,
                  .value = fmt::format("update {} (rank {}) vs base {}", shape_string(want), m.rank,
                                       shape_string(t->shape())),
                  .hint = hint});
        continue;
      }
      if (!dtype_is_mergeable_float(t->dtype())) {
        diag.add(ErrorKind::unsupported, {},
                 fmt::format("'{}': the adapter updates a {} tensor; only float weights can be "
                             "updated",
                             ref, dtype_name(t->dtype())),
                 {.tensor = target});
      }
    }
    for (const auto& [name, info] : adapter->replacements()) {
      const TensorRef* t = model.find(name);
      if (!t) {
        diag.add(ErrorKind::shape, {},
                 fmt::format("'{}': the adapter saves whole tensors (modules_to_save or biases) "
                             "that the base does not have",
                             ref),
                 {.tensor = name, .hint = hint});
      } else if (t->shape() != info->shape) {
        diag.add(ErrorKind::shape, {},
                 fmt::format("'{}': a tensor the adapter saves whole differs in shape from the "
                             "base's",
                             ref),
                 {.tensor = name,
                  .value = fmt::format("{} vs base {}", shape_string(info->shape),
                                       shape_string(t->shape()))});
      } else if (!dtype_is_mergeable_float(info->dtype)) {
        diag.add(ErrorKind::unsupported, {},
                 fmt::format("'{}': the adapter saves a {} tensor; only float tensors are "
                             "supported",
                             ref, dtype_name(info->dtype)),
                 {.tensor = name});
      }
    }
  }
}

void attach_adapter(const MergePlan& plan, PlannedInput& in) {
  const Adapter* adapter = plan.adapters[in.model].get();
  if (!adapter) return;
  // The stored name, not the tied fallback's: a tied lm_head reads the
  // embedding, and PEFT's update of the embedding is its update too.
  // (A quantized weight's packed tensor is "<module>.weight" too.)
  const std::string& target = in.ref.info->name;
  if (auto it = adapter->replacements().find(target); it != adapter->replacements().end()) {
    in.ref = TensorRef{&adapter->file(), it->second, nullptr};
    in.adapter = adapter;
  }
  if (auto it = adapter->modules().find(target); it != adapter->modules().end()) {
    in.lora = &it->second;
    in.adapter = adapter;
  }
}

}  // namespace llmerge
