// Golden parity with mergekit: every tests/golden/cases/<case>/config.yaml is
// merged by llmerge and compared, tensor by tensor, with the output that the
// pinned mergekit (tests/golden/VERSIONS) produced from the same inputs
// (expected.safetensors), or with mergekit's refusal (rejected.txt).
// tools/golden/generate.py makes that data; tests/golden/README.md explains it.
//
// The inputs are remade with `llmerge synth` from tests/golden/models.txt
// (deterministic) into a cache folder shared by the test processes.
//
// Checks, by method:
// - exact (linear, slerp, task_arithmetic, passthrough): every element, in
//   ulps of the output dtype (reported: max ulp, share bit-identical) and in
//   operand ulps (asserted: see the bounds below; `dtype: bfloat16` means
//   mergekit rounded every intermediate to bf16).
// - top_k (ties): the same, except elements whose keep/drop decision is a tie
//   at some model's top-k threshold (or, with bf16 compute, differs between
//   the f32 and bf16 rankings); those are counted and left out.
// - random (dare_*): mergekit's torch RNG cannot be matched. llmerge's output
//   must equal an independent f64 recomputation of the formula on llmerge's
//   own Philox mask (sign election included); with one model, both llmerge's
//   and mergekit's outputs must keep a fraction of elements within 4σ of the
//   density, keep them at one common rescale factor, and (with rescale) match
//   the task vector's L1 norm.
// A refused config must be refused by llmerge too, unless the case folder
// holds difference.md explaining why llmerge accepts it.
//
// Each case writes one JSON file into $LLMERGE_GOLDEN_RESULTS (default
// ./golden-results); tools/golden/parity_table.py turns them into the parity
// table of docs/methods.md.
#include <gtest/gtest.h>

#include <fcntl.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "io/model.h"
#include "merge/random.h"
#include "test_util.h"

