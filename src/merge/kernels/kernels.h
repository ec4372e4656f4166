// Element-wise kernels for the merge methods: dtype conversion at the edges
// and the f32 hot loops.
//
// Each kernel is written once with Highway, compiled for every CPU target
// Highway supports, and picked at run time (HWY_EXPORT /
// HWY_DYNAMIC_DISPATCH, kernels.cpp). Each has a plain scalar twin in
// namespace `scalar` (kernels_scalar.cpp) that is the specification: the two
// agree bit for bit on every input, NaN, Inf and subnormals included, on
// every target. To make that hold, the kernels never fuse a multiply and an
// add (no FMA, and the kernel files turn compiler contraction off): `a*x + y`
// is always round(round(a*x) + y), as torch computes `(w * x).sum(0)`.
//
// All pointers are plain and unaligned; `n` counts elements. Outputs may
// alias an input exactly (in place) but must not partially overlap one.
// Kernels assume valid arguments (the planner checked them); a dtype they do
// not handle is a bug and throws Error(internal).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace llmerge::kernels {

// ---- conversions ----

// dst[i] = src[i] as f32. `src` holds n elements of `type`: BF16, F16 and F32
// exactly; F64 rounds to nearest even.
void load_f32(DType type, const void* src, float* dst, std::size_t n);
// dst[i] = src[i] as `type` (BF16, F16, F32, F64). BF16 and F16 round to
// nearest, ties to even, bit-identical to f32_to_bf16 / f32_to_f16.
void store_from_f32(DType type, const float* src, void* dst, std::size_t n);

// ---- f32 arithmetic ----

// out[i] = a * x[i]
void scale(const float* x, float a, float* out, std::size_t n);
// y[i] = y[i] + a * x[i]
void axpy(float a, const float* x, float* y, std::size_t n);
// y = fma(a, x, y): one rounding, like torch's addcmul_ on the CPU.
void fused_axpy(float a, const float* x, float* y, std::size_t n);
// out = in * factor where the magnitude's bits (as int32, sign cleared) are
// greater than `above`, else 0: the top-k mask of TIES-style sparsification.
void keep_above_magnitude(const float* in, float* out, std::size_t n, std::int32_t above,
                          float factor);
// out = in * factor where above < the magnitude's bits (as int32, sign
// cleared) <= top, else 0: a band of ranks (Model Breadcrumbs).
void keep_magnitude_in(const float* in, float* out, std::size_t n, std::int32_t above,
                       std::int32_t top, float factor);
// out = in * factor where u < threshold, else 0: a random keep mask (DARE).
void keep_below(const float* u, float threshold, const float* in, float* out, std::size_t n,
                float factor);
// out = in * factor where keep[i] != 0, else 0: a mask decided elsewhere (DELLA).
void keep_where(const std::uint8_t* keep, const float* in, float* out, std::size_t n, float factor);
// out[i] = a * x[i] + b * y[i]
void weighted_sum2(float a, const float* x, float b, const float* y, float* out, std::size_t n);
// out[i] = x[i] + y[i]
void add(const float* x, const float* y, float* out, std::size_t n);
// out[i] = x[i] - y[i]
void subtract(const float* x, const float* y, float* out, std::size_t n);
// x[i] = x[i] / d   (a true division, as torch's `x / d`, not a multiply by 1/d)
void divide_scalar(float* x, float d, std::size_t n);
// x[i] = x[i] / d[i]
void divide(float* x, const float* d, std::size_t n);
// out[i] = rows[0][i] + rows[1][i] + ... + rows[m-1][i], summed in row order. m >= 1.
void sum_rows(const float* const* rows, std::size_t m, float* out, std::size_t n);
// TIES sign consensus over m >= 1 weighted task vectors (docs/mergekit-semantics.md §1.8 step 4):
//   s = sum_r rows[r][i];  maj = +1 if s >= 0 else -1 (NaN sum: -1)
//   keep_r = (sign(rows[r][i]) == maj)      (zeros and NaN never match)
//   mixed[i]   = sum_r rows[r][i] * keep_r  (products with 0/1, as torch's delta * mask)
//   divisor[i] = sum_r weights[r] * keep_r, then 1 where that is 0
void sign_consensus(const float* const* rows, const float* weights, std::size_t m, float* mixed,
                    float* divisor, std::size_t n);
// SCE's per-element variance of m >= 1 task vectors τ_r = models[r][i] − base[i] (f32), in f64:
//   mean = (0 + τ_0 + ... + τ_{m-1}) / m,  var[i] = f32((0 + (τ_0 − mean)² + ...) / m)
// (products and sums rounded one at a time, models in order).
void task_variance(const float* base, const float* const* models, std::size_t m, float* var,
                   std::size_t n);

// ---- deterministic f64 reductions (reduce.h: element i goes to accumulator i % 8) ----

// Σ x[i]
double reduce_sum(const float* x, std::size_t n);
// Σ x[i]²
double reduce_sum_squares(const float* x, std::size_t n);
// Σ x[i]·y[i]
double reduce_dot(const float* x, const float* y, std::size_t n);
// Σ |x[i]|
double reduce_l1(const float* x, std::size_t n);

// Name of the Highway target the dispatcher picks on this CPU, e.g. "AVX2".
const char* active_target_name();

namespace scalar {
void load_f32(DType type, const void* src, float* dst, std::size_t n);
void store_from_f32(DType type, const float* src, void* dst, std::size_t n);
void scale(const float* x, float a, float* out, std::size_t n);
void axpy(float a, const float* x, float* y, std::size_t n);
// y = fma(a, x, y): one rounding, like torch's addcmul_ on the CPU.
void fused_axpy(float a, const float* x, float* y, std::size_t n);
// out = in * factor where the magnitude's bits (as int32, sign cleared) are
// greater than `above`, else 0: the top-k mask of TIES-style sparsification.
void keep_above_magnitude(const float* in, float* out, std::size_t n, std::int32_t above,
                          float factor);
// out = in * factor where u < threshold, else 0: a random keep mask (DARE).
void keep_below(const float* u, float threshold, const float* in, float* out, std::size_t n,
                float factor);
void keep_magnitude_in(const float* in, float* out, std::size_t n, std::int32_t above,
                       std::int32_t top, float factor);
void keep_where(const std::uint8_t* keep, const float* in, float* out, std::size_t n, float factor);
void weighted_sum2(float a, const float* x, float b, const float* y, float* out, std::size_t n);
void add(const float* x, const float* y, float* out, std::size_t n);
void subtract(const float* x, const float* y, float* out, std::size_t n);
void divide_scalar(float* x, float d, std::size_t n);
void divide(float* x, const float* d, std::size_t n);
void sum_rows(const float* const* rows, std::size_t m, float* out, std::size_t n);
void sign_consensus(const float* const* rows, const float* weights, std::size_t m, float* mixed,
                    float* divisor, std::size_t n);
void task_variance(const float* base, const float* const* models, std::size_t m, float* var,
                   std::size_t n);
double reduce_sum(const float* x, std::size_t n);
double reduce_sum_squares(const float* x, std::size_t n);
double reduce_dot(const float* x, const float* y, std::size_t n);
double reduce_l1(const float* x, std::size_t n);
}  // namespace scalar

}  // namespace llmerge::kernels
