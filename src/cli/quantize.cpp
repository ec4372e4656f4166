// `llmerge quantize IN -o OUT --bits 4`: convert one model to (or from) MLX
// quantization: a passthrough merge of one model (llmerge::quantize).
#include <memory>

#include <fmt/core.h>

#include "command.h"
#include "llmerge/llmerge.h"
#include "run.h"
#include "table_options.h"

namespace llmerge::cli {

namespace {

struct QuantizeCommand {
  std::string model;
  TableOptions table;
  OutputArgs output;
};

int run_quantize(const QuantizeCommand& c) {
  MergeOptions options = c.table.options();
  if (options.plan.quantize == 0 && !options.plan.dequantize) {
    throw Error(ErrorKind::config,
                "say what to write: --bits N (MLX-quantized) or --dequantize (dense)");
  }
  const Plan p = plan(quantize_config(c.model), options.plan, run_cancel_token());
  return write_output(p, c.output, options);
}

const bool registered = register_command(
    {"quantize", "Write a model MLX-quantized (--bits) or dense (--dequantize)", 40,
     [](CLI::App& app) {
       auto c = std::make_shared<QuantizeCommand>();
       app.add_option("model", c->model, "model folder, .safetensors file or org/name")->required();
       add_output_args(app, c->output);
       c->table.add(app, "quantize");
       return [c] { return run_quantize(*c); };
     }});

}  // namespace

}  // namespace llmerge::cli
