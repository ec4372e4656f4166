// The methods added after the first seven (nuslerp, multislerp, karcher,
// breadcrumbs[_ties], della[_linear], sce, ram, ramplus_tl, model_stock,
// nearswap, arcee_fusion), driven through the chunk protocol of method.h
// against independent double-precision implementations of mergekit's
// formulas (docs/mergekit-semantics.md §1.5-§1.13), plus RankSelect.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "merge/method.h"
#include "merge/methods/methods.h"
#include "merge/methods/rank_select.h"
#include "merge/random.h"
#include "method_driver.h"
#include "test_util.h"

namespace llmerge {
namespace {

using testing::merge;
using testing::MergeRun;
using testing::Shape;
using testing::Tensors;
using testing::Values;

void expect_close(const std::vector<float>& got, const std::vector<double>& want,
                  double tolerance = 2e-6) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tolerance * std::max(1.0, std::fabs(want[i]))) << "element " << i;
}

std::vector<float> normal_floats(std::size_t n, unsigned seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v)
    x = dist(rng);
  return v;
}

// base + small perturbation: task vectors of a realistic scale.
std::vector<float> near(const std::vector<float>& base, unsigned seed, float sigma = 0.1f) {
  std::vector<float> v = normal_floats(base.size(), seed, sigma);
  for (std::size_t i = 0; i < v.size(); ++i)
    v[i] += base[i];
  return v;
}

std::vector<double> task_vector(const std::vector<float>& x, const std::vector<float>& base) {
  std::vector<double> d(x.size());
  for (std::size_t e = 0; e < x.size(); ++e)
    d[e] = static_cast<double>(x[e] - base[e]);  // f32 subtraction, as the methods
  return d;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    s += a[i] * b[i];
  return s;
}

std::vector<double> as_double(const std::vector<float>& x) {
  return {x.begin(), x.end()};
}

// ---------------------------------------------------------------- registry

TEST(Registry2, NewMethodsDeclareMergekitDefaultsAndBaseUse) {
  const auto def = [](const char* method, const char* name) {
    const ParameterSpec* p = find_method(method)->find_parameter(name);
    EXPECT_NE(p, nullptr) << method << "." << name;
    return p != nullptr ? p->default_value : std::optional<double>(-999.0);
  };
  EXPECT_EQ(def("nuslerp", "nuslerp_row_wise"), 0.0);
  EXPECT_EQ(def("nuslerp", "nuslerp_flatten"), 1.0);
  EXPECT_EQ(def("nuslerp", "weight"), std::nullopt);
  EXPECT_EQ(def("multislerp", "normalize_weights"), 1.0);
  EXPECT_EQ(def("multislerp", "eps"), 1e-8);
  EXPECT_EQ(def("karcher", "max_iter"), 10.0);
  EXPECT_EQ(def("karcher", "tol"), 1e-5);
  EXPECT_EQ(def("breadcrumbs", "gamma"), 0.01);
  EXPECT_EQ(def("breadcrumbs_ties", "gamma"), 0.01);
  EXPECT_EQ(def("della", "epsilon"), 0.15);
  EXPECT_EQ(def("della", "normalize"), 1.0);
  EXPECT_EQ(def("della_linear", "normalize"), 0.0);
  EXPECT_EQ(def("della", "rescale"), 1.0);
  EXPECT_EQ(def("breadcrumbs", "rescale"), 0.0);
  EXPECT_EQ(def("breadcrumbs_ties", "normalize"), 0.0);
  EXPECT_EQ(def("sce", "select_topk"), 1.0);
  EXPECT_EQ(find_method("sce")->find_parameter("weight"), nullptr);
  EXPECT_EQ(def("ram", "epsilon"), 1e-5);
  EXPECT_EQ(def("ramplus_tl", "r"), 0.1);
  EXPECT_EQ(def("ramplus_tl", "alpha"), 0.2);
  EXPECT_EQ(def("model_stock", "filter_wise"), 0.0);
  EXPECT_EQ(def("nearswap", "t"), std::nullopt);
  EXPECT_TRUE(find_method("arcee_fusion")->parameters.empty());
  EXPECT_EQ(find_method("karcher")->base_use, MethodSpec::BaseUse::none);
  EXPECT_EQ(find_method("nuslerp")->base_use, MethodSpec::BaseUse::optional);
  EXPECT_EQ(find_method("nuslerp")->models_min, 2u);
  EXPECT_EQ(find_method("nuslerp")->models_max, 2u);
  EXPECT_EQ(find_method("model_stock")->models_min, 2u);
  EXPECT_EQ(find_method("nearswap")->models_max, 1u);
  EXPECT_TRUE(find_method("della")->random);
  EXPECT_FALSE(find_method("breadcrumbs")->random);
  EXPECT_FALSE(find_method("della")->rectify_to_common);
}

TEST(MethodsCommand, ListsEveryMethodWithItsParameters) {
  std::string text;
  ASSERT_EQ(testing::run_cli("methods", &text), 0) << text;
  for (const MethodSpec& spec : method_registry())
    EXPECT_NE(text.find(spec.name + " "), std::string::npos) << spec.name;
  EXPECT_NE(text.find("(0, 1]"), std::string::npos);  // density's range
  std::string json;
  ASSERT_EQ(testing::run_cli("methods --json", &json), 0) << json;
  EXPECT_NE(json.find("\"name\": \"arcee_fusion\""), std::string::npos);
  EXPECT_NE(json.find("\"name\": \"select_topk\""), std::string::npos);
  EXPECT_NE(json.find("\"base_model\": \"optional\""), std::string::npos);
}

// -------------------------------------------------------------- RankSelect

TEST(RankSelect, FindsExactOrderStatisticsWithCounts) {
  std::mt19937 rng(5);
  std::vector<float> x(5000);
  for (auto& v : x)
    v = static_cast<float>(static_cast<int>(rng() % 301) - 150) / 8.0f;  // many ties, signs
  std::vector<std::int64_t> ranks = {0, 1249, 2500, 4999};
  RankSelect select(ranks);
  for (int pass = 0; pass < RankSelect::k_passes; ++pass) {
    for (const float v : x)
      select.add(pass, order_key(v));
    select.end_pass(pass);
  }
  std::vector<float> sorted = x;
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 0; i < ranks.size(); ++i) {
    const float want = sorted[static_cast<std::size_t>(ranks[i])];
    EXPECT_EQ(float_from_order_key(select.result(i).key), want);
    EXPECT_EQ(select.result(i).below,
              std::lower_bound(sorted.begin(), sorted.end(), want) - sorted.begin());
    EXPECT_EQ(select.result(i).equal, std::count(x.begin(), x.end(), want));
  }
}

