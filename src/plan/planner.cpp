// make_plan: normalise the config into slices, map layers, gather each output
// tensor's inputs, check shapes and dtypes. Parameter resolution lives in
// parameters.cpp, the output config.json in output_config.cpp.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include "core/cancel.h"
#include "plan/chat_templates.h"
#include "plan/diagnostics.h"
#include "plan/plan.h"
#include "plan/planner_internal.h"
#include "plan/stages.h"
#include "plan/vocabulary.h"

namespace llmerge {

std::int64_t PlannedTensor::numel() const {
  std::int64_t n = 1;
  for (auto d : shape)
    n *= d;
  return n;
}

std::uint64_t PlannedTensor::nbytes() const {
  const auto n = static_cast<std::uint64_t>(numel());
  if (quantize) {
    const auto groups = n / static_cast<std::uint64_t>(quantize->group_size);
    return n * static_cast<std::uint64_t>(quantize->bits) / 8 +
           2 * groups * static_cast<std::uint64_t>(dtype_bits(dtype)) / 8;
  }
  return n * static_cast<std::uint64_t>(dtype_bits(dtype)) / 8;
}

std::uint64_t MergePlan::output_bytes() const {
  std::uint64_t total = 0;
  for (const auto& t : tensors)
    total += t.nbytes();
  return total;
}

std::uint64_t MergePlan::peak_memory_estimate(int threads_override,
                                              std::int64_t chunk_override) const {
  std::size_t inputs_max = 0;
  for (const auto& t : tensors)
    inputs_max = std::max(inputs_max, t.inputs.size() + (t.base ? 1 : 0));
  const auto threads = static_cast<std::uint64_t>(
      std::max(1, threads_override > 0 ? threads_override : options.threads));
  const std::int64_t chunk = chunk_override > 0 ? chunk_override : options.chunk_elements;
  // The most any one tensor's method holds (MethodSpec::memory_bytes); every
  // worker may be on such a tensor at once.
  std::uint64_t method_max = 0;
  for (const auto& t : tensors) {
    if (t.method == nullptr || t.method->memory_bytes == nullptr) continue;
    method_max =
        std::max(method_max, t.method->memory_bytes(t.shape, t.numel(), t.inputs.size(), chunk));
  }
  // LoRA sources hold their tensor's two factors in f32 (exec/sources.h).
  std::uint64_t lora_max = 0;
  for (const auto& t : tensors) {
    std::uint64_t sum = 0;
    if (t.base && t.base->lora) sum += lora_factor_bytes(*t.base->lora);
    for (const auto& in : t.inputs)
      if (in.lora) sum += lora_factor_bytes(*in.lora);
    lora_max = std::max(lora_max, sum);
  }
  method_max += lora_max;
  // An earlier recipe stage computed as it is read holds its own chunk
  // buffers and method memory (plan/stages.h), nested stages theirs too.
  std::uint64_t stage_max = 0;
  for (const auto& t : tensors) {
    std::uint64_t sum = 0;
    if (t.base) sum += stage_source_bytes(*t.base, chunk);
    for (const auto& in : t.inputs)
      sum += stage_source_bytes(in, chunk);
    stage_max = std::max(stage_max, sum);
  }
  method_max += stage_max;
  // Draws on a pool shared by the workers (MethodSpec::shared_bytes): each
  // worker may draw the largest, but together never more than the pool.
  std::uint64_t shared = 0;
  for (const auto& t : tensors) {
    if (t.method == nullptr || t.method->shared_bytes == nullptr) continue;
    const std::uint64_t most =
        threads * t.method->shared_bytes(t.shape, t.numel(), t.inputs.size(), chunk);
    shared = std::max(shared, std::min(most, t.method->shared_budget));
  }
  // Per worker, per chunk element: an f32 buffer per input (4 bytes each) and
  // one for the output (4), the sources' raw read buffer (8: up to f64) and
  // MLX codes, scales and biases (~1.25), the sink's raw output buffer (8);
  // then the method's memory and the thread's stack and malloc arena.
  constexpr std::uint64_t k_thread_bytes = 512u << 10;
  const std::uint64_t per_element = 4 * inputs_max + 4 + 8 + 2 + 8;
  const std::uint64_t per_thread =
      per_element * static_cast<std::uint64_t>(chunk) + method_max + k_thread_bytes;
  std::uint64_t headers = 0;
  for (const auto& m : models) {
    for (const auto& f : m.files())
      headers += f.header_size() * 2;  // JSON text + parsed entries
  }
  // The plans of the stages computed in the same pass, with their models' headers.
  std::set<const MergePlan*> seen;
  std::vector<const MergePlan*> pending;
  for (const auto& [name, stage] : options.stages)
    pending.push_back(stage->plan.get());
  while (!pending.empty()) {
    const MergePlan* p = pending.back();
    pending.pop_back();
    if (!seen.insert(p).second) continue;
    for (const auto& m : p->models) {
      for (const auto& f : m.files())
        headers += f.header_size() * 2;
    }
    headers += p->tensors.size() * sizeof(PlannedTensor);
    for (const auto& [name, stage] : p->options.stages)
      pending.push_back(stage->plan.get());
  }
  // + the process itself (code, shared libraries, allocator): 7 MiB, measured
  // as the peak RSS of `llmerge run` of linear at 1, 2 and 4 threads and at two
  // chunk sizes, less its buffers (tests: Api.MemoryEstimateBoundsTheMeasuredPeak);
  // 12 MiB since the binary also holds `llmerge serve`, whose cpp-httplib loads
  // OpenSSL, zlib and brotli at start (measured: about 4.2 MiB more).
  constexpr std::uint64_t k_process_bytes = 12u << 20;
  // A model's tokenizer.json is read whole as text (plan/checks.cpp counts its
  // ids as it parses; the output's side files are copied or rewritten from
  // it): 3.4 MiB for a 150 k-token vocabulary, more than a merge's buffers.
  std::uint64_t tokenizer_text = 0;
  for (const auto& m : models) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(m.path() / "tokenizer.json", ec);
    if (!ec) tokenizer_text = std::max<std::uint64_t>(tokenizer_text, size);
  }
  return threads * per_thread + shared + headers + tokenizer_text + k_process_bytes;
}

