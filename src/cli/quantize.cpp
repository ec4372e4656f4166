// `llmerge quantize IN -o OUT --bits 4`: convert one model to (or from) MLX
// quantization. It is a `passthrough` merge of one model, so it streams and
// writes atomically like any merge.
#include <memory>

#include <fmt/core.h>

#include "cli/command.h"
#include "cli/run.h"
#include "config/config.h"
#include "core/error.h"

namespace llmerge::cli {

namespace {

struct QuantizeCommand {
  std::string model;
  MergeOptions merge;
  OutputOptions output;
};

int run_quantize(QuantizeCommand c) {
  if (c.merge.quantize_bits == 0 && !c.merge.dequantize) {
    throw Error(ErrorKind::config,
                "say what to write: --bits N (MLX-quantized) or --dequantize (dense)");
  }
  // A quoted YAML scalar, so that any path is taken literally.
  const std::string yaml = fmt::format("merge_method: passthrough\nmodels:\n  - model: {}\n",
                                       nlohmann::json(c.model).dump());
  MergeConfig config = parse_config(yaml, "<llmerge quantize>");
  return write_output(plan_from_config(config, c.merge), c.output, c.merge);
}

const bool registered = register_command(
    {"quantize", "Write a model MLX-quantized (--bits) or dense (--dequantize)", 40,
     [](CLI::App& app) {
       auto c = std::make_shared<QuantizeCommand>();
       app.add_option("model", c->model, "model folder, .safetensors file or org/name")->required();
       app.add_option("out", c->output.out_positional, "output directory (or use -o)");
       add_output_options(app, c->output);
       app.add_option("--bits", c->merge.quantize_bits, "bits per weight: 2, 3, 4, 5, 6 or 8");
       app.add_option("--q-group-size", c->merge.q_group_size, "group size: 32, 64 or 128")
           ->capture_default_str();
       app.add_flag("--dequantize", c->merge.dequantize, "write dense weights");
       app.add_option("--dtype", c->merge.out_dtype, "dtype of the dense values (and of scales)");
       app.add_option("-j,--threads", c->merge.threads, "worker threads (default: all cores)");
       return [c] { return run_quantize(*c); };
     }});

}  // namespace

}  // namespace llmerge::cli