TEST(RankSelect, OrderKeySortsSignedFloats) {
  const std::vector<float> ascending = {-INFINITY, -2.0f,  -1e-30f, -0.0f,
                                        0.0f,      1e-30f, 3.0f,    INFINITY};
  for (std::size_t i = 1; i < ascending.size(); ++i)
    EXPECT_LT(order_key(ascending[i - 1]), order_key(ascending[i])) << i;
  EXPECT_EQ(float_from_order_key(order_key(-2.5f)), -2.5f);
}

// RankKeep against the definition: a stable sort by |x|, then u < p[rank].
std::vector<std::uint8_t> rank_keep_reference(const std::vector<float>& x,
                                              const std::vector<float>& u,
                                              const std::vector<float>& p) {
  std::vector<std::size_t> order(x.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return magnitude_key(x[a]) < magnitude_key(x[b]);
  });
  std::vector<std::uint8_t> keep(x.size());
  for (std::size_t r = 0; r < order.size(); ++r)
    keep[order[r]] = u[order[r]] < p[r] ? 1 : 0;
  return keep;
}

TEST(RankKeep, MatchesAStableSortOnTiesWideRangesAndSpecialValues) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  const auto bf16 = [](float v) { return bf16_to_f32(f32_to_bf16(v)); };
  // Each family hits another path: bf16 task vectors (clean keys, many ties),
  // f32 values (sorted), a range wider than the bucket window, specials.
  const std::vector<std::string> families = {"bf16_delta", "f32", "wide", "zeros", "special"};
  RankKeep rank_keep;
  for (const std::string& family : families) {
    for (const std::size_t n :
         {std::size_t{1}, std::size_t{2}, std::size_t{7}, std::size_t{3000}}) {
      std::vector<float> x(n), u(n), p(n);
      for (std::size_t j = 0; j < n; ++j) {
        const float w = bf16(normal(rng));
        if (family == "bf16_delta") x[j] = bf16(w + normal(rng) * 0.01f) - w;
        if (family == "f32") x[j] = normal(rng);
        if (family == "wide")
          x[j] = normal(rng) * std::ldexp(1.0f, static_cast<int>(rng() % 60) - 30);
        if (family == "zeros") x[j] = j % 5 == 0 ? bf16(normal(rng)) : (j % 2 ? 0.0f : -0.0f);
        if (family == "special") {
          const float specials[] = {INFINITY, -INFINITY, NAN, 1e-45f, -1e-40f, 0.0f, 3e38f};
          x[j] = j % 3 == 0 ? specials[rng() % 7] : bf16(normal(rng));
        }
        u[j] = unit(rng);
      }
      // Non-decreasing with repeats, as della's float-rounded p(r) can be.
      for (std::size_t r = 0; r < n; ++r)
        p[r] = n > 1 ? std::round(40.0f * static_cast<float>(r) / static_cast<float>(n - 1)) / 40.0f
                     : 0.5f;
      std::vector<std::uint8_t> got(n, 7);
      rank_keep.decide(x.data(), u.data(), p.data(), n, got.data());
      EXPECT_EQ(got, rank_keep_reference(x, u, p)) << family << " n=" << n;
    }
  }
}

// ------------------------------------------------------------------ nuslerp

std::vector<double> slerp_vectors(double t, const std::vector<double>& v0,
                                  const std::vector<double>& v1) {
  const double n0 = std::max(std::sqrt(dot(v0, v0)), 1e-7);
  const double n1 = std::max(std::sqrt(dot(v1, v1)), 1e-7);
  const double c = std::clamp(dot(v0, v1) / n0 / n1, -1.0, 1.0);
  double a = 1 - t, b = t;
  if (1 - c * c > 1e-16) {
    const double theta = std::acos(c);
    a = std::sin((1 - t) * theta) / std::sin(theta);
    b = std::sin(t * theta) / std::sin(theta);
  }
  std::vector<double> out(v0.size());
  for (std::size_t i = 0; i < v0.size(); ++i)
    out[i] = a * v0[i] + b * v1[i];
  return out;
}

// mode: 0 flatten, 1 rows (last axis), 2 columns (axis 0); shape {rows, cols}.
std::vector<double> nuslerp_reference(const std::vector<float>* base, const Tensors& x, double w1,
                                      double w2, int mode, std::size_t rows, std::size_t cols) {
  const double t = std::fabs(w1 + w2) < 1e-6 ? 0.5 : w2 / (w1 + w2);
  const std::size_t n = x[0].size();
  std::vector<double> v0(n), v1(n), out(n);
  for (std::size_t e = 0; e < n; ++e) {
    const float b = base != nullptr ? (*base)[e] : 0.0f;
    v0[e] = base != nullptr ? x[0][e] - b : x[0][e];
    v1[e] = base != nullptr ? x[1][e] - b : x[1][e];
  }
  std::vector<std::vector<std::size_t>> vectors;
  if (mode == 0) {
    vectors.emplace_back(n);
    std::iota(vectors[0].begin(), vectors[0].end(), 0);
  } else if (mode == 1) {
    for (std::size_t r = 0; r < rows; ++r) {
      vectors.emplace_back();
      for (std::size_t c = 0; c < cols; ++c)
        vectors.back().push_back(r * cols + c);
    }
  } else {
    for (std::size_t c = 0; c < cols; ++c) {
      vectors.emplace_back();
      for (std::size_t r = 0; r < rows; ++r)
        vectors.back().push_back(r * cols + c);
    }
  }
  for (const auto& idx : vectors) {
    std::vector<double> a, b;
    for (const std::size_t e : idx) {
      a.push_back(v0[e]);
      b.push_back(v1[e]);
    }
    const auto r = slerp_vectors(t, a, b);
    for (std::size_t k = 0; k < idx.size(); ++k)
      out[idx[k]] = r[k] + (base != nullptr ? (*base)[idx[k]] : 0.0);
  }
  return out;
}

TEST(Nuslerp, MatchesReferenceInEveryModeWithAndWithoutBase) {
  const std::size_t rows = 3, cols = 7;
  const auto base = normal_floats(rows * cols, 1);
  const Tensors x = {near(base, 2, 0.5f), near(base, 3, 0.5f)};
  const std::vector<Values> weights = {{{"weight", 0.3}}, {{"weight", 0.9}}};
  for (int mode = 0; mode < 3; ++mode) {
    for (const bool with_base : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "mode " << mode << " base " << with_base);
      const MergeRun run{
          "nuslerp",
          {{"nuslerp_flatten", mode == 0 ? 1.0 : 0.0}, {"nuslerp_row_wise", mode == 2 ? 1.0 : 0.0}},
          weights,
          {3, 7}};
      const auto got = merge(run, with_base ? &base : nullptr, x);
      expect_close(
          got, nuslerp_reference(with_base ? &base : nullptr, x, 0.3, 0.9, mode, rows, cols), 1e-5);
    }
  }
}

