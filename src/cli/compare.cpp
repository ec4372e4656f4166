// `llmerge compare A B [C ...] [--base X] [--json] [-o report.html]`: how
// alike the models are, layer by layer, and which merge would suit them
// (llmerge::compare, docs/compare.md).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include <fmt/core.h>
#include <unistd.h>

#include "command.h"
#include "llmerge/llmerge.h"
#include "llmerge/text.h"
#include "signals.h"

namespace llmerge::cli {

namespace {

struct CompareArgs {
  std::vector<std::string> models;
  std::string base;
  double density = 0.2;
  bool json = false;
  bool per_tensor = false;
  bool quiet = false;
  std::string output;
  int threads = 0;
  std::int64_t chunk_elements = 65536;
};

// Writes `text` to `path` through a temporary sibling and a rename, so a
// reader never sees half a report and an interrupted run leaves none.
void write_report(const std::string& path, const std::string& text) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  if (fs::is_directory(target))
    throw Error(ErrorKind::io, fmt::format("-o {}: is a directory; give a file name", path));
  const fs::path tmp = target.string() + fmt::format(".llmerge-tmp-{}", ::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw Error(ErrorKind::io, fmt::format("cannot write {}", tmp.string()));
    }
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw Error(ErrorKind::io, fmt::format("cannot write {}: {}", path, ec.message()));
  }
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

const bool registered = register_command({
    .name = "compare",
    .help = "Compare models layer by layer (cosine, L2, task-vector signs), align layers of "
            "different depths, recommend a merge; text, JSON or an HTML report",
    .order = 45,
    .setup =
        [](CLI::App& app) {
          auto args = std::make_shared<CompareArgs>();
          app.add_option("models", args->models,
                         "Two or more models: folders, .safetensors files or Hugging Face ids in "
                         "the local cache")
              ->required()
              ->expected(2, -1);
          app.add_option("--base", args->base,
                         "Common ancestor: also compare task vectors (model - base)");
          app.add_option("--density", args->density,
                         "Fraction of each task vector kept for sign conflict and top-k "
                         "overlap, as TIES's density (default 0.2)");
          app.add_flag("--json", args->json, "Print the JSON document (docs/compare.md)");
          app.add_flag("--per-tensor", args->per_tensor, "List every tensor in the JSON");
          app.add_option("-o,--output", args->output,
                         "Write a report: .html (self-contained page) or .json");
          app.add_option("-j,--threads", args->threads, "Worker threads (default: all cores)");
          app.add_option("--chunk-elements", args->chunk_elements,
                         "Elements per streamed chunk (default 65,536)");
          app.add_flag("--quiet", args->quiet, "No progress output");
          return std::function<int()>([args] {
            CompareOptions options;
            options.base = args->base;
            options.density = args->density;
            options.threads = args->threads;
            options.chunk_elements = args->chunk_elements;
            options.per_tensor = args->per_tensor;
            options.cancel = run_cancel_token();
            if (!args->quiet && stderr_is_tty()) {
              options.progress = [](std::size_t done, std::size_t total) {
                print_best_effort(stderr, fmt::format("\r{}/{} tensors", done, total));
              };
            }
            const CompareResult r = compare(args->models, options);
            if (!args->quiet && stderr_is_tty()) print_best_effort(stderr, "\n");
            if (!args->output.empty()) {
              const bool json = ends_with(args->output, ".json");
              write_report(args->output, json ? r.json() + "\n" : r.html());
              if (!args->quiet) {
                print_best_effort(stderr, fmt::format("wrote {}\n", terminal_safe(args->output)));
              }
            }
            fmt::print("{}", args->json ? r.json() + "\n" : r.describe());
            return 0;
          });
        },
});

}  // namespace

}  // namespace llmerge::cli
