#include "exec/sources.h"

#include <algorithm>

#include "io/mlx_quant.h"
#include "merge/kernels/kernels.h"

namespace llmerge {

namespace {

std::uint64_t item_bytes(DType t) {
  return static_cast<std::uint64_t>(dtype_bits(t) / 8);
}

class DenseSource final : public TensorSource {
 public:
  explicit DenseSource(const PlannedInput& in) : in_(in) {}
  void read(std::int64_t begin, std::int64_t n, float* dst, SourceScratch& s) const override {
    const TensorInfo& info = *in_.ref.info;
    const std::uint64_t item = item_bytes(info.dtype);
    in_.ref.file->read(info, static_cast<std::uint64_t>(begin) * item, s.raw.data(),
                       static_cast<std::uint64_t>(n) * item);
    kernels::load_f32(info.dtype, s.raw.data(), dst, static_cast<std::size_t>(n));
  }

 private:
  const PlannedInput& in_;
};

// A leading sub-matrix with fewer columns than stored: read row segments.
class SubMatrixSource final : public TensorSource {
 public:
  explicit SubMatrixSource(const PlannedInput& in) : in_(in) {}
  void read(std::int64_t begin, std::int64_t n, float* dst, SourceScratch& s) const override {
    const TensorInfo& info = *in_.ref.info;
    const std::uint64_t item = item_bytes(info.dtype);
    const std::int64_t cols = in_.shape[1];
    const std::int64_t stored_cols = info.shape[1];
    for (std::int64_t pos = begin; pos < begin + n;) {
      const std::int64_t row = pos / cols;
      const std::int64_t col = pos % cols;
      const std::int64_t take = std::min(cols - col, begin + n - pos);
      in_.ref.file->read(info, static_cast<std::uint64_t>(row * stored_cols + col) * item,
                         s.raw.data() + static_cast<std::size_t>(pos - begin) * item,
                         static_cast<std::uint64_t>(take) * item);
      pos += take;
    }
    kernels::load_f32(info.dtype, s.raw.data(), dst, static_cast<std::size_t>(n));
  }

 private:
  const PlannedInput& in_;
};

// An MLX-quantized weight. Chunks are multiples of 65536 elements and rows of
// the group size, so a chunk is always whole groups, and each group can be
// dequantized as a row of its own.
class MlxDequantizeSource final : public TensorSource {
 public:
  explicit MlxDequantizeSource(const PlannedInput& in) : in_(in) {}
  void read(std::int64_t begin, std::int64_t n, float* dst, SourceScratch& s) const override {
    const QuantizedWeight& q = *in_.ref.quant;
    const std::int64_t gs = q.params.group_size;
    const std::int64_t groups = n / gs;
    const auto words_per_group = static_cast<std::uint64_t>(gs * q.params.bits / 32);
    const auto first = static_cast<std::uint64_t>(begin / gs);
    const auto g = static_cast<std::uint64_t>(groups);
    in_.ref.file->read(*in_.ref.info, first * words_per_group * 4, s.words.data(),
                       g * words_per_group * 4);
    const std::uint64_t scale_bytes = item_bytes(q.scales->dtype);
    q.scales_file->read(*q.scales, first * scale_bytes, s.scales.data(), g * scale_bytes);
    if (q.biases) {
      q.biases_file->read(*q.biases, first * scale_bytes, s.biases.data(), g * scale_bytes);
    }
    dequantize_rows(q.params, s.words.data(), s.scales.data(), q.biases ? s.biases.data() : nullptr,
                    q.scales->dtype, groups, gs, dst);
  }

 private:
  const PlannedInput& in_;
};

}  // namespace

SourceScratch::SourceScratch(std::int64_t chunk) {
  const auto n = static_cast<std::size_t>(chunk);
  raw.resize(n * 8);
  // Group sizes are at least 32 and codes at most 8 bits wide.
  words.resize(n / 4);
  scales.resize(n / 32 * 4);
  biases.resize(n / 32 * 4);
}

std::unique_ptr<TensorSource> make_source(const PlannedInput& input) {
  switch (input.source) {
    case SourceKind::dense:
      return std::make_unique<DenseSource>(input);
    case SourceKind::sub_matrix:
      return std::make_unique<SubMatrixSource>(input);
    case SourceKind::mlx_dequantize:
      return std::make_unique<MlxDequantizeSource>(input);
  }
  return std::make_unique<DenseSource>(input);
}

}  // namespace llmerge
