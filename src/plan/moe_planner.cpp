// make_moe_plan: see moe_planner.h. Sources: mergekit 0.1.5 mergekit/moe/
// (config.py, mixtral.py, qwen.py, qwen3.py, common.py), transformers 5.x
// conversion_mapping.py ("mixtral", "qwen2_moe"), mlx-lm models/mixtral.py,
// qwen2_moe.py, qwen3_moe.py (sanitize); docs/moe.md has the details.
#include "plan/moe_planner.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <fmt/core.h>
#include <fmt/format.h>

#include "core/cancel.h"
#include "merge/method.h"
#include "merge/methods/moe.h"
#include "plan/planner_internal.h"

namespace llmerge {

namespace {

enum class MoeArch { mixtral, qwen2_moe, qwen3_moe };

// mergekit's output names, matched by prefix (scripts/moe.py select_output_arch);
// DeepSeek MoE needs remote code and is not written here.
struct ArchInfo {
  MoeArch arch;
  const char* name;
};
constexpr ArchInfo k_archs[] = {{MoeArch::mixtral, "Mixtral"},
                                {MoeArch::qwen2_moe, "Qwen MoE"},
                                {MoeArch::qwen3_moe, "Qwen3 MoE"}};

constexpr const char* k_mlp_parts[] = {"gate_proj", "up_proj", "down_proj"};

std::string lower(std::string s) {
  for (char& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct MoePlanner {
  const MoeMergeConfig& cfg;
  const MoePlanSettings& settings;
  MergePlan plan;
  Diagnostics diag;
  std::map<std::string, std::size_t> index;  // reference -> plan.models
  std::vector<std::size_t> expert_models;    // parallel to cfg.experts
  std::vector<std::size_t> shared_models;    // parallel to cfg.shared_experts
  std::size_t base = 0;
  MoeArch arch = MoeArch::mixtral;
  std::int64_t layers = 0;
  std::int64_t hidden = 0;

  MoePlanner(const MoeMergeConfig& c, const MoePlanSettings& s)
      : cfg(c), settings(s), diag(c.file, &plan.config) {
    plan.config.file = c.file;
    plan.config.text = c.text;
    plan.config.merge_method = "moe";
    plan.config.base_model = c.base_model;
    plan.config.yaml_paths = c.yaml_paths;
    plan.options = s.plan;
    plan.method = &moe_plan_method();
    plan.recipe_file = "mergekit_moe_config.yml";
  }

  // ------------------------------------------------------------ config rules

  void check_config() {
    const auto experts = static_cast<std::int64_t>(cfg.experts.size());
    if (cfg.experts_per_token < 1 || cfg.experts_per_token > experts) {
      diag.add(ErrorKind::config, cfg.experts_per_token_location,
               fmt::format("experts_per_token must be between 1 and the number of experts ({})",
                           experts),
               {.value = std::to_string(cfg.experts_per_token),
                .hint = "route each token to at most as many experts as there are"});
    }
    if (moe_gate_mode_is_random(cfg.gate_mode)) return;
    bool all_have_prompts = true;
    for (std::size_t i = 0; i < cfg.experts.size(); ++i) {
      const MoeExpert& e = cfg.experts[i];
      if (e.positive_prompts && !e.positive_prompts->empty()) continue;
      all_have_prompts = false;
      diag.add(ErrorKind::config, e.location,
               fmt::format("experts[{}] ({}) has no positive_prompts; gate_mode {} computes its "
                           "router from them",
                           i, e.source_model, moe_gate_mode_name(cfg.gate_mode)),
               {.hint = "give each expert example prompts it should receive, or use gate_mode: "
                        "random"});
    }
    if (!all_have_prompts || cfg.experts.size() < 2) return;
    const auto prompts = [](const MoeExpert& e) {
      return std::pair(*e.positive_prompts,
                       e.negative_prompts.value_or(std::vector<std::string>{}));
    };
    const auto first = prompts(cfg.experts.front());
    if (std::all_of(cfg.experts.begin() + 1, cfg.experts.end(),
                    [&](const MoeExpert& e) { return prompts(e) == first; })) {
      diag.add(ErrorKind::config, cfg.experts_location,
               "the positive and negative prompts are identical for all experts, so every router "
               "row would be the same and the MoE would not work",
               {.hint = "give each expert prompts that reflect what should be routed to it"});
    }
  }

  void check_all_same() {
    if (settings.allow_all_same || cfg.experts.empty()) return;
    const std::string& first = cfg.experts.front().source_model;
    if (std::all_of(cfg.experts.begin(), cfg.experts.end(),
                    [&](const MoeExpert& e) { return e.source_model == first; })) {
      diag.add(ErrorKind::config, cfg.experts_location,
               fmt::format("all experts are the same model ('{}'): the MoE would use more memory "
                           "and give the same output",
                           first),
               {.hint = "if you will train the model after merging, pass --allow-all-same "
                        "(mergekit's --i-understand-this-is-not-useful-without-training)"});
    }
  }

  // ------------------------------------------------------------------ models

  std::size_t open(const std::string& ref, SourceLocation where) {
    throw_if_cancelled();
    if (auto it = index.find(ref); it != index.end()) return it->second;
    try {
      auto path = resolve_model_reference(ref, plan.options.base_dir);
      plan.models.push_back(Model::open(path, ref));
      plan.model_refs.push_back(ref);
    } catch (const Error& e) {
      const std::string what = e.what();
      diag.add(e.kind(), where,
               what.starts_with(fmt::format("model '{}'", ref))
                   ? what
                   : fmt::format("model '{}': {}", ref, what));
      return SIZE_MAX;
    }
    return index[ref] = plan.models.size() - 1;
  }

  void open_models() {
    base = open(cfg.base_model, cfg.base_model_location);
    for (const auto& e : cfg.experts)
      expert_models.push_back(open(e.source_model, e.source_model_location));
    for (const auto& e : cfg.shared_experts)
      shared_models.push_back(open(e.source_model, e.source_model_location));
    diag.throw_if_any();
    plan.base_model = base;
    plan.donor = base;
  }

  std::string model_type(std::size_t m) const {
    return plan.models[m].config_string("model_type").value_or("");
  }

  // Why `a` cannot be written, or "" if it can (each output's supports_config).
  std::string unsupported_reason(MoeArch a) const {
    std::set<std::string> types;
    types.insert(model_type(base));
    for (auto m : expert_models)
      types.insert(model_type(m));
    for (auto m : shared_models)
      types.insert(model_type(m));
    const std::string list = fmt::format("{}", fmt::join(types, ", "));
    switch (a) {
      case MoeArch::mixtral:
        if (!cfg.shared_experts.empty()) return "Mixtral has no shared experts";
        if (types.size() != 1) return "Mixtral needs every model of one architecture, not " + list;
        if (*types.begin() != "llama" && *types.begin() != "mistral")
          return "Mixtral is built from llama or mistral models, not " + list;
        return "";
      case MoeArch::qwen2_moe:
        if (cfg.shared_experts.size() != 1) return "Qwen MoE needs exactly one shared expert";
        if (!moe_gate_mode_is_random(cfg.gate_mode) &&
            (!cfg.shared_experts[0].positive_prompts ||
             cfg.shared_experts[0].positive_prompts->empty()))
          return "Qwen MoE needs positive_prompts for the shared expert (its gate)";
        if (types.size() != 1) return "Qwen MoE needs every model of one architecture, not " + list;
        if (*types.begin() != "llama" && *types.begin() != "mistral" && *types.begin() != "qwen2")
          return "Qwen MoE is built from qwen2, llama or mistral models, not " + list;
        return "";
      case MoeArch::qwen3_moe:
        if (!cfg.shared_experts.empty()) return "Qwen3 MoE has no shared experts";
        if (types.size() != 1 || *types.begin() != "qwen3")
          return "Qwen3 MoE is built from qwen3 models only, not " + list;
        return "";
    }
    return "";
  }

  bool choose_arch() {
    std::vector<std::string> reasons;
    bool matched = false;
    for (const ArchInfo& a : k_archs) {
      if (cfg.architecture && !lower(a.name).starts_with(lower(*cfg.architecture))) continue;
      matched = true;
      std::string why = unsupported_reason(a.arch);
      if (why.empty()) {
        arch = a.arch;
        return true;
      }
      reasons.push_back(std::move(why));
    }
    if (!matched) {
      const bool deepseek = lower(*cfg.architecture).starts_with("deep");
      diag.add(deepseek ? ErrorKind::unsupported : ErrorKind::config, cfg.architecture_location,
               deepseek ? "architecture: DeepSeek MoE output is not supported (it needs "
                          "remote code); use mixtral, qwen or qwen3"
                        : "architecture: no output architecture starts with this; use mixtral, "
                          "qwen or qwen3",
               {.value = *cfg.architecture});
      return false;
    }
    diag.add(
        ErrorKind::unsupported,
        cfg.architecture ? cfg.architecture_location : cfg.base_model_location,
        fmt::format("no MoE output architecture fits these models: {}", fmt::join(reasons, "; ")),
        {.hint = "Mixtral takes llama/mistral experts and no shared expert; Qwen MoE one "
                 "shared expert; Qwen3 MoE qwen3 experts"});
    return false;
  }

  // Every expert has the base's layer count and MLP tensors of the base's shapes.
  void check_shapes() {
    const Model& b = plan.models[base];
    layers = b.layers().count;
    hidden = b.config_int("hidden_size").value_or(0);
    if (layers == 0 || b.layers().prefix != "model.layers") {
      diag.add(ErrorKind::format, cfg.base_model_location,
               fmt::format("base model '{}' has no model.layers.N tensors", cfg.base_model));
      return;
    }
    auto check = [&](std::size_t m, const MoeExpert& e) {
      const Model& x = plan.models[m];
      if (x.layers().count != layers) {
        diag.add(ErrorKind::shape, e.source_model_location,
                 fmt::format("expert '{}' has {} layers; the base has {}", e.source_model,
                             x.layers().count, layers));
        return;
      }
      for (std::int64_t l = 0; l < layers; ++l) {
        for (const char* part : k_mlp_parts) {
          const std::string name = fmt::format("model.layers.{}.mlp.{}.weight", l, part);
          const TensorRef* want = b.find(name);
          const TensorRef* got = x.find(name);
          if (!got) {
            diag.add(ErrorKind::shape, e.source_model_location,
                     fmt::format("expert '{}' has no tensor {}", e.source_model, name),
                     {.tensor = name});
          } else if (want && got->shape() != want->shape()) {
            diag.add(ErrorKind::shape, e.source_model_location,
                     fmt::format("expert '{}' has MLP shapes {} where the base has {}",
                                 e.source_model, plan_detail::shape_string(got->shape()),
                                 plan_detail::shape_string(want->shape())),
                     {.tensor = name});
          }
        }
      }
    };
    for (std::size_t i = 0; i < cfg.experts.size(); ++i)
      check(expert_models[i], cfg.experts[i]);
    for (std::size_t i = 0; i < cfg.shared_experts.size(); ++i)
      check(shared_models[i], cfg.shared_experts[i]);
  }

  // ---------------------------------------------------------------- tensors

  DType out_dtype(DType input) const {
    if (plan.options.out_dtype) return *plan.options.out_dtype;
    if (plan.options.dtype) return *plan.options.dtype;
    if (cfg.dtype) return *dtype_from_torch_name(*cfg.dtype);
    // mergekit: the base's torch_dtype, else the tensor's own.
    const Model& b = plan.models[base];
    auto name = b.config_string("torch_dtype");
    if (!name) name = b.config_string("dtype");
    if (name) {
      if (auto t = dtype_from_torch_name(*name); t && dtype_is_mergeable_float(*t)) return *t;
    }
    return input == DType::F64 ? DType::F32 : input;
  }

  PlannedInput input(std::size_t m, const std::string& name) const {
    const TensorRef* ref = plan.models[m].find(name);
    PlannedInput in;
    in.model = m;
    in.tensor = name;
    in.ref = *ref;
    in.shape = ref->shape();
    return in;
  }

  // A copy of one tensor (passthrough: a byte copy when nothing changes).
  void add_copy(const std::string& out_name, std::size_t m, const std::string& name,
                std::int64_t layer) {
    PlannedTensor t;
    t.name = out_name;
    t.inputs.push_back(input(m, name));
    t.shape = t.inputs[0].shape;
    const DType in = t.inputs[0].ref.dtype();
    if (!dtype_is_mergeable_float(in)) {
      t.dtype = in;  // integer buffers: verbatim
      t.method = nullptr;
    } else {
      t.dtype = out_dtype(in);
      t.method = find_method("passthrough");
      t.params.per_model = {{{"scale", std::nan("")}}};
    }
    t.layer = layer;
    plan.tensors.push_back(std::move(t));
  }

  void add_expert(const std::string& out_name, std::size_t m, const MoeExpert& e,
                  const std::string& name, std::int64_t layer) {
    const bool residual = name.find("down_proj") != std::string::npos;
    const double scale = residual && e.residual_scale ? *e.residual_scale : 1.0;
    const double noise = e.noise_scale.value_or(0.0);
    if (scale == 1.0 && noise == 0.0) return add_copy(out_name, m, name, layer);
    PlannedTensor t;
    t.name = out_name;
    t.inputs.push_back(input(m, name));
    t.shape = t.inputs[0].shape;
    t.dtype = out_dtype(t.inputs[0].ref.dtype());
    t.method = &moe_expert_method();
    t.params.global = {{"noise_scale", noise}, {"scale", scale}};
    t.params.per_model = {{}};
    t.layer = layer;
    plan.tensors.push_back(std::move(t));
  }

  void add_computed(const std::string& out_name, std::vector<std::int64_t> shape, MoeGateInit init,
                    std::int64_t layer, DType dtype) {
    PlannedTensor t;
    t.name = out_name;
    t.shape = std::move(shape);
    t.dtype = dtype;
    t.method = &moe_gate_method();
    t.params.global = {{"mode", static_cast<double>(init)}};
    t.layer = layer;
    plan.tensors.push_back(std::move(t));
  }

  // The gate file (prompt modes) as a model of its own.
  std::optional<std::size_t> gates_model;

  void open_gates() {
    if (moe_gate_mode_is_random(cfg.gate_mode)) return;
    if (settings.gates.empty()) {
      diag.add(
          ErrorKind::unsupported, cfg.gate_mode_location,
          fmt::format("gate_mode {} computes the routers from the base model's {} for the "
                      "prompts, which needs the Python package",
                      moe_gate_mode_name(cfg.gate_mode),
                      cfg.gate_mode == MoeGateMode::cheap_embed ? "embeddings" : "hidden states"),
          {.hint = "run `llmerge moe` where `python3 -c 'import llmerge'` works (pip install "
                   "llmerge, with mlx-lm or torch + transformers), or compute the gates with "
                   "`python -m llmerge.moe_gates` and pass --gates FILE; gate_mode random "
                   "needs neither"});
      return;
    }
    const std::size_t m = open(settings.gates.string(), {});
    if (m == SIZE_MAX) return;
    gates_model = m;
    // The model card lists models by reference; a temporary path says nothing.
    plan.model_refs[m] =
        fmt::format("router vectors from the prompts ({})", moe_gate_mode_name(cfg.gate_mode));
    const std::size_t shared = cfg.shared_experts.empty() ? 0 : 1;
    for (std::int64_t l = 0; l < layers; ++l) {
      for (const bool is_shared : {false, true}) {
        if (is_shared && !shared) continue;
        const std::string name = moe_gate_tensor_name(l, is_shared);
        const TensorRef* ref = plan.models[m].find(name);
        const std::vector<std::int64_t> want = {
            static_cast<std::int64_t>(is_shared ? shared : cfg.experts.size()), hidden};
        if (!ref || ref->shape() != want || !dtype_is_mergeable_float(ref->dtype())) {
          diag.add(
              ErrorKind::shape, {},
              fmt::format("gate file '{}': {} must be a float tensor of shape {}{}",
                          settings.gates.string(), name, plan_detail::shape_string(want),
                          ref ? " (it is " + plan_detail::shape_string(ref->shape()) + ")"
                              : " (it is missing)"),
              {.tensor = name,
               .hint = "recompute the gates for this config with python -m llmerge.moe_gates"});
        }
      }
    }
  }

  std::string expert_name(std::int64_t l, std::size_t e, const char* part) const {
    if (arch == MoeArch::mixtral) {
      const char* w = part == std::string_view("gate_proj")   ? "w1"
                      : part == std::string_view("down_proj") ? "w2"
                                                              : "w3";
      return fmt::format("model.layers.{}.block_sparse_moe.experts.{}.{}.weight", l, e, w);
    }
    return fmt::format("model.layers.{}.mlp.experts.{}.{}.weight", l, e, part);
  }

  void add_router(const std::string& out_name, std::int64_t l, bool shared, std::int64_t rows) {
    const DType dtype = out_dtype(DType::BF16);
    if (gates_model) {
      add_copy(out_name, *gates_model, moe_gate_tensor_name(l, shared), l);
      plan.tensors.back().dtype = dtype;
      return;
    }
    add_computed(out_name, {rows, hidden},
                 cfg.gate_mode == MoeGateMode::random ? MoeGateInit::normal : MoeGateInit::uniform,
                 l, dtype);
  }

  void plan_tensors() {
    const Model& b = plan.models[base];
    const auto layer_of = [](const std::string& name) -> std::int64_t {
      if (!name.starts_with("model.layers.")) return -1;
      return std::stoll(name.substr(13));
    };
    // Non-MLP tensors come from the base, in its (sorted) order; the MoE
    // block of a layer follows that layer's other tensors.
    std::vector<std::string> names = b.tensor_names();
    std::map<std::int64_t, std::vector<std::string>> by_layer;
    std::vector<std::string> outside;
    for (auto& n : names) {
      const std::int64_t l = layer_of(n);
      (l < 0 ? outside : by_layer[l]).push_back(n);
    }
    for (const auto& n : outside)
      if (plan_detail::is_pre_weight(n)) add_copy(n, base, n, -1);
    const bool qwen2 = arch == MoeArch::qwen2_moe;
    const auto heads = b.config_int("num_attention_heads").value_or(1);
    const auto kv_heads = b.config_int("num_key_value_heads").value_or(heads);
    const auto head_dim =
        b.config_int("head_dim").value_or(hidden / std::max<std::int64_t>(heads, 1));
    for (std::int64_t l = 0; l < layers; ++l) {
      throw_if_cancelled();
      for (const auto& n : by_layer[l]) {
        if (n.find(".mlp.") != std::string::npos) continue;
        add_copy(n, base, n, l);
      }
      // Qwen2-MoE's attention always has q/k/v biases: zeros when the base has none (as mergekit).
      if (qwen2) {
        for (const char* p : {"q_proj", "k_proj", "v_proj"}) {
          const std::string name = fmt::format("model.layers.{}.self_attn.{}.bias", l, p);
          if (b.find(name)) continue;
          const std::int64_t rows = (p[0] == 'q' ? heads : kv_heads) * head_dim;
          add_computed(name, {rows}, MoeGateInit::zeros, l, out_dtype(DType::BF16));
        }
      }
      const std::string block = arch == MoeArch::mixtral
                                    ? fmt::format("model.layers.{}.block_sparse_moe", l)
                                    : fmt::format("model.layers.{}.mlp", l);
      add_router(block + ".gate.weight", l, false, static_cast<std::int64_t>(cfg.experts.size()));
      for (std::size_t e = 0; e < cfg.experts.size(); ++e) {
        for (const char* part : k_mlp_parts) {
          add_expert(expert_name(l, e, part), expert_models[e], cfg.experts[e],
                     fmt::format("model.layers.{}.mlp.{}.weight", l, part), l);
        }
      }
      if (qwen2) {
        for (const char* part : k_mlp_parts) {
          add_expert(fmt::format("{}.shared_expert.{}.weight", block, part), shared_models[0],
                     cfg.shared_experts[0], fmt::format("model.layers.{}.mlp.{}.weight", l, part),
                     l);
        }
        add_router(block + ".shared_expert_gate.weight", l, true, 1);
      }
      LayerMapping map;
      map.out_layer = l;
      for (auto m : expert_models)
        map.sources.emplace_back(m, l);
      plan.layer_map.push_back(std::move(map));
    }
    for (const auto& n : outside)
      if (!plan_detail::is_pre_weight(n)) add_copy(n, base, n, -1);
    plan.out_layers = layers;
  }

  // ------------------------------------------------------------- config.json

  void build_config() {
    nlohmann::json c = plan.models[base].config();
    const auto experts = static_cast<std::int64_t>(cfg.experts.size());
    const std::int64_t intermediate = c.value("intermediate_size", std::int64_t{0});
    DType dtype = out_dtype(DType::BF16);
    for (const auto& t : plan.tensors)
      if (t.layer >= 0 && dtype_is_mergeable_float(t.dtype)) {
        dtype = t.dtype;
        break;
      }
    c["num_experts_per_tok"] = cfg.experts_per_token;
    switch (arch) {
      case MoeArch::mixtral:
        // MixtralConfig from the base's (MistralConfig) keys, as mixtral.py.
        c["architectures"] = {"MixtralForCausalLM"};
        c["model_type"] = "mixtral";
        c["num_local_experts"] = experts;
        c["sliding_window"] = nullptr;
        c["output_router_logits"] = false;
        c["router_aux_loss_coef"] = 0.001;
        break;
      case MoeArch::qwen2_moe:
        c["architectures"] = {"Qwen2MoeForCausalLM"};
        c["model_type"] = "qwen2_moe";
        c["num_experts"] = experts;
        c["decoder_sparse_step"] = 1;
        c["norm_topk_prob"] = true;
        c["sliding_window"] = nullptr;
        c["use_sliding_window"] = false;
        c["shared_expert_intermediate_size"] = intermediate;
        c["moe_intermediate_size"] = intermediate;
        c["mlp_only_layers"] = nlohmann::json::array();
        c["qkv_bias"] = true;
        c["output_router_logits"] = false;
        c["router_aux_loss_coef"] = 0.001;
        break;
      case MoeArch::qwen3_moe:
        c["architectures"] = {"Qwen3MoeForCausalLM"};
        c["model_type"] = "qwen3_moe";
        c["num_experts"] = experts;
        c["decoder_sparse_step"] = 1;
        c["norm_topk_prob"] = true;
        c["moe_intermediate_size"] = intermediate;
        c["mlp_only_layers"] = nlohmann::json::array();
        c["output_router_logits"] = false;
        c["router_aux_loss_coef"] = 0.001;
        break;
    }
    c["torch_dtype"] = std::string(dtype_torch_name(dtype));
    if (c.contains("dtype")) c["dtype"] = std::string(dtype_torch_name(dtype));
    update_config_quantization(plan, c);
    plan.out_config = std::move(c);
    if ((experts & (experts - 1)) != 0) {
      plan.notes.push_back(fmt::format(
          "{} experts is not a power of two; llama.cpp cannot load such a model", experts));
    }
  }

  // mlx-lm's qwen3_moe sanitize() stacks only the experts' ".weight" (not
  // ".scales"/".biases", as mixtral's and qwen2_moe's do), so it cannot load
  // per-expert quantized tensors.
  void check_loadable_quantization() {
    if (arch != MoeArch::qwen3_moe) return;
    for (const auto& t : plan.tensors) {
      if (!t.quantize || t.name.find(".mlp.experts.") == std::string::npos) continue;
      diag.add(ErrorKind::unsupported, {},
               "a Qwen3-MoE output with MLX-quantized experts would not load: mlx-lm's qwen3_moe "
               "stacks only the experts' dense weights",
               {.tensor = t.name,
                .hint = "pass --dequantize, then quantize the result with mlx_lm.convert"});
    }
  }

  MergePlan run(bool want_gates) {
    check_config();
    open_models();
    check_all_same();
    if (!choose_arch()) diag.throw_if_any();
    check_shapes();
    diag.throw_if_any();
    if (!want_gates) return std::move(plan);
    open_gates();
    diag.throw_if_any();
    plan_tensors();
    check_chunk_memory(plan, diag);
    assign_output_quantization(plan, diag);
    check_loadable_quantization();
    diag.throw_if_any();
    plan_plain_copies(plan);
    assign_sources_and_sinks(plan);
    build_config();
    plan.tokenizer_model = base;
    return std::move(plan);
  }
};

}  // namespace

std::string moe_gate_tensor_name(std::int64_t layer, bool shared) {
  return fmt::format("layers.{}.{}", layer, shared ? "shared_router" : "router");
}

MergePlan make_moe_plan(const MoeMergeConfig& config, const MoePlanSettings& settings) {
  return MoePlanner(config, settings).run(true);
}

nlohmann::json moe_gate_request(const MoeMergeConfig& config, const MoePlanSettings& settings) {
  MoePlanner p(config, settings);
  MergePlan plan = p.run(false);
  const Model& b = plan.models[p.base];
  nlohmann::json experts = nlohmann::json::array();
  auto add = [&](const MoeExpert& e, bool shared) {
    experts.push_back(
        {{"source_model", e.source_model},
         {"shared", shared},
         {"positive_prompts", e.positive_prompts.value_or(std::vector<std::string>{})},
         {"negative_prompts", e.negative_prompts.value_or(std::vector<std::string>{})}});
  };
  for (const auto& e : config.experts)
    add(e, false);
  for (const auto& e : config.shared_experts)
    add(e, true);
  return {{"gate_mode", moe_gate_mode_name(config.gate_mode)},
          {"base_model", b.path().string()},
          {"num_layers", p.layers},
          {"hidden_size", p.hidden},
          {"vocab_size", b.config_int("vocab_size").value_or(0)},
          {"embed_tensor", "model.embed_tokens.weight"},
          {"gate_tensors",
           {{"router", moe_gate_tensor_name(0, false)},
            {"shared_router", moe_gate_tensor_name(0, true)}}},
          {"experts", experts}};
}

}  // namespace llmerge
