// llmerge compare (include/llmerge/compare.h, docs/compare.md): the measures on
// constructed cases whose answers are known, the layer alignment on models with
// duplicated and dropped layers, determinism, the recommendation's rules, the
// report's views, hostile names, and bounded memory.
#include <cmath>
#include <filesystem>
#include <memory>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "analysis/alignment.h"
#include "analysis/module_kind.h"
#include "llmerge/llmerge.h"
#include "llmerge/synth.h"
#include "test_util.h"

namespace llmerge {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;
using Json = nlohmann::json;

SynthSpec small(std::uint64_t seed, int layers = 4) {
  SynthSpec s;
  s.family = "llama";
  s.layers = layers;
  s.hidden = 64;
  s.intermediate = 128;
  s.vocab = 128;
  s.dtype = "bf16";
  s.seed = seed;
  s.threads = 1;
  return s;
}

SynthSpec fine_tune(const fs::path& of, std::uint64_t seed, double scale = 0.05) {
  SynthSpec s;
  s.like = of.string();
  s.delta_scale = scale;
  s.seed = seed;
  s.threads = 1;
  return s;
}

class Compare : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::make_unique<TempDir>();
    synth(p("a"), small(1));
    synth(p("a_copy"), small(1));
    synth(p("base"), small(7));
    synth(p("ft1"), fine_tune(*dir_ / "base", 11));
    synth(p("ft2"), fine_tune(*dir_ / "base", 12));
  }
  static void TearDownTestSuite() { dir_.reset(); }
  static std::string p(const std::string& name) { return (*dir_ / name).string(); }

  static Json run(const std::vector<std::string>& models, CompareOptions o = {}) {
    o.threads = o.threads ? o.threads : 2;
    return Json::parse(compare(models, o).json());
  }

  static std::unique_ptr<TempDir> dir_;
};
std::unique_ptr<TempDir> Compare::dir_;

void expect_all(const Json& doc, const std::string& field, double want, double tol) {
  for (const auto& p : doc["pairs"])
    EXPECT_NEAR(p[field].get<double>(), want, tol) << field << " (whole model)";
  for (const auto& l : doc["layers"])
    for (const auto& p : l["pairs"])
      EXPECT_NEAR(p[field].get<double>(), want, tol) << field << " layer " << l["layer"];
  for (const auto& k : doc["modules"])
    for (const auto& p : k["pairs"])
      EXPECT_NEAR(p[field].get<double>(), want, tol) << field << " " << k["kind"];
  for (const auto& t : doc["tensors"])
    for (const auto& p : t["pairs"])
      EXPECT_NEAR(p[field].get<double>(), want, tol) << field << " " << t["name"];
}

TEST_F(Compare, IdenticalModelsHaveCosineOneEverywhere) {
  CompareOptions o;
  o.per_tensor = true;
  const Json doc = run({p("a"), p("a_copy")}, o);
  EXPECT_EQ(doc["schema"], "llmerge.compare");
  EXPECT_EQ(doc["version"], 1);
  ASSERT_EQ(doc["layers"].size(), 4u);
  ASSERT_FALSE(doc["tensors"].empty());
  expect_all(doc, "cosine", 1.0, 1e-12);
  expect_all(doc, "relative_l2", 0.0, 0.0);
  EXPECT_TRUE(doc["pairs"][0]["task_cosine"].is_null());  // no base
  EXPECT_EQ(doc["skipped"]["count"], 0);
  // Every module kind of a llama shows up.
  std::set<std::string> kinds;
  for (const auto& k : doc["modules"])
    kinds.insert(k["kind"].get<std::string>());
  EXPECT_EQ(kinds, (std::set<std::string>{"embedding", "attention", "mlp", "norm"}));
  EXPECT_EQ(doc["recommendation"]["method"], "linear");
  // The alignment of equal models is the identity.
  EXPECT_EQ(doc["alignment"][0]["map"], Json({0, 1, 2, 3}));
  EXPECT_EQ(doc["alignment"][0]["slices_config"], "");
}

TEST_F(Compare, IdenticalTaskVectorsAgreeCompletely) {
  CompareOptions o;
  o.base = p("base");
  o.per_tensor = true;
  const Json doc = run({p("ft1"), p("ft1")}, o);
  expect_all(doc, "task_cosine", 1.0, 1e-12);
  expect_all(doc, "sign_agreement", 1.0, 0.0);
  expect_all(doc, "sign_conflict", 0.0, 0.0);
  expect_all(doc, "top_k_overlap", 1.0, 0.0);
  EXPECT_EQ(doc["recommendation"]["method"], "linear") << doc["recommendation"].dump();
}

