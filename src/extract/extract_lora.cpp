#include "extract/extract_lora.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <regex>
#include <set>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "core/cancel.h"
#include "exec/sources.h"
#include "extract/svd.h"
#include "merge/kernels/kernels.h"
#include "merge/random.h"
#include "output/model_writer.h"
#include "output/run_merge.h"
#include "plan/diagnostics.h"

namespace llmerge {

namespace {

namespace fs = std::filesystem;

enum class Action { lora, whole, skip };

struct Module {
  std::string name;    // tensor name, "model.layers.0.mlp.up_proj.weight"
  std::string module;  // without ".weight"
  Action action = Action::skip;
  bool transposed = false;  // PEFT embedding: the SVD is of D^T (lora_embedding_A/B)
  const TensorRef* ft = nullptr;
  const TensorRef* base = nullptr;
  std::int64_t rows = 0, cols = 0;  // of the decomposed matrix (D, or D^T)
  std::int64_t rank = 0;
  std::size_t first_tensor = 0;  // index of its first TensorSpec
};

bool is_embedding_module(std::string_view module) {
  return module.ends_with("embed_tokens") || module.ends_with("wte") || module.ends_with("wpe") ||
         module.ends_with("lm_head") || module.ends_with("embed_in") ||
         module.ends_with("embed_out");
}

std::string last_part(const std::string& module) {
  const auto dot = module.rfind('.');
  return dot == std::string::npos ? module : module.substr(dot + 1);
}

std::vector<std::regex> compile(const std::vector<std::string>& patterns, const char* flag) {
  std::vector<std::regex> out;
  for (const auto& p : patterns) {
    try {
      out.emplace_back(p, std::regex::ECMAScript);
    } catch (const std::regex_error&) {
      throw Error(ErrorKind::config, fmt::format("{} '{}' is not a regular expression", flag, p));
    }
  }
  return out;
}

bool any_search(const std::vector<std::regex>& list, const std::string& s) {
  return std::any_of(list.begin(), list.end(),
                     [&](const std::regex& re) { return std::regex_search(s, re); });
}

// The whole tensor in f32, through the executor's sources (dense or dequantized).
std::vector<float> read_all(const TensorRef& ref) {
  PlannedInput in;
  in.ref = ref;
  in.shape = ref.shape();
  in.source = ref.quant ? SourceKind::mlx_dequantize : SourceKind::dense;
  std::int64_t n = 1;
  for (auto d : in.shape)
    n *= d;
  auto source = make_source(in);
  SourceScratch scratch(k_reduce_block);
  std::vector<float> out(static_cast<std::size_t>(n));
  for (std::int64_t begin = 0; begin < n; begin += k_reduce_block) {
    const std::int64_t take = std::min<std::int64_t>(k_reduce_block, n - begin);
    source->read(begin, take, out.data() + begin, scratch);
  }
  return out;
}

void write_f32(ModelWriter& writer, std::size_t index, const std::vector<float>& values) {
  const DType dtype = writer.tensors()[index].dtype;
  std::vector<unsigned char> raw(values.size() * static_cast<std::size_t>(dtype_bits(dtype) / 8));
  kernels::store_from_f32(dtype, values.data(), raw.data(), values.size());
  writer.write(index, 0, raw.data(), raw.size());
}

// A tensor saved whole, chunk by chunk: an embedding never sits in memory.
void copy_streamed(ModelWriter& writer, std::size_t index, const TensorRef& ref) {
  PlannedInput in;
  in.ref = ref;
  in.shape = ref.shape();
  in.source = ref.quant ? SourceKind::mlx_dequantize : SourceKind::dense;
  const std::int64_t n = static_cast<std::int64_t>(
      writer.tensors()[index].nbytes() /
      static_cast<std::uint64_t>(dtype_bits(writer.tensors()[index].dtype) / 8));
  const DType dtype = writer.tensors()[index].dtype;
  const auto item = static_cast<std::size_t>(dtype_bits(dtype) / 8);
  auto source = make_source(in);
  SourceScratch scratch(k_reduce_block);
  std::vector<float> values(static_cast<std::size_t>(k_reduce_block));
  std::vector<unsigned char> raw(values.size() * item);
  for (std::int64_t begin = 0; begin < n; begin += k_reduce_block) {
    const auto take = static_cast<std::size_t>(std::min<std::int64_t>(k_reduce_block, n - begin));
    source->read(begin, static_cast<std::int64_t>(take), values.data(), scratch);
    kernels::store_from_f32(dtype, values.data(), raw.data(), take);
    writer.write(index, static_cast<std::uint64_t>(begin) * item, raw.data(), take * item);
  }
}

std::vector<float> transpose(const std::vector<float>& m, std::int64_t rows, std::int64_t cols) {
  std::vector<float> t(m.size());
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j)
      t[static_cast<std::size_t>(j * rows + i)] = m[static_cast<std::size_t>(i * cols + j)];
  return t;
}

double frobenius_squared(const std::vector<float>& m) {
  double s = 0;
  for (float x : m)
    s += static_cast<double>(x) * x;
  return s;
}

}  // namespace

