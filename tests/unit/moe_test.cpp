// `llmerge moe` (docs/moe.md): mergekit-moe's schema, the plan's checks with
// their YAML locations, the three output layouts, random gates that are
// byte-identical for a seed, expert weights equal to their sources, gate files
// for the prompt modes, and MLX-quantized experts.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "config/moe_config.h"
#include "core/error.h"
#include "exec/sources.h"
#include "io/model.h"
#include "llmerge/moe.h"
#include "llmerge/synth.h"
#include "test_util.h"

namespace llmerge {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

// All bytes of one tensor as stored.
std::string tensor_bytes(const Model& m, const std::string& name) {
  const TensorRef* ref = m.find(name);
  if (!ref) return "<missing " + name + ">";
  std::string out(ref->info->nbytes(), '\0');
  ref->file->read(*ref->info, 0, out.data(), out.size());
  return out;
}

std::vector<std::string> problem_messages(const Error& e) {
  std::vector<std::string> out;
  for (const auto& p : e.problems())
    out.push_back(p.to_string());
  return out;
}

class Moe : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    SynthSpec base;
    base.layers = 2;
    base.hidden = 64;
    base.intermediate = 128;
    base.vocab = 128;
    synth((*dir_ / "base").string(), base);
    SynthSpec like;
    like.like = (*dir_ / "base").string();
    like.delta_scale = 0.5;
    for (int i = 1; i <= 3; ++i) {
      like.seed = static_cast<std::uint64_t>(i);
      synth((*dir_ / ("e" + std::to_string(i))).string(), like);
    }
    SynthSpec q3 = base;
    q3.family = "qwen3";
    synth((*dir_ / "q3base").string(), q3);
    like.like = (*dir_ / "q3base").string();
    synth((*dir_ / "q3a").string(), like);
    SynthSpec wide = base;
    wide.intermediate = 96;
    synth((*dir_ / "narrow").string(), wide);
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::string path(const std::string& name) { return (*dir_ / name).string(); }

  static std::string config(const std::string& body, const std::string& experts) {
    return "base_model: " + path("base") + "\n" + body + "experts:\n" + experts;
  }
  static std::string expert(const std::string& model, const std::string& extra = "") {
    return "  - source_model: " + path(model) + "\n" + extra;
  }

  static Plan plan_of(const std::string& yaml, PlanOptions options = {}) {
    return plan_moe(MoeConfig::parse(yaml, "moe.yaml"), options);
  }

  static Error plan_error(const std::string& yaml, PlanOptions options = {}) {
    try {
      plan_of(yaml, options);
    } catch (const Error& e) {
      return e;
    }
    ADD_FAILURE() << "the plan was accepted";
    return Error(ErrorKind::internal, "none");
  }

  static fs::path run_to(const Plan& p, const std::string& name, std::uint64_t seed = 7,
                         int threads = 2) {
    RunOptions r;
    r.random_seed = seed;
    r.threads = threads;
    r.force = true;
    const fs::path out = *dir_ / name;
    run(p, out.string(), r);
    return out;
  }

  static inline TempDir* dir_ = nullptr;
};

const std::string k_random = "gate_mode: random\n";

TEST_F(Moe, ParserReadsEveryMergekitKeyWithLocations) {
  const MoeMergeConfig c = parse_moe_config(
      "base_model: b\ngate_mode: cheap_embed\ndtype: float16\nexperts_per_token: 1\n"
      "architecture: qwen\nexperts:\n  - source_model: x\n    positive_prompts: [\"code\"]\n"
      "    negative_prompts:\n      - \"poetry\"\n    noise_scale: 0.1\n    residual_scale: 0.5\n"
      "shared_experts:\n  - source_model: b\n    positive_prompts: [\"all\"]\n",
      "m.yaml");
  EXPECT_EQ(c.base_model, "b");
  EXPECT_EQ(c.gate_mode, MoeGateMode::cheap_embed);
  EXPECT_EQ(c.dtype, "float16");
  EXPECT_EQ(c.experts_per_token, 1);
  EXPECT_EQ(c.architecture, "qwen");
  ASSERT_EQ(c.experts.size(), 1u);
  EXPECT_EQ(c.experts[0].positive_prompts, std::vector<std::string>{"code"});
  EXPECT_EQ(c.experts[0].negative_prompts, std::vector<std::string>{"poetry"});
  EXPECT_EQ(c.experts[0].noise_scale, 0.1);
  EXPECT_EQ(c.experts[0].residual_scale, 0.5);
  EXPECT_EQ(c.experts[0].source_model_location.line, 7);
  ASSERT_EQ(c.shared_experts.size(), 1u);
  EXPECT_EQ(c.shared_experts[0].source_model, "b");
  EXPECT_EQ(c.yaml_paths.at({8, 5}), "experts[0].positive_prompts");
}

