// Comparing models before (and after) a merge: `llmerge compare A B [C ...]`.
//
//   llmerge::CompareOptions options;
//   options.base = "org/base";                     // optional: task-vector measures
//   llmerge::CompareResult r = llmerge::compare({"org/a", "org/b"}, options);
//   std::cout << r.describe();                     // text summary
//   write(r.json());                               // docs/compare.md: the stable schema
//   write(r.html());                               // self-contained report, SVG, no network
//
// compare() streams every tensor the models share, chunk by chunk, so memory is
// bounded by threads x chunk buffers (plus a fixed-size sketch per layer for the
// layer alignment) whatever the model size. It reads each needed tensor once.
// Sums are accumulated in f64 per 65,536-element block and then in block order,
// so every figure is the same whatever the thread count.
//
// Measures (docs/compare.md gives the formulas):
//   - weights, per tensor, per layer and per module kind: cosine similarity and
//     relative L2 distance of every model pair;
//   - with a base: the same on task vectors (model - base), sign agreement, the
//     TIES sign-conflict rate at `density`, and the top-k overlap at `density`;
//   - a monotone layer alignment of every model onto the first (dynamic
//     programming over a sketched layer-similarity matrix), as a runnable
//     mergekit `slices:` config when the depths differ;
//   - a recommended merge method with parameters and the reasons, each stated
//     with the numbers that triggered it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "llmerge/cancel.h"

namespace llmerge {

struct CompareOptions {
  // The common ancestor; "" for none. With a base, task vectors (model - base)
  // are compared too, and the recommendation considers the task-vector methods.
  std::string base;
  // Fraction of each task vector kept by magnitude for the TIES sign-conflict
  // rate and the top-k overlap (TIES's `density`), in (0, 1].
  double density = 0.2;
  int threads = 0;                      // worker threads; 0: all cores
  std::int64_t chunk_elements = 65536;  // elements per chunk (rounded up to 65536s)
  // Also list every tensor in json() (large for big models); layers, module
  // kinds and the summary are always there.
  bool per_tensor = false;
  // Relative model paths resolve against this directory ("" : the current one).
  std::string base_dir;
  CancelToken cancel;
  // Called on the calling thread now and then: tensors done, tensors total.
  std::function<void(std::size_t, std::size_t)> progress;
};

// One pair of models, in the order of the models given (i < j).
struct ComparePair {
  std::size_t a = 0, b = 0;
  double cosine = 0;       // of all the shared weights, as one vector
  double relative_l2 = 0;  // ||a - b|| / ((||a|| + ||b||) / 2)
  // With a base (NaN without):
  double task_cosine = 0;     // cosine of the task vectors
  double sign_agreement = 0;  // same sign, among elements where both task vectors are nonzero
  double sign_conflict = 0;   // opposite signs, among elements both keep at `density`
  double top_k_overlap = 0;   // |kept(a) & kept(b)| / |kept(a)| at `density`
};

// The result of compare(): figures, text, JSON and HTML views.
struct CompareResult {
  std::vector<std::string> models;   // as given (display names)
  std::string base;                  // "" for none
  std::vector<ComparePair> pairs;    // whole-model figures, one per pair
  std::string recommended_method;    // "linear", "slerp", "ties", "dare_ties", "passthrough", ...
  std::string recommended_config;    // a mergekit YAML config to start from
  std::vector<std::string> reasons;  // why, each with the numbers that triggered it

  std::string json() const;      // docs/compare.md: schema "llmerge.compare", version 1
  std::string describe() const;  // the text summary the CLI prints
  std::string html() const;      // one self-contained page: inline SVG and CSS, no script fetches

  // The JSON document, kept as text; the views above are rendered from it.
  std::string document;
};

// Compares two or more models (folders, .safetensors files, or org/name in the
// local HF cache). Throws Error: io/format for unreadable models, shape when no
// tensor is shared, config for bad options (density outside (0, 1], < 2 models).
CompareResult compare(const std::vector<std::string>& models, const CompareOptions& options = {});

// The HTML report of a document that CompareResult::json() wrote (the web UI
// keeps the JSON and renders the page from it). Throws Error(format) if the
// text is not such a document.
std::string compare_report_html(const std::string& json);

}  // namespace llmerge