namespace llmerge {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path k_golden_dir = fs::path(LLMERGE_SOURCE_DIR) / "tests" / "golden";

// Bounds asserted, in "operand ulps": |ours − theirs| in ulps of the output
// dtype at the element's largest input or output magnitude (a cancelling sum
// would blow plain result ulps up without any real error). Observed with
// mergekit 0.1.5 / torch 2.15 on the committed cases (docs/methods.md has the
// table): f32 compute ≤ 6 (ties with rescale: mergekit's f32 L1 sums against
// llmerge's f64 ones; slerp: mergekit's f32 coefficients; linear: torch's
// fused addcmul_), bf16 compute ≤ 3.
constexpr double k_f32_max_operand_ulp = 8;
constexpr double k_f32_within_one_operand_ulp_min = 0.95;
// The spherical methods (slerp, nuslerp, multislerp, karcher) compute their
// norms, angles and coefficients in f64, mergekit in f32: the coefficients
// differ in the last bits, which moves up to ~20% of the elements by 2 to 5
// operand ulps.
constexpr double k_f32_spherical_within_one_operand_ulp_min = 0.80;
constexpr double k_bf16_spherical_max_operand_ulp = 6;
// arcee_fusion takes the other model's value where an importance score passes
// a threshold: elements at the threshold flip (see docs/methods.md). At most
// this share of the elements may differ by more than k_f32_max_operand_ulp.
constexpr double k_decision_flips_max_share = 0.001;

bool spherical(const std::string& method) {
  return method == "slerp" || method == "nuslerp" || method == "multislerp" || method == "karcher";
}
constexpr double k_bf16_max_operand_ulp = 4;
// llmerge's output against the f64 recomputation on its own mask: the f32
// chain δ·factor·w + b rounds up to twice.
constexpr double k_own_mask_max_operand_ulp = 2;

enum class Check { exact, top_k, random };

Check check_for(const std::string& method) {
  if (method == "dare_ties" || method == "dare_linear" || method.starts_with("della"))
    return Check::random;
  if (method == "ties") return Check::top_k;  // breadcrumbs*, sce: no ties seen yet
  return Check::exact;
}

const char* check_name(Check c) {
  return c == Check::exact ? "exact" : c == Check::top_k ? "top_k" : "random";
}

// A tensor as f32 values plus its dtype (BF16 or F32) for ulp distances.
struct Values {
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;
  std::vector<float> v;
};

Values read_tensor(const Model& model, const std::string& name) {
  const TensorRef* ref = model.find(name);
  if (ref == nullptr) throw std::runtime_error("missing tensor " + name);
  std::vector<unsigned char> raw(ref->info->nbytes());
  ref->file->read(*ref->info, 0, raw.data(), raw.size());
  Values out{ref->info->dtype, ref->info->shape, {}};
  out.v.resize(static_cast<std::size_t>(ref->info->numel()));
  for (std::size_t i = 0; i < out.v.size(); ++i) {
    if (out.dtype == DType::BF16) {
      std::uint16_t h;
      std::memcpy(&h, raw.data() + 2 * i, 2);
      out.v[i] = bf16_to_f32(h);
    } else if (out.dtype == DType::F32) {
      std::memcpy(&out.v[i], raw.data() + 4 * i, 4);
    } else {
      throw std::runtime_error("unexpected dtype in " + name);
    }
  }
  return out;
}

float round_to(DType dtype, float x) {
  return dtype == DType::BF16 ? bf16_to_f32(f32_to_bf16(x)) : x;
}

// Position of x on the number line of `dtype`: adjacent values differ by one.
std::int64_t ordinal(DType dtype, float x) {
  const std::uint32_t bits = dtype == DType::BF16 ? f32_to_bf16(x) : f32_to_bits(x);
  const std::uint32_t sign = dtype == DType::BF16 ? 0x8000u : 0x80000000u;
  const auto magnitude = static_cast<std::int64_t>(bits & (sign - 1));
  return (bits & sign) != 0 ? -magnitude : magnitude;
}

std::int64_t ulp_distance(DType dtype, float a, float b) {
  if (std::isnan(a) || std::isnan(b))
    return std::isnan(a) && std::isnan(b) ? 0 : std::numeric_limits<std::int32_t>::max();
  return std::llabs(ordinal(dtype, a) - ordinal(dtype, b));
}

float ulp_of(DType dtype, float x) {
  const int exponent = std::ilogb(std::max(std::fabs(x), 1e-30f));
  return std::ldexp(1.0f, exponent - (dtype == DType::BF16 ? 7 : 23));
}

// Runs a shell command in `dir`, its output into `log`.
int run_in(const fs::path& dir, const std::string& args, const fs::path& log) {
  const std::string cmd = "cd '" + dir.string() + "' && " + args + " >'" + log.string() + "' 2>&1";
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::uint64_t fnv1a(std::string_view s, std::uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s)
    h = (h ^ c) * 1099511628211ull;
  return h;
}

// The folder holding models/<name> for every line of models.txt. Made once
// per (models.txt, llmerge binary) and shared by the test processes: built in
// a private folder, then renamed into place (a lost race just uses the winner's).
fs::path golden_models() {
  static const fs::path cached = [] {
    const std::string manifest = testing::read_text(k_golden_dir / "models.txt");
    const auto stamp = fs::last_write_time(LLMERGE_CLI_PATH).time_since_epoch().count();
    const std::uint64_t key = fnv1a(std::to_string(stamp), fnv1a(manifest));
    const char* tmp = std::getenv("LLMERGE_TEST_TMP");
    const fs::path root = tmp ? fs::path(tmp) : fs::temp_directory_path();
    const fs::path ready = root / ("golden-models-" + std::to_string(key));
    if (fs::exists(ready)) return ready;
    const fs::path building = root / ("golden-models-building-" + std::to_string(getpid()));
    fs::remove_all(building);
    fs::create_directories(building / "models");
    std::istringstream lines(manifest);
    for (std::string line; std::getline(lines, line);) {
      line = line.substr(0, line.find('#'));
      std::istringstream words(line);
      std::string name;
      if (!(words >> name)) continue;
      std::string rest;
      std::getline(words, rest);
      const std::string cmd =
          std::string(LLMERGE_CLI_PATH) + " synth models/" + name + " " + rest + " --force";
      if (run_in(building, cmd, building / "synth.log") != 0)
        throw std::runtime_error("synth failed: " + cmd + "\n" +
                                 testing::read_text(building / "synth.log"));
    }
    std::error_code ec;
    fs::rename(building, ready, ec);
    if (ec) fs::remove_all(building);  // another process won the race
    return ready;
  }();
  return cached;
}

std::vector<std::string> golden_cases() {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(k_golden_dir / "cases"))
    if (fs::exists(entry.path() / "config.yaml")) names.push_back(entry.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

// A top-level scalar of the config (`dtype`, `merge_method`), "" when unset.
std::string config_key(const std::string& yaml, const std::string& key) {
  const std::regex line("(?:^|\n)" + key + R"(:\s*([A-Za-z0-9_.]+))");
  std::smatch m;
  return std::regex_search(yaml, m, line) ? m[1].str() : "";
}

// Per-case tallies, written as the results file.
struct Tally {
  std::int64_t elements = 0;        // output elements
  std::int64_t compared = 0;        // compared with mergekit element by element
  std::int64_t identical = 0;       // bit-identical
  std::int64_t within_one = 0;      // ≤ 1 ulp
  std::int64_t max_ulp = 0;         // over the compared elements
  std::int64_t tie_excluded = 0;    // top_k: decisions tied at a threshold
  std::int64_t decision_flips = 0;  // arcee_fusion: elements taken from different models
  // |ours − theirs| in ulps of the output dtype at the element's largest
  // magnitude among inputs and outputs: rounding of the operands, which a
  // cancelling sum (a result near zero) would blow up in result ulps.
  double max_operand_ulp = 0;
  std::int64_t within_one_operand = 0;
  std::int64_t own_mask_max_ulp = 0;
  double own_mask_max_operand_ulp = 0;
  json random_stats = json::object();
  std::vector<std::string> notes;

  json worst;  // the element with the largest operand-ulp difference

  void add(DType dtype, float ours, float theirs, float operand_scale, const std::string& tensor,
           std::size_t index) {
    const std::int64_t d = ulp_distance(dtype, ours, theirs);
    const float scale = std::max({operand_scale, std::fabs(ours), std::fabs(theirs)});
    const double od = d == 0 ? 0.0 : std::fabs(double(ours) - theirs) / ulp_of(dtype, scale);
    if (od > max_operand_ulp)
      worst = {{"tensor", tensor}, {"index", index}, {"llmerge", ours}, {"mergekit", theirs}};
    max_operand_ulp = std::max(max_operand_ulp, od);
    within_one_operand += od <= 1.0 ? 1 : 0;
    ++compared;
    identical += f32_to_bits(ours) == f32_to_bits(theirs) ? 1 : 0;
    within_one += d <= 1 ? 1 : 0;
    max_ulp = std::max(max_ulp, d);
  }
};

// Inputs of one output tensor, from `llmerge plan --json`, cast to the
// compute dtype as both tools do first.
struct Inputs {
  std::vector<float> base;
  std::vector<std::vector<float>> models;
  json parameters;
};

Inputs read_inputs(const json& plan_tensor, const fs::path& cwd, DType compute) {
  Inputs in;
  auto load = [&](const json& ref) {
    const Model m = Model::open(cwd / ref.at("model").get<std::string>());
    std::vector<float> v = read_tensor(m, ref.at("tensor").get<std::string>()).v;
    for (float& x : v)
      x = round_to(compute, x);
    return v;
  };
  if (plan_tensor.contains("base") && !plan_tensor["base"].is_null())
    in.base = load(plan_tensor["base"]);
  for (const json& ref : plan_tensor.at("inputs"))
    in.models.push_back(load(ref));
  in.parameters = plan_tensor.at("parameters");
  return in;
}

// The largest input magnitude of element e.
float operand_scale(const Inputs& in, std::size_t e) {
  float s = in.base.empty() ? 0.0f : std::fabs(in.base[e]);
  for (const auto& m : in.models)
    s = std::max(s, std::fabs(m[e]));
  return s;
}

// A plan parameter as a number; booleans (rescale, normalize) are true/false in the plan.
double number(const json& v) {
  return v.is_boolean() ? (v.get<bool>() ? 1.0 : 0.0) : v.get<double>();
}

double model_param(const Inputs& in, std::size_t i, const char* key, double fallback) {
  const json& pm = in.parameters.at("per_model").at(i);
  return pm.contains(key) ? number(pm[key]) : fallback;
}

double global_param(const Inputs& in, const char* key, double fallback) {
  const json& g = in.parameters.at("global");
  return g.contains(key) ? number(g[key]) : fallback;
}

// Marks the elements whose top-k keep/drop decision is ambiguous for some
// model: |δ| equal to the k-th largest when more than k elements reach it (mergekit's k = max(1,
// ⌊density·n⌋)), or ranked differently once δ is rounded to bf16 (mergekit's bf16 compute), or
// whose sign election sum Σ w_i·δ_i is within a few roundings of zero.
std::vector<bool> top_k_ambiguous(const Inputs& in, bool bf16_compute) {
  const std::size_t n = in.base.size();
  std::vector<bool> ambiguous(n, false);
  std::vector<double> elected(n, 0.0), magnitude(n, 0.0);  // Σ D_i and Σ |D_i| over kept δ
  for (std::size_t i = 0; i < in.models.size(); ++i) {
    const double density = model_param(in, i, "density", 1.0);
    if (density >= 1.0 || n == 0) continue;
    const auto k = std::max<std::size_t>(1, static_cast<std::size_t>(density * double(n)));
    std::vector<float> mag32(n), mag16(n);
    for (std::size_t e = 0; e < n; ++e) {
      const float d = in.models[i][e] - in.base[e];
      mag32[e] = std::fabs(d);
      mag16[e] = std::fabs(round_to(DType::BF16, d));
    }
    // Threshold T = the k-th largest, and whether elements equal to T straddle the cut.
    auto cut = [&](const std::vector<float>& mag) {
      std::vector<float> m = mag;
      std::nth_element(m.begin(), m.begin() + long(k - 1), m.end(), std::greater<>());
      const float t = m[k - 1];
      std::size_t above_or_at = 0;
      for (float x : mag)
        above_or_at += x >= t ? 1 : 0;
      return std::pair{t, above_or_at > k};
    };
    const auto [t32, tied32] = cut(mag32);
    const auto [t16, tied16] = cut(mag16);
    for (std::size_t e = 0; e < n; ++e) {
      bool a = tied32 && mag32[e] == t32;
      if (bf16_compute)
        a = a || (tied16 && mag16[e] == t16) || (mag32[e] >= t32) != (mag16[e] >= t16);
      if (a) ambiguous[e] = true;
      if (mag32[e] >= t32) {
        const double d = model_param(in, i, "weight", 0.0) * (in.models[i][e] - in.base[e]);
        elected[e] += d;
        magnitude[e] += std::fabs(d);
      }
    }
  }
  // A sign election whose sum is within rounding of zero can go either way.
  const double epsilon = bf16_compute ? 4.0 * 0x1p-8 : 4.0 * 0x1p-24;
  for (std::size_t e = 0; e < n; ++e)
    if (magnitude[e] > 0 && std::fabs(elected[e]) <= epsilon * magnitude[e]) ambiguous[e] = true;
  return ambiguous;
}

// DARE with llmerge's own Philox mask (seed 0, the CLI default), recomputed
// in f64 from mergekit's formula: mask, L1 rescale, weight, sign election
// (dare_ties), normalize, lambda, add the base.
std::vector<double> dare_reference(const Inputs& in, const std::string& name, bool ties) {
  const std::size_t n = in.base.size(), m = in.models.size();
  const bool rescale = global_param(in, "rescale", 1.0) != 0.0;
  const bool normalize = global_param(in, "normalize", 0.0) != 0.0;
  const double lambda = global_param(in, "lambda", 1.0);
  std::vector<std::vector<double>> d(m, std::vector<double>(n));
  std::vector<double> w(m);
  for (std::size_t i = 0; i < m; ++i) {
    w[i] = model_param(in, i, "weight", 0.0);
    const double density = model_param(in, i, "density", 1.0);
    const ElementRandom random(0, hash_tensor_name(name), static_cast<std::uint32_t>(i));
    double full = 0, kept = 0;
    for (std::size_t e = 0; e < n; ++e) {
      const double delta = static_cast<float>(in.models[i][e] - in.base[e]);
      const bool keep = density >= 1.0 || random.uniform(e) < density;
      d[i][e] = keep ? delta : 0.0;
      full += std::fabs(delta);
      kept += std::fabs(d[i][e]);
    }
    const double factor =
        rescale && density < 1.0 && full >= 1e-7 && kept >= 1e-7 ? full / kept : 1;
    for (double& x : d[i])
      x *= factor * w[i];
  }
  std::vector<double> out(n);
  for (std::size_t e = 0; e < n; ++e) {
    double sum = 0;
    for (std::size_t i = 0; i < m; ++i)
      sum += d[i][e];
    const double majority = sum >= 0 ? 1.0 : -1.0;
    double mixed = 0, divisor = 0;
    for (std::size_t i = 0; i < m; ++i) {
      const double sign = d[i][e] > 0 ? 1.0 : d[i][e] < 0 ? -1.0 : 0.0;
      if (!ties || sign == majority) {
        mixed += d[i][e];
        divisor += w[i];
      }
    }
    if (normalize) mixed /= std::fabs(divisor) < 1e-8 ? 1.0 : divisor;
    out[e] = in.base[e] + mixed * lambda;
  }
  return out;
}

// One-model DARE statistics of an output (llmerge's or mergekit's): which
// elements were kept, at which common factor, and the L1 norm.
struct DareStats {
  std::int64_t eligible = 0, kept = 0, off_factor = 0;
  double factor = 0, l1_out = 0, l1_expected = 0, l1_tolerance = 0;
};

DareStats dare_stats(const Inputs& in, const Values& out, DType compute, double weight) {
  DareStats s;
  std::vector<double> ratios;
  const std::size_t n = in.base.size();
  // Eligible: a kept element cannot round back to the base (kept values are
  // never scaled down: factor >= 1).
  auto eligible = [&](std::size_t e, double delta) {
    return std::fabs(weight * delta) > 4.0 * ulp_of(compute, in.base[e]) &&
           std::fabs(weight * delta) > 4.0 * ulp_of(out.dtype, in.base[e]);
  };
  for (std::size_t e = 0; e < n; ++e) {
    const double delta = in.models[0][e] - in.base[e];
    const double moved = double(out.v[e]) - in.base[e];
    s.l1_out += std::fabs(moved);
    s.l1_expected += std::fabs(weight * delta);
    s.l1_tolerance += 2.0 * ulp_of(out.dtype, out.v[e]) + 2.0 * ulp_of(compute, out.v[e]);
    if (!eligible(e, delta)) continue;
    ++s.eligible;
    if (moved != 0) {
      ++s.kept;
      ratios.push_back(moved / (weight * delta));
    }
  }
  if (ratios.empty()) return s;
  std::vector<double> sorted = ratios;
  std::nth_element(sorted.begin(), sorted.begin() + long(sorted.size() / 2), sorted.end());
  s.factor = sorted[sorted.size() / 2];
  for (std::size_t e = 0; e < n; ++e) {
    const double delta = in.models[0][e] - in.base[e];
    if (!eligible(e, delta) || double(out.v[e]) == in.base[e]) continue;
    const double expected = in.base[e] + s.factor * weight * delta;
    // Rounding happens at the scale of the largest of base, scaled δ and result.
    const auto scale =
        static_cast<float>(std::max({std::fabs(double(out.v[e])), std::fabs(double(in.base[e])),
                                     std::fabs(s.factor * weight * delta)}));
    const double tolerance = 2.0 * ulp_of(out.dtype, scale) + 4.0 * ulp_of(compute, scale);
    if (std::fabs(out.v[e] - expected) > tolerance) ++s.off_factor;
  }
  return s;
}

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, MatchesMergekit) {
  const std::string name = GetParam();
  const fs::path case_dir = k_golden_dir / "cases" / name;
  const fs::path cwd = golden_models();
  testing::TempDir tmp;
  const std::string yaml = testing::read_text(case_dir / "config.yaml");
  const fs::path config = case_dir / "config.yaml";
  const std::string cli = LLMERGE_CLI_PATH;
  const int rc = run_in(cwd,
                        cli + " run '" + config.string() + "' -o '" + (tmp / "out").string() +
                            "' --quiet --no-copy-tokenizer",
                        tmp / "run.log");

  json result = {{"case", name}};
  const fs::path results_dir = std::getenv("LLMERGE_GOLDEN_RESULTS")
                                   ? fs::path(std::getenv("LLMERGE_GOLDEN_RESULTS"))
                                   : fs::current_path() / "golden-results";
  auto write_result = [&] {
    fs::create_directories(results_dir);
    std::ofstream(results_dir / (name + ".json")) << result.dump(1) << "\n";
  };

  if (fs::exists(case_dir / "rejected.txt")) {
    const bool documented = fs::exists(case_dir / "difference.md");
    result["status"] = rc != 0 ? "both reject" : "documented difference";
    result["mergekit"] = testing::read_text(case_dir / "rejected.txt");
    result["method"] = config_key(yaml, "merge_method");
    write_result();
    if (!documented) {
      EXPECT_NE(rc, 0) << name << ": mergekit refuses this config ("
                       << testing::read_text(case_dir / "rejected.txt")
                       << "), llmerge accepts it and no difference.md says why";
    }
    return;
  }
  ASSERT_EQ(rc, 0) << testing::read_text(tmp / "run.log");
  ASSERT_TRUE(fs::exists(case_dir / "expected.safetensors")) << "run tools/golden/generate.py";

  ASSERT_EQ(run_in(cwd, cli + " plan '" + config.string() + "' --json", tmp / "plan.json"), 0);
  const json plan = json::parse(testing::read_text(tmp / "plan.json"));
  const std::string method = plan.at("merge_method");
  const Check check = check_for(method);
  const std::string dtype_name = config_key(yaml, "dtype");
  const DType compute = dtype_name == "bfloat16" ? DType::BF16 : DType::F32;
  ASSERT_TRUE(dtype_name == "bfloat16" || dtype_name == "float32")
      << name << ": golden configs set dtype to float32 or bfloat16";

  const Model ours = Model::open(tmp / "out");
  const Model theirs = Model::open(case_dir / "expected.safetensors");
  std::set<std::string> our_names, their_names;
  for (const std::string& n : ours.tensor_names())
    our_names.insert(n);
  for (const std::string& n : theirs.tensor_names())
    their_names.insert(n);
  ASSERT_EQ(our_names, their_names) << name << ": output tensor names differ";

  std::map<std::string, const json*> plan_tensors;
  for (const json& t : plan.at("tensors"))
    plan_tensors[t.at("name")] = &t;

  Tally tally;
  DareStats ours_total, theirs_total;
  double density_expected = 0;
  for (const std::string& tensor : our_names) {
    SCOPED_TRACE(name + ": " + tensor);
    const Values a = read_tensor(ours, tensor);
    const Values b = read_tensor(theirs, tensor);
    ASSERT_EQ(a.dtype, b.dtype);
    ASSERT_EQ(a.shape, b.shape);
    tally.elements += static_cast<std::int64_t>(a.v.size());
    ASSERT_TRUE(plan_tensors.contains(tensor));
    const Inputs in = read_inputs(*plan_tensors[tensor], cwd, compute);
    if (check == Check::exact) {
      const bool elementwise = in.models.at(0).size() == a.v.size();
      for (std::size_t e = 0; e < a.v.size(); ++e) {
        const float scale = elementwise ? operand_scale(in, e) : 0.0f;
        if (method == "arcee_fusion" &&
            std::fabs(double(a.v[e]) - b.v[e]) >
                k_f32_max_operand_ulp *
                    ulp_of(a.dtype, std::max({scale, std::fabs(a.v[e]), std::fabs(b.v[e])}))) {
          ++tally.decision_flips;
          continue;
        }
        tally.add(a.dtype, a.v[e], b.v[e], scale, tensor, e);
      }
      continue;
    }
    ASSERT_EQ(in.base.size(), a.v.size()) << "golden top_k/random cases merge whole tensors";
    if (check == Check::top_k) {
      const std::vector<bool> ambiguous = top_k_ambiguous(in, compute == DType::BF16);
      for (std::size_t e = 0; e < a.v.size(); ++e) {
        if (ambiguous[e]) {
          ++tally.tie_excluded;
        } else {
          tally.add(a.dtype, a.v[e], b.v[e], operand_scale(in, e), tensor, e);
        }
      }
      continue;
    }
    // random
    const std::vector<double> reference = dare_reference(in, tensor, method == "dare_ties");
    Tally own;
    for (std::size_t e = 0; e < a.v.size(); ++e)
      own.add(a.dtype, a.v[e], round_to(a.dtype, static_cast<float>(reference[e])),
              operand_scale(in, e), tensor, e);
    tally.own_mask_max_ulp = std::max(tally.own_mask_max_ulp, own.max_ulp);
    tally.own_mask_max_operand_ulp = std::max(tally.own_mask_max_operand_ulp, own.max_operand_ulp);
    if (in.models.size() == 1 && global_param(in, "lambda", 1.0) == 1.0 &&
        global_param(in, "normalize", 0.0) == 0.0) {
      const double weight = model_param(in, 0, "weight", 0.0);
      const double density = model_param(in, 0, "density", 1.0);
      for (const auto& [stats, total, who] :
           {std::tuple{dare_stats(in, a, compute, weight), &ours_total, "llmerge"},
            std::tuple{dare_stats(in, b, compute, weight), &theirs_total, "mergekit"}}) {
        EXPECT_EQ(stats.off_factor, 0)
            << who << ": kept elements not at one rescale factor " << stats.factor;
        if (global_param(in, "rescale", 1.0) != 0.0 && stats.l1_expected > 1e-7) {
          EXPECT_NEAR(stats.l1_out, stats.l1_expected, stats.l1_tolerance) << who << ": L1 norm";
        }
        total->eligible += stats.eligible;
        total->kept += stats.kept;
        total->off_factor += stats.off_factor;
      }
      density_expected = density;  // golden one-model random cases use one density
    }
  }

  result["method"] = method;
  result["check"] = check_name(check);
  result["dtype"] = dtype_name;
  result["status"] = "compared";
  result["elements"] = tally.elements;
  result["compared"] = tally.compared;
  result["identical"] = tally.identical;
  result["within_1_ulp"] = tally.within_one;
  result["max_ulp"] = tally.max_ulp;
  result["tie_excluded"] = tally.tie_excluded;
  result["decision_flips"] = tally.decision_flips;
  result["max_operand_ulp"] = tally.max_operand_ulp;
  result["within_1_operand_ulp"] = tally.within_one_operand;
  if (!tally.worst.is_null()) result["worst"] = tally.worst;
  if (check == Check::random) {
    result["own_mask_max_ulp"] = tally.own_mask_max_ulp;
    result["own_mask_max_operand_ulp"] = tally.own_mask_max_operand_ulp;
    EXPECT_LE(tally.own_mask_max_operand_ulp, k_own_mask_max_operand_ulp)
        << name << ": llmerge differs from the f64 recomputation on its own mask";
    for (const auto& [total, who] :
         {std::pair{&ours_total, "llmerge"}, std::pair{&theirs_total, "mergekit"}}) {
      if (total->eligible == 0) continue;
      const double n = double(total->eligible), p = density_expected;
      const double fraction = double(total->kept) / n;
      const double sigma = std::sqrt(p * (1 - p) / n);
      result["kept_fraction"][who] = fraction;
      result["kept_sigma"][who] = (fraction - p) / sigma;
      EXPECT_LE(std::fabs(fraction - p), 4 * sigma)
          << who << ": kept " << fraction << " of " << n << " elements, density " << p;
    }
    write_result();
    return;
  }
  write_result();
  ASSERT_GT(tally.compared, 0);
  const double share = double(tally.within_one_operand) / double(tally.compared);
  EXPECT_LE(double(tally.decision_flips), k_decision_flips_max_share * double(tally.elements))
      << name << ": elements where llmerge and mergekit take different models' values";
  if (compute == DType::F32) {
    EXPECT_GE(share, spherical(method) ? k_f32_spherical_within_one_operand_ulp_min
                                       : k_f32_within_one_operand_ulp_min)
        << name;
    EXPECT_LE(tally.max_operand_ulp, k_f32_max_operand_ulp) << name << ": " << tally.worst.dump();
  } else {
    EXPECT_LE(tally.max_operand_ulp,
              spherical(method) ? k_bf16_spherical_max_operand_ulp : k_bf16_max_operand_ulp)
        << name << ": " << tally.worst.dump();
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, Golden, ::testing::ValuesIn(golden_cases()),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           return param.param;
                         });

}  // namespace
}  // namespace llmerge