TEST_F(Moe, ParserRejectsUnknownKeysModesAndTypesWithLocation) {
  auto fails = [](const std::string& yaml, const std::string& want, int line) {
    try {
      parse_moe_config(yaml, "m.yaml");
      ADD_FAILURE() << "accepted: " << yaml;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
      EXPECT_EQ(e.context().line, line) << e.what();
    }
  };
  fails("base_model: b\nexperts:\n  - source_modle: x\n", "did you mean 'source_model'", 3);
  fails("base_model: b\ngate_mode: hiden\nexperts:\n  - source_model: x\n", "did you mean 'hidden'",
        2);
  fails("base_model: b\nexperts_per_token: two\nexperts:\n  - source_model: x\n",
        "expected a finite number", 2);
  fails("base_model: b\nexperts:\n  - source_model: x\n    positive_prompts: {a: 1}\n",
        "expected a list of prompt strings", 4);
  fails("experts:\n  - source_model: x\n", "missing required key 'base_model'", 1);
  fails("base_model: b\nexperts: []\n", "non-empty list", 2);
  fails("base_model: b\nexperts:\n  - positive_prompts: [a]\n", "missing required key", 3);
  fails(std::string("base_model: b\0\n", 16), "control byte", 1);
  fails("base_model: b\nbase_model: c\nexperts:\n  - source_model: x\n", "duplicate key", 2);
  try {  // the yaml-cpp 0.7 stray-comma hang must end in an error
    parse_moe_config("base_model: b\n,\nexperts: []\n", "m.yaml");
    ADD_FAILURE() << "a stray comma was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::config);
  }
}

TEST_F(Moe, ExpertsPerTokenMustBeBetweenOneAndTheExpertCount) {
  for (const char* k : {"0", "3"}) {
    const Error e = plan_error(
        config(k_random + "experts_per_token: " + k + "\n", expert("e1") + expert("e2")));
    ASSERT_EQ(e.problems().size(), 1u) << e.what();
    EXPECT_NE(e.problems()[0].message.find("between 1 and the number of experts (2)"),
              std::string::npos);
    EXPECT_EQ(e.problems()[0].line, 3);
  }
}

TEST_F(Moe, PromptGatesNeedPositivePromptsForEveryExpert) {
  const Error e =
      plan_error(config("gate_mode: hidden\n", expert("e1", "    positive_prompts: [\"code\"]\n") +
                                                   expert("e2") + expert("e3")));
  const auto messages = problem_messages(e);
  ASSERT_EQ(messages.size(), 2u) << e.what();
  EXPECT_NE(messages[0].find("experts[1]"), std::string::npos) << messages[0];
  EXPECT_NE(messages[1].find("experts[2]"), std::string::npos) << messages[1];
  EXPECT_EQ(e.problems()[0].line, 6);
}

TEST_F(Moe, IdenticalPromptsAcrossAllExpertsAreRefusedOnce) {
  const std::string p = "    positive_prompts: [\"same\"]\n";
  const Error e = plan_error(config("gate_mode: cheap_embed\n", expert("e1", p) + expert("e2", p)));
  ASSERT_EQ(e.problems().size(), 1u) << e.what();
  EXPECT_NE(e.problems()[0].message.find("identical for all experts"), std::string::npos);
}

TEST_F(Moe, AllSameExpertsAreRefusedUnlessAllowed) {
  const std::string yaml = config(k_random, expert("e1") + expert("e1"));
  const Error e = plan_error(yaml);
  ASSERT_EQ(e.problems().size(), 1u) << e.what();
  EXPECT_NE(e.problems()[0].hint.find("--allow-all-same"), std::string::npos);
  PlanOptions allow;
  allow.allow_all_same = true;
  EXPECT_NO_THROW(plan_of(yaml, allow));
}

TEST_F(Moe, RandomGatesNeedNoPrompts) {
  EXPECT_NO_THROW(plan_of(config("gate_mode: uniform_random\n", expert("e1") + expert("e2"))));
}

