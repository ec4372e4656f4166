// `llmerge inspect MODEL [--tensors] [--json]`: what a model folder holds,
// from config.json and the safetensors headers (llmerge::inspect).
#include <memory>

#include <fmt/core.h>

#include "command.h"
#include "llmerge/llmerge.h"
#include "llmerge/text.h"

namespace llmerge::cli {

namespace {

struct InspectArgs {
  std::string model;
  bool tensors = false;
  bool json = false;
};

const bool registered = register_command({
    .name = "inspect",
    .help = "Show a model's architecture, layers, dtypes, size and shards (reads headers only)",
    .order = 50,
    .setup =
        [](CLI::App& app) {
          auto args = std::make_shared<InspectArgs>();
          app.add_option("model", args->model,
                         "Model folder, .safetensors file, or Hugging Face id in the local cache")
              ->required();
          app.add_flag("--tensors", args->tensors, "List every tensor: name, dtype, shape, file");
          app.add_flag("--json", args->json, "Print the information as a JSON object");
          return std::function<int()>([args] {
            const ModelInfo info = inspect(args->model, args->tensors);
            fmt::print("{}", args->json ? info.json + "\n" : terminal_safe(info.describe));
            return 0;
          });
        },
});

}  // namespace

}  // namespace llmerge::cli