namespace plan_detail {

std::string shape_string(const std::vector<std::int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

bool is_embedding_name(std::string_view name) {
  return name.find("embed") != std::string_view::npos ||
         name.find("wte") != std::string_view::npos || name.find("wpe") != std::string_view::npos ||
         name.find("lm_head") != std::string_view::npos;
}

bool is_pre_weight(std::string_view name) {
  return name.find("lm_head") == std::string_view::npos && is_embedding_name(name);
}

// The tensor a model without `lm_head.weight` uses instead: its input embedding
// (mergekit's tied_names).
const TensorRef* tied_fallback(const Model& model, std::string_view name) {
  if (name.find("lm_head") == std::string_view::npos) return nullptr;
  for (std::string_view candidate : {"model.embed_tokens.weight", "transformer.wte.weight",
                                     "model.language_model.embed_tokens.weight",
                                     "embed_tokens.weight", "transformer.embed_tokens.weight"}) {
    if (const auto* ref = model.find(candidate)) return ref;
  }
  return nullptr;
}

}  // namespace plan_detail

using namespace plan_detail;

namespace {

// A slice after normalisation: `models:` configs become one slice.
struct NormSource {
  std::size_t model = 0;
  std::int64_t start = 0;
  std::int64_t end = 0;
  const ParameterMap* parameters = nullptr;  // nullptr: none
  SourceLocation location;
};

struct NormSlice {
  std::vector<NormSource> sources;
  std::optional<std::size_t> base;  // index into sources
  const ParameterMap* parameters = nullptr;
  SourceLocation location;
  const MethodSpec* method = nullptr;  // its own (llmerge's extension) or the top-level one
  SourceLocation method_location;
};

struct Planner {
  const MergeConfig& config;
  MergePlan& plan;
  Diagnostics diag;
  std::map<std::string, std::size_t> model_index;  // reference -> MergePlan::models index

  Planner(const MergeConfig& c, MergePlan& p) : config(c), plan(p), diag(c.file, &c) {}

  // ---------------------------------------------------------------- models

  void open_model(const std::string& ref, SourceLocation where) {
    throw_if_cancelled();  // Ctrl-C during planning (opening models reads every header)
    if (model_index.count(ref)) return;
    if (const auto stage = plan.options.stages.find(ref); stage != plan.options.stages.end()) {
      // An earlier recipe stage computed in this pass: its plan is its header.
      plan.models.push_back(stage_output_model(*stage->second, ref));
      plan.adapters.push_back(nullptr);
      plan.model_refs.push_back(ref);
      model_index[ref] = plan.models.size() - 1;
      return;
    }
    try {
      // "base+adapter": the base's folder, and a LoRA applied as it is read.
      const auto [base_ref, adapter_ref] = split_adapter_reference(ref);
      auto path = resolve_model_reference(base_ref, plan.options.base_dir);
      Model model = Model::open(path, ref);
      std::unique_ptr<Adapter> adapter;
      if (!adapter_ref.empty()) {
        auto adapter_path = resolve_model_reference(adapter_ref, plan.options.base_dir);
        adapter = std::make_unique<Adapter>(Adapter::open(adapter_path, adapter_ref));
        plan.notes.push_back(fmt::format(
            "'{}': {} LoRA adapter with {} update(s) and {} whole tensor(s), applied as the base "
            "is read",
            ref, adapter->format() == AdapterFormat::peft ? "PEFT" : "mlx-lm",
            adapter->modules().size(), adapter->replacements().size()));
      }
      plan.models.push_back(std::move(model));
      plan.adapters.push_back(std::move(adapter));
      plan.model_refs.push_back(ref);
      model_index[ref] = plan.models.size() - 1;
    } catch (const Error& e) {
      // "model 'x' not found; looked in: ..." names the model already.
      const std::string what = e.what();
      const bool named = what.starts_with(fmt::format("model '{}'", ref));
      diag.add(e.kind(), where, named ? what : fmt::format("model '{}': {}", ref, what));
    }
  }