TEST(Nuslerp, RowWiseMeansColumnsAsInMergekitsCode) {
  // Column 0 of both models is colinear (lerp), column 1 orthogonal (sine weights);
  // as rows neither holds, so the row-wise result would differ.
  const std::vector<float> a = {1, 0, 2, 1};  // [[1, 0], [2, 1]]
  const std::vector<float> b = {2, 1, 4, 0};  // [[2, 1], [4, 0]]
  const MergeRun run{"nuslerp",
                     {{"nuslerp_flatten", 0}, {"nuslerp_row_wise", 1}},
                     {{{"weight", 1}}, {{"weight", 1}}},
                     {2, 2}};
  const auto got = merge(run, nullptr, {a, b});
  EXPECT_FLOAT_EQ(got[0], 1.5f);  // lerp of column (1, 2) and (2, 4)
  EXPECT_FLOAT_EQ(got[2], 3.0f);
  const float s = static_cast<float>(std::sin(std::numbers::pi / 4) / 1.0);
  EXPECT_NEAR(got[1], s * 1.0f, 1e-6);  // (0,1) and (1,0) at t = 0.5: sin(π/4)·each
  EXPECT_NEAR(got[3], s * 1.0f, 1e-6);
}

TEST(Nuslerp, WeightsSummingToZeroMeanHalfway) {
  const auto a = normal_floats(10, 4), b = normal_floats(10, 5);
  const MergeRun run{"nuslerp", {}, {{{"weight", 1}}, {{"weight", -1}}}};
  expect_close(merge(run, nullptr, {a, b}), nuslerp_reference(nullptr, {a, b}, 0.5, 0.5, 0, 1, 10));
}

// --------------------------------------------------------------- multislerp

std::vector<double> multislerp_reference(const std::vector<float>* base, const Tensors& x,
                                         std::vector<double> w, bool normalize, double eps) {
  const std::size_t m = x.size(), n = x[0].size();
  std::vector<std::vector<double>> X(m, std::vector<double>(n));
  for (std::size_t i = 0; i < m; ++i)
    X[i] = base != nullptr ? task_vector(x[i], *base) : as_double(x[i]);
  if (normalize) {
    const double s = std::accumulate(w.begin(), w.end(), 0.0);
    for (double& v : w)
      v /= s;
  }
  std::vector<double> norms(m), mean(n, 0.0);
  std::vector<std::vector<double>> u(m, std::vector<double>(n));
  for (std::size_t i = 0; i < m; ++i) {
    norms[i] = std::sqrt(dot(X[i], X[i]));
    for (std::size_t e = 0; e < n; ++e) {
      u[i][e] = X[i][e] / (norms[i] + eps);
      mean[e] += w[i] * u[i][e];
    }
  }
  const double mn = std::sqrt(dot(mean, mean));
  std::vector<double> out(n, 0.0);
  if (mn < eps) {
    for (std::size_t e = 0; e < n; ++e)
      for (std::size_t i = 0; i < m; ++i)
        out[e] += w[i] * X[i][e];
  } else {
    for (double& v : mean)
      v /= mn;
    std::vector<double> T(n, 0.0);
    for (std::size_t i = 0; i < m; ++i) {
      const double d = dot(u[i], mean);
      for (std::size_t e = 0; e < n; ++e)
        T[e] += w[i] * (u[i][e] - d * mean[e]);
    }
    const double s = std::sqrt(dot(T, T)) + eps;
    double avg = 0;
    for (std::size_t i = 0; i < m; ++i)
      avg += norms[i] * w[i];
    for (std::size_t e = 0; e < n; ++e)
      out[e] = (mean[e] * std::cos(s) + T[e] * std::sin(s) / s) * avg;
  }
  if (base != nullptr)
    for (std::size_t e = 0; e < n; ++e)
      out[e] += (*base)[e];
  return out;
}

TEST(Multislerp, MatchesReferenceWithAndWithoutBase) {
  const auto base = normal_floats(40 * 50, 10);
  const Tensors x = {near(base, 11, 0.3f), near(base, 12, 0.3f), near(base, 13, 0.3f)};
  const std::vector<Values> w = {{{"weight", 0.5}}, {{"weight", 0.3}}, {{"weight", 0.4}}};
  for (const bool normalize : {true, false}) {
    const MergeRun run{"multislerp", {{"normalize_weights", normalize ? 1.0 : 0.0}}, w};
    expect_close(merge(run, &base, x),
                 multislerp_reference(&base, x, {0.5, 0.3, 0.4}, normalize, 1e-8), 1e-5);
    expect_close(merge(run, nullptr, x),
                 multislerp_reference(nullptr, x, {0.5, 0.3, 0.4}, normalize, 1e-8), 1e-5);
  }
}

TEST(Multislerp, OneModelIsReturnedUnchangedAndAntipodesFallBackToLinear) {
  const auto a = normal_floats(21, 14);
  const MergeRun one{"multislerp", {}, {{{"weight", 0.7}}}};
  EXPECT_EQ(merge(one, nullptr, {a}), a);
  std::vector<float> minus(a.size());
  for (std::size_t i = 0; i < a.size(); ++i)
    minus[i] = -a[i];
  const MergeRun two{"multislerp", {}, {{{"weight", 1}}, {{"weight", 1}}}};
  const auto got = merge(two, nullptr, {a, minus});
  for (const float v : got)
    EXPECT_NEAR(v, 0.0f, 1e-6);  // 0.5·a + 0.5·(−a)
}

// ------------------------------------------------------------------ karcher

std::vector<double> karcher_reference(const Tensors& x, int max_iter, double tol) {
  const std::size_t m = x.size(), n = x[0].size();
  std::vector<std::vector<double>> u;
  std::vector<double> norms(m);
  for (std::size_t i = 0; i < m; ++i) {
    auto X = as_double(x[i]);
    norms[i] = std::sqrt(dot(X, X));
    if (norms[i] > tol) {
      for (double& v : X)
        v /= norms[i];
      u.push_back(X);
    }
  }
  std::vector<double> out(n, 0.0);
  if (u.empty()) return out;
  const double alpha = 1.0 / static_cast<double>(u.size());
  std::vector<double> mean(n, 0.0);
  for (const auto& ui : u)
    for (std::size_t e = 0; e < n; ++e)
      mean[e] += alpha * ui[e];
  const double mn = std::sqrt(dot(mean, mean));
  if (mn < tol) {
    mean = u[0];
  } else {
    for (double& v : mean)
      v /= mn;
  }
  for (int it = 0; it < max_iter; ++it) {
    std::vector<double> T(n, 0.0);
    for (const auto& ui : u) {
      const double c = std::clamp(dot(mean, ui), -1.0, 1.0);
      const double theta = std::acos(c);
      if (theta < tol) continue;
      for (std::size_t e = 0; e < n; ++e)
        T[e] += alpha * theta / std::sin(theta) * (ui[e] - c * mean[e]);
    }
    const double tn = std::sqrt(dot(T, T));
    if (tn < tol) break;
    for (std::size_t e = 0; e < n; ++e)
      mean[e] = std::cos(tn) * mean[e] + std::sin(tn) * T[e] / tn;
    const double un = std::sqrt(dot(mean, mean));
    if (un > tol)
      for (double& v : mean)
        v /= un;
  }
  double scale = 0;
  for (const double v : norms)
    scale += v / static_cast<double>(m);
  for (std::size_t e = 0; e < n; ++e)
    out[e] = scale * mean[e];
  return out;
}

