// `llmerge fuse BASE --adapter A -o OUT`: mlx_lm.fuse's job (and peft's
// merge_and_unload): a passthrough merge of "BASE+A" (llmerge::fuse). The
// flags take mlx_lm.fuse's spellings too: --model, --adapter-path,
// --save-path, --dequantize.
#include <memory>

#include <fmt/core.h>

#include "command.h"
#include "llmerge/llmerge.h"
#include "run.h"
#include "table_options.h"

namespace llmerge::cli {

namespace {

struct FuseCommand {
  std::string model;
  std::string model_option;
  std::string adapter;
  TableOptions table;
  OutputArgs output;
  bool export_gguf = false;
  std::string upload_repo;
};

int run_fuse(const FuseCommand& c) {
  if (c.export_gguf)
    throw Error(ErrorKind::unsupported, "--export-gguf: writing GGUF is not supported");
  if (!c.upload_repo.empty())
    throw Error(ErrorKind::unsupported,
                fmt::format("--upload-repo: llmerge never uses the network; upload the output "
                            "with: hf upload {} OUT",
                            c.upload_repo));
  if (!c.model.empty() && !c.model_option.empty() && c.model != c.model_option)
    throw Error(ErrorKind::config, "give the model once: as BASE or with --model, not both");
  const std::string model = c.model.empty() ? c.model_option : c.model;
  if (model.empty()) throw Error(ErrorKind::config, "no model: give one as BASE or with --model");
  if (c.adapter.empty())
    throw Error(ErrorKind::config, "no adapter: give one with --adapter (a PEFT or mlx-lm folder)");
  MergeOptions options = c.table.options();
  const Plan p = plan(fuse_config(model, c.adapter), options.plan, run_cancel_token());
  return write_output(p, c.output, options);
}

const bool registered = register_command(
    {"fuse", "Fuse a LoRA adapter (PEFT or mlx-lm) into its base model, as mlx_lm.fuse", 45,
     [](CLI::App& app) {
       auto c = std::make_shared<FuseCommand>();
       app.add_option("base", c->model, "base model folder, .safetensors file or org/name");
       app.add_option("--model", c->model_option, "the base, as mlx_lm.fuse names it");
       app.add_option("--adapter,--adapter-path", c->adapter,
                      "adapter folder (PEFT adapter_config.json + adapter_model.safetensors, or "
                      "mlx-lm adapter_config.json + adapters.safetensors) or org/name");
       add_output_args(app, c->output, "save-path");
       c->table.add(app, "fuse");
       app.add_flag("--export-gguf", c->export_gguf, "mlx_lm.fuse's; refused (no GGUF output)");
       app.add_option("--upload-repo", c->upload_repo,
                      "mlx_lm.fuse's; refused: llmerge never uses the network");
       return [c] { return run_fuse(*c); };
     }});

}  // namespace

}  // namespace llmerge::cli