TEST_F(Compare, UnrelatedModelsAreNearlyOrthogonalExceptTheirNorms) {
  const Json doc = run({p("a"), p("base")});
  // Independent random matrices: cosine ~ N(0, 1/sqrt(n)). Norm weights are
  // about 1 in every synth model: the module summary shows what the whole-model
  // figure mixes.
  for (const auto& k : doc["modules"]) {
    const double cos = k["pairs"][0]["cosine"].get<double>();
    if (k["kind"] == "norm") {
      EXPECT_GT(cos, 0.99);  // synth's norm weights are 1 plus a little noise
    } else {
      EXPECT_LT(std::abs(cos), 0.05) << k["kind"];
      EXPECT_NEAR(k["pairs"][0]["relative_l2"].get<double>(), std::sqrt(2.0), 0.1) << k["kind"];
    }
  }
  EXPECT_EQ(doc["recommendation"]["method"], "slerp");
}

TEST_F(Compare, IndependentFineTunesConflictAtHalfTheKeptSigns) {
  CompareOptions o;
  o.base = p("base");
  o.density = 0.2;
  const Json doc = run({p("ft1"), p("ft2")}, o);
  const Json& pair = doc["pairs"][0];
  // Independent random deltas: signs agree half the time, and at density d
  // two independent top-k sets overlap in a fraction d of the elements.
  EXPECT_NEAR(pair["sign_agreement"].get<double>(), 0.5, 0.05);
  EXPECT_NEAR(pair["sign_conflict"].get<double>(), 0.5, 0.05);
  EXPECT_NEAR(pair["top_k_overlap"].get<double>(), 0.2, 0.05);
  EXPECT_NEAR(pair["task_cosine"].get<double>(), 0.0, 0.1);
  EXPECT_GT(pair["cosine"].get<double>(), 0.99);  // the base dominates the weights
  const Json& rec = doc["recommendation"];
  EXPECT_EQ(rec["method"], "ties");
  EXPECT_EQ(rec["parameters"]["density"], 0.2);
  ASSERT_EQ(rec["reasons"].size(), 1u);
  EXPECT_NE(rec["reasons"][0].get<std::string>().find("mean sign conflict 0.4"), std::string::npos)
      << rec["reasons"][0];
  // The recommended config plans.
  PlanOptions po;
  EXPECT_NO_THROW(plan(Config::parse(rec["config"].get<std::string>()), po))
      << rec["config"].get<std::string>();
}

TEST_F(Compare, ResultsDoNotDependOnThreadsOrChunkSize) {
  CompareOptions one, many;
  one.base = many.base = p("base");
  one.per_tensor = many.per_tensor = true;
  one.threads = 1;
  many.threads = 4;
  many.chunk_elements = 3 * 65536;
  const std::string a = compare({p("ft1"), p("ft2"), p("a")}, one).json();
  const std::string b = compare({p("ft1"), p("ft2"), p("a")}, many).json();
  EXPECT_EQ(a, b);
}

// Passthrough slices make models whose layers are known copies of a's.
std::string restack(const std::string& out, const std::string& model,
                    const std::vector<std::pair<int, int>>& ranges) {
  std::string yaml = "merge_method: passthrough\nslices:\n";
  for (auto [from, to] : ranges) {
    yaml += "  - sources:\n      - model: " + model + "\n        layer_range: [" +
            std::to_string(from) + ", " + std::to_string(to) + "]\n";
  }
  yaml += "dtype: bfloat16\n";
  MergeOptions mo;
  mo.run.threads = 1;
  merge(Config::parse(yaml), out, mo);
  return out;
}