  void open_models() {
    // The base first: it is the config donor and leads the model card's list.
    if (config.base_model) open_model(*config.base_model, config.base_model_location);
    for (const auto& m : config.models)
      open_model(m.model, m.location);
    for (const auto& s : config.slices) {
      for (const auto& src : s.sources)
        open_model(src.model, src.location);
      if (s.base_model) open_model(*s.base_model, s.base_model_location);
    }
    if (config.tokenizer_source && *config.tokenizer_source != "base" &&
        *config.tokenizer_source != "union") {
      open_model(*config.tokenizer_source, config.tokenizer_source_location);
    }
    diag.throw_if_any();  // nothing below makes sense without the models
  }

  // mlx-lm saves some architectures after its sanitize() step: stacked
  // `switch_mlp` experts, conv weights with moved axes, norms stored +1
  // (docs/formats.md §2b). Such a folder cannot be merged with one in
  // Hugging Face layout: same names, different meaning.
  static bool mlx_own_layout(const Model& model) {
    static const std::set<std::string> k_sanitized_types{
        "mixtral", "qwen3_next", "qwen3_5", "mamba",           "mamba2",
        "jamba",   "nemotron_h", "plamo2",  "recurrent_gemma", "granitemoehybrid"};
    bool mlx_file = false;
    for (const auto& f : model.files()) {
      auto it = f.metadata().find("format");
      mlx_file |= it != f.metadata().end() && it->second == "mlx";
    }
    if (!mlx_file) return false;
    const auto type = model.config_string("model_type");
    if (type && k_sanitized_types.count(*type)) return true;
    for (const auto& name : model.tensor_names()) {
      if (name.find(".switch_mlp.") != std::string::npos) return true;
    }
    return false;
  }

  void check_layouts() {
    std::optional<std::size_t> mlx, hf;
    for (std::size_t i = 0; i < plan.models.size(); ++i) {
      (mlx_own_layout(plan.models[i]) ? mlx : hf) = i;
    }
    if (mlx && hf) {
      diag.add(
          ErrorKind::unsupported, {},
          fmt::format("model '{}' was saved by mlx-lm in its own layout (after sanitize(): "
                      "stacked switch_mlp experts, moved conv axes or +1 norms) and model '{}' "
                      "is in Hugging Face layout; llmerge does not convert between the two. "
                      "Use models from the same source",
                      plan.model_refs[*mlx], plan.model_refs[*hf]));
    }
  }

  // Models whose hidden sizes differ cannot share a single output tensor, so
  // this one root cause is reported alone, before the per-tensor checks that
  // would otherwise fail on every tensor.
  void check_hidden_sizes() {
    std::optional<std::int64_t> first;
    std::size_t first_model = 0;
    for (std::size_t i = 0; i < plan.models.size(); ++i) {
      std::optional<std::int64_t> hidden;
      for (const char* key : {"hidden_size", "n_embd", "d_model"}) {
        if ((hidden = plan.models[i].config_int(key))) break;
      }
      if (!hidden) continue;
      if (!first) {
        first = hidden;
        first_model = i;
        continue;
      }
      if (*hidden == *first) continue;
      diag.add(ErrorKind::shape, {},
               fmt::format("hidden size {} in '{}'{} vs {} in '{}'{}: no weight merge can combine "
                           "these. Every merge method computes each output tensor element by "
                           "element from tensors of one shape, and a layer of width {} cannot "
                           "read the output of a layer of width {}, so their layers cannot be "
                           "stacked into one model either",
                           *first, plan.model_refs[first_model], model_summary(first_model),
                           *hidden, plan.model_refs[i], model_summary(i), *hidden, *first),
               {.hint = "merge models of the same architecture and hidden size, such as "
                        "fine-tunes of one base model (a Polish fine-tune of Mistral-7B with "
                        "another Mistral-7B fine-tune, say); `llmerge inspect MODEL` shows each "
                        "model's hidden size"});
      diag.throw_if_any();
    }
  }

