// Every merge method driven through the chunk protocol of method.h, against
// an independent double-precision implementation of mergekit's formulas
// (docs/mergekit-semantics.md §1.3, §1.4, §1.8, §1.14), plus the registry.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <numbers>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "merge/method.h"
#include "merge/methods/methods.h"
#include "merge/random.h"
#include "method_driver.h"

namespace llmerge {
namespace {

using testing::merge;
using testing::MergeRun;
using testing::Values;

void expect_close(const std::vector<float>& got, const std::vector<double>& want,
                  double relative = 2e-6) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], relative * std::max(1.0, std::fabs(want[i]))) << "element " << i;
  }
}

std::vector<float> normal_floats(std::size_t n, unsigned seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v)
    x = dist(rng);
  return v;
}

// Multiples of 1/4 in [-2, 2]: task vectors, weighted sums and sign votes are exact in f32,
// and magnitudes tie often.
std::vector<float> grid_floats(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<float> v(n);
  for (auto& x : v)
    x = static_cast<float>(static_cast<int>(rng() % 17) - 8) / 4.0f;
  return v;
}

// -------------------------------------------------------------- references

std::vector<double> linear_reference(const std::vector<std::vector<float>>& x,
                                     const std::vector<double>& w, bool normalize) {
  std::vector<double> out(x[0].size(), 0.0);
  const double sum = std::accumulate(w.begin(), w.end(), 0.0);
  for (std::size_t e = 0; e < out.size(); ++e) {
    for (std::size_t i = 0; i < x.size(); ++i)
      out[e] += w[i] * x[i][e];
    if (normalize) out[e] /= sum;
  }
  return out;
}

std::vector<double> slerp_reference(const std::vector<float>& v0, const std::vector<float>& v1,
                                    double t) {
  double n0 = 0, n1 = 0;
  for (std::size_t e = 0; e < v0.size(); ++e) {
    n0 += static_cast<double>(v0[e]) * v0[e];
    n1 += static_cast<double>(v1[e]) * v1[e];
  }
  n0 = std::sqrt(n0);
  n1 = std::sqrt(n1);
  if (!(n0 > 1e-8)) n0 = 1;
  if (!(n1 > 1e-8)) n1 = 1;
  double dot = 0;
  for (std::size_t e = 0; e < v0.size(); ++e)
    dot += (v0[e] / n0) * (v1[e] / n1);
  double s0 = 1 - t, s1 = t;
  if (std::fabs(dot) <= 0.9995) {
    const double theta = std::acos(dot);
    s0 = std::sin(theta - t * theta) / std::sin(theta);
    s1 = std::sin(t * theta) / std::sin(theta);
  }
  std::vector<double> out(v0.size());
  for (std::size_t e = 0; e < v0.size(); ++e)
    out[e] = s0 * v0[e] + s1 * v1[e];
  return out;
}

enum class Sparsify { none, magnitude, bernoulli };

struct GtaReference {
  bool consensus = false;
  Sparsify sparsify = Sparsify::none;
  bool normalize = false;
  bool rescale = false;
  double lambda = 1.0;
  std::vector<double> weights;
  std::vector<double> densities;
  std::uint64_t seed = 0;
  std::string tensor = "model.layers.0.mlp.up_proj.weight";

