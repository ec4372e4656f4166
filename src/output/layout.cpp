#include "output/layout.h"

#include <string_view>

#include "io/mlx_quant.h"

namespace llmerge {

std::vector<TensorSpec> plan_tensor_specs(const MergePlan& plan) {
  std::vector<TensorSpec> specs;
  specs.reserve(plan.tensors.size());
  for (const auto& t : plan.tensors) {
    if (!t.quantize) {
      specs.push_back({t.name, t.dtype, t.shape});
      continue;
    }
    const std::string module = t.name.substr(0, t.name.size() - std::string_view(".weight").size());
    const auto layout = quant_row_layout(*t.quantize, t.shape.back());
    auto packed = t.shape;
    packed.back() = layout.words;
    auto groups = t.shape;
    groups.back() = layout.groups;
    specs.push_back({t.name, DType::U32, packed});
    specs.push_back({module + ".scales", t.dtype, groups});
    specs.push_back({module + ".biases", t.dtype, groups});
  }
  return specs;
}

std::vector<std::size_t> plan_writer_indices(const MergePlan& plan) {
  std::vector<std::size_t> out;
  out.reserve(plan.tensors.size());
  std::size_t next = 0;
  for (const auto& t : plan.tensors) {
    out.push_back(next);
    next += t.quantize ? 3 : 1;
  }
  return out;
}

}  // namespace llmerge
