// Highway implementations of kernels.h, compiled once per CPU target
// (foreach_target.h re-includes this file) and dispatched at run time.
// Conversions use integer operations only, so they are identical on every
// target: Highway 1.0.3's DemoteTo to bf16 truncates and its f16 paths differ
// between targets (F16C vs emulation).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <cmath>
#include <cstring>
#include <vector>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "merge/kernels/kernels.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "merge/kernels/kernels.h"

HWY_BEFORE_NAMESPACE();
namespace llmerge::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using DU32 = hn::RebindToUnsigned<DF>;
using DI32 = hn::RebindToSigned<DF>;
using DU16 = hn::Rebind<std::uint16_t, DF>;

const char* TargetName() {
  return hwy::TargetName(HWY_TARGET);
}

void LoadBf16(const std::uint16_t* src, float* dst, std::size_t n) {
  const DF df;
  const DU32 du32;
  const DU16 du16;
  const std::size_t lanes = hn::Lanes(df);
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto wide = hn::PromoteTo(du32, hn::LoadU(du16, src + i));
    hn::StoreU(hn::BitCast(df, hn::ShiftLeft<16>(wide)), df, dst + i);
  }
  scalar::load_f32(DType::BF16, src + i, dst + i, n - i);
}

// f16 -> f32 by re-biasing the exponent; subnormals are normalised with one
// exact float subtraction.
void LoadF16(const std::uint16_t* src, float* dst, std::size_t n) {
  const DF df;
  const DU32 du32;
  const DU16 du16;
  const auto exp_mask = hn::Set(du32, 0x7c00u << 13);
  const auto rebias = hn::Set(du32, 112u << 23);
  const auto one_exp = hn::Set(du32, 1u << 23);
  const auto magic = hn::BitCast(df, hn::Set(du32, 113u << 23));
  const auto zero = hn::Zero(du32);
  const std::size_t lanes = hn::Lanes(df);
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto h = hn::PromoteTo(du32, hn::LoadU(du16, src + i));
    auto o = hn::ShiftLeft<13>(hn::And(h, hn::Set(du32, 0x7fffu)));
    const auto e = hn::And(o, exp_mask);
    o = hn::Add(o, rebias);
    o = hn::IfThenElse(hn::Eq(e, exp_mask), hn::Add(o, rebias), o);  // Inf / NaN
    const auto sub = hn::BitCast(du32, hn::Sub(hn::BitCast(df, hn::Add(o, one_exp)), magic));
    o = hn::IfThenElse(hn::Eq(e, zero), sub, o);  // zero / subnormal
    o = hn::Or(o, hn::ShiftLeft<16>(hn::And(h, hn::Set(du32, 0x8000u))));
    hn::StoreU(hn::BitCast(df, o), df, dst + i);
  }
  scalar::load_f32(DType::F16, src + i, dst + i, n - i);
}

void StoreBf16(const float* src, std::uint16_t* dst, std::size_t n) {
  const DF df;
  const DU32 du32;
  const DI32 di32;
  const DU16 du16;
  const std::size_t lanes = hn::Lanes(df);
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto u = hn::BitCast(du32, hn::LoadU(df, src + i));
    const auto abs = hn::BitCast(di32, hn::And(u, hn::Set(du32, 0x7fffffffu)));
    const auto is_nan = hn::RebindMask(du32, hn::Gt(abs, hn::Set(di32, 0x7f800000)));
    const auto hi = hn::ShiftRight<16>(u);
    const auto bias = hn::Add(hn::Set(du32, 0x7fffu), hn::And(hi, hn::Set(du32, 1u)));
    auto r = hn::ShiftRight<16>(hn::Add(u, bias));
    r = hn::IfThenElse(is_nan, hn::Or(hi, hn::Set(du32, 0x40u)), r);
    hn::StoreU(hn::DemoteTo(du16, hn::BitCast(di32, r)), du16, dst + i);
  }
  scalar::store_from_f32(DType::BF16, src + i, dst + i, n - i);
}