  // " (qwen2, 64 layers, vocab 152064)", from config.json.
  std::string model_summary(std::size_t i) const {
    const Model& m = plan.models[i];
    std::vector<std::string> parts;
    if (auto type = m.config_string("model_type")) parts.push_back(*type);
    parts.push_back(fmt::format("{} layers", m.layers().count));
    if (auto vocab = m.config_int("vocab_size")) parts.push_back(fmt::format("vocab {}", *vocab));
    return fmt::format(" ({})", fmt::join(parts, ", "));
  }

  void check_architectures() {
    std::optional<std::string> first;
    std::size_t first_model = 0;
    for (std::size_t i = 0; i < plan.models.size(); ++i) {
      auto arch = plan.models[i].config_string("model_type");
      if (!arch) continue;
      if (!first) {
        first = arch;
        first_model = i;
      } else if (*arch != *first && !plan.options.allow_crimes) {
        diag.add(ErrorKind::shape, {},
                 fmt::format("models '{}' ({}) and '{}' ({}) have different architectures; "
                             "pass --allow-crimes to merge them anyway",
                             plan.model_refs[first_model], *first, plan.model_refs[i], *arch));
      }
    }
  }

  // ---------------------------------------------------------------- slices

  std::size_t model_of(const std::string& ref) const { return model_index.at(ref); }

  std::vector<NormSlice> normalize() {
    std::vector<NormSlice> slices;
    if (!config.models.empty()) {
      const bool uses_base = plan.method->base_use != MethodSpec::BaseUse::none;
      NormSlice slice;
      slice.method = plan.method;
      slice.method_location = config.merge_method_location;
      for (const auto& m : config.models) {
        const auto index = model_of(m.model);
        slice.sources.push_back(
            {index, 0, plan.models[index].layers().count, &m.parameters, m.location});
      }
      if (config.base_model) {
        const auto base = model_of(*config.base_model);
        auto it = std::find_if(slice.sources.begin(), slice.sources.end(),
                               [&](const NormSource& s) { return s.model == base; });
        if (it == slice.sources.end() && uses_base) {
          // mergekit: "Base model specified but not in input models - adding".
          slice.sources.push_back(
              {base, 0, plan.models[base].layers().count, nullptr, config.base_model_location});
          it = slice.sources.end() - 1;
        } else if (it == slice.sources.end()) {
          plan.notes.push_back(
              fmt::format("merge method '{}' does not use a base model; "
                          "base_model '{}' is ignored",
                          plan.method->name, *config.base_model));
        }
        if (uses_base) slice.base = static_cast<std::size_t>(it - slice.sources.begin());
      }
      slice.location = config.models.front().location;
      slices.push_back(std::move(slice));
    } else {
      for (std::size_t si = 0; si < config.slices.size(); ++si) {
        const auto& s = config.slices[si];
        NormSlice slice;
        slice.parameters = &s.parameters;
        slice.location = s.location;
        slice.method = plan.slice_methods[si];
        slice.method_location = config.slice_method_location(si);
        const bool uses_base = slice.method->base_use != MethodSpec::BaseUse::none;
        for (std::size_t k = 0; k < s.sources.size(); ++k) {
          const auto& src = s.sources[k];
          const auto index = model_of(src.model);
          const auto layers = plan.models[index].layers().count;
          if (!src.layer_range) {
            diag.add(ErrorKind::config, src.location,
                     fmt::format("slices[{}].sources[{}]: layer_range is required in a slice "
                                 "(model '{}' has {} layers: write layer_range: [0, {}])",
                                 si, k, src.model, layers, layers));
            continue;
          }
          auto [start, end] = *src.layer_range;
          if (start < 0 || end > layers || start >= end) {
            diag.add(ErrorKind::config, src.layer_range_location,
                     fmt::format("slices[{}].sources[{}]: layer_range [{}, {}] is past the end of "
                                 "model '{}' ({} layers)",
                                 si, k, start, end, src.model, layers));
            continue;
          }
          slice.sources.push_back({index, start, end, &src.parameters, src.location});
        }
        if (slice.sources.empty()) continue;
        const auto len = slice.sources.front().end - slice.sources.front().start;
        for (std::size_t k = 1; k < slice.sources.size(); ++k) {
          const auto& src = slice.sources[k];
          if (src.end - src.start != len) {
            diag.add(
                ErrorKind::config, src.location,
                fmt::format("slices[{}]: sources cover different numbers of layers ({} for "
                            "'{}', {} for '{}'); every source of a slice needs the same length",
                            si, len, plan.model_refs[slice.sources.front().model],
                            src.end - src.start, plan.model_refs[src.model]));
          }
        }
        const auto& base_ref = s.base_model ? s.base_model : config.base_model;
        if (base_ref && uses_base) {
          const auto base = model_of(*base_ref);
          auto it = std::find_if(slice.sources.begin(), slice.sources.end(),
                                 [&](const NormSource& x) { return x.model == base; });
          if (it == slice.sources.end()) {
            diag.add(ErrorKind::config, s.location,
                     fmt::format("slices[{}]: base model '{}' is not one of the slice's sources; "
                                 "add it with the layer_range to use as the base",
                                 si, *base_ref));
          } else {
            slice.base = static_cast<std::size_t>(it - slice.sources.begin());
          }
        }
        slices.push_back(std::move(slice));
      }
    }
    return slices;
  }