TEST_F(Moe, PromptModeWithoutGateFileSaysHowToGetThem) {
  const Error e =
      plan_error(config("gate_mode: hidden\n", expert("e1", "    positive_prompts: [a]\n") +
                                                   expert("e2", "    positive_prompts: [b]\n")));
  ASSERT_EQ(e.problems().size(), 1u) << e.what();
  EXPECT_EQ(e.kind(), ErrorKind::unsupported);
  EXPECT_NE(e.problems()[0].hint.find("llmerge.moe_gates"), std::string::npos);
}

TEST_F(Moe, ExpertsWithOtherMlpShapesAreRefused) {
  const Error e = plan_error(config(k_random, expert("e1") + expert("narrow")));
  EXPECT_EQ(e.kind(), ErrorKind::shape);
  EXPECT_NE(std::string(e.what()).find("MLP shapes"), std::string::npos) << e.what();
}

TEST_F(Moe, ArchitectureChoiceExplainsWhyNothingFits) {
  Error e = plan_error(config(k_random + "architecture: deepseek\n", expert("e1") + expert("e2")));
  EXPECT_EQ(e.kind(), ErrorKind::unsupported);
  e = plan_error(config(k_random + "architecture: qwen3\n", expert("e1") + expert("e2")));
  EXPECT_NE(std::string(e.what()).find("qwen3 models only"), std::string::npos) << e.what();
  e = plan_error(config(k_random + "shared_experts:\n  - source_model: " + path("e1") + "\n" +
                            "  - source_model: " + path("e2") + "\n",
                        expert("e1") + expert("e2")));
  EXPECT_NE(std::string(e.what()).find("exactly one shared expert"), std::string::npos);
}

TEST_F(Moe, MixtralCopiesExpertsAndBaseAndWritesItsConfig) {
  const Plan p = plan_of(
      config(k_random + "experts_per_token: 2\n", expert("e1") + expert("e2") + expert("e3")));
  const fs::path out = run_to(p, "mixtral");
  const Model m = Model::open(out);
  const Model base = Model::open(path("base"));
  const Model e2 = Model::open(path("e2"));
  EXPECT_EQ(tensor_bytes(m, "model.layers.1.block_sparse_moe.experts.1.w1.weight"),
            tensor_bytes(e2, "model.layers.1.mlp.gate_proj.weight"));
  EXPECT_EQ(tensor_bytes(m, "model.layers.1.block_sparse_moe.experts.1.w2.weight"),
            tensor_bytes(e2, "model.layers.1.mlp.down_proj.weight"));
  EXPECT_EQ(tensor_bytes(m, "model.layers.0.block_sparse_moe.experts.1.w3.weight"),
            tensor_bytes(e2, "model.layers.0.mlp.up_proj.weight"));
  EXPECT_EQ(tensor_bytes(m, "model.layers.0.self_attn.q_proj.weight"),
            tensor_bytes(base, "model.layers.0.self_attn.q_proj.weight"));
  EXPECT_EQ(tensor_bytes(m, "lm_head.weight"), tensor_bytes(base, "lm_head.weight"));
  EXPECT_EQ(m.find("model.layers.0.mlp.gate_proj.weight"), nullptr);
  const TensorRef* gate = m.find("model.layers.1.block_sparse_moe.gate.weight");
  ASSERT_NE(gate, nullptr);
  EXPECT_EQ(gate->shape(), (std::vector<std::int64_t>{3, 64}));
  const nlohmann::json cfg = nlohmann::json::parse(testing::read_text(out / "config.json"));
  EXPECT_EQ(cfg["model_type"], "mixtral");
  EXPECT_EQ(cfg["architectures"][0], "MixtralForCausalLM");
  EXPECT_EQ(cfg["num_local_experts"], 3);
  EXPECT_EQ(cfg["num_experts_per_tok"], 2);
  EXPECT_TRUE(cfg["sliding_window"].is_null());
  EXPECT_TRUE(fs::exists(out / "mergekit_moe_config.yml"));
  EXPECT_TRUE(fs::exists(out / "tokenizer.json"));
  // 3 experts: llama.cpp needs a power of two.
  EXPECT_NE(p.notes().at(0).find("power of two"), std::string::npos);
}