// f32 -> f16, round to nearest even. Normal results round the mantissa with
// integer adds; subnormal results come from adding 0.5f, whose ulp (2^-24)
// is exactly the f16 subnormal step, so the FPU does the rounding.
void StoreF16(const float* src, std::uint16_t* dst, std::size_t n) {
  const DF df;
  const DU32 du32;
  const DI32 di32;
  const DU16 du16;
  const auto half = hn::Set(df, 0.5f);
  const std::size_t lanes = hn::Lanes(df);
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto u = hn::BitCast(du32, hn::LoadU(df, src + i));
    const auto sign = hn::And(hn::ShiftRight<16>(u), hn::Set(du32, 0x8000u));
    const auto abs = hn::And(u, hn::Set(du32, 0x7fffffffu));
    const auto abs_i = hn::BitCast(di32, abs);
    const auto is_nan = hn::RebindMask(du32, hn::Gt(abs_i, hn::Set(di32, 0x7f800000)));
    const auto is_inf = hn::RebindMask(du32, hn::Gt(abs_i, hn::Set(di32, 0x477fefff)));
    const auto is_sub = hn::RebindMask(du32, hn::Lt(abs_i, hn::Set(di32, 0x38800000)));
    auto normal = hn::Sub(abs, hn::Set(du32, 112u << 23));
    normal = hn::Add(normal, hn::Add(hn::Set(du32, 0xfffu),
                                     hn::And(hn::ShiftRight<13>(normal), hn::Set(du32, 1u))));
    normal = hn::ShiftRight<13>(normal);
    const auto sub =
        hn::Sub(hn::BitCast(du32, hn::Add(hn::BitCast(df, abs), half)), hn::Set(du32, 126u << 23));
    const auto nan =
        hn::Or(hn::Set(du32, 0x7e00u), hn::And(hn::ShiftRight<13>(abs), hn::Set(du32, 0x3ffu)));
    auto r = hn::IfThenElse(is_sub, sub, normal);
    r = hn::IfThenElse(is_inf, hn::Set(du32, 0x7c00u), r);
    r = hn::IfThenElse(is_nan, nan, r);
    r = hn::Or(r, sign);
    hn::StoreU(hn::DemoteTo(du16, hn::BitCast(di32, r)), du16, dst + i);
  }
  scalar::store_from_f32(DType::F16, src + i, dst + i, n - i);
}

void StoreF64(const float* src, double* dst, std::size_t n) {
  const hn::ScalableTag<double> dd;
  const hn::Rebind<float, decltype(dd)> df;
  const std::size_t lanes = hn::Lanes(dd);
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes)
    hn::StoreU(hn::PromoteTo(dd, hn::LoadU(df, src + i)), dd, dst + i);
  scalar::store_from_f32(DType::F64, src + i, dst + i, n - i);
}

void Scale(const float* x, float a, float* out, std::size_t n) {
  const DF d;
  const auto va = hn::Set(d, a);
  const std::size_t lanes = hn::Lanes(d);
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes)
    hn::StoreU(hn::Mul(va, hn::LoadU(d, x + i)), d, out + i);
  scalar::scale(x + i, a, out + i, n - i);
}

void Axpy(float a, const float* x, float* y, std::size_t n) {
  const DF d;
  const auto va = hn::Set(d, a);
  const std::size_t lanes = hn::Lanes(d);
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto p = hn::Mul(va, hn::LoadU(d, x + i));
    hn::StoreU(hn::Add(hn::LoadU(d, y + i), p), d, y + i);
  }
  scalar::axpy(a, x + i, y + i, n - i);
}

void FusedAxpy(float a, const float* x, float* y, std::size_t n) {
  std::size_t i = 0;
#if HWY_NATIVE_FMA
  // Only where MulAdd is one fused instruction; elsewhere std::fma below
  // gives the same single rounding.
  const DF d;
  const auto va = hn::Set(d, a);
  const std::size_t lanes = hn::Lanes(d);
  for (; i + lanes <= n; i += lanes) {
    hn::StoreU(hn::MulAdd(va, hn::LoadU(d, x + i), hn::LoadU(d, y + i)), d, y + i);
  }
#endif
  scalar::fused_axpy(a, x + i, y + i, n - i);
}

void WeightedSum2(float a, const float* x, float b, const float* y, float* out, std::size_t n) {
  const DF d;
  const auto va = hn::Set(d, a);
  const auto vb = hn::Set(d, b);
  const std::size_t lanes = hn::Lanes(d);
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto p = hn::Mul(va, hn::LoadU(d, x + i));
    const auto q = hn::Mul(vb, hn::LoadU(d, y + i));
    hn::StoreU(hn::Add(p, q), d, out + i);
  }
  scalar::weighted_sum2(a, x + i, b, y + i, out + i, n - i);
}

