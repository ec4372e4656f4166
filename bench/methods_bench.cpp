// Micro-benchmarks of whole merge methods on one tensor, driven through the
// chunk protocol exactly as the executor drives them (tests/method_driver.h),
// with no I/O: the compute cost per element that the end-to-end runs pay on
// top of the I/O floor.
//
// The tensor is one 2048 x 8192 f32 matrix (16 Mi elements, a Llama-3.2-1B
// MLP projection's size), for a base and two more models, all rounded to
// bf16 as real checkpoints are, in two kinds:
//   fine_tune  the models are the base plus noise of |δ| ~ 2e-4 (a few bf16
//              ulps): task vectors with few distinct values;
//   unrelated  three independent uniform(−0.035, 0.035) weights, as
//              `llmerge synth` writes without --like: task vectors as wide as
//              the weights, every key distinct in its low bits.
// Chunks are the executor's default 64 Ki elements. Items per second counts
// output elements; the counter `reads` is how many times the method reads
// its inputs (statistics passes + 1): an end-to-end run pays the loading of
// every input once per read.
//
//   build/bench/methods_bench [--benchmark_filter=unrelated/della]
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "../tests/method_driver.h"
#include "core/dtype.h"

namespace {

namespace t = llmerge::testing;

// METHODS_BENCH_SHAPE=ROWSxCOLS overrides the shape (e.g. 256x896 for a
// short callgrind run with the rows of a 0.5B model's embedding).
struct Shape2 {
  std::int64_t rows = 2048;
  std::int64_t cols = 8192;
};
Shape2 bench_shape() {
  Shape2 s;
  if (const char* env = std::getenv("METHODS_BENCH_SHAPE")) {
    long long r = 0;
    long long c = 0;
    if (std::sscanf(env, "%lldx%lld", &r, &c) == 2 && r > 0 && c > 0) {
      s.rows = r;
      s.cols = c;
    }
  }
  return s;
}
const Shape2 k_shape = bench_shape();
const std::int64_t k_rows = k_shape.rows;
const std::int64_t k_cols = k_shape.cols;
constexpr std::int64_t k_chunk = llmerge::k_reduce_block;
constexpr std::size_t k_models = 2;

float bf16_round(float x) {
  return llmerge::bf16_to_f32(llmerge::f32_to_bf16(x));
}

struct Inputs {
  std::vector<float> base;
  t::Tensors models;
};

enum class Kind { fine_tune, unrelated };

Inputs make_inputs(Kind kind) {
  const auto n = static_cast<std::size_t>(k_rows * k_cols);
  std::mt19937 rng(kind == Kind::fine_tune ? 7 : 8);
  std::normal_distribution<float> weight(0.0F, 0.02F);
  std::normal_distribution<float> delta(0.0F, 2e-4F);
  // synth's fresh weights: uniform with the standard deviation 0.02.
  std::uniform_real_distribution<float> uniform(-0.02F * 1.7320508F, 0.02F * 1.7320508F);
  Inputs in;
  in.base.resize(n);
  for (float& x : in.base)
    x = bf16_round(kind == Kind::fine_tune ? weight(rng) : uniform(rng));
  for (std::size_t m = 0; m < k_models; ++m) {
    std::vector<float> model(n);
    for (std::size_t i = 0; i < n; ++i)
      model[i] = bf16_round(kind == Kind::fine_tune ? in.base[i] + delta(rng) : uniform(rng));
    in.models.push_back(std::move(model));
  }
  return in;
}

const Inputs& inputs(Kind kind) {
  static const Inputs fine_tune = make_inputs(Kind::fine_tune);
  static const Inputs unrelated = make_inputs(Kind::unrelated);
  return kind == Kind::fine_tune ? fine_tune : unrelated;
}

struct Case {
  const char* name;
  const char* method;
  t::Values globals;
  t::Values per_model;
  std::size_t models = k_models;
  bool with_base = true;  // false: no base input (linear, nuslerp, karcher)
};

const t::Values k_half = {{"weight", 0.5}, {"density", 0.5}};
const t::Values k_crumbs = {{"weight", 0.5}, {"density", 0.9}, {"gamma", 0.01}};
const t::Values k_della = {{"weight", 0.5}, {"density", 0.5}, {"epsilon", 0.1}};

// bench/run.sh's configs, where it has one.
const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
      {"linear", "linear", {}, {{"weight", 0.5}}, k_models, false},
      {"slerp", "slerp", {{"t", 0.5}}, {}, 1},
      {"nuslerp", "nuslerp", {}, {{"weight", 0.5}}, k_models, false},
      {"multislerp", "multislerp", {}, {{"weight", 0.5}}},
      {"karcher", "karcher", {}, {}, k_models, false},
      {"task_arithmetic", "task_arithmetic", {}, {{"weight", 0.5}}},
      {"ties", "ties", {}, k_half},
      {"dare_ties", "dare_ties", {}, k_half},
      {"dare_linear", "dare_linear", {}, k_half},
      {"breadcrumbs", "breadcrumbs", {}, k_crumbs},
      {"breadcrumbs_ties", "breadcrumbs_ties", {}, k_crumbs},
      {"della", "della", {}, k_della},
      {"della_linear", "della_linear", {}, k_della},
      {"model_stock", "model_stock", {}, {}},
      {"sce", "sce", {{"select_topk", 0.5}}, {{"weight", 0.5}}},
      {"ram", "ram", {}, {}},
      {"ramplus_tl", "ramplus_tl", {}, {}},
      {"arcee_fusion", "arcee_fusion", {}, {}, 1},
      {"nearswap", "nearswap", {{"t", 0.001}}, {}, 1},
  };
  return all;
}

void bm_method(benchmark::State& state, Kind kind, const Case& c) {
  const Inputs& in = inputs(kind);  // made once, outside the timed loop
  t::MergeRun run;
  run.method = c.method;
  run.globals = c.globals;
  run.per_model.assign(c.models, c.per_model);
  run.shape = {k_rows, k_cols};
  const t::Tensors models(in.models.begin(),
                          in.models.begin() + static_cast<std::ptrdiff_t>(c.models));
  int reads = 0;
  for (auto _ : state) {
    std::vector<float> out =
        t::merge(run, c.with_base ? &in.base : nullptr, models, k_chunk, &reads);
    benchmark::DoNotOptimize(out.data());
  }
  const auto elements = static_cast<double>(k_rows * k_cols);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * k_rows * k_cols);
  state.counters["reads"] = reads;
  state.counters["ns_per_element"] = benchmark::Counter(
      elements * 1e-9, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

}  // namespace

int main(int argc, char** argv) {
  for (const Kind kind : {Kind::fine_tune, Kind::unrelated}) {
    for (const Case& c : cases()) {
      const std::string name =
          std::string(kind == Kind::fine_tune ? "fine_tune/" : "unrelated/") + c.name;
      benchmark::RegisterBenchmark(name.c_str(), bm_method, kind, c)->Unit(benchmark::kMillisecond);
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