TEST_F(Compare, AlignmentRecoversDuplicatedAndDroppedLayers) {
  TempDir tmp;
  synth((tmp / "six").string(), small(3, 6));
  const std::string six = (tmp / "six").string();
  // Layer 2 twice, then 3..5: seven layers.
  const std::string dup = restack((tmp / "dup").string(), six, {{0, 3}, {2, 6}});
  // Layers 2 and 4 dropped: four layers.
  const std::string drop = restack((tmp / "drop").string(), six, {{0, 2}, {3, 4}, {5, 6}});
  const Json doc = run({six, dup, drop});
  ASSERT_EQ(doc["alignment"].size(), 2u);
  EXPECT_EQ(doc["alignment"][0]["map"], Json({0, 1, 2, 2, 3, 4, 5}));
  EXPECT_EQ(doc["alignment"][1]["map"], Json({0, 1, 3, 5}));
  EXPECT_GT(doc["alignment"][0]["mean_similarity"].get<double>(), 0.999);
  // Off the path the layers are unrelated: the sketch's noise is about 0.016.
  const Json& sim = doc["alignment"][1]["similarity"];
  EXPECT_LT(std::abs(sim[0][1].get<double>()), 0.1);
  EXPECT_NEAR(sim[2][3].get<double>(), 1.0, 1e-9);

  // Depths differ: the recommendation is the alignment's slices, and they run.
  const Json pair = run({six, drop});
  EXPECT_EQ(pair["recommendation"]["method"], "linear");
  const std::string config = pair["recommendation"]["config"].get<std::string>();
  EXPECT_EQ(config, pair["alignment"][0]["slices_config"].get<std::string>());
  EXPECT_NE(config.find("slices:"), std::string::npos) << config;
  const Plan merged = plan(Config::parse(config));
  EXPECT_EQ(merged.output_layers(), 4);
  // Merging six's layers with the very copies they came from gives them back:
  // the mapped layers are equal, so the merge equals the dropped model.
  const std::string out = (tmp / "aligned").string();
  RunOptions ro;
  ro.threads = 1;
  llmerge::run(merged, out, ro);
  const Json back = run({out, drop});
  EXPECT_NEAR(back["pairs"][0]["cosine"].get<double>(), 1.0, 1e-6);
}

TEST(CompareAlignment, DynamicProgrammeIsMonotoneAndPrefersTheDiagonalOnTies) {
  // Three model layers, three reference layers, all equal similarity: the
  // lowest reference layer wins each tie, and the map never goes back.
  std::vector<std::vector<double>> same(3, std::vector<double>(4, 1.0));
  const LayerAlignment a = align_layers(same, same);
  EXPECT_EQ(a.map, (std::vector<std::int64_t>{0, 0, 0}));
  // A reversed model cannot be followed backwards: monotone means one
  // reference layer at most is matched well.
  std::vector<std::vector<double>> ref, rev;
  for (int i = 0; i < 3; ++i) {
    std::vector<double> v(4, 0.0);
    v[static_cast<std::size_t>(i)] = 1;
    ref.push_back(v);
  }
  rev = {ref[2], ref[1], ref[0]};
  const LayerAlignment b = align_layers(rev, ref);
  for (std::size_t j = 1; j < b.map.size(); ++j)
    EXPECT_GE(b.map[j], b.map[j - 1]);
  EXPECT_NEAR(b.mean_similarity, 1.0 / 3.0, 1e-12);
}

TEST(CompareModuleKind, NamesOfCommonArchitectures) {
  EXPECT_EQ(module_kind("model.layers.3.self_attn.q_proj.weight"), ModuleKind::attention);
  EXPECT_EQ(module_kind("model.layers.3.self_attn.q_norm.weight"), ModuleKind::norm);
  EXPECT_EQ(module_kind("model.layers.3.post_attention_layernorm.weight"), ModuleKind::norm);
  EXPECT_EQ(module_kind("model.layers.3.mlp.down_proj.weight"), ModuleKind::mlp);
  EXPECT_EQ(module_kind("transformer.h.0.attn.c_attn.weight"), ModuleKind::attention);
  EXPECT_EQ(module_kind("transformer.h.0.ln_1.weight"), ModuleKind::norm);
  EXPECT_EQ(module_kind("model.embed_tokens.weight"), ModuleKind::embedding);
  EXPECT_EQ(module_kind("lm_head.weight"), ModuleKind::embedding);
  EXPECT_EQ(module_kind("model.layers.0.block_sparse_moe.gate.weight"), ModuleKind::other);
}

TEST_F(Compare, RefusesBadInputsWithTheReason) {
  auto kind_of = [](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(error_kind_name(e.kind())) + ": " + e.what();
    }
    return std::string("no error");
  };
  EXPECT_NE(kind_of([&] { compare({p("a")}); }).find("config: compare needs at least two"),
            std::string::npos);
  CompareOptions zero;
  zero.density = 0;
  EXPECT_NE(kind_of([&] {
              compare({p("a"), p("base")}, zero);
            }).find("config: --density"),
            std::string::npos);
  EXPECT_NE(kind_of([&] { compare({p("a"), p("missing")}); }).find("io"), std::string::npos);
  // A model of another family shares no tensor name.
  TempDir tmp;
  SynthSpec gpt2 = small(1);
  gpt2.family = "gpt2";
  synth((tmp / "gpt2").string(), gpt2);
  EXPECT_NE(kind_of([&] {
              compare({p("a"), (tmp / "gpt2").string()});
            }).find("shape: the models share no tensor"),
            std::string::npos);
}