  std::vector<double> operator()(const std::vector<float>& base,
                                 const std::vector<std::vector<float>>& x) const {
    const std::size_t n = base.size(), m = x.size();
    std::vector<std::vector<double>> d(m, std::vector<double>(n));
    for (std::size_t i = 0; i < m; ++i) {
      std::vector<float> delta(n);
      for (std::size_t e = 0; e < n; ++e)
        delta[e] = x[i][e] - base[e];
      std::vector<bool> keep(n, true);
      const bool sparse = sparsify != Sparsify::none && densities[i] < 1.0;
      if (sparse && sparsify == Sparsify::magnitude) {
        // Top k by |δ| with a stable sort: ties go to the lower index.
        std::vector<std::size_t> order(n);
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
          return std::fabs(delta[a]) > std::fabs(delta[b]);
        });
        const auto k = static_cast<std::size_t>(densities[i] * static_cast<double>(n));
        std::fill(keep.begin(), keep.end(), false);
        for (std::size_t j = 0; j < k; ++j)
          keep[order[j]] = true;
      } else if (sparse && sparsify == Sparsify::bernoulli) {
        const ElementRandom random(seed, hash_tensor_name(tensor), static_cast<std::uint32_t>(i));
        for (std::size_t e = 0; e < n; ++e)
          keep[e] = random.uniform(e) < densities[i];
      }
      double factor = 1.0;
      if (sparse && rescale) {
        double full = 0, kept = 0;
        for (std::size_t e = 0; e < n; ++e) {
          full += std::fabs(delta[e]);
          if (keep[e]) kept += std::fabs(delta[e]);
        }
        if (full >= 1e-7 && kept >= 1e-7) factor = full / kept;
      }
      for (std::size_t e = 0; e < n; ++e)
        d[i][e] = keep[e] ? delta[e] * factor * weights[i] : 0.0;
    }
    std::vector<double> out(n);
    const double weight_sum = std::accumulate(weights.begin(), weights.end(), 0.0);
    for (std::size_t e = 0; e < n; ++e) {
      double mixed = 0, divisor = 0;
      if (consensus) {
        double s = 0;
        for (std::size_t i = 0; i < m; ++i)
          s += d[i][e];
        const double majority = s >= 0 ? 1.0 : -1.0;
        for (std::size_t i = 0; i < m; ++i) {
          const double sign = d[i][e] > 0 ? 1.0 : d[i][e] < 0 ? -1.0 : 0.0;
          if (sign == majority) {
            mixed += d[i][e];
            divisor += weights[i];
          }
        }
        if (divisor == 0) divisor = 1;
      } else {
        for (std::size_t i = 0; i < m; ++i)
          mixed += d[i][e];
        divisor = std::fabs(weight_sum) < 1e-8 ? 1.0 : weight_sum;
      }
      if (normalize) mixed /= divisor;
      out[e] = base[e] + mixed * lambda;
    }
    return out;
  }
};

// ---------------------------------------------------------------- registry

TEST(Registry, ListsAllTwentyMethodsInMergekitOrder) {
  std::vector<std::string> names;
  for (const MethodSpec& spec : method_registry())
    names.push_back(spec.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{
                "linear",           "slerp",       "nuslerp",      "multislerp",   "karcher",
                "task_arithmetic",  "ties",        "dare_ties",    "dare_linear",  "breadcrumbs",
                "breadcrumbs_ties", "della",       "della_linear", "sce",          "ram",
                "ramplus_tl",       "model_stock", "nearswap",     "arcee_fusion", "passthrough"}));
  EXPECT_EQ(find_method("consensus_ties"), nullptr);
  ASSERT_NE(find_method("dare_ties"), nullptr);
  EXPECT_EQ(find_method("dare_ties")->pretty_name, "DARE TIES");
  for (const MethodSpec& spec : method_registry()) {
    EXPECT_NE(spec.make, nullptr) << spec.name;
    EXPECT_FALSE(spec.reference.empty()) << spec.name;
  }
}

