// The write stage's sinks: what the executor's f32 output chunks become on disk.
//
// DenseSink rounds each chunk to the output dtype (round to nearest even) and
// writes it at its offset. MlxQuantizedSink rounds the same way, then quantizes
// (so the result equals mx.quantize of the dense merge) and writes the packed
// codes, scales and biases: three consecutive writer tensors (output/layout.h).
#pragma once

#include <vector>

#include "exec/sink.h"
#include "output/model_writer.h"
#include "plan/plan.h"

namespace llmerge {

// Opens the sink the plan chose for each tensor, over one ModelWriter that was
// created with plan_tensor_specs(plan).
class WriterSinks final : public OutputSinks {
 public:
  WriterSinks(const MergePlan& plan, ModelWriter& writer);
  std::unique_ptr<TensorSink> open(std::size_t index, std::int64_t chunk) override;

 private:
  const MergePlan& plan_;
  ModelWriter& writer_;
  std::vector<std::size_t> writer_index_;
};

}  // namespace llmerge
