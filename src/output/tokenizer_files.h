// The tokenizer files of an output whose vocabulary was built by the planner
// (plan/vocabulary.h): the source tokenizer's tokenizer.json,
// tokenizer_config.json and special_tokens_map.json, stripped and extended
// as the plan says, plus the chat template. docs/tokenizers.md §3.
#pragma once

#include "output/model_writer.h"
#include "plan/plan.h"

namespace llmerge {

// Writes tokenizer.json, tokenizer_config.json, special_tokens_map.json and,
// with a chat template, chat_template.jinja. The source files are read again
// with io/files.h's guards (the planner read and checked them).
void write_built_tokenizer(const MergePlan& plan, ModelWriter& writer);

}  // namespace llmerge