TEST(Registry, DefaultsMatchMergekit) {
  const auto global_default = [](const char* method, const char* name) {
    const ParameterSpec* p = find_method(method)->find_parameter(name);
    EXPECT_NE(p, nullptr) << method << "." << name;
    EXPECT_EQ(p->scope, ParameterSpec::Scope::global);
    return p->default_value;
  };
  EXPECT_EQ(global_default("linear", "normalize"), 1.0);
  EXPECT_EQ(global_default("slerp", "t"), std::nullopt);
  // method: normalize, rescale (docs/mergekit-semantics.md §1.1)
  const std::map<std::string, std::pair<double, double>> gta = {{"task_arithmetic", {0, 0}},
                                                                {"ties", {1, 0}},
                                                                {"dare_ties", {0, 1}},
                                                                {"dare_linear", {0, 1}}};
  for (const auto& [method, defaults] : gta) {
    EXPECT_EQ(global_default(method.c_str(), "normalize"), defaults.first) << method;
    EXPECT_EQ(global_default(method.c_str(), "rescale"), defaults.second) << method;
    EXPECT_EQ(global_default(method.c_str(), "lambda"), 1.0) << method;
    EXPECT_EQ(global_default(method.c_str(), "int8_mask"), 0.0) << method;
    const MethodSpec& spec = *find_method(method);
    const ParameterSpec* weight = spec.find_parameter("weight");
    const ParameterSpec* density = spec.find_parameter("density");
    ASSERT_NE(weight, nullptr);
    ASSERT_NE(density, nullptr);
    EXPECT_EQ(weight->scope, ParameterSpec::Scope::per_model);
    EXPECT_EQ(weight->default_value, std::nullopt);
    EXPECT_EQ(density->default_value, 1.0);
    EXPECT_EQ(density->min, 0.0);
    EXPECT_TRUE(density->min_open);
    EXPECT_EQ(density->max, 1.0);
    EXPECT_FALSE(density->max_open);
    EXPECT_EQ(spec.base_use, MethodSpec::BaseUse::required);
    EXPECT_FALSE(spec.rectify_to_common);
    EXPECT_EQ(spec.random, method.rfind("dare", 0) == 0) << method;
    EXPECT_EQ(spec.parameters.size(), 6u) << method;
  }
  const MethodSpec& linear = *find_method("linear");
  EXPECT_EQ(linear.base_use, MethodSpec::BaseUse::none);
  EXPECT_EQ(linear.find_parameter("weight")->default_value, std::nullopt);
  EXPECT_EQ(linear.find_parameter("missing"), nullptr);
  const MethodSpec& slerp = *find_method("slerp");
  EXPECT_EQ(slerp.base_use, MethodSpec::BaseUse::required);
  EXPECT_EQ(slerp.models_min, 1u);
  EXPECT_EQ(slerp.models_max, 1u);
  const MethodSpec& passthrough = *find_method("passthrough");
  EXPECT_EQ(passthrough.models_max, 1u);
  const ParameterSpec* scale = passthrough.find_parameter("scale");
  ASSERT_NE(scale, nullptr);
  EXPECT_EQ(scale->scope, ParameterSpec::Scope::per_model);
  ASSERT_TRUE(scale->default_value.has_value());   // optional ...
  EXPECT_TRUE(std::isnan(*scale->default_value));  // ... and unset by default
}

TEST(ResolvedParameters, MissingValueIsAnInternalError) {
  ResolvedParameters r;
  r.global = {{"t", 0.25}};
  r.per_model = {{{"weight", 2.0}}};
  EXPECT_EQ(r.global_value("t"), 0.25);
  EXPECT_EQ(r.model_value(0, "weight"), 2.0);
  try {
    r.global_value("lambda");
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::internal);
  }
  EXPECT_THROW(r.model_value(0, "density"), Error);
  EXPECT_THROW(r.model_value(1, "weight"), Error);
}

// ------------------------------------------------------------------ linear

TEST(Linear, WeightedAverageMatchesReference) {
  for (const std::size_t n : {std::size_t{21}, std::size_t{1000}}) {
    const std::vector<std::vector<float>> x = {normal_floats(n, 1), normal_floats(n, 2),
                                               normal_floats(n, 3)};
    const std::vector<double> w = {0.5, 1.5, -0.25};
    MergeRun run{"linear", {}, {{{"weight", 0.5}}, {{"weight", 1.5}}, {{"weight", -0.25}}}};
    expect_close(merge(run, nullptr, x), linear_reference(x, w, true));
    run.globals["normalize"] = 0;
    expect_close(merge(run, nullptr, x), linear_reference(x, w, false));
  }
}

TEST(Linear, RoundsEachProductBeforeSumming) {
  // torch's (w * x).sum(0): 0.1f·3 rounds before the add, then / 1.1f.
  const std::vector<std::vector<float>> x = {{3.0f}, {1.0f}};
  const MergeRun run{"linear", {}, {{{"weight", 0.1}}, {{"weight", 1.0}}}};
  const float product = 0.1f * 3.0f;
  const float sum = product + 1.0f;
  EXPECT_EQ(merge(run, nullptr, x)[0], sum / (0.1f + 1.0f));
}

