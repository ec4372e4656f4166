// MLX quantised weights: parameters, bit packing, dequantise and quantise.
//
// This is the arithmetic that lets llmerge read and write the quantised
// Linear / Embedding weights that mlx-lm produces (`mlx_lm.convert -q`). It is
// pure math on row-major buffers: no files, no config.json, no tensor names.
// The reference is ml-explore/mlx at 846d176 (mlx 0.32); the files cited below
// are in that tree. Every claim marked [verified] is checked bit for bit
// against real mlx by tests/mlx/check_quant.py (see tests/mlx/README.md).
//
// ---- Tensors of one quantised matrix W [rows, cols] ----
//
//   weight  uint32 [rows, cols * bits / 32]   packed codes (below)
//   scales  [rows, cols / group_size]         affine: W's dtype (F16/BF16/F32)
//                                             mxfp4: uint8 E8M0 codes
//   biases  [rows, cols / group_size]         affine only, same dtype as scales
//
// A group is `group_size` consecutive elements of one row (along the last
// axis, i.e. along `in` for a Linear [out, in]). `cols % group_size == 0`, and
// as group_size >= 32 every group fills whole uint32 words.
//
// ---- Packing (mlx/backend/common/quantized.h, mlx/backend/cpu/quantized.cpp) ----
//
// Element j of a row sits at bit offset j*bits of the row, read as a
// little-endian bit stream: word w holds stream bits [32w, 32w+32), bit 0 of a
// word being its least significant bit. For bits 2, 4, 8 this is the familiar
// "element 0 in the low bits, 32/bits per word". For bits 3, 5 and 6 mlx
// writes 8 (3, 5 bits) or 4 (6 bits) values into 3, 5 or 3 little-endian
// bytes; that is the same stream, and codes straddle word boundaries. E.g.
// with 3 bits, element 10 occupies bits 30..32: two bits of word 0 and one of
// word 1. [verified for all bits and group sizes]
//
// ---- Affine mode (mlx/ops.cpp affine_quantize; CPU kernel quantize()) ----
//
// Dequantise: w = scale * q + bias, q in [0, 2^bits - 1]. The scale may be
// negative. Quantise, per group, all in float32:
//
//   n_bins = 2^bits - 1, eps = 1e-7
//   w_min, w_max = group min and max
//                  (Metal/CUDA kernels: w_max starts at 0, i.e. max(0, max))
//   scale = max((w_max - w_min) / n_bins, eps)
//   if |w_min| > |w_max|: edge = w_min, scale = +scale
//   else:                 edge = w_max, scale = -scale
//   q0 = round(edge / scale)
//   if q0 != 0: scale = edge / q0, bias = edge      (zero snaps onto the grid)
//   else:       bias = 0
//   q = clamp(round((w - bias) / scale), 0, n_bins)
//   store scale and bias rounded (to nearest even) to W's dtype
//
// round() is std::rint (ties to even) on mlx's CPU backend and round-half-
// away-from-zero on Metal and CUDA. The stored scale and bias are rounded
// after q is computed, so they are not exactly the ones q was made with.
//
// Findings while checking against mlx:
//  - The quantised error is not always within scale/2. Snapping zero onto the
//    grid can shrink |scale| below (w_max - w_min)/n_bins, and then the far
//    end of the group is clamped to n_bins: it may be off by up to one full
//    |scale| (e.g. 2 bits, group {-1, 0.8, ...}: scale 0.5, bias -1, and 0.8
//    dequantises to 0.5). Elements inside [bias, bias + n_bins*scale] are
//    within |scale|/2.
//  - mx.dequantize on the CPU backend computes scale*q and then +bias as two
//    separate operations, each rounded to the scales' dtype (for F16/BF16 that
//    is two F16/BF16 roundings). dequantize_rows_as reproduces that bit for
//    bit; dequantize_rows keeps the float32 result, which is more accurate.
//  - A NaN result of mx.dequantize (e.g. code 0 times an Inf scale) is
//    written by mlx's software conversions (mlx/types/fp16.h, bf16.h) as
//    sign|0x7D00 in F16 and 0x7FC0 in BF16; dequantize_rows_as does the same.
//  - A group whose range overflows f32 (e.g. +/-3e38) gets scale +Inf, bias 0
//    and all codes 0, in mlx and here alike.
//  - The half_away_from_zero flavour follows the Metal and CUDA kernels as
//    read in the source (mlx/backend/metal/kernels/quantized.h,
//    mlx/backend/cuda/quantized/affine_quantize.cu); it is not checked
//    against a GPU run.
//  - NaN inputs: mlx's CPU kernel ignores NaN in the min/max and then casts
//    NaN to an integer (undefined behaviour in C++). Here a NaN element gets
//    code 0. Inputs are otherwise assumed finite.
//
// ---- mxfp4 mode (mlx/ops.cpp fp_quantize / fp_dequantize) ----
//
// Group size 32, 4 bits, no biases. Each code is an E2M1 float: bit 3 the
// sign, values {0, 0.5, 1, 1.5, 2, 3, 4, 6}. Codes are packed like affine
// 4-bit (8 per word, element 0 in the low nibble). The group's scale is an
// E8M0 byte e meaning 2^(e - 127); mlx does not special-case e = 255 (the OCP
// MX spec's NaN): 2^128 overflows to +Inf, so codes 0 give NaN and others
// +/-Inf. w = e2m1(code) * 2^(e - 127). [verified] Quantising to mxfp4 is not
// provided here.
//
// Not supported (yet): mxfp8 (E4M3 codes) and nvfp4 (group 16, E4M3 scales,
// optional global scale). parse_quant_mode rejects them with ErrorKind::unsupported.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "core/dtype.h"
#include "core/error.h"