void AddVec(const float* x, const float* y, float* out, std::size_t n) {
  const DF d;
  const std::size_t lanes = hn::Lanes(d);
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes)
    hn::StoreU(hn::Add(hn::LoadU(d, x + i), hn::LoadU(d, y + i)), d, out + i);
  scalar::add(x + i, y + i, out + i, n - i);
}

void SubtractVec(const float* x, const float* y, float* out, std::size_t n) {
  const DF d;
  const std::size_t lanes = hn::Lanes(d);
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes)
    hn::StoreU(hn::Sub(hn::LoadU(d, x + i), hn::LoadU(d, y + i)), d, out + i);
  scalar::subtract(x + i, y + i, out + i, n - i);
}

void DivideScalar(float* x, float divisor, std::size_t n) {
  const DF d;
  const auto vd = hn::Set(d, divisor);
  const std::size_t lanes = hn::Lanes(d);
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes)
    hn::StoreU(hn::Div(hn::LoadU(d, x + i), vd), d, x + i);
  scalar::divide_scalar(x + i, divisor, n - i);
}

void DivideVec(float* x, const float* divisor, std::size_t n) {
  const DF d;
  const std::size_t lanes = hn::Lanes(d);
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes)
    hn::StoreU(hn::Div(hn::LoadU(d, x + i), hn::LoadU(d, divisor + i)), d, x + i);
  scalar::divide(x + i, divisor + i, n - i);
}

void SumRows(const float* const* rows, std::size_t m, float* out, std::size_t n) {
  const DF d;
  const std::size_t lanes = hn::Lanes(d);
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    auto s = hn::LoadU(d, rows[0] + i);
    for (std::size_t r = 1; r < m; ++r)
      s = hn::Add(s, hn::LoadU(d, rows[r] + i));
    hn::StoreU(s, d, out + i);
  }
  if (i == n) return;
  std::vector<const float*> tail(rows, rows + m);
  for (auto& row : tail)
    row += i;
  scalar::sum_rows(tail.data(), m, out + i, n - i);
}

void KeepMagnitudeIn(const float* in, float* out, std::size_t n, std::int32_t above,
                     std::int32_t top, float factor) {
  const DF d;
  const DI32 di;
  const auto abs_mask = hn::Set(di, 0x7fffffff);
  const auto vabove = hn::Set(di, above);
  const auto vtop = hn::Set(di, top);
  const auto vf = hn::Set(d, factor);
  const std::size_t lanes = hn::Lanes(d);
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto x = hn::LoadU(d, in + i);
    const auto bits = hn::And(hn::BitCast(di, x), abs_mask);
    const auto keep = hn::RebindMask(d, hn::And(hn::Gt(bits, vabove), hn::Not(hn::Gt(bits, vtop))));
    hn::StoreU(hn::IfThenElseZero(keep, hn::Mul(x, vf)), d, out + i);
  }
  scalar::keep_magnitude_in(in + i, out + i, n - i, above, top, factor);
}

void KeepAboveMagnitude(const float* in, float* out, std::size_t n, std::int32_t above,
                        float factor) {
  KeepMagnitudeIn(in, out, n, above, 0x7fffffff, factor);  // every magnitude is <= 0x7fffffff
}

void KeepBelow(const float* u, float threshold, const float* in, float* out, std::size_t n,
               float factor) {
  const DF d;
  const auto vt = hn::Set(d, threshold);
  const auto vf = hn::Set(d, factor);
  const std::size_t lanes = hn::Lanes(d);
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto keep = hn::Lt(hn::LoadU(d, u + i), vt);
    hn::StoreU(hn::IfThenElseZero(keep, hn::Mul(hn::LoadU(d, in + i), vf)), d, out + i);
  }
  scalar::keep_below(u + i, threshold, in + i, out + i, n - i, factor);
}

void KeepWhere(const std::uint8_t* keep, const float* in, float* out, std::size_t n, float factor) {
  const DF d;
  const DI32 di;
  const hn::Rebind<std::uint8_t, DI32> d8;
  const auto vf = hn::Set(d, factor);
  const auto zero = hn::Zero(di);
  const std::size_t lanes = hn::Lanes(d);
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto k =
        hn::BitCast(di, hn::PromoteTo(hn::Rebind<std::uint32_t, DI32>(), hn::LoadU(d8, keep + i)));
    const auto kept = hn::RebindMask(d, hn::Ne(k, zero));
    hn::StoreU(hn::IfThenElseZero(kept, hn::Mul(hn::LoadU(d, in + i), vf)), d, out + i);
  }
  scalar::keep_where(keep + i, in + i, out + i, n - i, factor);
}

