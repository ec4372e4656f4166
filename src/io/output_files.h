// Everything in an output folder besides the weights: config.json, tokenizer
// files, generation_config.json, mergekit_config.yml and the README.md model
// card (mergekit-behaviour.md section 6).
#pragma once

#include <string>
#include <vector>

#include "io/model_writer.h"
#include "plan/plan.h"

namespace llmerge {

// mergekit's tokenizer copy list (mergekit-behaviour.md section 6).
const std::vector<std::string>& tokenizer_file_names();

struct SideFileOptions {
  bool copy_tokenizer = true;
  bool write_model_card = true;
};

void write_side_files(const Plan& plan, ModelWriter& writer, const SideFileOptions& options);

// The README.md model card: front matter (base_model: every model, tags:
// [merge, llmerge], library_name: transformers), the method, the models and the config.
std::string model_card(const Plan& plan, const std::string& title);

// The chat template for `chat_template:`: a literal Jinja template is used
// as-is; "chatml" gives the ChatML template. nullopt for anything else.
std::optional<std::string> resolve_chat_template(const std::string& value);

}  // namespace llmerge