TEST(Karcher, MatchesIterativeReference) {
  const Tensors x = {normal_floats(40 * 50, 20), normal_floats(40 * 50, 21, 2.0f),
                     normal_floats(40 * 50, 22, 0.5f)};
  for (const int iterations : {0, 1, 3, 10, 50}) {
    SCOPED_TRACE(iterations);
    const MergeRun run{"karcher", {{"max_iter", iterations}}, {}};
    expect_close(merge(run, nullptr, x), karcher_reference(x, iterations, 1e-5), 1e-5);
  }
}

TEST(Karcher, ZeroInputsCountInTheScaleButNotTheDirection) {
  const auto a = normal_floats(30, 23);
  const std::vector<float> zero(30, 0.0f);
  const MergeRun run{"karcher", {}, {}};
  const auto got = merge(run, nullptr, {a, zero});
  // Only a has a direction; the scale is (‖a‖ + 0)/2: res = a/2.
  for (std::size_t i = 0; i < a.size(); ++i)
    EXPECT_NEAR(got[i], a[i] / 2, 1e-6);
  const auto all_zero = merge(run, nullptr, {zero, zero});
  EXPECT_EQ(all_zero, zero);
}

// -------------------------------------------------------------- model_stock

std::vector<double> model_stock_reference(const std::vector<float>& base, const Tensors& x,
                                          std::size_t length) {
  const std::size_t m = x.size(), n = base.size();
  std::vector<double> out(n);
  for (std::size_t start = 0; start < n; start += length) {
    std::vector<std::vector<double>> o(m);
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t e = start; e < start + length; ++e)
        o[i].push_back(x[i][e] - base[e]);
    double cos_sum = 0;
    int pairs = 0;
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = i + 1; j < m; ++j, ++pairs)
        cos_sum +=
            std::clamp(dot(o[i], o[j]) /
                           std::max(std::sqrt(dot(o[i], o[i])) * std::sqrt(dot(o[j], o[j])), 1e-6),
                       -1.0, 1.0);
    const double c = cos_sum / pairs, N = static_cast<double>(m);
    const double den = 1 + (N - 1) * c;
    const double t = std::fabs(den) < 1e-6 ? 0.0 : N * c / den;
    for (std::size_t e = start; e < start + length; ++e) {
      double avg = 0;
      for (std::size_t i = 0; i < m; ++i)
        avg += x[i][e];
      out[e] = t * avg / N + (1 - t) * base[e];
    }
  }
  return out;
}

TEST(ModelStock, MatchesReferenceWholeAndFilterWise) {
  const auto base = normal_floats(40 * 50, 30);
  // A shared direction plus noise: cos ≈ 0.5, so t is well inside (0, 1).
  const auto shared = normal_floats(base.size(), 31, 0.1f);
  Tensors x;
  for (unsigned s = 0; s < 3; ++s) {
    auto v = near(base, 32 + s, 0.1f);
    for (std::size_t e = 0; e < v.size(); ++e)
      v[e] += shared[e];
    x.push_back(v);
  }
  const MergeRun whole{"model_stock", {}, {}, {40, 50}};
  expect_close(merge(whole, &base, x), model_stock_reference(base, x, base.size()), 1e-5);
  const MergeRun rows{"model_stock", {{"filter_wise", 1}}, {}, {40, 50}};
  expect_close(merge(rows, &base, x), model_stock_reference(base, x, 50), 1e-5);
}

TEST(ModelStock, OpposedTaskVectorsKeepTheBase) {
  // N = 2, o_2 = −o_1: cos = −1, 1 + (N − 1)cos = 0 -> t = 0 -> the base.
  const auto base = normal_floats(12, 33);
  const auto o = normal_floats(12, 34);
  Tensors x(2, base);
  for (std::size_t e = 0; e < base.size(); ++e) {
    x[0][e] += o[e];
    x[1][e] -= o[e];
  }
  const MergeRun run{"model_stock", {}, {}};
  EXPECT_EQ(merge(run, &base, x), base);
}

// ----------------------------------------------------------------- nearswap

TEST(Nearswap, SwapsCloseValuesAndKeepsDistantOnes) {
  const std::vector<float> a = {1.0f, 1.0f, 1.0f, 5.0f};
  const std::vector<float> b = {1.0f, 1.05f, 3.0f, 4.0f};
  const MergeRun run{"nearswap", {{"t", 0.1}}, {{}}};
  const auto got = merge(run, &a, {b});
  EXPECT_EQ(got[0], 1.0f);                     // |a−b| = 0: weight 1 -> b
  EXPECT_FLOAT_EQ(got[1], 1.05f);              // 0.1/0.05 > 1: clamped -> b
  EXPECT_FLOAT_EQ(got[2], 0.05f * 3 + 0.95f);  // weight 0.1/2 = 0.05
  EXPECT_FLOAT_EQ(got[3], 0.1f * 4 + 0.9f * 5);
}

// --------------------------------------------------------------------- ram

std::vector<double> ram_reference(const std::vector<float>& base, const Tensors& x, bool plus,
                                  double r, double alpha, double eps) {
  const std::size_t m = x.size(), n = base.size();
  std::vector<std::vector<double>> tau(m);
  for (std::size_t i = 0; i < m; ++i)
    tau[i] = task_vector(x[i], base);
  const auto nz = [&](std::size_t i, std::size_t e) {
    return std::fabs(tau[i][e]) > static_cast<float>(eps);
  };
  std::vector<int> c(n, 0);
  for (std::size_t e = 0; e < n; ++e)
    for (std::size_t i = 0; i < m; ++i)
      c[e] += nz(i, e);
  std::vector<double> lambda(m, 1.0);
  if (plus) {
    for (std::size_t i = 0; i < m; ++i) {
      double shared = 0, unique = 0;
      for (std::size_t e = 0; e < n; ++e) {
        if (!nz(i, e)) continue;
        (c[e] == 1 ? unique : shared) += 1;
      }
      lambda[i] = 1 + r * std::clamp(shared / std::max(unique, eps), 0.0, alpha);
    }
  }
  std::vector<double> out(n);
  for (std::size_t e = 0; e < n; ++e) {
    double s = 0;
    for (std::size_t i = 0; i < m; ++i)
      if (nz(i, e)) s += c[e] == 1 ? tau[i][e] * lambda[i] : tau[i][e] / c[e];
    out[e] = base[e] + s;
  }
  return out;
}

