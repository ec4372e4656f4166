// The options of a merge, and the one table that describes them.
//
// PlanOptions change what is merged and how the output is laid out; a plan
// made with them is checked against the models before anything runs.
// RunOptions change only how a plan is executed (threads, chunk size, the
// random seed, what side files are written, progress, cancellation); the
// output bytes never depend on threads or chunk size.
//
// option_table() lists every option once: its name, type, default, help and
// the subcommands that take it. The CLI builds its flags and --help from it,
// the Python package its keyword arguments, the web UI its form (through
// options_schema_json()), so the three cannot drift. Every door sets values
// the same way, as text, with set_option(), which validates them.
//
// Why quantization is a plan option: it changes the output's tensor names and
// shapes (weight, scales, biases), and which tensors are eligible is checked
// at the plan, like everything else the user gives.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "llmerge/cancel.h"

namespace llmerge {

struct PlanOptions {
  std::string dtype;                  // overrides the config's `dtype` ("" keeps it)
  std::string out_dtype;              // overrides the config's `out_dtype` ("" keeps it)
  bool allow_crimes = false;          // allow models of different architectures
  std::string out_shard_size = "5B";  // largest shard: 5B, 500MB, 2GiB, ...
  // MLX quantization of the output, named as mlx_lm.convert names it
  // (-q/--quantize, --q-bits, --q-group-size, --q-mode) and with its defaults.
  bool quantize = false;          // write MLX-quantized weights
  int q_bits = 4;                 // 2, 3, 4, 5, 6 or 8
  int q_group_size = 64;          // 32, 64 or 128
  std::string q_mode = "affine";  // the only mode written so far
  bool dequantize = false;        // dense output even from MLX-quantized inputs
  // Relative model paths in the config resolve against this directory. Empty:
  // the current directory (mergekit's rule, and the CLI's).
  std::string base_dir;
  // `llmerge moe` only (llmerge/moe.h).
  bool allow_all_same = false;        // every expert may be the same model
  std::string gates;                  // a gate file for a prompt gate_mode ("": compute)
  std::string gate_backend = "auto";  // who computes prompt gates: auto, mlx, torch
  // Refuse llmerge's extensions mergekit would not read: per-slice
  // merge_method and the seed's format (docs/recipes.md).
  bool strict_mergekit = false;
};

// What a running merge reports, on the thread that called run().
struct Progress {
  std::size_t tensors_done = 0;
  std::size_t tensors_total = 0;
  std::uint64_t bytes_done = 0;  // output bytes written
  std::uint64_t bytes_total = 0;
  double seconds = 0;
};

struct RunOptions {
  int threads = 0;                      // worker threads; 0: all cores
  std::int64_t chunk_elements = 65536;  // elements per streamed chunk (rounded up to 65536s)
  std::uint64_t random_seed = 0;        // seed of DARE's and DELLA's masks
  bool copy_tokenizer = true;           // copy the tokenizer files
  bool write_model_card = true;         // write README.md and mergekit_config.yml
  bool force = false;                   // replace an existing llmerge output folder
  // Called on the thread that called run(), about every progress_interval_s
  // and once at the end. It may throw to abort the run (nothing is left behind).
  std::function<void(const Progress&)> progress;
  double progress_interval_s = 0.5;
  // Called with remarks made while writing (a stale temporary folder of a
  // killed run removed, say), on the thread that called run().
  std::function<void(const std::string&)> note;
  CancelToken cancel;  // cancel() from any thread or signal handler stops this run only
  // Multi-stage recipes (mergekit-multi; docs/recipes.md), read by
  // run_recipe only. By default a recipe whose stages are all element-wise
  // runs in one pass, writing no intermediate model; `staged` writes every
  // stage first, as mergekit-multi does. `intermediate_dir`: where written
  // stages go ("" : a temporary folder next to the output, removed after).
  // `lazy`: a stage whose model is already in intermediate_dir is read from
  // there instead of being merged again (in both modes).
  std::string intermediate_dir;
  bool lazy = true;
  bool staged = false;
};

struct MergeOptions {
  PlanOptions plan;
  RunOptions run;
};

enum class OptionType { boolean, integer, string, choice };
// plan: PlanOptions; run: RunOptions of every run; recipe: RunOptions that
// only run_recipe reads (a single merge or Plan.run has no stages to apply them to).
enum class OptionScope { plan, run, recipe };

struct OptionInfo {
  std::string name;     // snake_case: the Python keyword and JSON key; CLI --kebab-case
  char short_flag = 0;  // e.g. 'j' for -j; 0: none
  OptionType type = OptionType::string;
  OptionScope scope = OptionScope::plan;
  std::string default_text;  // as --help and the web form show it
  std::string help;
  std::vector<std::string> choices;   // for OptionType::choice
  std::vector<std::string> commands;  // the CLI subcommands that take it ("run", "plan", ...)
  std::vector<std::string> aliases;   // other accepted names (mergekit's or mlx-lm's spelling)
};

// Every option, in --help order.
const std::vector<OptionInfo>& option_table();
const OptionInfo* find_option(std::string_view name);  // by snake_case or kebab-case name

// Sets option `name` from its text form ("4", "true", "bfloat16", "2GiB").
// Throws Error(config) naming the option for an unknown name or a bad value.
void set_option(MergeOptions& options, std::string_view name, std::string_view value);

// JSON Schema (draft 2020-12) of the options, with "x-scope", "x-commands" and
// "x-cli" extensions: what the web form and the Python stub are built from.
std::string options_schema_json();

}  // namespace llmerge