TEST_F(Moe, RandomGatesAreIdenticalForASeedWhateverTheThreads) {
  const Plan p = plan_of(config(k_random, expert("e1") + expert("e2")));
  const Plan u = plan_of(config("gate_mode: uniform_random\n", expert("e1") + expert("e2")));
  const std::string name = "model.layers.0.block_sparse_moe.gate.weight";
  const std::string a = tensor_bytes(Model::open(run_to(p, "seed_a", 11, 1)), name);
  const std::string b = tensor_bytes(Model::open(run_to(p, "seed_b", 11, 4)), name);
  const std::string c = tensor_bytes(Model::open(run_to(p, "seed_c", 12, 2)), name);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // N(0, 1) against U(-1/8, 1/8) for hidden 64: read back as floats.
  auto values = [](const fs::path& dir, const std::string& tensor) {
    const Model m = Model::open(dir);
    const std::string bytes = tensor_bytes(m, tensor);
    std::vector<float> v;
    for (std::size_t i = 0; i + 1 < bytes.size(); i += 2) {
      std::uint32_t bits =
          (static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i + 1])) << 24) |
          (static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[i])) << 16);
      float f;
      std::memcpy(&f, &bits, 4);
      v.push_back(f);
    }
    return v;
  };
  const auto normal = values(*dir_ / "seed_a", name);
  const auto uniform = values(run_to(u, "uniform"), name);
  double sum2 = 0;
  for (float f : normal)
    sum2 += f * f;
  EXPECT_NEAR(sum2 / static_cast<double>(normal.size()), 1.0, 0.25);
  for (float f : uniform)
    EXPECT_LE(std::abs(f), 0.125f);
  // The two layers get different gates.
  EXPECT_NE(a, tensor_bytes(Model::open(*dir_ / "seed_a"),
                            "model.layers.1.block_sparse_moe.gate.weight"));
}

TEST_F(Moe, ResidualAndNoiseScaleChangeOnlyThatExpert) {
  const Plan p = plan_of(config(k_random, expert("e1", "    residual_scale: 0.5\n") +
                                              expert("e2", "    noise_scale: 0.01\n")));
  const Model m = Model::open(run_to(p, "scaled"));
  const Model e1 = Model::open(path("e1"));
  const Model e2 = Model::open(path("e2"));
  // Halving a bf16 value is exact: compare the halved source bit patterns.
  const std::string down = tensor_bytes(e1, "model.layers.0.mlp.down_proj.weight");
  const std::string got = tensor_bytes(m, "model.layers.0.block_sparse_moe.experts.0.w2.weight");
  ASSERT_EQ(down.size(), got.size());
  std::size_t halved = 0;
  for (std::size_t i = 0; i < down.size(); i += 2) {
    std::uint16_t s, g;
    std::memcpy(&s, down.data() + i, 2);
    std::memcpy(&g, got.data() + i, 2);
    halved += ((s & 0x7f80) == 0 || g == static_cast<std::uint16_t>(s - 0x80)) ? 1 : 0;
  }
  EXPECT_EQ(halved, down.size() / 2);
  EXPECT_EQ(tensor_bytes(m, "model.layers.0.block_sparse_moe.experts.0.w1.weight"),
            tensor_bytes(e1, "model.layers.0.mlp.gate_proj.weight"));
  EXPECT_NE(tensor_bytes(m, "model.layers.0.block_sparse_moe.experts.1.w1.weight"),
            tensor_bytes(e2, "model.layers.0.mlp.gate_proj.weight"));
}

TEST_F(Moe, Qwen2MoeHasTheSharedExpertAndZeroBiases) {
  const Plan p =
      plan_of(config(k_random + "shared_experts:\n  - source_model: " + path("base") + "\n",
                     expert("e1") + expert("e2")));
  const fs::path out = run_to(p, "qwen2");
  const Model m = Model::open(out);
  const Model base = Model::open(path("base"));
  EXPECT_EQ(tensor_bytes(m, "model.layers.0.mlp.shared_expert.up_proj.weight"),
            tensor_bytes(base, "model.layers.0.mlp.up_proj.weight"));
  EXPECT_EQ(tensor_bytes(m, "model.layers.1.mlp.experts.1.down_proj.weight"),
            tensor_bytes(Model::open(path("e2")), "model.layers.1.mlp.down_proj.weight"));
  ASSERT_NE(m.find("model.layers.0.mlp.shared_expert_gate.weight"), nullptr);
  EXPECT_EQ(m.find("model.layers.0.mlp.shared_expert_gate.weight")->shape(),
            (std::vector<std::int64_t>{1, 64}));
  const std::string bias = tensor_bytes(m, "model.layers.0.self_attn.k_proj.bias");
  EXPECT_EQ(bias, std::string(32 * 2, '\0'));  // 2 kv heads x 16, bf16 zeros
  const nlohmann::json cfg = nlohmann::json::parse(testing::read_text(out / "config.json"));
  EXPECT_EQ(cfg["model_type"], "qwen2_moe");
  EXPECT_EQ(cfg["num_experts"], 2);
  EXPECT_EQ(cfg["shared_expert_intermediate_size"], 128);
  EXPECT_EQ(cfg["moe_intermediate_size"], 128);
}