  void check_counts(const std::vector<NormSlice>& slices) {
    for (std::size_t si = 0; si < slices.size(); ++si) {
      const auto& s = slices[si];
      const auto& m = *s.method;
      const auto where = s.location;
      const std::string slice_name =
          config.slices.empty() ? "models" : fmt::format("slices[{}]", si);
      if (m.base_use == MethodSpec::BaseUse::required && !s.base) {
        diag.add(ErrorKind::config, s.method_location,
                 fmt::format("merge method '{}' needs a base_model (the model the others are "
                             "compared against); add `base_model: <model>`",
                             m.name));
        continue;
      }
      const std::size_t others = s.sources.size() - (s.base ? 1 : 0);
      if (others < m.models_min || (m.models_max > 0 && others > m.models_max)) {
        std::string want = m.models_max == m.models_min ? fmt::format("exactly {}", m.models_min)
                           : m.models_max == 0
                               ? fmt::format("at least {}", m.models_min)
                               : fmt::format("{} to {}", m.models_min, m.models_max);
        diag.add(ErrorKind::config, where,
                 fmt::format("{}: merge method '{}' takes {} model(s){}, but {} given", slice_name,
                             m.name, want, s.base ? " besides the base" : "", others));
      }
    }
  }

  // ---------------------------------------------------------------- tensors

  // Gathers the inputs of one output tensor from a slice, at source offset
  // `offset` (layer tensors) or as-is (`offset` < 0: tensors outside layers).
  void add_tensor(const NormSlice& slice, std::size_t slice_index, std::int64_t offset,
                  const std::string& out_name, const std::string& suffix, std::int64_t out_layer,
                  double t) {
    throw_if_cancelled();  // a large recipe plans for seconds; Ctrl-C must stop it at once
    PlannedTensor tensor;
    tensor.name = out_name;
    tensor.layer = out_layer;
    std::vector<const NormSource*> sources;  // parallel to gathered inputs
    std::optional<std::size_t> base_pos;
    std::vector<PlannedInput> gathered;
    bool missing = false;
    for (std::size_t k = 0; k < slice.sources.size(); ++k) {
      const auto& src = slice.sources[k];
      const Model& model = plan.models[src.model];
      std::string name =
          offset < 0 ? out_name
                     : fmt::format("{}.{}.{}", model.layers().prefix, src.start + offset, suffix);
      const TensorRef* ref = model.find(name);
      if (!ref && offset < 0) {
        ref = tied_fallback(model, name);
        if (ref) name = ref->info->name;
      }
      if (!ref) {
        diag.add(ErrorKind::shape, src.location,
                 fmt::format("model '{}' lacks tensors that the merge needs",
                             plan.model_refs[src.model]),
                 {.tensor = name,
                  .hint = "are the models of the same architecture? `llmerge inspect MODEL "
                          "--tensors` lists what each model holds"});
        missing = true;
        continue;
      }
      if (slice.base && *slice.base == k) base_pos = gathered.size();
      gathered.push_back({src.model, name, *ref, ref->shape()});
      attach_adapter(plan, gathered.back());
      sources.push_back(&src);
    }
    if (missing || gathered.empty()) return;

    const bool all_float = std::all_of(
        gathered.begin(), gathered.end(),
        [](const PlannedInput& in) { return dtype_is_mergeable_float(in.ref.dtype()); });
    if (!all_float) {
      if (slice.method->name != "passthrough" &&
          !refuse_unmergeable(out_name, gathered, *slice.method))
        return;
      plan_copy(std::move(tensor), gathered, base_pos);
      return;
    }
    if (config.tokenizer_source && is_token_table(out_name)) {
      // Rows are aligned to the output vocabulary later (plan/vocabulary.h);
      // only the widths must agree.
      if (!check_token_table_widths(out_name, gathered, sources)) return;
    } else if (!rectify_shapes(out_name, gathered, base_pos, *slice.method)) {
      return;
    }

    tensor.method = slice.method;
    tensor.shape = gathered.front().shape;
    tensor.dtype = output_dtype(gathered[base_pos ? *base_pos : 0].ref.dtype());
    const SourceLocation slice_loc = slice.location;
    for (std::size_t i = 0; i < gathered.size(); ++i) {
      if (base_pos && i == *base_pos) {
        tensor.base = gathered[i];
      } else {
        tensor.inputs.push_back(gathered[i]);
      }
    }
    std::vector<InputParameterSource> param_sources;
    for (std::size_t i = 0; i < gathered.size(); ++i) {
      if (base_pos && i == *base_pos) continue;
      param_sources.push_back({sources[i]->parameters, gathered[i].tensor, sources[i]->location});
    }
    resolve_parameters(config, *slice.method, slice.parameters, slice_loc, param_sources, out_name,
                       t, tensor.params, diag);
    (void)slice_index;
    plan.tensors.push_back(std::move(tensor));
  }

