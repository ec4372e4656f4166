// Micro-benchmarks of merge/kernels: each kernel's Highway version against its scalar twin, and
// bf16/f16 against f32 at the load/store edges, in GB/s next to memcpy of the same buffers.
//
// Bytes per iteration count every byte a kernel reads plus every byte it writes (memcpy of n
// floats: 8n), so a kernel at memcpy's GB/s is as fast as the memory lets it be. Sizes: 4 Ki
// elements (L1), 64 Ki (L2; the executor's default chunk), 1 Mi (past L2).
//
//   build/bench/kernels_bench [--benchmark_filter=load] [--benchmark_format=json]
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include "core/dtype.h"
#include "merge/kernels/kernels.h"

namespace {

using llmerge::DType;
namespace k = llmerge::kernels;

void sizes(benchmark::internal::Benchmark* b) {
  b->Arg(1 << 12)->Arg(1 << 16)->Arg(1 << 20);
}

// Deterministic weights of LLM-like magnitude (|w| ~ 0.02), never zero (divide uses them).
std::vector<float> weights(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0F, 0.02F);
  std::vector<float> v(n);
  for (float& x : v) {
    x = dist(rng);
    if (x == 0.0F) x = 1e-3F;
  }
  return v;
}

std::vector<std::uint16_t> encoded(DType type, const std::vector<float>& v) {
  std::vector<std::uint16_t> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i)
    out[i] = type == DType::BF16 ? llmerge::f32_to_bf16(v[i]) : llmerge::f32_to_f16(v[i]);
  return out;
}

std::size_t dtype_bytes(DType type) {
  return static_cast<std::size_t>(llmerge::dtype_bits(type)) / 8;
}

void set_bytes(benchmark::State& state, std::size_t bytes_per_iteration) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(bytes_per_iteration));
}

void bm_memcpy(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const std::vector<float> src = weights(n, 1);
  std::vector<float> dst(n);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), n * sizeof(float));
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, 2 * n * sizeof(float));
}
BENCHMARK(bm_memcpy)->Apply(sizes);

using LoadFn = void (*)(DType, const void*, float*, std::size_t);
using StoreFn = void (*)(DType, const float*, void*, std::size_t);

void bm_load(benchmark::State& state, DType type, LoadFn load) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const std::vector<float> f32 = weights(n, 1);
  const std::vector<std::uint16_t> half =
      type == DType::F32 ? std::vector<std::uint16_t>{} : encoded(type, f32);
  const void* src = type == DType::F32 ? static_cast<const void*>(f32.data()) : half.data();
  std::vector<float> dst(n);
  for (auto _ : state) {
    load(type, src, dst.data(), n);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, n * dtype_bytes(type) + n * sizeof(float));
}
BENCHMARK_CAPTURE(bm_load, bf16_simd, DType::BF16, &k::load_f32)->Apply(sizes);
BENCHMARK_CAPTURE(bm_load, bf16_scalar, DType::BF16, &k::scalar::load_f32)->Apply(sizes);
BENCHMARK_CAPTURE(bm_load, f16_simd, DType::F16, &k::load_f32)->Apply(sizes);
BENCHMARK_CAPTURE(bm_load, f16_scalar, DType::F16, &k::scalar::load_f32)->Apply(sizes);
BENCHMARK_CAPTURE(bm_load, f32_simd, DType::F32, &k::load_f32)->Apply(sizes);
BENCHMARK_CAPTURE(bm_load, f32_scalar, DType::F32, &k::scalar::load_f32)->Apply(sizes);

