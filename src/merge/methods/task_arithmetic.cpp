// task_arithmetic: add a weighted sum of task vectors to the base model.
//
// Paper: Ilharco et al., "Editing Models with Task Arithmetic", ICLR 2023,
// https://arxiv.org/abs/2212.04089
//
// Formula (docs/mergekit-semantics.md §1.8, no sparsification, no consensus):
//   res = b + λ · Σ_i w_i (x_i − b)            (÷ Σ_i w_i first if normalize)
// See task_arithmetic_core.h for the exact steps.
// Parameters: per-model `weight` (required), `density` (1.0); global
// `normalize` (false), `rescale` (false), `lambda` (1.0), `int8_mask` (false).
//
// Differences from mergekit: f32 arithmetic instead of the config dtype.
// As in mergekit, `density` and `rescale` are accepted but have no effect
// (task_arithmetic has no sparsification step), and `int8_mask` only
// changes mergekit's memory use.
#include "merge/methods/methods.h"
#include "merge/methods/task_arithmetic_core.h"

namespace llmerge {
namespace {

std::unique_ptr<TensorMerge> make_task_arithmetic(const TensorContext& context) {
  return gta::make_gta_merge(context, gta::GtaVariant{.consensus = false, .sparsifier = nullptr});
}

}  // namespace

MethodSpec make_task_arithmetic_spec() {
  MethodSpec spec =
      gta::gta_spec("task_arithmetic", "Task Arithmetic", "https://arxiv.org/abs/2212.04089",
                    "Base model plus the weighted sum of task vectors",
                    /*normalize_default=*/false, /*rescale_default=*/false);
  spec.make = &make_task_arithmetic;
  spec.elementwise = &always_elementwise;
  return spec;
}

}  // namespace llmerge
