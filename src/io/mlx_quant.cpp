#include "io/mlx_quant.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace llmerge {

namespace {

// E2M1 values by code (bit 3 = sign), as mlx's FP4_LUT.
constexpr float k_e2m1_values[16] = {+0.0f, +0.5f, +1.0f, +1.5f, +2.0f, +3.0f, +4.0f, +6.0f,
                                     -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

// One float storage type: how to load it to f32 and round f32 back to it.
struct F32Io {
  using T = float;
  static float load(T v) { return v; }
  static T store(float f) { return f; }
};
// k_mlx_nan: write NaN as mlx's software f16/bf16 conversions do
// (mlx/types/fp16.h, bf16.h): sign | 0x7D00 for f16, always 0x7FC0 for bf16.
template <bool k_mlx_nan>
struct F16Io {
  using T = std::uint16_t;
  static float load(T v) { return f16_to_f32(v); }
  static T store(float f) {
    if (k_mlx_nan && std::isnan(f)) return std::signbit(f) ? 0xFD00 : 0x7D00;
    return f32_to_f16(f);
  }
};
template <bool k_mlx_nan>
struct BF16Io {
  using T = std::uint16_t;
  static float load(T v) { return bf16_to_f32(v); }
  static T store(float f) {
    if (k_mlx_nan && std::isnan(f)) return 0x7FC0;
    return f32_to_bf16(f);
  }
};

template <bool k_mlx_nan = false, typename Fn>
void dispatch_float_io(DType dtype, const char* who, Fn&& fn) {
  switch (dtype) {
    case DType::F32:
      return fn(F32Io{});
    case DType::F16:
      return fn(F16Io<k_mlx_nan>{});
    case DType::BF16:
      return fn(BF16Io<k_mlx_nan>{});
    default:
      throw Error(ErrorKind::internal, std::string("[") + who + "] unsupported dtype " +
                                           std::string(dtype_name(dtype)) +
                                           " (expected F16, BF16 or F32)");
  }
}

// Reads consecutive codes from the little-endian bit stream of a row. Loads a
// word only when the next code needs it, so it never reads past the codes.
class CodeReader {
 public:
  CodeReader(const std::uint32_t* words, int bits)
      : words_(words), bits_(bits), mask_((1u << bits) - 1u) {}
  std::uint32_t next() {
    if (have_ < bits_) {
      acc_ |= std::uint64_t{*words_++} << have_;
      have_ += 32;
    }
    const auto code = static_cast<std::uint32_t>(acc_) & mask_;
    acc_ >>= bits_;
    have_ -= bits_;
    return code;
  }

 private:
  const std::uint32_t* words_;
  int bits_;
  std::uint32_t mask_;
  std::uint64_t acc_ = 0;
  int have_ = 0;
};

class CodeWriter {
 public:
  CodeWriter(std::uint32_t* words, int bits) : words_(words), bits_(bits) {}
  void put(std::uint32_t code) {
    acc_ |= std::uint64_t{code} << have_;
    have_ += bits_;
    if (have_ >= 32) {
      *words_++ = static_cast<std::uint32_t>(acc_);
      acc_ >>= 32;
      have_ -= 32;
    }
  }
  void flush() {
    if (have_ > 0) *words_++ = static_cast<std::uint32_t>(acc_);
    acc_ = 0;
    have_ = 0;
  }

 private:
  std::uint32_t* words_;
  int bits_;
  std::uint64_t acc_ = 0;
  int have_ = 0;
};

bool is_e8m0_dtype(DType t) {
  return t == DType::U8 || t == DType::F8_E8M0;
}

// 2^(e-127) in f32; e = 255 overflows to +Inf, as mlx computes it.
float e8m0_to_f32(std::uint8_t e) {
  return std::ldexp(1.0f, int{e} - 127);
}

void check_mxfp4_args(const void* biases, DType scale_dtype, const char* who) {
  if (!is_e8m0_dtype(scale_dtype) || biases != nullptr)
    throw Error(ErrorKind::internal,
                std::string("[") + who + "] mxfp4 takes U8/F8_E8M0 scales and no biases");
}

template <typename Io, typename Emit>
void for_each_affine(const QuantParams& p, const std::uint32_t* packed, const void* scales,
                     const void* biases, std::int64_t rows, std::int64_t cols, Emit&& emit) {
  const auto* s = static_cast<const typename Io::T*>(scales);
  const auto* b = static_cast<const typename Io::T*>(biases);
  const QuantRowLayout layout = quant_row_layout(p, cols);
  for (std::int64_t r = 0; r < rows; ++r) {
    CodeReader reader(packed + r * layout.words, p.bits);
    for (std::int64_t g = 0; g < layout.groups; ++g) {
      const float scale = Io::load(s[r * layout.groups + g]);
      const float bias = Io::load(b[r * layout.groups + g]);
      for (int j = 0; j < p.group_size; ++j)
        emit(reader.next(), scale, bias);
    }
  }
}

template <typename Emit>
void for_each_mxfp4(const QuantParams& p, const std::uint32_t* packed, const void* scales,
                    std::int64_t rows, std::int64_t cols, Emit&& emit) {
  const auto* e = static_cast<const std::uint8_t*>(scales);
  const QuantRowLayout layout = quant_row_layout(p, cols);
  for (std::int64_t r = 0; r < rows; ++r) {
    CodeReader reader(packed + r * layout.words, 4);
    for (std::int64_t g = 0; g < layout.groups; ++g) {
      const std::uint8_t code = e[r * layout.groups + g];
      for (int j = 0; j < p.group_size; ++j)
        emit(reader.next(), code);
    }
  }
}

template <typename Io, bool k_gpu>
void quantize_rows_impl(const QuantParams& p, const typename Io::T* w, std::int64_t rows,
                        std::int64_t cols, std::uint32_t* packed, typename Io::T* scales,
                        typename Io::T* biases) {
  // Same constants and operation order as mlx's kernels: every f32 operation
  // below rounds exactly where mlx's does (there is no a*b+c to contract).
  const auto n_bins = static_cast<float>((1 << p.bits) - 1);
  const auto eps = static_cast<float>(1e-7);  // mlx: `float eps = 1e-7;`
  const auto round = [](float x) { return k_gpu ? std::round(x) : std::rint(x); };
  const QuantRowLayout layout = quant_row_layout(p, cols);
  CodeWriter writer(packed, p.bits);
  for (std::int64_t g = 0; g < rows * layout.groups; ++g) {
    const typename Io::T* group = w + g * p.group_size;
    float w_min = std::numeric_limits<float>::infinity();
    float w_max = k_gpu ? 0.0f : -w_min;
    for (int j = 0; j < p.group_size; ++j) {
      const float v = Io::load(group[j]);
      w_min = std::min(w_min, v);  // std::min/max skip a NaN in the second argument, like mlx
      w_max = std::max(w_max, v);
    }
    const bool from_min = std::abs(w_min) > std::abs(w_max);
    float scale = std::max((w_max - w_min) / n_bins, eps);
    scale = from_min ? scale : -scale;
    const float edge = from_min ? w_min : w_max;
    const float q0 = round(edge / scale);
    float bias = 0.0f;
    if (q0 != 0.0f) {
      scale = edge / q0;
      bias = edge;
    }
    for (int j = 0; j < p.group_size; ++j) {
      float q = round((Io::load(group[j]) - bias) / scale);
      if (!(q > 0.0f)) q = 0.0f;  // also maps NaN to 0
      if (q > n_bins) q = n_bins;
      writer.put(static_cast<std::uint32_t>(q));
    }
    scales[g] = Io::store(scale);
    biases[g] = Io::store(bias);
  }
  writer.flush();  // a no-op: every group fills whole words
}

}  // namespace

QuantMode parse_quant_mode(std::string_view name) {
  if (name == "affine") return QuantMode::affine;
  if (name == "mxfp4") return QuantMode::mxfp4;
  if (name == "mxfp8" || name == "nvfp4")
    throw Error(ErrorKind::unsupported, "quantization mode '" + std::string(name) +
                                            "' is not supported yet (supported: affine, mxfp4)");
  throw Error(ErrorKind::config, "unknown quantization mode '" + std::string(name) +
                                     "' (mlx knows affine, mxfp4, mxfp8 and nvfp4)");
}

std::string_view quant_mode_name(QuantMode mode) {
  return mode == QuantMode::affine ? "affine" : "mxfp4";
}

std::optional<Error> quant_params_error(const QuantParams& params) {
  const std::string bits = std::to_string(params.bits);
  const std::string group_size = std::to_string(params.group_size);
  if (params.mode == QuantMode::mxfp4) {
    if (params.bits != 4 || params.group_size != 32)
      return Error(ErrorKind::config,
                   "mxfp4 quantization needs bits 4 and group_size 32, got bits " + bits +
                       " and group_size " + group_size);
    return std::nullopt;
  }
  const int b = params.bits;
  if (b < 2 || b > 8 || b == 7)
    return Error(ErrorKind::config, "affine quantization bits must be 2, 3, 4, 5, 6 or 8, got " +
                                        bits + " (as mx.quantize)");
  const int gs = params.group_size;
  if (gs != 32 && gs != 64 && gs != 128)
    return Error(ErrorKind::config, "affine quantization group_size must be 32, 64 or 128, got " +
                                        group_size + " (as mx.quantize)");
  return std::nullopt;
}

void validate_quant_params(const QuantParams& params) {
  if (auto error = quant_params_error(params)) throw *error;
}

QuantRowLayout quant_row_layout(const QuantParams& params, std::int64_t cols) {
  // cols <= 2^56 keeps cols * bits far from overflow.
  if (cols <= 0 || cols > (std::int64_t{1} << 56) || cols % params.group_size != 0)
    throw Error(ErrorKind::shape, "a quantized row of " + std::to_string(cols) +
                                      " elements is not a positive multiple of group_size " +
                                      std::to_string(params.group_size));
  return {cols, cols / 32 * params.bits, cols / params.group_size};
}

QuantRowLayout quant_row_layout_from_words(const QuantParams& params, std::int64_t words) {
  const std::int64_t group_words = std::int64_t{params.group_size} * params.bits / 32;
  if (words <= 0 || words > (std::int64_t{1} << 56) || words % group_words != 0)
    throw Error(ErrorKind::shape, "a packed row of " + std::to_string(words) +
                                      " uint32 words is not a whole number of " +
                                      std::to_string(params.bits) + "-bit groups of " +
                                      std::to_string(params.group_size) + " (" +
                                      std::to_string(group_words) + " words each)");
  return quant_row_layout(params, words / group_words * params.group_size);
}

void pack_codes(int bits, const std::uint8_t* codes, std::int64_t count, std::uint32_t* words) {
  CodeWriter writer(words, bits);
  for (std::int64_t i = 0; i < count; ++i)
    writer.put(codes[i]);
  writer.flush();
}

void unpack_codes(int bits, const std::uint32_t* words, std::int64_t count, std::uint8_t* codes) {
  CodeReader reader(words, bits);
  for (std::int64_t i = 0; i < count; ++i)
    codes[i] = static_cast<std::uint8_t>(reader.next());
}

void dequantize_rows(const QuantParams& params, const std::uint32_t* packed, const void* scales,
                     const void* biases, DType scale_dtype, std::int64_t rows, std::int64_t cols,
                     float* out) {
  if (params.mode == QuantMode::mxfp4) {
    check_mxfp4_args(biases, scale_dtype, "dequantize_rows");
    float pow2 = 0.0f;
    std::uint8_t last = 0;
    bool have = false;
    for_each_mxfp4(params, packed, scales, rows, cols, [&](std::uint32_t q, std::uint8_t e) {
      if (!have || e != last) {
        pow2 = e8m0_to_f32(e);
        last = e;
        have = true;
      }
      *out++ = k_e2m1_values[q] * pow2;
    });
    return;
  }
  dispatch_float_io(scale_dtype, "dequantize_rows", [&](auto io) {
    using Io = decltype(io);
    for_each_affine<Io>(params, packed, scales, biases, rows, cols,
                        [&](std::uint32_t q, float scale, float bias) {
                          // Two statements: no fused multiply-add (clang's default
                          // -ffp-contract=on fuses within one expression only).
                          const float scaled = static_cast<float>(q) * scale;
                          *out++ = scaled + bias;
                        });
  });
}

void dequantize_rows_as(const QuantParams& params, const std::uint32_t* packed, const void* scales,
                        const void* biases, DType scale_dtype, std::int64_t rows, std::int64_t cols,
                        DType out_dtype, void* out) {
  dispatch_float_io<true>(out_dtype, "dequantize_rows_as", [&](auto out_io) {
    using Out = decltype(out_io);
    auto* dst = static_cast<typename Out::T*>(out);
    if (params.mode == QuantMode::mxfp4) {
      check_mxfp4_args(biases, scale_dtype, "dequantize_rows_as");
      for_each_mxfp4(params, packed, scales, rows, cols, [&](std::uint32_t q, std::uint8_t e) {
        const float pow2 = Out::load(Out::store(e8m0_to_f32(e)));
        *dst++ = Out::store(k_e2m1_values[q] * pow2);
      });
      return;
    }
    dispatch_float_io<true>(scale_dtype, "dequantize_rows_as", [&](auto scale_io) {
      using Io = decltype(scale_io);
      for_each_affine<Io>(params, packed, scales, biases, rows, cols,
                          [&](std::uint32_t q, float scale, float bias) {
                            const float scaled = Io::load(Io::store(static_cast<float>(q) * scale));
                            *dst++ = Out::store(Io::load(Io::store(scaled + bias)));
                          });
    });
  });
}

void quantize_rows(const QuantParams& params, const void* w, DType w_dtype, std::int64_t rows,
                   std::int64_t cols, std::uint32_t* packed, void* scales, void* biases,
                   QuantRounding rounding) {
  if (params.mode != QuantMode::affine)
    throw Error(ErrorKind::unsupported, "quantizing to " +
                                            std::string(quant_mode_name(params.mode)) +
                                            " is not supported yet (affine only)");
  dispatch_float_io(w_dtype, "quantize_rows", [&](auto io) {
    using Io = decltype(io);
    using T = typename Io::T;
    const auto* src = static_cast<const T*>(w);
    auto* s = static_cast<T*>(scales);
    auto* b = static_cast<T*>(biases);
    if (rounding == QuantRounding::half_away_from_zero)
      quantize_rows_impl<Io, true>(params, src, rows, cols, packed, s, b);
    else
      quantize_rows_impl<Io, false>(params, src, rows, cols, packed, s, b);
  });
}

}  // namespace llmerge
