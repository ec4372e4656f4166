// Monotone layer alignment of a model onto a reference model, for models of
// different depths (docs/compare.md, "Layer alignment").
//
// S[j][i] is the cosine of the count sketches of layer j of the model and
// layer i of the reference (compare_engine.h). The alignment is the
// non-decreasing map j -> i(j) maximising sum_j S[j][i(j)]: a dynamic
// programme over the matrix with a running prefix maximum, O(L_model * L_ref).
// Non-decreasing rather than increasing, so a duplicated layer can map to the
// same reference layer as its original and a dropped one is skipped.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace llmerge {

struct LayerAlignment {
  std::vector<std::vector<double>> similarity;  // [model layer][reference layer]
  std::vector<std::int64_t> map;                // map[j]: the reference layer of model layer j
  double mean_similarity = 0;                   // mean of similarity[j][map[j]]
};

// Cosine of two sketches (1 when both are zero, 0 when one is).
double sketch_cosine(const std::vector<double>& a, const std::vector<double>& b);

// `model` and `reference`: one sketch per layer. Ties go to the lower
// reference layer, so the result is deterministic.
LayerAlignment align_layers(const std::vector<std::vector<double>>& model,
                            const std::vector<std::vector<double>>& reference);

// The alignment as a mergekit config: one slice per run of consecutive
// layers (model j..j+n paired with reference i..i+n), each a linear merge of
// the two with equal weights; the output has the model's depth.
std::string alignment_slices_config(const LayerAlignment& alignment, const std::string& reference,
                                    const std::string& model, const std::string& dtype);

}  // namespace llmerge
