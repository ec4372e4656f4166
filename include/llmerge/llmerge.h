// llmerge's public C++ API: everything the CLI, the Python package and the web
// server use. Include this one header.
//
//   #include <llmerge/llmerge.h>
//
//   llmerge::Config config = llmerge::Config::load("ties.yaml");
//   llmerge::Plan plan = llmerge::plan(config);          // validates; throws llmerge::Error
//   std::cout << plan.describe();
//   llmerge::RunResult r = llmerge::run(plan, "merged/");  // streams, commits atomically
//
// A merge is config -> plan -> run. The plan reads only config.json files and
// safetensors headers, checks every tensor, shape, dtype and parameter, and
// reports all problems at once (Error::problems()). A Plan that exists is
// valid; run() writes into a temporary sibling of the output folder and
// renames it into place only when complete, so a failed or cancelled run
// leaves nothing behind.
//
// Threads: every function may be called from any thread, and several runs
// may go on at once in one process (on different outputs); they share the
// cores rather than oversubscribing them. Config and Plan are immutable
// values, cheap to copy and safe to share between threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "llmerge/cancel.h"
#include "llmerge/compare.h"
#include "llmerge/error.h"
#include "llmerge/options.h"
#include "llmerge/recipe.h"
#include "llmerge/version.h"

namespace llmerge {

namespace detail {
struct ConfigData;
struct PlanData;
}  // namespace detail

// A parsed mergekit YAML config. Parsing checks the schema (unknown keys, types,
// YAML syntax) with file:line:col locations; models are not touched.
class Config {
 public:
  // Reads and parses a file; locations name `path`.
  static Config load(const std::string& path);
  // Parses YAML text; locations name `name` ("<python>", "<web>", ...).
  static Config parse(const std::string& yaml, const std::string& name = "<config>");

  const std::string& text() const;  // the YAML as given
  const std::string& name() const;  // the file name used in locations
  const std::string& merge_method() const;

 private:
  explicit Config(std::shared_ptr<const detail::ConfigData> data) : data_(std::move(data)) {}
  std::shared_ptr<const detail::ConfigData> data_;
  friend struct detail::ConfigData;
};

// A model or file that a config text names, and where. A front end that plans
// configs it does not trust (the web server) checks each against what it may
// read before planning: these are every value under `model`, `base_model`,
// `tokenizer_source`, `tokenizer.source`, the seed format's `path`, and a
// `chat_template` naming a .jinja file, in every document of a recipe.
// "base", "union" and the seed's `base_model: true` are left out.
struct ConfigReference {
  std::string value;      // as written; "model+adapter" names two folders
  std::string yaml_path;  // "slices[0].sources[1].model"
  int line = 0;           // 1-based, in the text given
  int column = 0;
};
// Throws Error(config) with a location when the text does not parse, or
// when aliases make it expand past 100,000 values.
std::vector<ConfigReference> config_references(const std::string& yaml,
                                               const std::string& name = "<config>");
// One config as JSON (plain scalars typed as YAML 1.2's core schema types
// them; quoted ones stay strings), for editing it as data. The same parse
// and bounds; a recipe of several documents is refused.
std::string config_to_json(const std::string& yaml, const std::string& name = "<config>");

// One output tensor of a plan.
struct PlannedTensorInfo {
  std::string name;
  std::string dtype;                // output dtype ("bfloat16", ...)
  std::vector<std::int64_t> shape;  // logical output shape
  std::string method;               // "" for a verbatim copy
  std::size_t inputs = 0;           // input tensors read (the base included)
  std::int64_t layer = -1;          // output layer, -1 outside the layers
  int quantize_bits = 0;            // written MLX-quantized with this many bits (0: dense)
};

class Plan {
 public:
  // Every output tensor with its inputs and resolved parameters, as JSON.
  // `run` sizes the memory estimate (threads, chunk size).
  std::string json(const RunOptions& run = {}) const;
  // The layer map, sample parameters, sizes and memory estimate, as text.
  std::string describe(const RunOptions& run = {}) const;
  std::vector<PlannedTensorInfo> tensors() const;
  std::vector<std::string> notes() const;  // non-fatal remarks for the user
  std::uint64_t output_bytes() const;
  std::int64_t output_layers() const;
  // Upper bound of run()'s memory with these run options, in bytes.
  std::uint64_t memory_estimate(const RunOptions& run = {}) const;

 private:
  explicit Plan(std::shared_ptr<const detail::PlanData> data) : data_(std::move(data)) {}
  std::shared_ptr<const detail::PlanData> data_;
  friend struct detail::PlanData;
};

// Checks `config` against the models' headers. Throws Error with every problem.
// `cancel` stops a long plan (thousands of tensors) between tensors.
Plan plan(const Config& config, const PlanOptions& options = {},
          const CancelToken& cancel = CancelToken());

struct RunResult {
  std::string output;       // the output folder
  std::size_t tensors = 0;  // output tensors written
  std::uint64_t bytes = 0;  // weight bytes written
  std::int64_t layers = 0;  // output layers
  double seconds = 0;       // wall time of the run
  std::uint64_t memory_estimate = 0;
};

// Writes the plan's model into `out_dir`: weights, config.json, tokenizer
// files, model card. Throws Error (interrupted when cancelled).
RunResult run(const Plan& plan, const std::string& out_dir, const RunOptions& options = {});

// plan() then run(), with the plan's cancellation taken from options.run.cancel.
RunResult merge(const Config& config, const std::string& out_dir, const MergeOptions& options = {});

// Writes one model MLX-quantized (options.plan.quantize, q_bits) or dense
// (options.plan.dequantize): a passthrough merge of one model.
RunResult quantize(const std::string& model, const std::string& out_dir,
                   const MergeOptions& options);
// The config quantize() merges: a passthrough of `model`, for plan() and run().
Config quantize_config(const std::string& model);

// Fuses a LoRA adapter into `model`, as peft's merge_and_unload and
// mlx_lm.fuse do: a passthrough merge of "model+adapter" (docs/lora.md).
// `adapter` is a PEFT or mlx-lm adapter folder or an org/name in the local
// HF cache. An MLX-quantized base is dequantized, updated and quantized again
// with its own parameters, unless options.plan.dequantize; options.plan.quantize
// quantizes any base.
RunResult fuse(const std::string& model, const std::string& adapter, const std::string& out_dir,
               const MergeOptions& options = {});
// The config fuse() merges, for plan() and run().
Config fuse_config(const std::string& model, const std::string& adapter);

// What a model folder holds, from config.json and the safetensors headers.
struct ModelInfo {
  std::string json;      // architecture, layers, hidden/vocab size, dtypes, size, quantization
  std::string describe;  // the same as aligned text
};
// `model` is a folder, a .safetensors file or an org/name in the local HF cache.
ModelInfo inspect(const std::string& model, bool with_tensors = false,
                  const std::string& base_dir = {});

// Every merge method with its parameters and defaults.
std::string methods_json();
std::string methods_text();

}  // namespace llmerge
