// Multi-stage recipes (mergekit-multi's multi-document YAML) and config
// conversion. Part of the public API; included by llmerge/llmerge.h.
//
//   llmerge::Recipe r = llmerge::Recipe::load("recipe.yaml");
//   llmerge::RecipeResult out = llmerge::run_recipe(r, "merged/", options);
//
// Each document is a merge config; a document with `name: X` is a stage whose
// model the others may use as the model `X`. Stages run in dependency order
// (a cycle is an Error at the reference that closes it). The unnamed document
// (at most one; else the last stage to run) is written to the output folder.
// When every stage the output uses is element-wise, the recipe runs in one
// pass: every stage is planned from headers first, and each intermediate
// tensor is computed chunk by chunk as the next stage reads it, with the
// bytes the staged run gives. Otherwise (or with options.run.staged) named
// stages are written to options.run.intermediate_dir/<name> (kept), or,
// without an intermediate folder, to a temporary one removed at the end.
// With options.run.lazy a stage already in the intermediate folder is read
// from there. docs/recipes.md has the details.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "llmerge/options.h"

namespace llmerge {

struct RunResult;

namespace detail {
struct RecipeData;
}  // namespace detail

class Recipe {
 public:
  static Recipe load(const std::string& path);
  static Recipe parse(const std::string& yaml, const std::string& name = "<recipe>");

  std::size_t size() const;  // stages (1 for a plain config)
  // Stage names in run order; the output stage's is "" when it has none.
  std::vector<std::string> stage_names() const;
  // The stages, what each uses, where each is written; with the plan of every
  // stage whose inputs exist already (the others are planned when run).
  std::string describe(const MergeOptions& options = {}) const;

 private:
  explicit Recipe(std::shared_ptr<const detail::RecipeData> data) : data_(std::move(data)) {}
  std::shared_ptr<const detail::RecipeData> data_;
  friend struct detail::RecipeData;
};

struct RecipeResult {
  std::vector<std::string> stages_run;      // in order
  std::vector<std::string> stages_skipped;  // lazy: already in the intermediate folder
  std::uint64_t intermediate_bytes = 0;     // weight bytes the named stages wrote
  // True when the stages were computed in one pass (nothing written but the
  // output); else `staged_because` says why not ("" when staged was asked for).
  bool one_pass = false;
  std::string staged_because;
  double seconds = 0;
  std::string output;  // the output folder
};

// Runs every stage; throws Error (the failing stage named in the message).
RecipeResult run_recipe(const Recipe& recipe, const std::string& out_dir,
                        const MergeOptions& options = {});

// The config (a file's text) in mergekit's own schema: the seed's format
// translated, per-slice methods as a mergekit-multi recipe (docs/recipes.md).
std::string convert_config(const std::string& yaml, const std::string& name = "<config>");

}  // namespace llmerge