// ------------------------------------------------------------------- slerp

TEST(Slerp, MatchesReferenceIncludingExtrapolation) {
  const auto v0 = normal_floats(1000, 4);
  const auto v1 = normal_floats(1000, 5, 2.0f);
  for (const double t : {0.0, 0.3, 0.5, 1.0, 1.5, -0.2}) {
    const MergeRun run{"slerp", {{"t", t}}, {{}}};
    expect_close(merge(run, &v0, {v1}), slerp_reference(v0, v1, t), 1e-5);
  }
}

TEST(Slerp, OrthogonalInputsUseSineWeights) {
  const std::vector<float> v0 = {3, 0, 0, 4, 0, 0, 0};
  const std::vector<float> v1 = {0, 2, 0, 0, 0, 0, 0};  // orthogonal: θ0 = π/2
  const MergeRun run{"slerp", {{"t", 1.0 / 3}}, {{}}};
  const auto out = merge(run, &v0, {v1});
  const double s0 = std::cos(std::numbers::pi / 6), s1 = std::sin(std::numbers::pi / 6);
  EXPECT_NEAR(out[0], 3 * s0, 1e-6);
  EXPECT_NEAR(out[1], 2 * s1, 1e-6);
  EXPECT_NEAR(out[3], 4 * s0, 1e-6);
  EXPECT_EQ(out[2], 0.0f);
}

TEST(Slerp, ColinearInputsFallBackToLerpOfOriginals) {
  std::vector<float> v0 = normal_floats(21, 6);
  std::vector<float> v1(v0.size());
  for (std::size_t i = 0; i < v0.size(); ++i)
    v1[i] = -2.0f * v0[i];  // dot = −1: also colinear
  const MergeRun run{"slerp", {{"t", 0.25}}, {{}}};
  const auto out = merge(run, &v0, {v1});
  for (std::size_t i = 0; i < v0.size(); ++i) {
    EXPECT_EQ(out[i], 0.75f * v0[i] + 0.25f * v1[i]) << i;  // (1 − t)·v0 + t·v1, in f32
  }
}

TEST(Slerp, AllZeroBaseTakesTheOrthogonalPathLikeMergekit) {
  const std::vector<float> v0(21, 0.0f);
  const auto v1 = normal_floats(21, 7);
  const MergeRun run{"slerp", {{"t", 0.5}}, {{}}};
  const auto out = merge(run, &v0, {v1});
  for (std::size_t i = 0; i < v1.size(); ++i)
    EXPECT_NEAR(out[i], std::sin(std::numbers::pi / 4) * v1[i], 1e-6);
  const auto both_zero = merge(run, &v0, {v0});
  for (const float v : both_zero)
    EXPECT_EQ(v, 0.0f);
}

// ---------------------------------------------------------- task arithmetic

std::vector<Values> gta_models(const std::vector<double>& w, const std::vector<double>& density) {
  std::vector<Values> out;
  for (std::size_t i = 0; i < w.size(); ++i)
    out.push_back({{"weight", w[i]}, {"density", density[i]}});
  return out;
}

TEST(TaskArithmetic, SumsWeightedTaskVectors) {
  const auto base = grid_floats(1000, 10);
  const std::vector<std::vector<float>> x = {grid_floats(1000, 11), grid_floats(1000, 12),
                                             grid_floats(1000, 13)};
  const std::vector<double> w = {0.5, -0.75, 1.25};
  // density is accepted and ignored, as in mergekit.
  MergeRun run{"task_arithmetic", {}, gta_models(w, {0.1, 0.5, 1.0})};
  GtaReference ref{.weights = w, .densities = {1, 1, 1}};
  expect_close(merge(run, &base, x), ref(base, x));
  run.globals = {{"normalize", 1}, {"lambda", 0.5}};
  ref.normalize = true;
  ref.lambda = 0.5;
  expect_close(merge(run, &base, x), ref(base, x));
}

