#include "cli/merge_options.h"

#include <fmt/core.h>

#include "config/config.h"
#include "core/error.h"
#include "exec/executor.h"
#include "output/model_writer.h"

namespace llmerge::cli {

namespace {

std::optional<DType> parse_dtype_flag(const std::string& value, const char* flag) {
  if (value.empty()) return std::nullopt;
  auto t = dtype_from_torch_name(value);
  if (!t) {
    throw Error(
        ErrorKind::config,
        fmt::format("{} '{}' is not a dtype llmerge writes; use bfloat16, float16 or float32", flag,
                    value));
  }
  return t;
}

}  // namespace

void add_merge_options(CLI::App& app, MergeOptions& o) {
  app.add_option("config", o.config_path, "mergekit YAML config")->required();
  app.add_option("--dtype", o.dtype, "compute/input dtype, overriding the config's `dtype`");
  app.add_option("--out-dtype", o.out_dtype, "saved dtype, overriding the config's `out_dtype`");
  app.add_flag("--allow-crimes", o.allow_crimes, "allow merging models of different architectures");
  app.add_option("--out-shard-size", o.shard_size,
                 "largest output shard: 5B (mergekit's default), 500MB, 2GiB, ...")
      ->capture_default_str();
  app.add_option("-j,--threads", o.threads, "worker threads (default: all cores)");
  app.add_option("--chunk-elements", o.chunk_elements,
                 "elements per streamed chunk (rounded up to a multiple of 65536)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--random-seed", o.seed, "seed for random methods (DARE); fixed by default")
      ->capture_default_str();
  auto* quantize = app.add_option("--quantize", o.quantize_bits,
                                  "write MLX-quantized weights with this many bits (2-6, 8)");
  app.add_option("--q-group-size", o.q_group_size, "MLX quantization group size (32, 64, 128)")
      ->capture_default_str();
  app.add_option("--q-mode", o.q_mode, "MLX quantization mode (affine)")->capture_default_str();
  app.add_flag("--dequantize", o.dequantize,
               "write dense weights even when the inputs are MLX-quantized")
      ->excludes(quantize);
}

Plan plan_from_options(const MergeOptions& o) {
  return plan_from_config(load_config(o.config_path), o);
}

Plan plan_from_config(const MergeConfig& config, const MergeOptions& o) {
  PlanOptions options;
  options.dtype = parse_dtype_flag(o.dtype, "--dtype");
  options.out_dtype = parse_dtype_flag(o.out_dtype, "--out-dtype");
  options.allow_crimes = o.allow_crimes;
  options.shard_size_max = parse_shard_size(o.shard_size);
  options.threads = o.threads > 0 ? o.threads : default_thread_count();
  options.chunk_elements = o.chunk_elements;
  options.seed = o.seed;
  if (o.quantize_bits > 0) {
    options.quantize = QuantParams{o.quantize_bits, o.q_group_size, parse_quant_mode(o.q_mode)};
  }
  options.dequantize = o.dequantize;
  return make_plan(config, options);
}

}  // namespace llmerge::cli