// Task vectors that are exactly zero at about half the elements.
Tensors sparse_models(const std::vector<float>& base, unsigned seed, std::size_t m) {
  Tensors x;
  std::mt19937 rng(seed);
  for (std::size_t i = 0; i < m; ++i) {
    auto v = near(base, seed + 1 + static_cast<unsigned>(i), 0.2f);
    for (std::size_t e = 0; e < v.size(); ++e)
      if (rng() % 2 == 0) v[e] = base[e];
    x.push_back(v);
  }
  return x;
}

TEST(Ram, AveragesOnlyOverModelsThatChangedAnEntry) {
  const auto base = normal_floats(3 * 7, 40);
  const auto x = sparse_models(base, 41, 3);
  expect_close(merge({"ram", {}, {}}, &base, x), ram_reference(base, x, false, 0, 0, 1e-5));
  const std::vector<float> b = {0, 0, 0};
  const Tensors tiny = {{2, 1e-6f, 4}, {0, 0, 2}};
  const auto got = merge({"ram", {}, {}}, &b, tiny);
  EXPECT_EQ(got, (std::vector<float>{2, 0, 3}));  // unique, below ε, shared mean
}

TEST(RamplusTl, BoostsUniqueEntriesByTheSharedRatio) {
  const auto base = normal_floats(40 * 50, 42);
  const auto x = sparse_models(base, 43, 3);
  for (const double alpha : {0.2, 5.0}) {
    const MergeRun run{"ramplus_tl", {{"r", 0.5}, {"alpha", alpha}}, {}};
    expect_close(merge(run, &base, x), ram_reference(base, x, true, 0.5, alpha, 1e-5));
  }
}

// --------------------------------------------------------------------- sce

std::vector<double> sce_reference(const std::vector<float>& base, const Tensors& x, double topk) {
  const std::size_t m = x.size(), n = base.size();
  std::vector<std::vector<double>> tau(m);
  for (std::size_t i = 0; i < m; ++i)
    tau[i] = task_vector(x[i], base);
  if (topk < 1) {
    std::vector<float> var(n);
    std::size_t nonzero = 0;
    for (std::size_t e = 0; e < n; ++e) {
      double mean = 0, v = 0;
      for (std::size_t i = 0; i < m; ++i)
        mean += tau[i][e] / m;
      for (std::size_t i = 0; i < m; ++i)
        v += (tau[i][e] - mean) * (tau[i][e] - mean);
      var[e] = static_cast<float>(v / m);
      nonzero += var[e] != 0;
    }
    const auto k = static_cast<std::size_t>(static_cast<double>(nonzero) * topk);
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return var[a] > var[b]; });
    std::vector<bool> keep(n, false);
    for (std::size_t j = 0; j < k; ++j)
      keep[order[j]] = true;
    for (auto& t : tau)
      for (std::size_t e = 0; e < n; ++e)
        if (!keep[e]) t[e] = 0;
  }
  std::vector<double> w(m);
  double sum = 0;
  for (std::size_t i = 0; i < m; ++i) {
    w[i] = dot(tau[i], tau[i]) / n;
    sum += w[i];
  }
  for (double& v : w)
    v = std::fabs(sum) < 1e-6 ? 1.0 / m : v / sum;
  std::vector<double> out(n);
  for (std::size_t e = 0; e < n; ++e) {
    double s = 0;
    for (std::size_t i = 0; i < m; ++i)
      s += tau[i][e];
    const double maj = s >= 0 ? 1 : -1;
    double mixed = 0, div = 0;
    for (std::size_t i = 0; i < m; ++i) {
      const double sign = tau[i][e] > 0 ? 1 : tau[i][e] < 0 ? -1 : 0;
      if (sign == maj) {
        mixed += tau[i][e] * w[i];
        div += w[i];
      }
    }
    out[e] = base[e] + mixed / std::max(div, 1e-6);
  }
  return out;
}

TEST(Sce, MatchesReferenceWithAndWithoutSelection) {
  const auto base = normal_floats(40 * 50, 50);
  const Tensors x = {near(base, 51, 0.1f), near(base, 52, 0.3f), near(base, 53, 0.2f)};
  for (const double topk : {1.0, 0.5, 0.1, 0.0}) {
    SCOPED_TRACE(topk);
    const MergeRun run{"sce", {{"select_topk", topk}}, {}};
    expect_close(merge(run, &base, x), sce_reference(base, x, topk), 1e-5);
  }
}

TEST(Sce, TiedVariancesAreSelectedInFlattenedOrder) {
  // Every element has the same variance: the first k in order are kept.
  const std::vector<float> base(10, 0.0f);
  const Tensors x = {std::vector<float>(10, 1.0f), std::vector<float>(10, 3.0f)};
  const auto got = merge({"sce", {{"select_topk", 0.3}}, {}}, &base, x);
  for (std::size_t e = 0; e < 10; ++e) {
    if (e < 3) {
      EXPECT_FLOAT_EQ(got[e], 0.1f * 1 + 0.9f * 3) << e;  // weights 1/10, 9/10
    } else {
      EXPECT_EQ(got[e], 0.0f) << e;
    }
  }
}

// ------------------------------------------------------------- breadcrumbs

// Ascending ranks [bottom, bottom + keep) by (|δ|, index) survive.
std::vector<bool> breadcrumbs_mask(const std::vector<double>& d, double density, double gamma) {
  const std::size_t n = d.size();
  const auto keep = static_cast<std::size_t>(density * n);
  const auto top = static_cast<std::size_t>(gamma * n);
  const std::size_t bottom = n > keep + top ? n - keep - top : 0;
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return std::fabs(d[a]) < std::fabs(d[b]); });
  std::vector<bool> mask(n, false);
  for (std::size_t j = bottom; j < bottom + keep; ++j)
    mask[order[j]] = true;
  return mask;
}

