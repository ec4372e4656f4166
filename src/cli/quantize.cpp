// `llmerge quantize IN -o OUT -q`: convert one model to (or from) MLX
// quantization: a passthrough merge of one model (llmerge::quantize).
// The flags are mlx_lm.convert's: -q/--quantize, --q-bits (default 4),
// --q-group-size, --q-mode, -d/--dequantize, --hf-path for IN and
// --mlx-path for OUT.
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
  std::string hf_path;
  TableOptions table;
  OutputArgs output;
  bool trust_remote_code = false;
  std::string quant_predicate;  // mlx_lm.convert's, refused
  std::string upload_repo;      // mlx_lm.convert's, refused
};

int run_quantize(const QuantizeCommand& c) {
  if (!c.quant_predicate.empty()) {
    throw Error(ErrorKind::unsupported,
                fmt::format("--quant-predicate {}: mixed-bit recipes are not supported; every "
                            "quantized weight gets --q-bits",
                            c.quant_predicate));
  }
  if (!c.upload_repo.empty()) {
    throw Error(ErrorKind::unsupported,
                fmt::format("--upload-repo: llmerge never uses the network; upload the output "
                            "with: hf upload {} OUT",
                            c.upload_repo));
  }
  MergeOptions options = c.table.options();
  if (!options.plan.quantize && !options.plan.dequantize) {
    throw Error(ErrorKind::config,
                "say what to write: -q (MLX-quantized, 4 bits unless --q-bits says otherwise) or "
                "-d (dense)");
  }
  if (!c.model.empty() && !c.hf_path.empty() && c.model != c.hf_path) {
    throw Error(ErrorKind::config, "give the model once: as IN or with --hf-path, not both");
  }
  const std::string model = c.model.empty() ? c.hf_path : c.model;
  if (model.empty()) throw Error(ErrorKind::config, "no model: give one as IN or with --hf-path");
  if (c.trust_remote_code && !c.output.quiet) {
    fmt::print(stderr,
               "note: --trust-remote-code has no effect: llmerge never runs a model's code\n");
  }
  const Plan p = plan(quantize_config(model), options.plan, run_cancel_token());
  return write_output(p, c.output, options);
}

const bool registered = register_command(
    {"quantize", "Write a model MLX-quantized (-q, as mlx_lm.convert) or dense (-d)", 40,
     [](CLI::App& app) {
       auto c = std::make_shared<QuantizeCommand>();
       app.add_option("in", c->model, "model folder, .safetensors file or org/name (or --hf-path)");
       app.add_option("--hf-path,--model", c->hf_path, "the model, as mlx_lm.convert names it");
       add_output_args(app, c->output, "mlx-path");
       c->table.add(app, "quantize");
       app.add_flag("--trust-remote-code,!--no-trust-remote-code", c->trust_remote_code,
                    "mlx_lm.convert's; no effect: llmerge never runs a model's code");
       app.add_option("--quant-predicate", c->quant_predicate,
                      "mlx_lm.convert's mixed-bit recipes; refused (not supported)");
       app.add_option("--upload-repo", c->upload_repo,
                      "mlx_lm.convert's; refused: llmerge never uses the network");
       return [c] { return run_quantize(*c); };
     }});

}  // namespace

}  // namespace llmerge::cli
