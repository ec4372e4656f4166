// Everything in an output folder besides the weights: config.json, tokenizer
// files, generation_config.json, mergekit_config.yml and the README.md model
// card (docs/mergekit-semantics.md §6).
#pragma once

#include <string>
#include <vector>

#include "output/model_writer.h"
#include "plan/plan.h"

namespace llmerge {

// mergekit's tokenizer copy list (docs/mergekit-semantics.md §6).
const std::vector<std::string>& tokenizer_file_names();

struct SideFileOptions {
  bool copy_tokenizer = true;
  bool write_model_card = true;
};

// A conversion (`llmerge quantize`) gets conversion_card() and the input's
// mergekit_config.yml instead of a passthrough merge's card.
void write_side_files(const MergePlan& plan, ModelWriter& writer, const SideFileOptions& options);

// The README.md model card of a merge: front matter (base_model: the Hub
// models, never local paths, as mergekit; tags:
// [merge, llmerge], library_name: transformers), the method, the models and the config.
std::string model_card(const MergePlan& plan, const std::string& title);

}  // namespace llmerge