std::vector<double> gta_reference(const std::vector<float>& base, const Tensors& x,
                                  const std::vector<std::vector<bool>>& masks,
                                  const std::vector<double>& w, bool consensus, bool normalize,
                                  bool rescale) {
  const std::size_t m = x.size(), n = base.size();
  std::vector<std::vector<double>> D(m);
  for (std::size_t i = 0; i < m; ++i) {
    const auto d = task_vector(x[i], base);
    double full = 0, kept = 0;
    for (std::size_t e = 0; e < n; ++e) {
      full += std::fabs(d[e]);
      kept += masks[i][e] ? std::fabs(d[e]) : 0;
    }
    const double f = rescale && full >= 1e-7 && kept >= 1e-7 ? full / kept : 1.0;
    for (std::size_t e = 0; e < n; ++e)
      D[i].push_back(masks[i][e] ? d[e] * f * w[i] : 0.0);
  }
  std::vector<double> out(n);
  const double wsum = std::accumulate(w.begin(), w.end(), 0.0);
  for (std::size_t e = 0; e < n; ++e) {
    double mixed = 0, div = 0, s = 0;
    for (std::size_t i = 0; i < m; ++i)
      s += D[i][e];
    for (std::size_t i = 0; i < m; ++i) {
      const double sign = D[i][e] > 0 ? 1 : D[i][e] < 0 ? -1 : 0;
      if (!consensus || sign == (s >= 0 ? 1 : -1)) {
        mixed += D[i][e];
        div += w[i];
      }
    }
    if (consensus && div == 0) div = 1;
    if (!consensus) div = std::fabs(wsum) < 1e-8 ? 1 : wsum;
    out[e] = base[e] + (normalize ? mixed / div : mixed);
  }
  return out;
}

TEST(Breadcrumbs, DropsOutliersAndSmallEntriesLikeReference) {
  const auto base = normal_floats(40 * 50, 60);
  const Tensors x = {near(base, 61), near(base, 62)};
  const std::vector<double> density = {0.3, 0.9}, gamma = {0.05, 0.2};
  std::vector<std::vector<bool>> masks;
  for (std::size_t i = 0; i < 2; ++i)
    masks.push_back(breadcrumbs_mask(task_vector(x[i], base), density[i], gamma[i]));
  const std::vector<Values> per_model = {{{"weight", 0.6}, {"density", 0.3}, {"gamma", 0.05}},
                                         {{"weight", 0.7}, {"density", 0.9}, {"gamma", 0.2}}};
  for (const bool consensus : {false, true}) {
    for (const bool rescale : {false, true}) {
      SCOPED_TRACE(::testing::Message() << consensus << rescale);
      const MergeRun run{consensus ? "breadcrumbs_ties" : "breadcrumbs",
                         {{"rescale", rescale ? 1.0 : 0.0}, {"normalize", 1}},
                         per_model};
      expect_close(merge(run, &base, x),
                   gta_reference(base, x, masks, {0.6, 0.7}, consensus, true, rescale), 1e-5);
    }
  }
}

// bf16 task vectors over several chunks: ties at both cut-offs cross chunk
// boundaries (the band kernel on whole chunks, the ordered loop where a cut
// runs out), found in one pass or, without scratch, two.
TEST(Breadcrumbs, Bf16TaskVectorsOverChunksMatchReferenceInOneOrTwoPasses) {
  const std::size_t n = 3 * 65536 + 1000;
  auto base = normal_floats(n, 63, 0.02f);
  for (float& v : base)
    v = bf16_to_f32(f32_to_bf16(v));
  Tensors x = {near(base, 64, 2e-4f), near(base, 65, 2e-4f)};
  for (auto& model : x) {
    for (float& v : model)
      v = bf16_to_f32(f32_to_bf16(v));
  }
  for (const int rescale : {0, 1}) {
    const std::vector<double> density = {0.5, 0.9}, gamma = {0.01, 0.05};
    std::vector<std::vector<bool>> masks;
    for (std::size_t i = 0; i < 2; ++i)
      masks.push_back(breadcrumbs_mask(task_vector(x[i], base), density[i], gamma[i]));
    MergeRun run{"breadcrumbs",
                 {{"rescale", rescale}},
                 {{{"weight", 0.5}, {"density", density[0]}, {"gamma", gamma[0]}},
                  {{"weight", 0.7}, {"density", density[1]}, {"gamma", gamma[1]}}}};
    const auto one_pass = merge(run, &base, x, 65536);
    expect_close(one_pass, gta_reference(base, x, masks, {0.5, 0.7}, false, false, rescale != 0),
                 1e-6);
    run.scratch_bytes = 0;
    const auto two_pass = merge(run, &base, x, 65536);
    EXPECT_EQ(std::memcmp(one_pass.data(), two_pass.data(), n * 4), 0) << rescale;
  }
}

TEST(Breadcrumbs, ZeroTopOutliersKeepsTheLargestInsteadOfZeroingAll) {
  // 10 elements, gamma 0.05 -> top = 0: mergekit <= 0.1.4 zeroed everything.
  const std::vector<float> base(10, 0.0f);
  const std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  const MergeRun run{"breadcrumbs", {}, {{{"weight", 1}, {"density", 0.5}}}};
  const auto got = merge(run, &base, {x});
  EXPECT_EQ(got, (std::vector<float>{0, 0, 0, 0, 0, 6, 7, 8, 9, 10}));
}

TEST(Breadcrumbs, TiesAtTheCutsGoInFlattenedOrder) {
  const std::vector<float> base(8, 0.0f);
  const std::vector<float> x = {1, -1, 1, 1, 2, 2, -2, 2};  // ranks: the 1s, then the 2s
  // keep 4, top 2 -> bottom 2: drop the first two 1s and the last two 2s.
  const MergeRun run{"breadcrumbs", {}, {{{"weight", 1}, {"density", 0.5}, {"gamma", 0.25}}}};
  EXPECT_EQ(merge(run, &base, {x}), (std::vector<float>{0, 0, 1, 1, 2, 2, 0, 0}));
}

// ------------------------------------------------------------------- della

// della's mask with the same Philox stream; vectors are the rows (length `cols`).
std::vector<bool> della_mask(const std::vector<double>& d, std::size_t cols, double density,
                             double epsilon, std::uint64_t seed, const std::string& tensor,
                             std::uint32_t model) {
  const ElementRandom random(seed, hash_tensor_name(tensor), model);
  std::vector<bool> mask(d.size());
  for (std::size_t start = 0; start < d.size(); start += cols) {
    std::vector<std::size_t> order(cols);
    std::iota(order.begin(), order.end(), start);
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return std::fabs(static_cast<float>(d[a])) < std::fabs(static_cast<float>(d[b]));
    });
    for (std::size_t r = 0; r < cols; ++r) {
      const double norm = cols > 1 ? static_cast<double>(r) / (cols - 1) : 0.5;
      const auto p = static_cast<float>(density - epsilon + 2 * epsilon * norm);
      mask[order[r]] = random.uniform(order[r]) < p;
    }
  }
  return mask;
}

TEST(Della, MatchesReferenceUsingRowRanksAndPhilox) {
  const std::size_t rows = 40, cols = 50;
  const auto base = normal_floats(rows * cols, 70);
  const Tensors x = {near(base, 71), near(base, 72)};
  const std::vector<Values> per_model = {{{"weight", 0.5}, {"density", 0.4}, {"epsilon", 0.1}},
                                         {{"weight", 0.8}, {"density", 0.7}}};
  std::vector<std::vector<bool>> masks = {
      della_mask(task_vector(x[0], base), cols, 0.4, 0.1, 9, "t", 0),
      della_mask(task_vector(x[1], base), cols, 0.7, 0.15, 9, "t", 1)};
  for (const bool consensus : {true, false}) {
    MergeRun run{consensus ? "della" : "della_linear", {}, per_model, {40, 50}, 9, "t"};
    expect_close(merge(run, &base, x),
                 gta_reference(base, x, masks, {0.5, 0.8}, consensus, consensus, true), 1e-5);
  }
}

