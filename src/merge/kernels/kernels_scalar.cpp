// The scalar twins of kernels.cpp: the plain-C++ specification each SIMD
// kernel must match bit for bit.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "merge/kernels/kernels.h"
#include "merge/kernels/reduce.h"

namespace llmerge::kernels::scalar {

void load_f32(DType type, const void* src, float* dst, std::size_t n) {
  switch (type) {
    case DType::F32:
      if (n != 0) std::memmove(dst, src, n * sizeof(float));
      return;
    case DType::BF16: {
      const auto* s = static_cast<const std::uint16_t*>(src);
      for (std::size_t i = 0; i < n; ++i)
        dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::F16: {
      const auto* s = static_cast<const std::uint16_t*>(src);
      for (std::size_t i = 0; i < n; ++i)
        dst[i] = f16_to_f32(s[i]);
      return;
    }
    case DType::F64: {
      const auto* s = static_cast<const double*>(src);
      for (std::size_t i = 0; i < n; ++i)
        dst[i] = static_cast<float>(s[i]);
      return;
    }
    default:
      throw Error(ErrorKind::internal,
                  "load_f32: unsupported dtype " + std::string(dtype_name(type)));
  }
}

void store_from_f32(DType type, const float* src, void* dst, std::size_t n) {
  switch (type) {
    case DType::F32:
      if (n != 0) std::memmove(dst, src, n * sizeof(float));
      return;
    case DType::BF16: {
      auto* d = static_cast<std::uint16_t*>(dst);
      for (std::size_t i = 0; i < n; ++i)
        d[i] = f32_to_bf16(src[i]);
      return;
    }
    case DType::F16: {
      auto* d = static_cast<std::uint16_t*>(dst);
      for (std::size_t i = 0; i < n; ++i)
        d[i] = f32_to_f16(src[i]);
      return;
    }
    case DType::F64: {
      auto* d = static_cast<double*>(dst);
      for (std::size_t i = 0; i < n; ++i)
        d[i] = static_cast<double>(src[i]);
      return;
    }
    default:
      throw Error(ErrorKind::internal,
                  "store_from_f32: unsupported dtype " + std::string(dtype_name(type)));
  }
}

void scale(const float* x, float a, float* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    out[i] = a * x[i];
}

void keep_magnitude_in(const float* in, float* out, std::size_t n, std::int32_t above,
                       std::int32_t top, float factor) {
  for (std::size_t i = 0; i < n; ++i) {
    std::int32_t bits;
    std::memcpy(&bits, in + i, 4);
    bits &= 0x7fffffff;
    out[i] = bits > above && bits <= top ? in[i] * factor : 0.0f;
  }
}

void keep_above_magnitude(const float* in, float* out, std::size_t n, std::int32_t above,
                          float factor) {
  keep_magnitude_in(in, out, n, above, 0x7fffffff, factor);
}

void keep_where(const std::uint8_t* keep, const float* in, float* out, std::size_t n,
                float factor) {
  for (std::size_t i = 0; i < n; ++i)
    out[i] = keep[i] != 0 ? in[i] * factor : 0.0f;
}

void keep_below(const float* u, float threshold, const float* in, float* out, std::size_t n,
                float factor) {
  for (std::size_t i = 0; i < n; ++i)
    out[i] = u[i] < threshold ? in[i] * factor : 0.0f;
}

void fused_axpy(float a, const float* x, float* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    y[i] = std::fma(a, x[i], y[i]);
}

void axpy(float a, const float* x, float* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const float p = a * x[i];
    y[i] = y[i] + p;
  }
}

void weighted_sum2(float a, const float* x, float b, const float* y, float* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const float p = a * x[i];
    const float q = b * y[i];
    out[i] = p + q;
  }
}

void add(const float* x, const float* y, float* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    out[i] = x[i] + y[i];
}

void subtract(const float* x, const float* y, float* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    out[i] = x[i] - y[i];
}

void divide_scalar(float* x, float d, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    x[i] = x[i] / d;
}

void divide(float* x, const float* d, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    x[i] = x[i] / d[i];
}

void sum_rows(const float* const* rows, std::size_t m, float* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    float s = rows[0][i];
    for (std::size_t r = 1; r < m; ++r)
      s = s + rows[r][i];
    out[i] = s;
  }
}

void task_variance(const float* base, const float* const* models, std::size_t m, float* var,
                   std::size_t n) {
  const double count = static_cast<double>(m);
  for (std::size_t i = 0; i < n; ++i) {
    double mean = 0.0;
    for (std::size_t r = 0; r < m; ++r)
      mean += static_cast<double>(models[r][i] - base[i]);
    mean /= count;
    double sum = 0.0;
    for (std::size_t r = 0; r < m; ++r) {
      const double d = static_cast<double>(models[r][i] - base[i]) - mean;
      sum += d * d;
    }
    var[i] = static_cast<float>(sum / count);
  }
}

void sign_consensus(const float* const* rows, const float* weights, std::size_t m, float* mixed,
                    float* divisor, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    float s = rows[0][i];
    for (std::size_t r = 1; r < m; ++r)
      s = s + rows[r][i];
    const bool positive = s >= 0.0f;
    float mix = 0.0f;
    float div = 0.0f;
    for (std::size_t r = 0; r < m; ++r) {
      const float d = rows[r][i];
      const float keep = (positive ? d > 0.0f : d < 0.0f) ? 1.0f : 0.0f;
      const float dk = d * keep;
      const float wk = weights[r] * keep;
      mix = r == 0 ? dk : mix + dk;
      div = r == 0 ? wk : div + wk;
    }
    mixed[i] = mix;
    divisor[i] = div == 0.0f ? 1.0f : div;
  }
}

double reduce_sum(const float* x, std::size_t n) {
  return detail::reduce8(n, [x](std::size_t i) { return static_cast<double>(x[i]); });
}

double reduce_sum_squares(const float* x, std::size_t n) {
  return detail::reduce8(n, [x](std::size_t i) {
    const double v = x[i];
    return v * v;
  });
}

double reduce_dot(const float* x, const float* y, std::size_t n) {
  return detail::reduce8(
      n, [x, y](std::size_t i) { return static_cast<double>(x[i]) * static_cast<double>(y[i]); });
}

double reduce_l1(const float* x, std::size_t n) {
  return detail::reduce8(n, [x](std::size_t i) { return std::fabs(static_cast<double>(x[i])); });
}

}  // namespace llmerge::kernels::scalar