void bm_store(benchmark::State& state, DType type, StoreFn store) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const std::vector<float> src = weights(n, 1);
  std::vector<std::uint8_t> dst(n * dtype_bytes(type));
  for (auto _ : state) {
    store(type, src.data(), dst.data(), n);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, n * sizeof(float) + n * dtype_bytes(type));
}
BENCHMARK_CAPTURE(bm_store, bf16_simd, DType::BF16, &k::store_from_f32)->Apply(sizes);
BENCHMARK_CAPTURE(bm_store, bf16_scalar, DType::BF16, &k::scalar::store_from_f32)->Apply(sizes);
BENCHMARK_CAPTURE(bm_store, f16_simd, DType::F16, &k::store_from_f32)->Apply(sizes);
BENCHMARK_CAPTURE(bm_store, f16_scalar, DType::F16, &k::scalar::store_from_f32)->Apply(sizes);
BENCHMARK_CAPTURE(bm_store, f32_simd, DType::F32, &k::store_from_f32)->Apply(sizes);
BENCHMARK_CAPTURE(bm_store, f32_scalar, DType::F32, &k::scalar::store_from_f32)->Apply(sizes);

// The f32 arithmetic kernels share one harness: `run` gets buffers x, y (inputs) and out;
// `streams` is how many n-float arrays one call reads plus writes.
struct Buffers {
  std::vector<float> x, y, out, ones;
  explicit Buffers(std::size_t n) : x(weights(n, 1)), y(weights(n, 2)), out(n), ones(n, 1.0F) {}
};