// bf16 checkpoints: task vectors with few distinct values (RankKeep's
// counting path), with the keep bits cached between the passes and without.
TEST(Della, Bf16TaskVectorsMatchReferenceWithAndWithoutTheMaskCache) {
  const std::size_t rows = 24, cols = 3000;  // rows straddle reduce blocks
  const auto bf16 = [](std::vector<float> v) {
    for (float& x : v)
      x = bf16_to_f32(f32_to_bf16(x));
    return v;
  };
  const auto base = bf16(normal_floats(rows * cols, 80, 0.02f));
  const Tensors x = {bf16(near(base, 81, 2e-4f)), bf16(near(base, 82, 2e-4f))};
  const std::vector<Values> per_model = {{{"weight", 0.5}, {"density", 0.4}, {"epsilon", 0.1}},
                                         {{"weight", 0.8}, {"density", 0.7}}};
  const std::vector<std::vector<bool>> masks = {
      della_mask(task_vector(x[0], base), cols, 0.4, 0.1, 9, "t", 0),
      della_mask(task_vector(x[1], base), cols, 0.7, 0.15, 9, "t", 1)};
  const auto want = gta_reference(base, x, masks, {0.5, 0.8}, true, true, true);
  MergeRun run{"della", {}, per_model, {rows, cols}, 9, "t"};
  const auto cached = merge(run, &base, x, 1 << 16);
  expect_close(cached, want, 1e-5);
  run.scratch_bytes = 0;  // rank again in the compute pass
  const auto recomputed = merge(run, &base, x, 1 << 16);
  EXPECT_EQ(std::memcmp(cached.data(), recomputed.data(), cached.size() * 4), 0);
  // A budget for part of the tensor: eight times 750 bytes, 24000 bits per
  // model, caches rows 0-7; row 21 straddles the chunks and is stored.
  run.scratch_bytes = 750;
  const auto partly = merge(run, &base, x, 1 << 16);
  EXPECT_EQ(std::memcmp(cached.data(), partly.data(), cached.size() * 4), 0);
}

// The keep-bit cache is one budget for the process (della.cpp's CachePool):
// a merge made while other della tensors hold all of it caches nothing and
// ranks its rows again, to the same bytes; the budget comes back when the
// holders are destroyed.
TEST(Della, ACacheBudgetHeldElsewhereChangesNoBytes) {
  const std::size_t rows = 24, cols = 3000;
  const auto base = normal_floats(rows * cols, 90, 0.02f);
  const Tensors x = {near(base, 91, 2e-4f), near(base, 92, 2e-4f)};
  const std::vector<Values> per_model = {{{"weight", 0.5}, {"density", 0.4}, {"epsilon", 0.1}},
                                         {{"weight", 0.8}, {"density", 0.7}}};
  const MergeRun run{"della", {}, per_model, {rows, cols}, 9, "t"};
  const auto free_pool = merge(run, &base, x, 1 << 16);
  {
    // Two tensors as big as a 0.5B model's embedding each want the whole pool.
    const MethodSpec* spec = find_method("della");
    ASSERT_NE(spec, nullptr);
    const ResolvedParameters params = testing::resolve(*spec, 2, {}, per_model);
    TensorContext big;
    big.name = "model.embed_tokens.weight";
    big.shape = {151936, 896};
    big.numel = 151936 * 896;
    big.model_count = 2;
    big.has_base = true;
    big.params = &params;
    const auto holder = spec->make(big);
    const auto second = spec->make(big);
    const auto held_pool = merge(run, &base, x, 1 << 16);
    EXPECT_EQ(std::memcmp(free_pool.data(), held_pool.data(), free_pool.size() * 4), 0);
    ASSERT_NE(spec->shared_bytes, nullptr);
    EXPECT_LE(spec->shared_bytes(big.shape, big.numel, 2, 1 << 16), spec->shared_budget)
        << "one tensor never asks for more than the pool";
  }
  const auto given_back = merge(run, &base, x, 1 << 16);
  EXPECT_EQ(std::memcmp(free_pool.data(), given_back.data(), free_pool.size() * 4), 0);
}

TEST(Della, KeepRateFollowsRankAndAveragesToDensity) {
  const std::size_t rows = 200, cols = 500;
  const std::vector<float> base(rows * cols, 0.0f);
  const auto x = normal_floats(rows * cols, 73);
  const MergeRun run{"della_linear",
                     {{"rescale", 0}},
                     {{{"weight", 1}, {"density", 0.5}, {"epsilon", 0.3}}},
                     {static_cast<std::int64_t>(rows), static_cast<std::int64_t>(cols)},
                     5};
  const auto got = merge(run, &base, {x});
  // Per row: the smallest fifth by |x| is kept with p in [0.2, 0.32], the largest in [0.68, 0.8].
  std::size_t kept = 0, small_kept = 0, large_kept = 0, small = 0, large = 0;
  for (std::size_t r = 0; r < rows; ++r) {
    std::vector<float> mags;
    for (std::size_t c = 0; c < cols; ++c)
      mags.push_back(std::fabs(x[r * cols + c]));
    std::vector<float> sorted = mags;
    std::sort(sorted.begin(), sorted.end());
    for (std::size_t c = 0; c < cols; ++c) {
      const bool k = got[r * cols + c] != 0.0f;
      kept += k;
      if (mags[c] < sorted[cols / 5]) {
        ++small;
        small_kept += k;
      } else if (mags[c] >= sorted[cols - cols / 5]) {
        ++large;
        large_kept += k;
      }
    }
  }
  const double n = static_cast<double>(rows * cols);
  EXPECT_NEAR(kept / n, 0.5, 4 * std::sqrt(0.25 / n));
  EXPECT_NEAR(static_cast<double>(small_kept) / small, 0.26, 4 * std::sqrt(0.25 / small) + 0.01);
  EXPECT_NEAR(static_cast<double>(large_kept) / large, 0.74, 4 * std::sqrt(0.25 / large) + 0.01);
}

TEST(Della, RescaleRestoresTheL1NormAndOneColumnRowsUseDensity) {
  const std::vector<float> base(4000, 0.0f);
  const auto x = normal_floats(4000, 74);
  const MergeRun run{
      "della_linear", {}, {{{"weight", 1}, {"density", 0.5}, {"epsilon", 0.2}}}, {4000, 1}, 6};
  const auto got = merge(run, &base, {x});
  double l1_in = 0, l1_out = 0, kept = 0;
  for (std::size_t e = 0; e < x.size(); ++e) {
    l1_in += std::fabs(x[e]);
    l1_out += std::fabs(got[e]);
    kept += got[e] != 0.0f;
  }
  EXPECT_NEAR(l1_out / l1_in, 1.0, 1e-5);
  // One entry per vector: p = density for every element.
  EXPECT_NEAR(kept / 4000, 0.5, 4 * std::sqrt(0.25 / 4000));
}