// The eight accumulators of reduce.h as four vectors of two f64 lanes:
// element i still goes to accumulator i % 8, added in the same order, so the
// result is the scalar twin's bit for bit on every target.
#if HWY_HAVE_FLOAT64 && HWY_TARGET != HWY_SCALAR
using D2 = hn::FixedTag<double, 2>;
using F2 = hn::Rebind<float, D2>;

template <class VecTerm, class Term>
HWY_INLINE double Reduce8(std::size_t n, VecTerm vec_term, Term term) {
  const D2 d;
  auto a01 = hn::Zero(d);
  auto a23 = hn::Zero(d);
  auto a45 = hn::Zero(d);
  auto a67 = hn::Zero(d);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    a01 = hn::Add(a01, vec_term(i));
    a23 = hn::Add(a23, vec_term(i + 2));
    a45 = hn::Add(a45, vec_term(i + 4));
    a67 = hn::Add(a67, vec_term(i + 6));
  }
  HWY_ALIGN double acc[8];
  hn::Store(a01, d, acc);
  hn::Store(a23, d, acc + 2);
  hn::Store(a45, d, acc + 4);
  hn::Store(a67, d, acc + 6);
  for (std::size_t j = 0; i + j < n; ++j)
    acc[j] += term(i + j);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

double ReduceSum(const float* x, std::size_t n) {
  return Reduce8(
      n, [x](std::size_t i) { return hn::PromoteTo(D2(), hn::LoadU(F2(), x + i)); },
      [x](std::size_t i) { return static_cast<double>(x[i]); });
}

double ReduceSumSquares(const float* x, std::size_t n) {
  return Reduce8(
      n,
      [x](std::size_t i) {
        const auto v = hn::PromoteTo(D2(), hn::LoadU(F2(), x + i));
        return hn::Mul(v, v);
      },
      [x](std::size_t i) {
        const double v = x[i];
        return v * v;
      });
}

double ReduceDot(const float* x, const float* y, std::size_t n) {
  return Reduce8(
      n,
      [x, y](std::size_t i) {
        return hn::Mul(hn::PromoteTo(D2(), hn::LoadU(F2(), x + i)),
                       hn::PromoteTo(D2(), hn::LoadU(F2(), y + i)));
      },
      [x, y](std::size_t i) { return static_cast<double>(x[i]) * static_cast<double>(y[i]); });
}

double ReduceL1(const float* x, std::size_t n) {
  return Reduce8(
      n, [x](std::size_t i) { return hn::Abs(hn::PromoteTo(D2(), hn::LoadU(F2(), x + i))); },
      [x](std::size_t i) { return std::fabs(static_cast<double>(x[i])); });
}
#else  // no f64 vectors of two lanes on this target: the scalar twins
double ReduceSum(const float* x, std::size_t n) {
  return scalar::reduce_sum(x, n);
}
double ReduceSumSquares(const float* x, std::size_t n) {
  return scalar::reduce_sum_squares(x, n);
}
double ReduceDot(const float* x, const float* y, std::size_t n) {
  return scalar::reduce_dot(x, y, n);
}
double ReduceL1(const float* x, std::size_t n) {
  return scalar::reduce_l1(x, n);
}
#endif

void SignConsensus(const float* const* rows, const float* weights, std::size_t m, float* mixed,
                   float* divisor, std::size_t n) {
  const DF d;
  const auto zero = hn::Zero(d);
  const auto one = hn::Set(d, 1.0f);
  const std::size_t lanes = hn::Lanes(d);
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    auto s = hn::LoadU(d, rows[0] + i);
    for (std::size_t r = 1; r < m; ++r)
      s = hn::Add(s, hn::LoadU(d, rows[r] + i));
    const auto positive = hn::Ge(s, zero);
    auto mix = zero;
    auto div = zero;
    for (std::size_t r = 0; r < m; ++r) {
      const auto x = hn::LoadU(d, rows[r] + i);
      const auto match =
          hn::Or(hn::And(positive, hn::Gt(x, zero)), hn::AndNot(positive, hn::Lt(x, zero)));
      const auto keep = hn::IfThenElseZero(match, one);
      const auto dk = hn::Mul(x, keep);
      const auto wk = hn::Mul(hn::Set(d, weights[r]), keep);
      mix = r == 0 ? dk : hn::Add(mix, dk);
      div = r == 0 ? wk : hn::Add(div, wk);
    }
    hn::StoreU(mix, d, mixed + i);
    hn::StoreU(hn::IfThenElse(hn::Eq(div, zero), one, div), d, divisor + i);
  }
  if (i == n) return;
  std::vector<const float*> tail(rows, rows + m);
  for (auto& row : tail)
    row += i;
  scalar::sign_consensus(tail.data(), weights, m, mixed + i, divisor + i, n - i);
}