  // A tensor that is not F16/BF16/F32/F64 cannot go through a float merge.
  // Float8/4/6 (quantized weights) and integer or bool tensors named like
  // parameters (".weight", ".bias", embeddings) are refused: copying one
  // model's value into a merge would be silently wrong. Other integer and
  // bool tensors are buffers (position ids, masks), not meant to be merged:
  // they are copied, and the plan says so. Returns true to copy.
  bool refuse_unmergeable(const std::string& out_name, const std::vector<PlannedInput>& gathered,
                          const MethodSpec& method) {
    for (const auto& in : gathered) {
      const DType d = in.ref.dtype();
      if (dtype_is_mergeable_float(d)) continue;
      const bool integer = d == DType::BOOL || d == DType::U8 || d == DType::I8 ||
                           d == DType::I16 || d == DType::U16 || d == DType::I32 ||
                           d == DType::U32 || d == DType::I64 || d == DType::U64;
      const std::string_view name = out_name;
      const bool parameter_name =
          name.ends_with(".weight") || name.ends_with(".bias") || is_embedding_name(name);
      if (!integer || parameter_name) {
        diag.add(ErrorKind::unsupported, {},
                 fmt::format("tensor '{}' is {} in model '{}'; merge method '{}' merges only "
                             "F16, BF16, F32 and F64 weights, and copying one model's {} value "
                             "into a merge would be silently wrong. Convert the model to a float "
                             "dtype first (or use passthrough)",
                             out_name, dtype_name(d), plan.model_refs[in.model], method.name,
                             dtype_name(d)));
        return false;
      }
    }
    copied_buffers.push_back(
        fmt::format("'{}' ({})", out_name, dtype_name(gathered.front().ref.dtype())));
    return true;
  }

  // Non-float tensors (e.g. int64 position ids) are copied from the first input.
  void plan_copy(PlannedTensor tensor, const std::vector<PlannedInput>& gathered,
                 std::optional<std::size_t> base_pos) {
    const auto& src = gathered[base_pos ? *base_pos : 0];
    for (const auto& in : gathered) {
      if (in.ref.info->dtype != src.ref.info->dtype || in.shape != src.shape) {
        diag.add(ErrorKind::shape, {},
                 fmt::format("tensor '{}': {} {} in model '{}' but {} {} in model '{}'; "
                             "non-float tensors are copied and must agree",
                             tensor.name, dtype_name(src.ref.info->dtype), shape_string(src.shape),
                             plan.model_refs[src.model], dtype_name(in.ref.info->dtype),
                             shape_string(in.shape), plan.model_refs[in.model]));
        return;
      }
    }
    tensor.method = nullptr;
    tensor.shape = src.shape;
    tensor.dtype = src.ref.info->dtype;
    tensor.inputs.push_back(src);
    plan.tensors.push_back(std::move(tensor));
  }

  bool check_token_table_widths(const std::string& out_name,
                                const std::vector<PlannedInput>& gathered,
                                const std::vector<const NormSource*>& sources) {
    const auto& first = gathered.front();
    for (std::size_t i = 0; i < gathered.size(); ++i) {
      const auto& in = gathered[i];
      if (in.shape.size() == 2 && first.shape.size() == 2 && in.shape[1] == first.shape[1])
        continue;
      diag.add(ErrorKind::shape, sources[i]->location,
               fmt::format("embedding widths differ: tensor '{}' is {} in model '{}' but {} in "
                           "model '{}'; rows can be aligned to a new vocabulary, but every row "
                           "must have the same width",
                           out_name, shape_string(first.shape), plan.model_refs[first.model],
                           shape_string(in.shape), plan.model_refs[in.model]),
               {.tensor = out_name});
      return false;
    }
    return true;
  }