// ------------------------------------------------------------- arcee_fusion

std::vector<double> arcee_fusion_reference(const std::vector<float>& b, const std::vector<float>& p,
                                           std::size_t cols, std::vector<float>* importance_out) {
  const std::size_t n = b.size();
  std::vector<float> importance(n);
  for (std::size_t start = 0; start < n; start += cols) {
    double mp = -INFINITY, mb = -INFINITY, sp = 0, sb = 0;
    for (std::size_t e = start; e < start + cols; ++e) {
      mp = std::max(mp, static_cast<double>(p[e]));
      mb = std::max(mb, static_cast<double>(b[e]));
    }
    for (std::size_t e = start; e < start + cols; ++e) {
      sp += std::exp(p[e] - mp);
      sb += std::exp(b[e] - mb);
    }
    double kl = 0;
    for (std::size_t e = start; e < start + cols; ++e) {
      const double P = std::exp(p[e] - mp) / sp + 1e-8, Q = std::exp(b[e] - mb) / sb + 1e-8;
      kl += P * std::log(P / Q);
    }
    for (std::size_t e = start; e < start + cols; ++e)
      importance[e] = std::fabs(p[e] - b[e]) * static_cast<float>(kl);
  }
  std::vector<float> sorted = importance;
  std::sort(sorted.begin(), sorted.end());
  const auto q = [&](double f) { return sorted[static_cast<std::size_t>(f * (n - 1))]; };
  const float threshold = q(0.5) + 1.5f * (q(0.75) - q(0.25));
  std::vector<double> out(n);
  for (std::size_t e = 0; e < n; ++e)
    out[e] = importance[e] >= threshold ? b[e] + (p[e] - b[e]) : b[e];  // f32, as the method
  *importance_out = importance;
  importance_out->push_back(threshold);
  return out;
}

TEST(ArceeFusion, TakesOnlyImportanceOutliers) {
  const std::size_t rows = 40, cols = 50;
  const auto b = normal_floats(rows * cols, 80);
  auto p = near(b, 81, 0.05f);
  for (std::size_t c = 0; c < cols; ++c)  // rows 3 and 17 change a lot
    p[3 * cols + c] += 1.0f, p[17 * cols + c] -= 0.7f * static_cast<float>(c % 3);
  const auto got = merge({"arcee_fusion", {}, {{}}, {40, 50}}, &b, {p});
  std::vector<float> importance;
  const auto want = arcee_fusion_reference(b, p, cols, &importance);
  const float threshold = importance.back();
  std::size_t taken = 0;
  for (std::size_t e = 0; e < b.size(); ++e) {
    taken += got[e] != b[e];
    // Elements within rounding of the threshold may go either way.
    if (std::fabs(importance[e] - threshold) <= 1e-5f * threshold) continue;
    ASSERT_EQ(got[e], static_cast<float>(want[e])) << e;
  }
  EXPECT_GT(taken, 0u);
  EXPECT_LT(taken, b.size() / 4);
}

// ---------------------------------------------------- chunking determinism

TEST(Methods2, OutputIsByteIdenticalForAnyChunkSize) {
  // 6 rows of 22051: rows straddle every reduce block.
  const std::size_t n = 2 * static_cast<std::size_t>(k_reduce_block) + 1234;
  const Shape shape = {6, static_cast<std::int64_t>(n / 6)};
  ASSERT_EQ(n % 6, 0u);
  const auto base = normal_floats(n, 90);
  const Tensors x = {near(base, 91), near(base, 92), near(base, 93)};
  const auto gta = [](std::vector<Values> v) { return v; };
  const std::vector<MergeRun> runs = {
      {"nuslerp", {}, {{{"weight", 0.4}}, {{"weight", 0.6}}}, shape},
      {"nuslerp", {{"nuslerp_flatten", 0}}, {{{"weight", 0.4}}, {{"weight", 0.6}}}, shape},
      {"nuslerp",
       {{"nuslerp_flatten", 0}, {"nuslerp_row_wise", 1}},
       {{{"weight", 0.4}}, {{"weight", 0.6}}},
       shape},
      {"multislerp", {}, {{{"weight", 0.2}}, {{"weight", 0.3}}, {{"weight", 0.5}}}, shape},
      {"karcher", {}, {}, shape},
      {"breadcrumbs",
       {{"rescale", 1}},
       gta({{{"weight", 0.5}, {"density", 0.4}},
            {{"weight", 0.5}, {"density", 0.6}},
            {{"weight", 0.5}}}),
       shape},
      {"breadcrumbs_ties",
       {},
       gta({{{"weight", 0.5}, {"density", 0.4}},
            {{"weight", 0.5}, {"density", 0.6}},
            {{"weight", 0.5}}}),
       shape},
      {"della",
       {},
       gta({{{"weight", 0.5}, {"density", 0.4}},
            {{"weight", 0.5}, {"density", 0.6}},
            {{"weight", 0.5}}}),
       shape,
       3},
      {"della_linear",
       {},
       gta({{{"weight", 0.5}, {"density", 0.4}},
            {{"weight", 0.5}, {"density", 0.6}},
            {{"weight", 0.5}}}),
       {},
       3},
      {"sce", {{"select_topk", 0.3}}, {}, shape},
      {"ram", {}, {}, shape},
      {"ramplus_tl", {}, {}, shape},
      {"model_stock", {}, {}, shape},
      {"model_stock", {{"filter_wise", 1}}, {}, shape},
      {"nearswap", {{"t", 0.05}}, {{}}, shape},
      {"arcee_fusion", {}, {{}}, shape},
  };
  for (const MergeRun& run : runs) {
    SCOPED_TRACE(run.method);
    const MethodSpec& spec = *find_method(run.method);
    Tensors inputs = x;
    if (spec.models_max == 1) inputs.resize(1);
    if (spec.models_max == 2) inputs.resize(2);
    const std::vector<float>* b = spec.base_use == MethodSpec::BaseUse::none ? nullptr : &base;
    const auto whole = merge(run, b, inputs);
    const auto chunked = merge(run, b, inputs, k_reduce_block);
    ASSERT_EQ(std::memcmp(whole.data(), chunked.data(), n * 4), 0);
    EXPECT_NE(whole[n - 1], -12345.0f);
    EXPECT_NE(std::memcmp(whole.data(), base.data(), n * 4), 0);  // the merge did something
  }
}

}  // namespace
}  // namespace llmerge
