// Which output tensors are written MLX-quantized, and the config.json keys
// mlx-lm reads to load them (docs/formats.md §2a, §2b and §2d).
#include <cmath>

#include <fmt/core.h>

#include "plan/planner_internal.h"
#include "plan/vocabulary.h"

namespace llmerge {

namespace {

// mlx-lm's quantize_model quantizes Linear and Embedding layers whose weight's
// last dimension divides by the group size; norms (1-D) never.
bool eligible(const PlannedTensor& t, const QuantParams& q) {
  return t.method && t.shape.size() == 2 && t.name.ends_with(".weight") &&
         t.shape.back() % q.group_size == 0 && dtype_is_mergeable_float(t.dtype) &&
         t.dtype != DType::F64;
}

// The quantization of a tensor's first quantized input, base first.
const QuantParams* input_quantization(const PlannedTensor& t) {
  if (t.base && t.base->ref.quant) return &t.base->ref.quant->params;
  for (const auto& in : t.inputs) {
    if (in.ref.quant) return &in.ref.quant->params;
  }
  return nullptr;
}

bool same(const QuantParams& a, const QuantParams& b) {
  return a.bits == b.bits && a.group_size == b.group_size && a.mode == b.mode;
}

nlohmann::json params_json(const QuantParams& q) {
  return {{"group_size", q.group_size},
          {"bits", q.bits},
          {"mode", std::string(quant_mode_name(q.mode))}};
}

}  // namespace

void assign_output_quantization(MergePlan& plan, Diagnostics& diag) {
  const auto& requested = plan.options.quantize;
  if (requested) {
    if (auto error = quant_params_error(*requested)) {
      diag.add(error->kind(), {}, fmt::format("quantization: {}", error->message()));
      return;
    }
    if (requested->mode != QuantMode::affine) {
      diag.add(ErrorKind::unsupported, {},
               fmt::format("--q-mode {}: writing this mode is not supported yet; use affine",
                           quant_mode_name(requested->mode)));
      return;
    }
  }
  for (auto& t : plan.tensors) {
    const QuantParams* q = requested ? &*requested : nullptr;
    if (!q && !plan.options.dequantize) q = input_quantization(t);
    if (!q || !eligible(t, *q)) continue;
    if (q->mode != QuantMode::affine) {
      diag.add(ErrorKind::unsupported, {},
               fmt::format("tensor '{}': its input is {}-quantized, and writing {} is not "
                           "supported yet; pass --dequantize or -q (--q-bits N)",
                           t.name, quant_mode_name(q->mode), quant_mode_name(q->mode)));
      continue;
    }
    t.quantize = *q;
  }
}

void plan_plain_copies(MergePlan& plan) {
  for (auto& t : plan.tensors) {
    if (!t.method || t.method->name != "passthrough" || t.quantize || t.inputs.size() != 1)
      continue;
    const PlannedInput& in = t.inputs.front();
    const bool unscaled = std::isnan(t.params.model_value(0, "scale"));
    // A stage output (one-pass recipes) has no bytes to copy; it is computed.
    const bool same_bytes = !in.gather && !in.ref.quant && !in.lora && !in.stage &&
                            in.ref.info->dtype == t.dtype && in.shape == in.ref.info->shape;
    // Inputs are rounded to `dtype` whenever they are in another format (the executor's rule).
    const bool rounding = plan.round_inputs && in.ref.info->dtype != plan.compute_dtype_round;
    // Converting to f32 and back would give the same bits: copy them instead.
    if (unscaled && same_bytes && !rounding) t.method = nullptr;
  }
}

void update_config_quantization(const MergePlan& plan, nlohmann::json& cfg) {
  cfg.erase("quantization");
  cfg.erase("quantization_config");
  const QuantParams* global = nullptr;
  for (const auto& t : plan.tensors) {
    if (t.quantize) {
      global = &*t.quantize;
      break;
    }
  }
  if (!global) return;
  nlohmann::json q = params_json(*global);
  // Per-module entries where a tensor differs from the global parameters,
  // as mlx-lm's mixed recipes write them.
  for (const auto& t : plan.tensors) {
    if (!t.quantize || same(*t.quantize, *global)) continue;
    q[t.name.substr(0, t.name.size() - std::string_view(".weight").size())] =
        params_json(*t.quantize);
  }
  cfg["quantization"] = q;
  cfg["quantization_config"] = q;
}

void assign_sources_and_sinks(MergePlan& plan) {
  auto choose = [](PlannedInput& in) {
    const auto& stored = in.ref.info->shape;
    if (in.stage) {
      in.source = SourceKind::stage_output;  // a leading sub-matrix is read by the stage source
    } else if (in.ref.quant) {
      in.source = SourceKind::mlx_dequantize;
    } else if (in.shape.size() == 2 && stored.size() == 2 && in.shape[1] != stored[1]) {
      in.source = SourceKind::sub_matrix;
    } else {
      in.source = SourceKind::dense;
    }
  };
  // A row gather keeps its kind; its tables are read as stored.
  auto choose_or_tables = [&](PlannedInput& in) {
    if (!in.gather) return choose(in);
    if (in.gather_slot == 0) {
      for (auto& table : in.gather->tables)
        choose(table);
    }
  };
  for (auto& t : plan.tensors) {
    t.sink = t.quantize ? SinkKind::mlx_quantize : SinkKind::dense;
    if (t.base) choose_or_tables(*t.base);
    for (auto& in : t.inputs)
      choose_or_tables(in);
  }
}

}  // namespace llmerge