TEST(TaskArithmetic, WeightsSummingToZeroAreNotDividedBy) {
  const std::vector<float> base = {1, 2, 3};
  const std::vector<std::vector<float>> x = {{2, 2, 2}, {1, 1, 1}};
  const MergeRun run{"task_arithmetic", {{"normalize", 1}}, gta_models({1, -1}, {1, 1})};
  // Σw = 0 → divisor 1: res = b + (x0 − b) − (x1 − b) = b + x0 − x1.
  EXPECT_EQ(merge(run, &base, x), (std::vector<float>{2, 3, 4}));
}

// -------------------------------------------------------------------- ties

TEST(Ties, MatchesReferenceWithTrimmingAndElection) {
  const std::size_t n = 1000;
  const auto base = grid_floats(n, 20);
  const std::vector<std::vector<float>> x = {grid_floats(n, 21), grid_floats(n, 22),
                                             grid_floats(n, 23)};
  const std::vector<double> w = {1.0, 0.5, -0.75};
  for (const std::vector<double>& density :
       {std::vector<double>{1, 1, 1}, {0.3, 0.55, 1.0}, {0.001, 0.2, 0.7}}) {
    for (const bool normalize : {true, false}) {
      MergeRun run{"ties", {{"normalize", normalize ? 1 : 0}}, gta_models(w, density)};
      const GtaReference ref{.consensus = true,
                             .sparsify = Sparsify::magnitude,
                             .normalize = normalize,
                             .weights = w,
                             .densities = density};
      SCOPED_TRACE(density[0]);
      expect_close(merge(run, &base, x), ref(base, x));
    }
  }
}

TEST(Ties, KeepsTopKByMagnitudeWithTiesInIndexOrder) {
  const std::vector<float> base(8, 0.0f);
  // |δ| = 3, 1, 2, 2, 2, 0.5, 2, 1: density 0.5 → k = 4: the 3 and the first three 2s.
  const std::vector<float> x = {3, -1, 2, -2, 2, 0.5f, 2, 1};
  const MergeRun run{"ties", {}, gta_models({1}, {0.5})};
  EXPECT_EQ(merge(run, &base, {x}), (std::vector<float>{3, 0, 2, -2, 2, 0, 0, 0}));
}

TEST(Ties, DensityBelowOneElementStillKeepsOneLikeMergekit) {
  const std::vector<float> base(21, 1.0f);
  std::vector<float> a(21, 2.0f), b(21, 3.0f);
  // 0.04 · 21 = 0.84 → k = max(1, 0) = 1, as mergekit 0.1.5: model a keeps its first
  // element (all |δ| tie; the first in order wins) and votes there with b.
  const MergeRun run{"ties", {}, gta_models({1, 1}, {0.04, 1.0})};
  const auto out = merge(run, &base, {a, b});
  EXPECT_EQ(out[0], 1.0f + (1.0f + 2.0f) / 2.0f);
  for (std::size_t i = 1; i < out.size(); ++i)
    EXPECT_EQ(out[i], 3.0f);
}

// The threshold found in one pass (from the kept odd keys) equals the one
// from the two-pass histogram, which runs when the keys exceed the scratch.
TEST(Ties, OnePassThresholdEqualsTheTwoPassOne) {
  const std::size_t n = 4000;
  const auto bf16 = [](float v) { return bf16_to_f32(f32_to_bf16(v)); };
  std::vector<float> base = normal_floats(n, 40);
  for (float& v : base)
    v = bf16(v * 0.02f);
  std::vector<std::vector<float>> families;
  std::vector<float> checkpoint(n), odd_in_bucket(n);
  const auto noise = normal_floats(n, 41);
  for (std::size_t i = 0; i < n; ++i) {
    checkpoint[i] = bf16(base[i] + noise[i] * 2e-4f);  // mostly keys without low bits
    // Keys sharing high bits with a popular even key: 2^-13 and just above it.
    const float even = std::ldexp(1.0f, -13);
    odd_in_bucket[i] = base[i] + (i % 3 == 0 ? even : i % 3 == 1 ? even * (1 + 1e-4f * i) : -even);
  }
  families.push_back(checkpoint);
  families.push_back(odd_in_bucket);
  families.push_back(normal_floats(n, 42));  // f32: every key has low bits
  for (std::size_t f = 0; f < families.size(); ++f) {
    for (const double density : {0.05, 0.3, 0.5, 0.77}) {
      for (const int rescale : {0, 1}) {
        MergeRun run{"ties", {{"rescale", rescale}}, gta_models({1}, {density})};
        const auto one_pass = merge(run, &base, {families[f]});
        run.scratch_bytes = 0;
        const auto two_pass = merge(run, &base, {families[f]});
        ASSERT_EQ(std::memcmp(one_pass.data(), two_pass.data(), n * 4), 0)
            << "family " << f << " density " << density << " rescale " << rescale;
        const GtaReference ref{.consensus = true,
                               .sparsify = Sparsify::magnitude,
                               .normalize = true,
                               .rescale = rescale != 0,
                               .weights = {1},
                               .densities = {density}};
        expect_close(one_pass, ref(base, {families[f]}), 1e-5);
      }
    }
  }
}