TEST_F(Moe, Qwen3MoeFromQwen3Experts) {
  const std::string yaml = "base_model: " + path("q3base") + "\n" + k_random +
                           "experts:\n  - source_model: " + path("q3base") +
                           "\n  - source_model: " + path("q3a") + "\n";
  const fs::path out = run_to(plan_of(yaml), "qwen3");
  const Model m = Model::open(out);
  EXPECT_EQ(tensor_bytes(m, "model.layers.0.mlp.experts.1.gate_proj.weight"),
            tensor_bytes(Model::open(path("q3a")), "model.layers.0.mlp.gate_proj.weight"));
  EXPECT_NE(m.find("model.layers.0.self_attn.q_norm.weight"), nullptr);
  EXPECT_NE(m.find("model.layers.1.mlp.gate.weight"), nullptr);
  const nlohmann::json cfg = nlohmann::json::parse(testing::read_text(out / "config.json"));
  EXPECT_EQ(cfg["model_type"], "qwen3_moe");
  EXPECT_EQ(cfg["architectures"][0], "Qwen3MoeForCausalLM");
}

// A gate file as llmerge.moe_gates writes it (float32, sorted names).
void write_gate_file(const fs::path& file, int layers, int experts, int hidden, bool bad) {
  nlohmann::json header = nlohmann::json::object();
  std::uint64_t offset = 0;
  for (int l = 0; l < layers; ++l) {
    const int rows = bad && l == 1 ? experts + 1 : experts;
    const std::uint64_t n = static_cast<std::uint64_t>(rows) * hidden * 4;
    header[moe_gate_tensor(l)] = {
        {"dtype", "F32"}, {"shape", {rows, hidden}}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string bytes(8, '\0');
  const std::uint64_t len = text.size();
  std::memcpy(bytes.data(), &len, 8);
  bytes += text;
  for (std::uint64_t i = 0; i < offset / 4; ++i) {
    const float v = static_cast<float>(i % 7) * 0.25f;
    bytes.append(reinterpret_cast<const char*>(&v), 4);
  }
  testing::write_text(file, bytes);
}

TEST_F(Moe, PromptModeReadsTheGateFileAndChecksItsShapes) {
  const std::string yaml =
      config("gate_mode: hidden\n", expert("e1", "    positive_prompts: [a]\n") +
                                        expert("e2", "    positive_prompts: [b]\n"));
  const std::string request = moe_gate_request(MoeConfig::parse(yaml, "moe.yaml"));
  const nlohmann::json r = nlohmann::json::parse(request);
  EXPECT_EQ(r["gate_mode"], "hidden");
  EXPECT_EQ(r["num_layers"], 2);
  EXPECT_EQ(r["hidden_size"], 64);
  EXPECT_EQ(r["experts"][1]["positive_prompts"][0], "b");
  write_gate_file(*dir_ / "gates.safetensors", 2, 2, 64, false);
  write_gate_file(*dir_ / "bad_gates.safetensors", 2, 2, 64, true);
  PlanOptions o;
  o.gates = path("bad_gates.safetensors");
  const Error e = plan_error(yaml, o);
  ASSERT_EQ(e.problems().size(), 1u) << e.what();
  EXPECT_NE(e.problems()[0].message.find("layers.1.router"), std::string::npos);
  o.gates = path("gates.safetensors");
  const Model m = Model::open(run_to(plan_of(yaml, o), "gated"));
  const std::string gate = tensor_bytes(m, "model.layers.0.block_sparse_moe.gate.weight");
  ASSERT_EQ(gate.size(), 2u * 64 * 2);
  // 0.25 * (i % 7) is exact in bf16: element 3 is 0.75 = 0x3F40.
  EXPECT_EQ(static_cast<unsigned char>(gate[7]), 0x3F);
  EXPECT_EQ(static_cast<unsigned char>(gate[6]), 0x40);
}

TEST_F(Moe, MlxQuantizedExpertsStayQuantized) {
  MergeOptions q;
  q.plan.quantize = true;
  q.plan.q_group_size = 32;
  q.run.threads = 2;
  quantize(path("e1"), path("e1q"), q);
  quantize(path("e2"), path("e2q"), q);
  const std::string yaml = "base_model: " + path("e1q") + "\n" + k_random +
                           "experts:\n  - source_model: " + path("e1q") +
                           "\n  - source_model: " + path("e2q") + "\n";
  const fs::path out = run_to(plan_of(yaml), "quantized");
  const Model m = Model::open(out);
  const Model e2 = Model::open(path("e2q"));
  const TensorRef* w = m.find("model.layers.0.block_sparse_moe.experts.1.w1.weight");
  ASSERT_NE(w, nullptr);
  ASSERT_NE(w->quant, nullptr);
  EXPECT_EQ(w->quant->params.group_size, 32);
  // Each expert is dequantized and requantized chunk by chunk: the values come
  // back within one quantization step of the source's (most codes are the same).
  auto dequantized = [](const Model& model, const std::string& name) {
    PlannedInput in;
    in.ref = *model.find(name);
    in.shape = in.ref.shape();
    in.source = SourceKind::mlx_dequantize;
    const std::int64_t n = in.shape[0] * in.shape[1];
    SourceScratch scratch(n);
    std::vector<float> v(static_cast<std::size_t>(n));
    make_source(in)->read(0, n, v.data(), scratch);
    return v;
  };
  const auto got = dequantized(m, "model.layers.0.block_sparse_moe.experts.1.w1.weight");
  const auto want = dequantized(e2, "model.layers.0.mlp.gate_proj.weight");
  ASSERT_EQ(got.size(), want.size());
  float max_abs = 0, max_diff = 0;
  std::size_t same = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    max_abs = std::max(max_abs, std::abs(want[i]));
    max_diff = std::max(max_diff, std::abs(got[i] - want[i]));
    same += got[i] == want[i] ? 1 : 0;
  }
  EXPECT_LE(max_diff, 2 * max_abs / 15) << "more than one 4-bit step";
  EXPECT_GT(same, got.size() * 3 / 4);
  const nlohmann::json cfg = nlohmann::json::parse(testing::read_text(out / "config.json"));
  EXPECT_EQ(cfg["quantization"]["group_size"], 32);
}

TEST_F(Moe, QuantizedQwen3MoeIsRefusedBecauseMlxLmCannotLoadIt) {
  MergeOptions q;
  q.plan.quantize = true;
  q.plan.q_group_size = 32;
  quantize(path("q3a"), path("q3aq"), q);
  const std::string yaml = "base_model: " + path("q3aq") + "\n" + k_random +
                           "experts:\n  - source_model: " + path("q3aq") +
                           "\n  - source_model: " + path("q3base") + "\n";
  const Error e = plan_error(yaml);
  EXPECT_EQ(e.kind(), ErrorKind::unsupported);
  EXPECT_NE(e.problems()[0].hint.find("--dequantize"), std::string::npos) << e.what();
  PlanOptions dense;
  dense.dequantize = true;
  EXPECT_NO_THROW(plan_of(yaml, dense));
}

TEST_F(Moe, CliBuildsARandomMixtralAndExplainsPromptModes) {
  const TempDir tmp;
  testing::write_text(tmp / "moe.yaml", config(k_random, expert("e1") + expert("e2")));
  std::string out;
  EXPECT_EQ(testing::run_cli("moe " + (tmp / "moe.yaml").string() + " -o " +
                                 (tmp / "out").string() + " --quiet --random-seed 3",
                             &out),
            0)
      << out;
  EXPECT_TRUE(fs::exists(tmp / "out" / "config.json"));
  // --force replaces an earlier moe output (its mergekit_moe_config.yml is llmerge's own).
  EXPECT_EQ(testing::run_cli("moe " + (tmp / "moe.yaml").string() + " -o " +
                                 (tmp / "out").string() + " --quiet --force",
                             &out),
            0)
      << out;
  testing::write_text(tmp / "hidden.yaml", config("gate_mode: hidden\n",
                                                  expert("e1", "    positive_prompts: [a]\n") +
                                                      expert("e2", "    positive_prompts: [b]\n")));
  ::setenv("LLMERGE_PYTHON", "/nonexistent/python3", 1);
  EXPECT_EQ(testing::run_cli("moe " + (tmp / "hidden.yaml").string() + " -o " +
                                 (tmp / "out2").string() + " --quiet",
                             &out),
            2)
      << out;
  EXPECT_NE(out.find("LLMERGE_PYTHON"), std::string::npos) << out;
  EXPECT_NE(out.find("--gates"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(tmp / "out2"));
}

}  // namespace
}  // namespace llmerge