TEST_F(Compare, DifferentVocabulariesSkipTheEmbeddingsAndSayWhy) {
  TempDir tmp;
  SynthSpec wide = small(1);
  wide.vocab = 256;
  synth((tmp / "wide").string(), wide);
  const Json doc = run({p("a"), (tmp / "wide").string()});
  EXPECT_GE(doc["skipped"]["count"].get<int>(), 1);
  const std::string reason = doc["skipped"]["first"][0]["reason"].get<std::string>();
  EXPECT_NE(reason.find("shape [128, 64] in model 0, [256, 64] in model 1"), std::string::npos)
      << reason;
  // Everything else is the same weights (same seed): cosine 1 per layer.
  for (const auto& l : doc["layers"])
    EXPECT_NEAR(l["pairs"][0]["cosine"].get<double>(), 1.0, 1e-12);
}

// docs/RELIABILITY.md row 80: a model name is text the report shows, so it is
// escaped: the page runs no script and loads nothing whatever the name is.
TEST_F(Compare, ReportIsSelfContainedAndEscapesNames) {
  TempDir tmp;
  const fs::path hostile = tmp / "<script>alert(1)<'x'>";
  fs::copy(*dir_ / "a", hostile, fs::copy_options::recursive);
  CompareOptions o;
  o.base = p("base");
  const CompareResult r = compare({hostile.string(), p("ft1")}, o);
  const std::string html = r.html();
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;&#39;x&#39;&gt;"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
  EXPECT_EQ(html.find("href="), std::string::npos);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("Content-Security-Policy"), std::string::npos);
  // The JSON keeps the name as it is, and the HTML can be made from it alone.
  EXPECT_EQ(compare_report_html(r.json()), html);
  EXPECT_THROW(compare_report_html("{\"schema\": 1}"), Error);
  // The YAML quotes it, so the config parses and names the same folder.
  const std::string text = r.describe();
  EXPECT_NE(text.find("recommended: "), std::string::npos);
}

// docs/RELIABILITY.md row 81: memory is bounded by the chunk buffers, not the
// model: peak RSS of the CLI on a model 40x larger stays within a few MiB.
TEST(CompareMemory, PeakRssDoesNotGrowWithTheModel) {
  if (!fs::exists("/usr/bin/time")) GTEST_SKIP() << "needs /usr/bin/time (scripts/install-deps.sh)";
  if (testing::k_sanitizer_slowdown > 1) GTEST_SKIP() << "sanitizers change the memory use";
  TempDir tmp;
  auto make = [&](const std::string& tag, int hidden, int inter, int vocab) {
    SynthSpec s = small(5, 4);
    s.hidden = hidden;
    s.intermediate = inter;
    s.vocab = vocab;
    s.heads = hidden / 64;
    s.kv_heads = hidden / 64;
    synth((tmp / (tag + "_base")).string(), s);
    synth((tmp / (tag + "_a")).string(), fine_tune(tmp / (tag + "_base"), 1));
    synth((tmp / (tag + "_b")).string(), fine_tune(tmp / (tag + "_base"), 2));
  };
  make("small", 64, 128, 128);      // 0.2 M parameters
  make("large", 1024, 2816, 4096);  // 43 M parameters, 86 MB per model
  auto peak = [&](const std::string& tag) {
    const fs::path rss = tmp / (tag + ".rss");
    const std::string cmd = "/usr/bin/time -f %M -o " + rss.string() + " " + LLMERGE_CLI_PATH +
                            " compare " + (tmp / (tag + "_a")).string() + " " +
                            (tmp / (tag + "_b")).string() + " --base " +
                            (tmp / (tag + "_base")).string() + " -j 2 --quiet >/dev/null";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    return std::stoull(testing::read_text(rss)) * 1024;  // KiB
  };
  const std::uint64_t small_peak = peak("small");
  const std::uint64_t large_peak = peak("large");
  EXPECT_LT(large_peak, small_peak + (16u << 20))
      << "small " << small_peak << " bytes, large " << large_peak << " bytes";
}

}  // namespace
}  // namespace llmerge