  // Embedding matrices of different vocab sizes are cut to a common shape as
  // mergekit does (docs/mergekit-semantics.md §1.2); any other shape
  // mismatch is an error naming both models.
  bool rectify_shapes(const std::string& out_name, std::vector<PlannedInput>& gathered,
                      std::optional<std::size_t> base_pos, const MethodSpec& method) {
    const auto& first = gathered[base_pos ? *base_pos : 0];
    bool same = std::all_of(gathered.begin(), gathered.end(),
                            [&](const PlannedInput& in) { return in.shape == first.shape; });
    if (same) return true;
    const bool all_2d = std::all_of(gathered.begin(), gathered.end(),
                                    [](const PlannedInput& in) { return in.shape.size() == 2; });
    if (is_embedding_name(out_name) && all_2d) {
      std::vector<std::int64_t> target = first.shape;
      if (method.rectify_to_common || !base_pos) {
        for (const auto& in : gathered) {
          target[0] = std::min(target[0], in.shape[0]);
          target[1] = std::min(target[1], in.shape[1]);
        }
      }
      for (const auto& in : gathered) {
        if (in.shape[0] < target[0] || in.shape[1] < target[1]) {
          diag.add(ErrorKind::shape, {},
                   fmt::format("tensor '{}': model '{}' has shape {}, smaller than the base "
                               "model's {}; task-vector methods need every model at least as "
                               "large as the base",
                               out_name, plan.model_refs[in.model], shape_string(in.shape),
                               shape_string(target)));
          return false;
        }
      }
      if (target[1] != first.shape[1]) {
        diag.add(ErrorKind::shape, {},
                 fmt::format("tensor '{}': embedding widths differ ({} in '{}' vs others); the "
                             "hidden sizes of the models differ",
                             out_name, first.shape[1], plan.model_refs[first.model]));
        return false;
      }
      for (auto& in : gathered)
        in.shape = target;
      rectified_vocab = target[0];
      plan.notes.push_back(
          fmt::format("tensor '{}': vocab sizes differ; rows cut to {} as "
                      "mergekit does",
                      out_name, target[0]));
      return true;
    }
    for (const auto& in : gathered) {
      if (in.shape == first.shape) continue;
      diag.add(
          ErrorKind::shape, {},
          fmt::format("tensor shapes differ between model '{}' and model '{}'{}",
                      plan.model_refs[first.model], plan.model_refs[in.model],
                      shape_hint(first, in)),
          {.tensor = out_name,
           .value = fmt::format("{} vs {}", shape_string(first.shape), shape_string(in.shape))});
      return false;
    }
    return true;
  }

  std::string shape_hint(const PlannedInput& a, const PlannedInput& b) const {
    auto hidden_a = plan.models[a.model].config_int("hidden_size");
    auto hidden_b = plan.models[b.model].config_int("hidden_size");
    if (hidden_a && hidden_b && *hidden_a != *hidden_b) {
      return fmt::format(" (hidden size {} vs {}: these models cannot be merged)", *hidden_a,
                         *hidden_b);
    }
    return " (different architectures or sizes cannot be merged)";
  }

  DType output_dtype(DType input) const {
    if (plan.options.out_dtype) return *plan.options.out_dtype;
    if (config.out_dtype) return *dtype_from_torch_name(*config.out_dtype);
    if (plan.options.dtype) return *plan.options.dtype;
    if (config.dtype) return *dtype_from_torch_name(*config.dtype);
    return input == DType::F64 ? DType::F32 : input;
  }

  // Every non-layer tensor name that any source of `slice` has.
  std::set<std::string> outside_names(const NormSlice& slice) const {
    std::set<std::string> names;
    for (const auto& src : slice.sources) {
      const Model& model = plan.models[src.model];
      const auto& prefix = model.layers().prefix;
      for (auto& name : model.tensor_names()) {
        if (!prefix.empty() && name.starts_with(prefix + ".")) continue;
        names.insert(std::move(name));
      }
    }
    return names;
  }

  // Layer suffixes ("mlp.up_proj.weight", ...) of one layer of a model, sorted.
  std::vector<std::string> layer_suffixes(const Model& model, std::int64_t layer) const {
    const std::string head = fmt::format("{}.{}.", model.layers().prefix, layer);
    std::vector<std::string> out;
    for (const auto& name : model.tensor_names()) {
      if (name.starts_with(head)) out.push_back(name.substr(head.size()));
    }
    return out;
  }