TEST(Ties, NegativeWeightFlipsTheVote) {
  const std::vector<float> base = {0, 0};
  const std::vector<std::vector<float>> x = {{1, 1}, {1, 1}, {0.5f, -1}};
  // Weighted: D0 = 1, D1 = −2 (weight −2), D2 = 0.5 / −1 → sums −0.5 / −2: majority −.
  const MergeRun run{"ties", {}, gta_models({1, -2, 1}, {1, 1, 1})};
  const auto out = merge(run, &base, x);
  EXPECT_EQ(out[0], -2.0f / -2.0f);           // only model 1 agrees: −2 / −2
  EXPECT_EQ(out[1], (-2.0f - 1.0f) / -1.0f);  // models 1 and 2: −3 / (−2 + 1)
}

TEST(Ties, RescaleRestoresTheL1Norm) {
  const std::size_t n = 1000;
  const auto base = grid_floats(n, 30);
  const auto x = normal_floats(n, 31);
  const MergeRun run{"ties", {{"rescale", 1}}, gta_models({1}, {0.25})};
  const GtaReference ref{.consensus = true,
                         .sparsify = Sparsify::magnitude,
                         .normalize = true,
                         .rescale = true,
                         .weights = {1},
                         .densities = {0.25}};
  const auto out = merge(run, &base, {x});
  expect_close(out, ref(base, {x}), 1e-5);
  double l1_out = 0, l1_delta = 0;
  for (std::size_t i = 0; i < n; ++i) {
    l1_out += std::fabs(static_cast<double>(out[i]) - base[i]);
    l1_delta += std::fabs(static_cast<double>(x[i]) - base[i]);
  }
  EXPECT_NEAR(l1_out, l1_delta, 1e-3 * l1_delta);
}

// -------------------------------------------------------------------- dare

TEST(Dare, MatchesReferenceUsingThePhiloxMask) {
  const std::size_t n = 1000;
  const auto base = grid_floats(n, 40);
  const std::vector<std::vector<float>> x = {grid_floats(n, 41), grid_floats(n, 42)};
  const std::vector<double> w = {0.75, 0.5};
  const std::vector<double> density = {0.3, 0.9};
  for (const char* method : {"dare_ties", "dare_linear"}) {
    for (const bool rescale : {true, false}) {
      MergeRun run{method, {{"rescale", rescale ? 1 : 0}}, gta_models(w, density), {}, 1234};
      const GtaReference ref{.consensus = std::string(method) == "dare_ties",
                             .sparsify = Sparsify::bernoulli,
                             .rescale = rescale,
                             .weights = w,
                             .densities = density,
                             .seed = 1234};
      SCOPED_TRACE(method);
      expect_close(merge(run, &base, x), ref(base, x), 1e-5);
    }
  }
}