ExtractLoraResult run_extract_lora(const std::string& model_ref, const std::string& base_ref,
                                   const std::string& out_dir, const ExtractLoraOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  const CancelScope cancel_scope(o.cancel);
  if (o.max_rank < 1) throw Error(ErrorKind::config, "--max-rank must be at least 1");
  if (!(o.sv_epsilon >= 0)) throw Error(ErrorKind::config, "--sv-epsilon must be at least 0");
  for (const auto* ref : {&model_ref, &base_ref}) {
    if (ref->find('+') != std::string::npos)
      throw Error(ErrorKind::unsupported,
                  fmt::format("'{}': extract-lora takes plain models; fuse the adapter first "
                              "(llmerge fuse)",
                              *ref));
  }
  const auto include = compile(o.include_regexes, "--include-regex");
  const auto exclude = compile(o.exclude_regexes, "--exclude-regex");
  const bool mlx = o.format == AdapterFileFormat::mlx;

  // The two models, held as a plan's so that the output-path checks apply.
  MergePlan holder;
  const fs::path base_dir = o.base_dir;
  holder.models.push_back(Model::open(resolve_model_reference(model_ref, base_dir), model_ref));
  holder.models.push_back(Model::open(resolve_model_reference(base_ref, base_dir), base_ref));
  holder.model_refs = {model_ref, base_ref};
  holder.adapters.resize(2);
  const Model& ft = holder.models[0];
  const Model& base = holder.models[1];
  check_output_path(holder, out_dir);

  // ---- plan: classify every tensor and check it against the base.
  Diagnostics diag("extract-lora");
  std::vector<Module> modules;
  std::vector<std::string> notes;
  for (const auto& name : ft.tensor_names()) {
    Module m;
    m.name = name;
    m.ft = ft.find(name);
    if (!dtype_is_mergeable_float(m.ft->dtype())) continue;  // buffers
    const bool weight = name.ends_with(".weight");
    m.module = weight ? name.substr(0, name.size() - 7) : name;
    const std::string part = last_part(m.module);
    const bool saved =
        std::find_if(o.save_modules.begin(), o.save_modules.end(), [&](const std::string& s) {
          return s == m.module || s == part;
        }) != o.save_modules.end();
    const bool excluded = any_search(exclude, m.module);
    const bool wanted = (include.empty() || any_search(include, m.module)) && !excluded;
    const bool matrix = weight && m.ft->shape().size() == 2;
    const bool embedding = matrix && is_embedding_module(m.module);
    m.base = base.find(name);
    const bool same_shape = m.base && m.base->shape() == m.ft->shape();
    if (saved || (embedding && !excluded && (!o.embed_lora || !same_shape))) {
      m.action = Action::whole;
    } else if (!wanted) {
      m.action = Action::skip;
    } else if (matrix) {
      m.action = Action::lora;
    } else {
      m.action = o.skip_undecomposable ? Action::skip : Action::whole;
    }
    if (m.action == Action::lora) {
      if (!m.base) {
        diag.add(ErrorKind::shape, {},
                 fmt::format("the base '{}' lacks tensors of the model", base_ref),
                 {.tensor = name, .hint = "is BASE the model MODEL was fine-tuned from?"});
        continue;
      }
      if (!same_shape) {
        diag.add(ErrorKind::shape, {}, "tensor shapes differ between the model and the base",
                 {.tensor = name,
                  .value = fmt::format("[{}, {}] vs [{}, {}]", m.ft->shape()[0], m.ft->shape()[1],
                                       m.base->shape()[0], m.base->shape()[1])});
        continue;
      }
      // PEFT's Embedding LoRA decomposes D^T (lora_embedding_A [r, vocab]).
      m.transposed = !mlx && embedding && m.module.find("lm_head") == std::string::npos;
      m.rows = m.ft->shape()[m.transposed ? 1 : 0];
      m.cols = m.ft->shape()[m.transposed ? 0 : 1];
      m.rank = std::min({o.max_rank, m.rows, m.cols});
    }
    if (mlx && m.action != Action::lora) {
      if (m.action == Action::whole)
        notes.push_back(
            fmt::format("'{}' is left out: mlx-lm adapters hold only lora_a/lora_b", name));
      m.action = Action::skip;
    }
    if (mlx && m.action == Action::lora && ft.layers().prefix.empty()) m.action = Action::skip;
    if (mlx && m.action == Action::lora && !m.module.starts_with(ft.layers().prefix + ".")) {
      notes.push_back(
          fmt::format("'{}' is left out: mlx-lm applies adapters to the layers only", name));
      m.action = Action::skip;
    }
    modules.push_back(std::move(m));
  }
  diag.throw_if_any();
  const auto lora_count = static_cast<std::size_t>(std::count_if(
      modules.begin(), modules.end(), [](const Module& m) { return m.action == Action::lora; }));
  if (lora_count == 0 && std::none_of(modules.begin(), modules.end(),
                                      [](const Module& m) { return m.action == Action::whole; }))
    throw Error(ErrorKind::config, "nothing to extract: every tensor is excluded or skipped");

  // ---- ranks limited by --sv-epsilon need the singular values first.
  if (o.sv_epsilon > 0) {
    for (auto& m : modules) {
      if (m.action != Action::lora) continue;
      throw_if_cancelled();
      std::vector<float> d = read_all(*m.ft);
      const std::vector<float> b = read_all(*m.base);
      for (std::size_t i = 0; i < d.size(); ++i)
        d[i] -= b[i];
      const auto s = singular_values(d.data(), m.ft->shape()[0], m.ft->shape()[1]);
      const auto kept =
          std::count_if(s.begin(), s.end(), [&](float x) { return x > o.sv_epsilon; });
      m.rank = std::max<std::int64_t>(1, std::min<std::int64_t>(m.rank, kept));
    }
  }
  std::int64_t rank_max = 0;
  for (const auto& m : modules)
    if (m.action == Action::lora) rank_max = std::max(rank_max, m.rank);

  // ---- the adapter file's layout, fixed before any data.
  std::vector<TensorSpec> specs;
  const std::string prefix = mlx ? "" : "base_model.model.";
  for (auto& m : modules) {
    m.first_tensor = specs.size();
    const DType dtype = m.ft->dtype() == DType::F64 ? DType::F32 : m.ft->dtype();
    if (m.action == Action::whole) {
      specs.push_back({prefix + m.name, dtype, m.ft->shape()});
    } else if (m.action == Action::lora && mlx) {
      // lora_a [in, r], lora_b [r, out], one rank for all (zero-padded).
      specs.push_back({m.module + ".lora_a", dtype, {m.cols, rank_max}});
      specs.push_back({m.module + ".lora_b", dtype, {rank_max, m.rows}});
    } else if (m.action == Action::lora) {
      const std::string kind = m.transposed ? ".lora_embedding_" : ".lora_";
      const std::string tail = m.transposed ? "" : ".weight";
      specs.push_back({prefix + m.module + kind + "A" + tail, dtype, {m.rank, m.cols}});
      specs.push_back({prefix + m.module + kind + "B" + tail, dtype, {m.rows, m.rank}});
    }
  }
  ModelWriterOptions wo;
  wo.shard_size_max = std::numeric_limits<std::uint64_t>::max();  // never sharded, as mergekit
  wo.force = o.force;
  wo.single_file_name = mlx ? "adapters.safetensors" : "adapter_model.safetensors";
  wo.note = o.note;
  ModelWriter writer(out_dir, specs, wo);

  // ---- one module at a time.
  ExtractLoraResult result;
  result.output = out_dir;
  double error2 = 0;
  double total2 = 0;
  std::size_t done = 0;
  std::set<std::string> targets;
  std::set<std::string> whole_parts;
  for (const auto& m : modules) {
    throw_if_cancelled();
    if (m.action == Action::skip) {
      ++result.skipped;
    } else if (m.action == Action::whole) {
      copy_streamed(writer, m.first_tensor, *m.ft);
      whole_parts.insert(last_part(m.module));
      ++result.whole_modules;
    } else {
      std::vector<float> d = read_all(*m.ft);
      {
        const std::vector<float> b = read_all(*m.base);
        for (std::size_t i = 0; i < d.size(); ++i)
          d[i] -= b[i];
      }
      if (m.transposed) d = transpose(d, m.cols, m.rows);
      const double d2 = frobenius_squared(d);
      LowRank lr = truncated_svd(d.data(), m.rows, m.cols, m.rank, o.distribute_scale,
                                 hash_tensor_name(m.name));
      if (lr.randomized) {
        // The residual itself: the probes see only the leading subspace.
        std::vector<float> r = d;
        for (std::int64_t i = 0; i < m.rows; ++i)
          for (std::int64_t j = 0; j < m.cols; ++j) {
            float acc = 0;
            for (std::int64_t k = 0; k < m.rank; ++k)
              acc += lr.b[static_cast<std::size_t>(i * m.rank + k)] *
                     lr.a[static_cast<std::size_t>(k * m.cols + j)];
            r[static_cast<std::size_t>(i * m.cols + j)] -= acc;
          }
        error2 += frobenius_squared(r);
        ++result.randomized;
      } else {
        double kept = 0;
        for (std::int64_t k = 0; k < m.rank; ++k)
          kept += static_cast<double>(lr.singular[static_cast<std::size_t>(k)]) *
                  lr.singular[static_cast<std::size_t>(k)];
        error2 += std::max(0.0, d2 - kept);
      }
      total2 += d2;
      if (mlx) {
        // a = A^T [cols, R], b = B^T [R, rows], ranks past m.rank zero.
        std::vector<float> a(static_cast<std::size_t>(m.cols * rank_max), 0.0F);
        std::vector<float> b(static_cast<std::size_t>(rank_max * m.rows), 0.0F);
        for (std::int64_t k = 0; k < m.rank; ++k) {
          for (std::int64_t j = 0; j < m.cols; ++j)
            a[static_cast<std::size_t>(j * rank_max + k)] =
                lr.a[static_cast<std::size_t>(k * m.cols + j)];
          for (std::int64_t i = 0; i < m.rows; ++i)
            b[static_cast<std::size_t>(k * m.rows + i)] =
                lr.b[static_cast<std::size_t>(i * m.rank + k)];
        }
        write_f32(writer, m.first_tensor, a);
        write_f32(writer, m.first_tensor + 1, b);
        // The module's path inside its layer ("self_attn.q_proj"), as mlx-lm's keys.
        const std::string in_layer = m.module.substr(ft.layers().prefix.size() + 1);
        targets.insert(in_layer.substr(in_layer.find('.') + 1));
      } else {
        write_f32(writer, m.first_tensor, lr.a);
        write_f32(writer, m.first_tensor + 1, lr.b);
        targets.insert(last_part(m.module));
      }
      ++result.lora_modules;
    }
    ++done;
    if (o.progress) o.progress(done, modules.size(), m.name);
  }

  // ---- the config, as mergekit-extract-lora / mlx_lm.lora write them.
  nlohmann::json config;
  if (mlx) {
    config = {{"fine_tune_type", "lora"},
              {"num_layers", ft.layers().count},
              {"lora_parameters",
               {{"rank", rank_max},
                {"scale", 1.0},
                {"dropout", 0.0},
                {"keys", std::vector<std::string>(targets.begin(), targets.end())}}}};
  } else {
    nlohmann::json pattern = nlohmann::json::object();
    for (const auto& m : modules)
      if (m.action == Action::lora && m.rank != rank_max) pattern[m.module] = m.rank;
    std::vector<std::string> to_save(whole_parts.begin(), whole_parts.end());
    config = {
        {"base_model_name_or_path", base_ref},
        {"peft_type", "LORA"},
        {"use_rslora", false},
        {"target_modules", std::vector<std::string>(targets.begin(), targets.end())},
        {"modules_to_save", to_save.empty() ? nlohmann::json(nullptr) : nlohmann::json(to_save)},
        {"task_type", "CAUSAL_LM"},
        {"r", rank_max},
        {"lora_alpha", rank_max},
        {"rank_pattern", pattern},
        {"alpha_pattern", pattern},
        {"lora_dropout", 0.0},
        {"fan_in_fan_out", false},
        {"bias", "none"},
        {"inference_mode", true}};
  }
  writer.write_file("adapter_config.json", config.dump(4) + "\n");
  writer.write_file("README.md",
                    fmt::format("---\nlibrary_name: {}\ntags:\n- llmerge\n- lora\n---\n"
                                "# LoRA adapter\n\nExtracted with `llmerge extract-lora` from "
                                "the difference between `{}` and its base `{}`: rank {} at "
                                "most.\n",
                                mlx ? "mlx" : "peft", model_ref, base_ref, rank_max));
  writer.commit();
  for (const auto& n : notes)
    if (o.note) o.note(n);
  result.rank = rank_max;
  for (const auto& s : specs)
    result.bytes += s.nbytes();
  result.relative_error = total2 > 0 ? std::sqrt(error2 / total2) : 0;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace llmerge
