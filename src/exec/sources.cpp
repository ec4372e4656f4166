#include "exec/sources.h"

#include <algorithm>
#include <mutex>

#include "core/dtype.h"
#include "exec/stage_source.h"
#include "io/mlx_quant.h"
#include "merge/kernels/kernels.h"
#include "plan/vocabulary.h"

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
  // `mlx_roundings`: the values mx.dequantize gives (scale*q and +bias each
  // rounded to the scales' dtype), which is what mlx_lm.fuse adds a LoRA
  // update to; otherwise the more accurate f32 result.
  MlxDequantizeSource(const PlannedInput& in, bool mlx_roundings)
      : in_(in), mlx_roundings_(mlx_roundings) {}
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
    if (mlx_roundings_ && q.params.mode == QuantMode::affine) {
      dequantize_rows_as(q.params, s.words.data(), s.scales.data(), s.biases.data(),
                         q.scales->dtype, groups, gs, DType::F32, dst);
      return;
    }
    dequantize_rows(q.params, s.words.data(), s.scales.data(), q.biases ? s.biases.data() : nullptr,
                    q.scales->dtype, groups, gs, dst);
  }

 private:
  const PlannedInput& in_;
  bool mlx_roundings_ = false;
};

// Rows aligned to the output vocabulary (plan/vocabulary.h): each output row
// is a row of this slot's table, a default (a row of any slot's table, the
// mean of several, or zero), or padding (the mean of this slot's rows
// [0, real_rows)). Reads go row segment by row segment through the tables'
// own sources, so only O(chunk + width) floats are held.
class RowGatherSource final : public TensorSource {
 public:
  explicit RowGatherSource(const PlannedInput& in) : g_(*in.gather), slot_(in.gather_slot) {
    for (const auto& table : g_.tables)
      tables_.push_back(make_source(table));
  }

  void read(std::int64_t begin, std::int64_t n, float* dst, SourceScratch& s) const override {
    const std::int64_t w = g_.width;
    const std::int64_t end = begin + n;
    const auto& own = g_.own[slot_];
    for (std::int64_t pos = begin; pos < end;) {
      const std::int64_t row = pos / w;
      const std::int64_t col = pos % w;
      // A run of the model's own rows that are consecutive in its table is one read.
      std::int64_t rows = 1;
      if (row < g_.real_rows && own[static_cast<std::size_t>(row)] >= 0) {
        const std::int64_t first = own[static_cast<std::size_t>(row)];
        while ((row + rows) * w < end && row + rows < g_.real_rows &&
               own[static_cast<std::size_t>(row + rows)] == first + rows)
          ++rows;
        const std::int64_t take = std::min((row + rows) * w, end) - pos;
        tables_[slot_]->read(first * w + col, take, dst + (pos - begin), s);
        pos += take;
        continue;
      }
      const std::int64_t take = std::min(w - col, end - pos);
      row_segment(row, col, take, dst + (pos - begin), s);
      pos += take;
    }
  }

 private:
  void row_segment(std::int64_t row, std::int64_t col, std::int64_t n, float* dst,
                   SourceScratch& s) const {
    const auto count = static_cast<std::size_t>(n);
    if (row >= g_.real_rows) {
      std::call_once(padding_once_, [&] { compute_padding(s); });
      std::copy_n(padding_.begin() + col, count, dst);
      return;
    }
    const std::int64_t own = g_.own[slot_][static_cast<std::size_t>(row)];
    if (own >= 0) {
      tables_[slot_]->read(own * g_.width + col, n, dst, s);
      return;
    }
    const auto r = static_cast<std::size_t>(row);
    const std::uint32_t first = g_.default_offsets[r];
    const std::uint32_t last = g_.default_offsets[r + 1];
    if (first == last) {
      std::fill_n(dst, count, 0.0f);
      return;
    }
    const RowTerm& t0 = g_.default_terms[first];
    tables_[t0.slot]->read(t0.row * g_.width + col, n, dst, s);
    if (last - first == 1) return;
    // mergekit's mean: a sum in model order, then one division, in f32.
    std::vector<float> term(count);
    for (std::uint32_t k = first + 1; k < last; ++k) {
      const RowTerm& t = g_.default_terms[k];
      tables_[t.slot]->read(t.row * g_.width + col, n, term.data(), s);
      for (std::size_t i = 0; i < count; ++i)
        dst[i] += term[i];
    }
    const auto terms = static_cast<float>(last - first);
    for (std::size_t i = 0; i < count; ++i)
      dst[i] /= terms;
  }

  // The column means of this slot's aligned rows [0, real_rows), summed in
  // f64 in row order, so the result does not depend on chunking.
  void compute_padding(SourceScratch& s) const {
    const auto w = static_cast<std::size_t>(g_.width);
    std::vector<double> sum(w, 0.0);
    std::vector<float> row(w);
    // Pieces of at most one chunk, which is what the scratch holds.
    const std::int64_t piece = std::min<std::int64_t>(
        g_.width, std::max<std::int64_t>(1, static_cast<std::int64_t>(s.raw.size() / 8)));
    for (std::int64_t r = 0; r < g_.real_rows; ++r) {
      for (std::int64_t c = 0; c < g_.width; c += piece) {
        const std::int64_t n = std::min(piece, g_.width - c);
        row_segment(r, c, n, row.data() + c, s);
      }
      for (std::size_t i = 0; i < w; ++i)
        sum[i] += row[i];
    }
    padding_.resize(w);
    for (std::size_t i = 0; i < w; ++i)
      padding_[i] = static_cast<float>(sum[i] / static_cast<double>(g_.real_rows));
  }