namespace llmerge {

enum class QuantMode { affine, mxfp4 };

// Which mlx backend quantize_rows mirrors. The rounding rule and the start
// value of the group max travel together, because each backend has both.
enum class QuantRounding {
  ties_to_even,         // mlx CPU backend (and mx.quantize with mlx[cpu]):
                        // std::rint, true group max.
  half_away_from_zero,  // mlx Metal and CUDA kernels, which made most MLX
                        // checkpoints on the Hub: round(), and the group max
                        // starts at 0, so an all-negative group spans [min, 0].
};

struct QuantParams {
  int bits = 4;
  int group_size = 64;
  QuantMode mode = QuantMode::affine;
};

// "affine" or "mxfp4". "mxfp8" and "nvfp4" throw Error(unsupported, "... not
// supported yet"); anything else throws Error(config).
QuantMode parse_quant_mode(std::string_view name);
std::string_view quant_mode_name(QuantMode mode);

// The problem with `params`, if any, as an Error the caller may throw or add
// to its diagnostics. Affine: bits in {2,3,4,5,6,8} and group_size in
// {32,64,128} (what mx.quantize accepts; anything else is ErrorKind::config).
// mxfp4: bits 4 and group_size 32 exactly.
std::optional<Error> quant_params_error(const QuantParams& params);
// Throws quant_params_error(params), if any.
void validate_quant_params(const QuantParams& params);

// Sizes of one quantised row with `cols` logical elements.
struct QuantRowLayout {
  std::int64_t cols = 0;    // logical elements
  std::int64_t words = 0;   // uint32 words of packed codes = cols * bits / 32
  std::int64_t groups = 0;  // scales (and biases) = cols / group_size
};
// Throws Error(shape) unless cols > 0 and cols % group_size == 0. `params`
// must be valid.
QuantRowLayout quant_row_layout(const QuantParams& params, std::int64_t cols);
// The layout of a row stored as `words` packed uint32 words (the last dim of a
// quantised weight). Throws Error(shape) if no whole number of groups fits.
QuantRowLayout quant_row_layout_from_words(const QuantParams& params, std::int64_t words);

// ---- packing (exposed for tests and for code that edits codes directly) ----

// Writes `count` codes (each < 2^bits) into ceil(count*bits/32) words, in the
// layout above; unused high bits of the last word are zero.
void pack_codes(int bits, const std::uint8_t* codes, std::int64_t count, std::uint32_t* words);
// Reads `count` codes starting at element 0 of `words`.
void unpack_codes(int bits, const std::uint32_t* words, std::int64_t count, std::uint8_t* codes);

// ---- dequantise ----

// Dequantises `rows` whole rows to float32. Buffers are row-major and dense:
// packed has rows*layout.words words, scales/biases rows*layout.groups values,
// out rows*cols floats. Rows are independent, so a caller streams row chunks
// by offsetting the pointers by whole rows.
//   affine: scale_dtype is F16, BF16 or F32 (biases the same dtype);
//           out = float(q) * scale + bias in float32 (no fused multiply-add).
//           Bit-exact with mx.dequantize for F32 scales.
//   mxfp4:  scale_dtype is U8 or F8_E8M0, biases must be null; exact.
// Preconditions (asserted by the caller's planner, not re-checked):
// validate_quant_params(params) passes and cols % group_size == 0.
void dequantize_rows(const QuantParams& params, const std::uint32_t* packed, const void* scales,
                     const void* biases, DType scale_dtype, std::int64_t rows, std::int64_t cols,
                     float* out);

// As dequantize_rows, but writes `out_dtype` (F16, BF16 or F32) with the
// roundings of mx.dequantize on mlx's CPU backend, for output that must match
// mlx byte for byte (e.g. `mlx_lm.convert -d`):
//   affine: r = round_T(round_T(q * scale) + bias) with T = scale_dtype, then
//           converted to out_dtype (mlx's default out_dtype is scale_dtype).
//   mxfp4:  r = round_O(e2m1(q) * round_O(2^(e-127))) with O = out_dtype
//           (mlx's default is BF16).
void dequantize_rows_as(const QuantParams& params, const std::uint32_t* packed, const void* scales,
                        const void* biases, DType scale_dtype, std::int64_t rows, std::int64_t cols,
                        DType out_dtype, void* out);

// ---- quantise (affine only) ----

// Quantises `rows` whole rows of `w` (dtype F16, BF16 or F32; rows*cols
// values) into packed (rows*layout.words), scales and biases (rows*
// layout.groups each, in w_dtype), with the algorithm above. With
// ties_to_even the result is bit-exact with mx.quantize on mlx's CPU backend
// [verified]. Same preconditions as dequantize_rows, plus mode == affine.
// Allocation-free.
void quantize_rows(const QuantParams& params, const void* w, DType w_dtype, std::int64_t rows,
                   std::int64_t cols, std::uint32_t* packed, void* scales, void* biases,
                   QuantRounding rounding = QuantRounding::ties_to_even);

}  // namespace llmerge
