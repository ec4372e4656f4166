// Multi-stage recipes: mergekit-multi's multi-document YAML (docs/recipes.md §3).
//
//   name: math-ties            # a stage: its model is written to <intermediate-dir>/math-ties
//   merge_method: ties
//   models: [...]
//   ---
//   merge_method: slerp        # the one unnamed stage: written to the output folder
//   base_model: math-ties      # earlier (or later) stages are models by name
//   ...
//
// A stage names its inputs by the other stages' names, so the stages form a
// graph; it must be acyclic. Stages run in dependency order, ties broken by
// file order. Only names are looked at here; no model is opened.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace llmerge {

struct RecipeGraph {
  std::vector<MergeConfig> stages;                   // in run order
  std::vector<std::vector<std::size_t>> depends_on;  // per stage: indices of earlier stages
  // The stage written to the output folder: the unnamed one, else the last to run.
  std::size_t output_stage = 0;
};

// Parses every document and orders the stages. Throws Error(config) with a
// location: two stages of one name, more than one unnamed stage, a cycle
// (at the reference that closes it, naming the whole cycle).
RecipeGraph parse_recipe(std::string_view yaml_text, const std::string& file);

// Calls `f` on every model reference of a config (base models, models,
// slice sources, tokenizer source), which it may rewrite.
void for_each_model_reference(MergeConfig& config,
                              const std::function<void(std::string& ref, SourceLocation at)>& f);

}  // namespace llmerge
