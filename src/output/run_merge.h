// The whole job behind `llmerge run`: plan -> execute -> write, atomically.
#pragma once

#include <filesystem>

#include "exec/executor.h"
#include "output/model_writer.h"
#include "plan/plan.h"

namespace llmerge {

struct RunSettings {
  std::filesystem::path out_dir;
  ModelWriterOptions writer;     // shard size, --force
  ExecuteOptions execute;        // threads, chunk size, seed, progress
  bool copy_tokenizer = true;    // --copy-tokenizer / --no-copy-tokenizer
  bool write_model_card = true;  // --write-model-card / --no-write-model-card
};

// Refuses an output path equal to, inside, or containing an input model
// (Error(config)) before any work. Then writes the weights, config.json, the
// tokenizer files, generation_config.json, mergekit_config.yml and README.md
// into a temporary sibling directory and renames it into place. On any error
// nothing is left behind and an existing output is untouched.
void run_merge(const MergePlan& plan, const RunSettings& options);

// The checks run_merge makes on the output path, on their own (for `plan -o`).
void check_output_path(const MergePlan& plan, const std::filesystem::path& out_dir);

}  // namespace llmerge