TEST(Dare, KeepRateIsDensityAndMaskFollowsTheSeed) {
  const std::size_t n = 100000;
  const std::vector<float> base(n, 0.0f);
  const std::vector<float> x(n, 1.0f);
  MergeRun run{"dare_linear", {{"rescale", 0}}, gta_models({1}, {0.3}), {}, 7};
  const auto out = merge(run, &base, {x});
  const auto kept = static_cast<double>(std::count(out.begin(), out.end(), 1.0f));
  EXPECT_EQ(kept + static_cast<double>(std::count(out.begin(), out.end(), 0.0f)), n);
  EXPECT_NEAR(kept / n, 0.3, 0.006);  // σ ≈ 0.0015
  EXPECT_EQ(merge(run, &base, {x}), out);
  run.seed = 8;
  EXPECT_NE(merge(run, &base, {x}), out);
  run.seed = 7;
  run.tensor = "model.layers.1.mlp.up_proj.weight";
  EXPECT_NE(merge(run, &base, {x}), out);
}

TEST(Dare, DensityOneLeavesTaskVectorsUnchanged) {
  const auto base = grid_floats(100, 50);
  const auto x = grid_floats(100, 51);
  const MergeRun dare{"dare_linear", {}, gta_models({0.5}, {1.0}), {}, 3};
  const MergeRun plain{"task_arithmetic", {}, gta_models({0.5}, {1.0})};
  EXPECT_EQ(merge(dare, &base, {x}), merge(plain, &base, {x}));
}

// ------------------------------------------------------------- passthrough

TEST(Passthrough, CopiesBitsWhenScaleIsUnset) {
  std::vector<float> x = normal_floats(33, 60);
  x[3] = std::numeric_limits<float>::quiet_NaN();
  x[4] = -0.0f;
  const MergeRun run{"passthrough", {}, {{}}};
  const auto out = merge(run, nullptr, {x});
  EXPECT_EQ(std::memcmp(out.data(), x.data(), x.size() * 4), 0);
  const MergeRun scaled{"passthrough", {}, {{{"scale", 2.5}}}};
  const auto out2 = merge(scaled, nullptr, {x});
  EXPECT_EQ(out2[0], x[0] * 2.5f);
  EXPECT_EQ(out2[10], x[10] * 2.5f);
}

// ---------------------------------------------------- chunking determinism

TEST(Methods, OutputIsByteIdenticalForAnyChunkSize) {
  const std::size_t n = 2 * static_cast<std::size_t>(k_reduce_block) + 1234;
  const auto base = normal_floats(n, 70);
  const std::vector<std::vector<float>> x = {normal_floats(n, 71), normal_floats(n, 72),
                                             normal_floats(n, 73)};
  const std::vector<MergeRun> runs = {
      {"linear", {}, {{{"weight", 0.2}}, {{"weight", 0.3}}, {{"weight", 0.5}}}},
      {"slerp", {{"t", 0.4}}, {{}}},
      {"task_arithmetic", {{"lambda", 0.9}}, gta_models({0.3, 0.3, 0.4}, {1, 1, 1})},
      {"ties", {{"rescale", 1}}, gta_models({0.3, 0.3, 0.4}, {0.2, 0.5, 1})},
      {"dare_ties", {}, gta_models({0.3, 0.3, 0.4}, {0.2, 0.5, 1}), {}, 99},
      {"dare_linear", {}, gta_models({0.3, 0.3, 0.4}, {0.2, 0.5, 1}), {}, 99},
      {"passthrough", {}, {{{"scale", 0.5}}}},
  };
  for (const MergeRun& run : runs) {
    SCOPED_TRACE(run.method);
    std::vector<std::vector<float>> inputs = x;
    inputs.resize(run.per_model.size());
    const std::vector<float>* b =
        find_method(run.method)->base_use == MethodSpec::BaseUse::none ? nullptr : &base;
    const auto whole = merge(run, b, inputs);
    const auto chunked = merge(run, b, inputs, k_reduce_block);
    const auto chunked2 = merge(run, b, inputs, 2 * k_reduce_block);
    ASSERT_EQ(std::memcmp(whole.data(), chunked.data(), n * 4), 0);
    ASSERT_EQ(std::memcmp(whole.data(), chunked2.data(), n * 4), 0);
    EXPECT_NE(whole[n - 1], -12345.0f);  // the last, partial chunk was written
  }
}

}  // namespace
}  // namespace llmerge
