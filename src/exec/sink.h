// Where the executor writes: one sink per output tensor.
//
// The executor only schedules: it computes f32 values chunk by chunk and
// hands them to the tensor's sink. The write stage (src/output/) implements
// the sinks -- dense (round to the output dtype) and MLX-quantized (round,
// then pack codes, scales and biases) -- and chooses one per tensor as the
// plan says (PlannedTensor::sink).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace llmerge {

class TensorSink {
 public:
  virtual ~TensorSink() = default;
  // Elements [begin, begin + n) of the output, in f32; `values` may be
  // overwritten. Chunks arrive in order. Returns the bytes written.
  virtual std::uint64_t write_values(std::int64_t begin, std::int64_t n, float* values) = 0;
  // `n` raw bytes at `offset` (verbatim copies of non-float tensors).
  virtual void write_bytes(std::uint64_t offset, const void* data, std::uint64_t n) = 0;
};

// Thread-safe: workers open sinks for different tensors concurrently.
class OutputSinks {
 public:
  virtual ~OutputSinks() = default;
  // The sink of plan.tensors[index], sized for chunks of `chunk` elements.
  virtual std::unique_ptr<TensorSink> open(std::size_t index, std::int64_t chunk) = 0;
};

}  // namespace llmerge
