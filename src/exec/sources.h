// Where the executor reads: one source per planned input.
//
// A source presents an input tensor as logical f32 ranges, whatever its
// storage: a dense tensor of any float dtype, a leading sub-matrix of a larger
// one (embeddings cut to a common vocabulary), or an MLX-quantized weight
// (dequantized group by group), or an earlier recipe stage's tensor computed as
// it is read (exec/stage_source.h). The planner decides which (PlannedInput::source);
// an input with a LoRA update (PlannedInput::lora) is read through any of
// them and gets scale * L * R^T added per element (docs/lora.md).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "plan/plan.h"

namespace llmerge {

// Per-worker buffers that sources read raw bytes into; sized once.
struct SourceScratch {
  explicit SourceScratch(std::int64_t chunk);
  std::vector<unsigned char> raw;     // raw bytes of one chunk (up to 8 bytes an element)
  std::vector<std::uint32_t> words;   // packed MLX codes of one chunk
  std::vector<unsigned char> scales;  // one scale per group
  std::vector<unsigned char> biases;  // one bias per group
};

class TensorSource {
 public:
  virtual ~TensorSource() = default;
  // Elements [begin, begin + n) of the input's logical view, as f32, into
  // `dst`. n is at most the chunk size the scratch was made for.
  virtual void read(std::int64_t begin, std::int64_t n, float* dst,
                    SourceScratch& scratch) const = 0;
};

std::unique_ptr<TensorSource> make_source(const PlannedInput& input);

}  // namespace llmerge
