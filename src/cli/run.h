// Writing a merge to disk with progress on stderr, shared by `run` and `quantize`.
#pragma once

#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "llmerge/llmerge.h"

namespace llmerge::cli {

struct OutputArgs {
  std::string out_positional;
  std::string out_option;
  bool quiet = false;
};

// OUT (positional), -o/--output (also --OUTPUT_ALIAS when given, e.g.
// mlx_lm.convert's mlx-path) and --quiet.
void add_output_args(CLI::App& app, OutputArgs& args, const std::string& output_alias = "");

// The output folder from OUT or -o (Error(config) when missing or given twice).
std::string output_dir(const OutputArgs& args);

// Runs `plan` into the output folder, with progress on stderr unless quiet,
// and the process's cancel token; prints the summary line (with the elapsed
// time, and bits per weight when quantized). Returns 0.
int write_output(const Plan& plan, const OutputArgs& args, MergeOptions options);

// Runs a multi-stage recipe into the output folder (notes on stderr), prints
// the summary line. Returns 0.
int run_recipe_command(const Recipe& recipe, const OutputArgs& args, MergeOptions options);

// Output bits per logical weight (scales and biases included), as mlx-lm reports.
double bits_per_weight(const Plan& plan);

}  // namespace llmerge::cli
