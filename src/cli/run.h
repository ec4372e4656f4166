// Writing a planned merge to disk, shared by `run` and `quantize`.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "cli/merge_options.h"

namespace llmerge::cli {

struct OutputOptions {
  std::string out_positional;
  std::string out_option;
  bool force = false;
  bool quiet = false;
  bool copy_tokenizer = true;
  bool write_model_card = true;
};

// -o, --force, --quiet, --copy-tokenizer, --write-model-card.
void add_output_options(CLI::App& app, OutputOptions& options);

// Runs the plan into the output folder with progress on stderr; returns the exit code.
int write_output(const Plan& plan, const OutputOptions& output, const MergeOptions& merge);

}  // namespace llmerge::cli