  void plan_tensors(const std::vector<NormSlice>& slices) {
    const Model& donor = plan.models[plan.donor];
    const std::string out_prefix =
        donor.layers().prefix.empty()
            ? plan.models[slices.front().sources.front().model].layers().prefix
            : donor.layers().prefix;

    // Embeddings first (from the first slice), then layers, then the rest (from the last slice).
    const auto pre = outside_names(slices.front());
    for (const auto& name : pre) {
      if (is_pre_weight(name)) add_tensor(slices.front(), 0, -1, name, "", -1, 0.0);
    }
    std::int64_t out_layer = 0;
    for (std::size_t si = 0; si < slices.size(); ++si) {
      const auto& slice = slices[si];
      const auto& lead = slice.sources.front();
      const std::int64_t n = lead.end - lead.start;
      for (std::int64_t offset = 0; offset < n; ++offset, ++out_layer) {
        const double t = n == 1 ? 1.0 : static_cast<double>(offset) / static_cast<double>(n - 1);
        LayerMapping mapping{out_layer, si, t, {}};
        for (const auto& src : slice.sources)
          mapping.sources.emplace_back(src.model, src.start + offset);
        plan.layer_map.push_back(std::move(mapping));
        // Every source's tensors, not just the lead's: a tensor that only some
        // models have (models of different architectures, --allow-crimes) is
        // reported as missing from the others rather than dropped unseen.
        std::set<std::string> suffixes;
        for (const auto& src : slice.sources) {
          for (auto& suffix : layer_suffixes(plan.models[src.model], src.start + offset))
            suffixes.insert(std::move(suffix));
        }
        for (const auto& suffix : suffixes) {
          add_tensor(slice, si, offset, fmt::format("{}.{}.{}", out_prefix, out_layer, suffix),
                     suffix, out_layer, t);
        }
      }
    }
    plan.out_layers = out_layer;
    const auto post = outside_names(slices.back());
    for (const auto& name : post) {
      if (is_pre_weight(name)) continue;
      // lm_head is optional: written only if some model of the last slice has one.
      if (name.find("lm_head") != std::string::npos) {
        bool any = false;
        for (const auto& src : slices.back().sources)
          any |= plan.models[src.model].find(name) != nullptr;
        if (!any) continue;
      }
      add_tensor(slices.back(), slices.size() - 1, -1, name, "", -1, 0.0);
    }
  }

  std::optional<std::int64_t> rectified_vocab;
  std::vector<std::string> copied_buffers;  // integer buffers copied unmerged, for a note
};

}  // namespace

MergePlan make_plan(const MergeConfig& config, const PlanSettings& options) {
  MergePlan plan;
  plan.config = config;
  plan.options = options;
  Planner planner(plan.config, plan);
  auto& diag = planner.diag;

  plan.notes = config.notes;
  resolve_methods(plan, diag);
  diag.throw_if_any();
  check_strict_mergekit(plan, diag);
  check_parameter_names(plan.config, *plan.method, plan.slice_methods, diag);
  planner.open_models();
  planner.check_hidden_sizes();
  planner.check_architectures();
  planner.check_layouts();
  check_adapters(plan, diag);
  auto slices = planner.normalize();
  diag.throw_if_any();
  planner.check_counts(slices);
  diag.throw_if_any();

  if (config.base_model) {
    plan.base_model = planner.model_of(*config.base_model);
    plan.donor = *plan.base_model;
  } else {
    // The first model in config order (mergekit's choice depends on hash order).
    plan.donor = slices.front().sources.front().model;
  }
  const auto round = options.dtype  ? options.dtype
                     : config.dtype ? dtype_from_torch_name(*config.dtype)
                                    : std::nullopt;
  if (round && *round != DType::F32) {
    plan.round_inputs = true;
    plan.compute_dtype_round = *round;
  }

  planner.plan_tensors(slices);
  if (!planner.copied_buffers.empty()) {
    const auto& list = planner.copied_buffers;
    std::string names;
    for (std::size_t i = 0; i < list.size() && i < 5; ++i)
      names += (i ? ", " : "") + list[i];
    if (list.size() > 5) names += fmt::format(" and {} more", list.size() - 5);
    plan.notes.push_back(fmt::format(
        "{} integer tensor(s) are buffers, not weights, and are copied unmerged from the first "
        "model that has them: {}",
        list.size(), names));
  }
  if (auto rows = plan_vocabulary(plan, diag)) planner.rectified_vocab = rows;
  link_stage_inputs(plan);
  check_donor_config(plan, diag);
  check_chunk_memory(plan, diag);
  if (plan.tensors.empty() && diag.empty()) {
    diag.add(ErrorKind::config, {}, "the merge produces no tensors");
  }
  assign_output_quantization(plan, diag);
  diag.throw_if_any();
  plan_plain_copies(plan);
  assign_sources_and_sinks(plan);
  plan.out_config = build_output_config(plan, planner.rectified_vocab);
  plan.tokenizer_model =
      plan.vocabulary ? plan.vocabulary->tokenizer_model : tokenizer_model_of(plan);
  plan.chat_template = resolve_chat_template(plan, diag);
  check_tokenizer_fits_embeddings(plan, diag);
  diag.throw_if_any();
  return plan;
}

}  // namespace llmerge