// f64 lanes, the f32 task vector of each model promoted as in the scalar twin.
// Mul then Add, never MulAdd: the twin rounds the product before the sum.
void TaskVariance(const float* base, const float* const* models, std::size_t m, float* var,
                  std::size_t n) {
  const hn::ScalableTag<double> dd;
  const hn::Rebind<float, decltype(dd)> df;
  const std::size_t lanes = hn::Lanes(dd);
  const auto count = hn::Set(dd, static_cast<double>(m));
  std::size_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto b = hn::LoadU(df, base + i);
    auto mean = hn::Zero(dd);
    for (std::size_t r = 0; r < m; ++r)
      mean = hn::Add(mean, hn::PromoteTo(dd, hn::Sub(hn::LoadU(df, models[r] + i), b)));
    mean = hn::Div(mean, count);
    auto sum = hn::Zero(dd);
    for (std::size_t r = 0; r < m; ++r) {
      const auto d = hn::Sub(hn::PromoteTo(dd, hn::Sub(hn::LoadU(df, models[r] + i), b)), mean);
      sum = hn::Add(sum, hn::Mul(d, d));
    }
    hn::StoreU(hn::DemoteTo(df, hn::Div(sum, count)), df, var + i);
  }
  if (i == n) return;
  std::vector<const float*> tail(models, models + m);
  for (auto& row : tail)
    row += i;
  scalar::task_variance(base + i, tail.data(), m, var + i, n - i);
}

}  // namespace HWY_NAMESPACE
}  // namespace llmerge::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace llmerge::kernels {

HWY_EXPORT(TargetName);
HWY_EXPORT(LoadBf16);
HWY_EXPORT(LoadF16);
HWY_EXPORT(StoreBf16);
HWY_EXPORT(StoreF16);
HWY_EXPORT(StoreF64);
HWY_EXPORT(Scale);
HWY_EXPORT(Axpy);
HWY_EXPORT(FusedAxpy);
HWY_EXPORT(WeightedSum2);
HWY_EXPORT(AddVec);
HWY_EXPORT(SubtractVec);
HWY_EXPORT(DivideScalar);
HWY_EXPORT(DivideVec);
HWY_EXPORT(SumRows);
HWY_EXPORT(SignConsensus);
HWY_EXPORT(KeepAboveMagnitude);
HWY_EXPORT(KeepBelow);
HWY_EXPORT(ReduceSum);
HWY_EXPORT(ReduceSumSquares);
HWY_EXPORT(ReduceDot);
HWY_EXPORT(ReduceL1);
HWY_EXPORT(KeepMagnitudeIn);
HWY_EXPORT(KeepWhere);
HWY_EXPORT(TaskVariance);

double reduce_sum(const float* x, std::size_t n) {
  return HWY_DYNAMIC_DISPATCH(ReduceSum)(x, n);
}
double reduce_sum_squares(const float* x, std::size_t n) {
  return HWY_DYNAMIC_DISPATCH(ReduceSumSquares)(x, n);
}
double reduce_dot(const float* x, const float* y, std::size_t n) {
  return HWY_DYNAMIC_DISPATCH(ReduceDot)(x, y, n);
}
double reduce_l1(const float* x, std::size_t n) {
  return HWY_DYNAMIC_DISPATCH(ReduceL1)(x, n);
}

const char* active_target_name() {
  return HWY_DYNAMIC_DISPATCH(TargetName)();
}

