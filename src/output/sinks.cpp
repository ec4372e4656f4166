#include "output/sinks.h"

#include <algorithm>

#include "io/mlx_quant.h"
#include "merge/kernels/kernels.h"
#include "output/layout.h"

namespace llmerge {

namespace {

std::uint64_t item_bytes(DType t) {
  return static_cast<std::uint64_t>(dtype_bits(t) / 8);
}

class DenseSink final : public TensorSink {
 public:
  DenseSink(const PlannedTensor& t, ModelWriter& writer, std::size_t index, std::int64_t chunk)
      : t_(t), writer_(writer), index_(index), raw_(static_cast<std::size_t>(chunk) * 8) {}

  std::uint64_t write_values(std::int64_t begin, std::int64_t n, float* values) override {
    kernels::store_from_f32(t_.dtype, values, raw_.data(), static_cast<std::size_t>(n));
    const std::uint64_t item = item_bytes(t_.dtype);
    const std::uint64_t bytes = static_cast<std::uint64_t>(n) * item;
    writer_.write(index_, static_cast<std::uint64_t>(begin) * item, raw_.data(), bytes);
    return bytes;
  }
  void write_bytes(std::uint64_t offset, const void* data, std::uint64_t n) override {
    writer_.write(index_, offset, data, n);
  }

 private:
  const PlannedTensor& t_;
  ModelWriter& writer_;
  std::size_t index_;
  std::vector<unsigned char> raw_;
};

class MlxQuantizedSink final : public TensorSink {
 public:
  MlxQuantizedSink(const PlannedTensor& t, ModelWriter& writer, std::size_t index,
                   std::int64_t chunk)
      : t_(t), writer_(writer), index_(index) {
    const auto n = static_cast<std::size_t>(chunk);
    raw_.resize(n * 8);
    // Group sizes are at least 32 and codes at most 8 bits wide.
    words_.resize(n / 4);
    scales_.resize(n / 32 * 4);
    biases_.resize(n / 32 * 4);
  }

  std::uint64_t write_values(std::int64_t begin, std::int64_t n, float* values) override {
    const QuantParams& q = *t_.quantize;
    kernels::store_from_f32(t_.dtype, values, raw_.data(), static_cast<std::size_t>(n));
    const std::int64_t gs = q.group_size;
    const std::int64_t groups = n / gs;
    quantize_rows(q, raw_.data(), t_.dtype, groups, gs, words_.data(), scales_.data(),
                  biases_.data());
    const auto words_per_group = static_cast<std::uint64_t>(gs * q.bits / 32);
    const std::uint64_t item = item_bytes(t_.dtype);
    const auto first = static_cast<std::uint64_t>(begin / gs);
    const auto g = static_cast<std::uint64_t>(groups);
    writer_.write(index_, first * words_per_group * 4, words_.data(), g * words_per_group * 4);
    writer_.write(index_ + 1, first * item, scales_.data(), g * item);
    writer_.write(index_ + 2, first * item, biases_.data(), g * item);
    return g * (words_per_group * 4 + 2 * item);
  }
  void write_bytes(std::uint64_t, const void*, std::uint64_t) override {
    throw Error(ErrorKind::internal, "raw copy into an MLX-quantized output");
  }

 private:
  const PlannedTensor& t_;
  ModelWriter& writer_;
  std::size_t index_;
  std::vector<unsigned char> raw_;
  std::vector<std::uint32_t> words_;
  std::vector<unsigned char> scales_;
  std::vector<unsigned char> biases_;
};

}  // namespace

WriterSinks::WriterSinks(const MergePlan& plan, ModelWriter& writer)
    : plan_(plan), writer_(writer), writer_index_(plan_writer_indices(plan)) {}

std::unique_ptr<TensorSink> WriterSinks::open(std::size_t index, std::int64_t chunk) {
  const PlannedTensor& t = plan_.tensors[index];
  // Buffers no larger than the tensor: norms and biases are far below a chunk.
  chunk = std::max<std::int64_t>(1, std::min(chunk, t.numel()));
  switch (t.sink) {
    case SinkKind::dense:
      return std::make_unique<DenseSink>(t, writer_, writer_index_[index], chunk);
    case SinkKind::mlx_quantize:
      return std::make_unique<MlxQuantizedSink>(t, writer_, writer_index_[index], chunk);
  }
  throw Error(ErrorKind::internal, "unknown sink kind");
}

}  // namespace llmerge