template <class Run>
void bm_arith(benchmark::State& state, std::size_t streams, Run run) {
  const auto n = static_cast<std::size_t>(state.range(0));
  Buffers b(n);
  for (auto _ : state) {
    run(b, n);
    benchmark::DoNotOptimize(b.out.data());
    benchmark::DoNotOptimize(b.y.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, streams * n * sizeof(float));
}

// In-place kernels (axpy, divide_scalar, divide) run again and again on the same data, so their
// factors leave it unchanged (y + 0*x, y / 1): values stay normal and no subnormal slows a run.
// Division's speed on x86 does not depend on the divisor being 1.
#define LLMERGE_ARITH(name, streams, simd_body, scalar_body)                  \
  void bm_##name##_simd(benchmark::State& state) {                            \
    bm_arith(state, streams, [](Buffers& b, std::size_t n) { simd_body; });   \
  }                                                                           \
  void bm_##name##_scalar(benchmark::State& state) {                          \
    bm_arith(state, streams, [](Buffers& b, std::size_t n) { scalar_body; }); \
  }                                                                           \
  BENCHMARK(bm_##name##_simd)->Apply(sizes);                                  \
  BENCHMARK(bm_##name##_scalar)->Apply(sizes)

LLMERGE_ARITH(scale, 2, k::scale(b.x.data(), 0.5F, b.out.data(), n),
              k::scalar::scale(b.x.data(), 0.5F, b.out.data(), n));
LLMERGE_ARITH(axpy, 3, k::axpy(0.0F, b.x.data(), b.y.data(), n),
              k::scalar::axpy(0.0F, b.x.data(), b.y.data(), n));
LLMERGE_ARITH(weighted_sum2, 3,
              k::weighted_sum2(0.6F, b.x.data(), 0.4F, b.y.data(), b.out.data(), n),
              k::scalar::weighted_sum2(0.6F, b.x.data(), 0.4F, b.y.data(), b.out.data(), n));
LLMERGE_ARITH(add, 3, k::add(b.x.data(), b.y.data(), b.out.data(), n),
              k::scalar::add(b.x.data(), b.y.data(), b.out.data(), n));
LLMERGE_ARITH(subtract, 3, k::subtract(b.x.data(), b.y.data(), b.out.data(), n),
              k::scalar::subtract(b.x.data(), b.y.data(), b.out.data(), n));
LLMERGE_ARITH(divide_scalar, 2, k::divide_scalar(b.y.data(), 1.0F, n),
              k::scalar::divide_scalar(b.y.data(), 1.0F, n));
LLMERGE_ARITH(divide, 3, k::divide(b.y.data(), b.ones.data(), n),
              k::scalar::divide(b.y.data(), b.ones.data(), n));

// Row kernels over m = 3 rows (a TIES merge of base + two models has 2 task vectors; sum_rows
// of three covers linear/task_arithmetic with three models).
template <bool simd>
void bm_sum_rows(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const std::vector<float> r0 = weights(n, 1), r1 = weights(n, 2), r2 = weights(n, 3);
  const float* rows[] = {r0.data(), r1.data(), r2.data()};
  std::vector<float> out(n);
  for (auto _ : state) {
    if constexpr (simd)
      k::sum_rows(rows, 3, out.data(), n);
    else
      k::scalar::sum_rows(rows, 3, out.data(), n);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, 4 * n * sizeof(float));
}
BENCHMARK(bm_sum_rows<true>)->Name("bm_sum_rows_simd")->Apply(sizes);
BENCHMARK(bm_sum_rows<false>)->Name("bm_sum_rows_scalar")->Apply(sizes);

template <bool simd>
void bm_sign_consensus(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const std::vector<float> r0 = weights(n, 1), r1 = weights(n, 2);
  const float* rows[] = {r0.data(), r1.data()};
  const float w[] = {0.5F, 0.5F};
  std::vector<float> mixed(n), divisor(n);
  for (auto _ : state) {
    if constexpr (simd)
      k::sign_consensus(rows, w, 2, mixed.data(), divisor.data(), n);
    else
      k::scalar::sign_consensus(rows, w, 2, mixed.data(), divisor.data(), n);
    benchmark::DoNotOptimize(mixed.data());
    benchmark::DoNotOptimize(divisor.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, 4 * n * sizeof(float));
}
BENCHMARK(bm_sign_consensus<true>)->Name("bm_sign_consensus_simd")->Apply(sizes);
BENCHMARK(bm_sign_consensus<false>)->Name("bm_sign_consensus_scalar")->Apply(sizes);

// What the executor does per chunk of a linear merge of two models: load both inputs to f32,
// weighted sum, round to the output dtype. Bytes are the external ones (two inputs, one
// output), so bf16 moves half the bytes of f32 for the same elements.
void bm_linear_chunk(benchmark::State& state, DType type, bool simd) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const std::vector<float> fa = weights(n, 1), fb = weights(n, 2);
  const std::vector<std::uint16_t> ha =
      type == DType::F32 ? std::vector<std::uint16_t>{} : encoded(type, fa);
  const std::vector<std::uint16_t> hb =
      type == DType::F32 ? std::vector<std::uint16_t>{} : encoded(type, fb);
  const void* a = type == DType::F32 ? static_cast<const void*>(fa.data()) : ha.data();
  const void* b = type == DType::F32 ? static_cast<const void*>(fb.data()) : hb.data();
  std::vector<float> xa(n), xb(n), sum(n);
  std::vector<std::uint8_t> out(n * dtype_bytes(type));
  for (auto _ : state) {
    if (simd) {
      k::load_f32(type, a, xa.data(), n);
      k::load_f32(type, b, xb.data(), n);
      k::weighted_sum2(0.5F, xa.data(), 0.5F, xb.data(), sum.data(), n);
      k::store_from_f32(type, sum.data(), out.data(), n);
    } else {
      k::scalar::load_f32(type, a, xa.data(), n);
      k::scalar::load_f32(type, b, xb.data(), n);
      k::scalar::weighted_sum2(0.5F, xa.data(), 0.5F, xb.data(), sum.data(), n);
      k::scalar::store_from_f32(type, sum.data(), out.data(), n);
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, 3 * n * dtype_bytes(type));
}
BENCHMARK_CAPTURE(bm_linear_chunk, bf16_simd, DType::BF16, true)->Apply(sizes);
BENCHMARK_CAPTURE(bm_linear_chunk, bf16_scalar, DType::BF16, false)->Apply(sizes);
BENCHMARK_CAPTURE(bm_linear_chunk, f32_simd, DType::F32, true)->Apply(sizes);
BENCHMARK_CAPTURE(bm_linear_chunk, f32_scalar, DType::F32, false)->Apply(sizes);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("highway_target", k::active_target_name());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
