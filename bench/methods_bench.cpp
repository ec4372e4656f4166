// Micro-benchmarks of whole merge methods on one tensor, driven through the
// chunk protocol exactly as the executor drives them (tests/method_driver.h),
// with no I/O: the compute cost per element that the end-to-end runs pay on
// top of the I/O floor.
//
// The tensor is one 2048 x 8192 f32 matrix (16 Mi elements, a Llama-3.2-1B
// MLP projection's size) for a base and two fine-tunes whose task vectors
// have |δ| ~ 2e-4, all rounded to bf16 as real checkpoints are. Chunks are the
// executor's default 64 Ki elements. Items per second counts output elements.
//
//   build/bench/methods_bench [--benchmark_filter=della]
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "../tests/method_driver.h"
#include "core/dtype.h"

namespace {

namespace t = llmerge::testing;

constexpr std::int64_t k_rows = 2048;
constexpr std::int64_t k_cols = 8192;
constexpr std::int64_t k_chunk = llmerge::k_reduce_block;

float bf16_round(float x) {
  return llmerge::bf16_to_f32(llmerge::f32_to_bf16(x));
}

struct Inputs {
  std::vector<float> base;
  t::Tensors models;
};

const Inputs& inputs() {
  static const Inputs data = [] {
    const auto n = static_cast<std::size_t>(k_rows * k_cols);
    std::mt19937 rng(7);
    std::normal_distribution<float> weight(0.0F, 0.02F);
    std::normal_distribution<float> delta(0.0F, 2e-4F);
    Inputs in;
    in.base.resize(n);
    for (float& x : in.base)
      x = bf16_round(weight(rng));
    for (int m = 0; m < 2; ++m) {
      std::vector<float> model(n);
      for (std::size_t i = 0; i < n; ++i)
        model[i] = bf16_round(in.base[i] + delta(rng));
      in.models.push_back(std::move(model));
    }
    return in;
  }();
  return data;
}

// `models` inputs (1 or 2) after the base; `with_base` false passes no base,
// as for methods without one (linear, nuslerp).
void bm_method(benchmark::State& state, const std::string& method, const t::Values& globals,
               const t::Values& per_model, std::size_t models = 2, bool with_base = true) {
  const Inputs& in = inputs();  // made once, outside the timed loop
  t::MergeRun run;
  run.method = method;
  run.globals = globals;
  run.per_model.assign(models, per_model);
  run.shape = {k_rows, k_cols};
  const t::Tensors inputs(in.models.begin(),
                          in.models.begin() + static_cast<std::ptrdiff_t>(models));
  for (auto _ : state) {
    std::vector<float> out = t::merge(run, with_base ? &in.base : nullptr, inputs, k_chunk);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * k_rows * k_cols);
}

const t::Values k_half = {{"weight", 0.5}, {"density", 0.5}};

BENCHMARK_CAPTURE(bm_method, linear, "linear", t::Values{}, t::Values{{"weight", 0.5}}, 2, false)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(bm_method, slerp, "slerp", t::Values{{"t", 0.5}}, t::Values{}, 1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(bm_method, nuslerp, "nuslerp", t::Values{}, t::Values{{"weight", 0.5}}, 2, false)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(bm_method, task_arithmetic, "task_arithmetic", t::Values{},
                  t::Values{{"weight", 0.5}})
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(bm_method, ties, "ties", t::Values{}, k_half)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(bm_method, dare_ties, "dare_ties", t::Values{}, k_half)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(bm_method, breadcrumbs, "breadcrumbs", t::Values{},
                  t::Values{{"weight", 0.5}, {"density", 0.9}, {"gamma", 0.01}})
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(bm_method, della, "della", t::Values{}, k_half)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(bm_method, model_stock, "model_stock", t::Values{}, t::Values{})
    ->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  inputs();  // not timed
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