  const RowGather& g_;
  std::size_t slot_;
  std::vector<std::unique_ptr<TensorSource>> tables_;
  mutable std::once_flag padding_once_;
  mutable std::vector<float> padding_;
};

// W + scale * L * R^T (io/lora.h) for a "model+adapter" input. The factors
// are read once per tensor into f32; each element's update is a dot product
// over the rank in fixed order, so it does not depend on the chunking.
// Rounding follows what the adapted model would store, as peft's
// merge_and_unload and mlx_lm.fuse do: the update is computed in f32, cast to
// the base's dtype and added in that dtype (docs/lora.md).
class LoraSource final : public TensorSource {
 public:
  LoraSource(const PlannedInput& in, std::unique_ptr<TensorSource> inner)
      : in_(in), inner_(std::move(inner)) {
    const LoraModule& m = *in.lora;
    const SafetensorsFile& file = in.adapter->file();
    rank_ = static_cast<std::size_t>(m.rank);
    auto load = [&file](const TensorInfo& t) {
      std::vector<unsigned char> raw(t.nbytes());
      file.read(t, 0, raw.data(), raw.size());
      std::vector<float> v(static_cast<std::size_t>(t.numel()));
      kernels::load_f32(t.dtype, raw.data(), v.data(), v.size());
      return v;
    };
    // `v` is [outer, rank] (as is) or [rank, outer] (transposed to it).
    auto as_rows = [this](std::vector<float> v, std::int64_t outer, bool transposed) {
      if (!transposed) return v;
      std::vector<float> out(v.size());
      const auto n = static_cast<std::size_t>(outer);
      for (std::size_t k = 0; k < rank_; ++k)
        for (std::size_t i = 0; i < n; ++i)
          out[i * rank_ + k] = v[k * n + i];
      return out;
    };
    std::vector<float> a = load(*m.a);
    std::vector<float> b = load(*m.b);
    switch (m.layout) {
      case LoraLayout::peft_linear:  // L = B [out, r], R = A^T (A is [r, in])
        left_ = as_rows(std::move(b), m.rows, false);
        right_ = as_rows(std::move(a), m.cols, true);
        break;
      case LoraLayout::peft_fan_in_fan_out:  // L = A^T, R = B
      case LoraLayout::peft_embedding:
        left_ = as_rows(std::move(a), m.rows, true);
        right_ = as_rows(std::move(b), m.cols, false);
        break;
      case LoraLayout::mlx_linear:  // L = b^T (b is [r, out]), R = a [in, r]
        left_ = as_rows(std::move(b), m.rows, true);
        right_ = as_rows(std::move(a), m.cols, false);
        break;
      case LoraLayout::mlx_embedding:  // L = a [vocab, r], R = b^T
        left_ = as_rows(std::move(a), m.rows, false);
        right_ = as_rows(std::move(b), m.cols, true);
        break;
    }
    const auto scale = static_cast<float>(m.scale);
    if (in.adapter->format() == AdapterFormat::mlx) {
      // mlx-lm scales the factor first, (scale * lora_b.T) @ lora_a.T, and
      // casts the update to the weight's dtype before adding it there.
      for (auto& x : left_)
        x *= scale;
      scale_ = 1.0F;
      update_dtype_ = in.ref.dtype();
    } else {
      // peft: (B @ A) * scaling in f32, cast back to the factors' dtype if
      // they are 16-bit; the in-place add into the weight rounds once.
      scale_ = scale;
      update_dtype_ = m.b->dtype;
    }
  }

  void read(std::int64_t begin, std::int64_t n, float* dst, SourceScratch& s) const override {
    inner_->read(begin, n, dst, s);
    auto rounder = [](DType dtype) {
      return [dtype](float x) {
        if (dtype == DType::BF16) return bf16_to_f32(f32_to_bf16(x));
        if (dtype == DType::F16) return f16_to_f32(f32_to_f16(x));
        return x;
      };
    };
    const auto to_dtype = rounder(in_.ref.dtype());
    const auto to_update_dtype = rounder(update_dtype_);
    const std::int64_t cols = in_.shape[1];
    for (std::int64_t k = 0; k < n; ++k) {
      const std::int64_t pos = begin + k;
      const float* l = left_.data() + static_cast<std::size_t>(pos / cols) * rank_;
      const float* r = right_.data() + static_cast<std::size_t>(pos % cols) * rank_;
      float dot = 0;
      for (std::size_t j = 0; j < rank_; ++j)
        dot += l[j] * r[j];
      const float delta = to_update_dtype(dot * scale_);
      dst[k] = to_dtype(to_dtype(dst[k]) + delta);
    }
  }

 private:
  const PlannedInput& in_;
  std::unique_ptr<TensorSource> inner_;
  std::size_t rank_ = 0;
  float scale_ = 1;
  DType update_dtype_ = DType::F32;  // the update is rounded to this before the add
  std::vector<float> left_;
  std::vector<float> right_;
};

std::unique_ptr<TensorSource> make_stored_source(const PlannedInput& input) {
  switch (input.source) {
    case SourceKind::dense:
      return std::make_unique<DenseSource>(input);
    case SourceKind::sub_matrix:
      return std::make_unique<SubMatrixSource>(input);
    case SourceKind::mlx_dequantize:
      return std::make_unique<MlxDequantizeSource>(input, input.lora != nullptr);
    case SourceKind::row_gather:
      return std::make_unique<RowGatherSource>(input);
    case SourceKind::stage_output:
      return make_stage_source(input);
  }
  return std::make_unique<DenseSource>(input);
}

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
  auto stored = make_stored_source(input);
  if (input.lora) return std::make_unique<LoraSource>(input, std::move(stored));
  return stored;
}

}  // namespace llmerge