void load_f32(DType type, const void* src, float* dst, std::size_t n) {
  switch (type) {
    case DType::F32:
      if (n != 0) std::memmove(dst, src, n * sizeof(float));
      return;
    case DType::BF16:
      return HWY_DYNAMIC_DISPATCH(LoadBf16)(static_cast<const std::uint16_t*>(src), dst, n);
    case DType::F16:
      return HWY_DYNAMIC_DISPATCH(LoadF16)(static_cast<const std::uint16_t*>(src), dst, n);
    case DType::F64:
      // Scalar on purpose: Highway's HWY_SCALAR DemoteTo clamps Inf and
      // out-of-range doubles to the largest float instead of rounding to Inf.
      return scalar::load_f32(type, src, dst, n);
    default:
      return scalar::load_f32(type, src, dst, n);  // throws Error(internal)
  }
}

void store_from_f32(DType type, const float* src, void* dst, std::size_t n) {
  switch (type) {
    case DType::F32:
      if (n != 0) std::memmove(dst, src, n * sizeof(float));
      return;
    case DType::BF16:
      return HWY_DYNAMIC_DISPATCH(StoreBf16)(src, static_cast<std::uint16_t*>(dst), n);
    case DType::F16:
      return HWY_DYNAMIC_DISPATCH(StoreF16)(src, static_cast<std::uint16_t*>(dst), n);
    case DType::F64:
      return HWY_DYNAMIC_DISPATCH(StoreF64)(src, static_cast<double*>(dst), n);
    default:
      return scalar::store_from_f32(type, src, dst, n);  // throws Error(internal)
  }
}

void scale(const float* x, float a, float* out, std::size_t n) {
  HWY_DYNAMIC_DISPATCH(Scale)(x, a, out, n);
}
void axpy(float a, const float* x, float* y, std::size_t n) {
  HWY_DYNAMIC_DISPATCH(Axpy)(a, x, y, n);
}
void fused_axpy(float a, const float* x, float* y, std::size_t n) {
  HWY_DYNAMIC_DISPATCH(FusedAxpy)(a, x, y, n);
}
void keep_above_magnitude(const float* in, float* out, std::size_t n, std::int32_t above,
                          float factor) {
  HWY_DYNAMIC_DISPATCH(KeepAboveMagnitude)(in, out, n, above, factor);
}
void keep_magnitude_in(const float* in, float* out, std::size_t n, std::int32_t above,
                       std::int32_t top, float factor) {
  HWY_DYNAMIC_DISPATCH(KeepMagnitudeIn)(in, out, n, above, top, factor);
}
void keep_below(const float* u, float threshold, const float* in, float* out, std::size_t n,
                float factor) {
  HWY_DYNAMIC_DISPATCH(KeepBelow)(u, threshold, in, out, n, factor);
}
void keep_where(const std::uint8_t* keep, const float* in, float* out, std::size_t n,
                float factor) {
  HWY_DYNAMIC_DISPATCH(KeepWhere)(keep, in, out, n, factor);
}
void weighted_sum2(float a, const float* x, float b, const float* y, float* out, std::size_t n) {
  HWY_DYNAMIC_DISPATCH(WeightedSum2)(a, x, b, y, out, n);
}
void add(const float* x, const float* y, float* out, std::size_t n) {
  HWY_DYNAMIC_DISPATCH(AddVec)(x, y, out, n);
}
void subtract(const float* x, const float* y, float* out, std::size_t n) {
  HWY_DYNAMIC_DISPATCH(SubtractVec)(x, y, out, n);
}
void divide_scalar(float* x, float d, std::size_t n) {
  HWY_DYNAMIC_DISPATCH(DivideScalar)(x, d, n);
}
void divide(float* x, const float* d, std::size_t n) {
  HWY_DYNAMIC_DISPATCH(DivideVec)(x, d, n);
}
void sum_rows(const float* const* rows, std::size_t m, float* out, std::size_t n) {
  HWY_DYNAMIC_DISPATCH(SumRows)(rows, m, out, n);
}
void sign_consensus(const float* const* rows, const float* weights, std::size_t m, float* mixed,
                    float* divisor, std::size_t n) {
  HWY_DYNAMIC_DISPATCH(SignConsensus)(rows, weights, m, mixed, divisor, n);
}
void task_variance(const float* base, const float* const* models, std::size_t m, float* var,
                   std::size_t n) {
  HWY_DYNAMIC_DISPATCH(TaskVariance)(base, models, m, var, n);
}

}  // namespace llmerge::kernels
#endif  // HWY_ONCE
