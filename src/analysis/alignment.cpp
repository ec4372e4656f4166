#include "analysis/alignment.h"

#include <cmath>

#include <fmt/core.h>

#include "analysis/yaml_text.h"

namespace llmerge {

double sketch_cosine(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size() || a.empty()) return 0;
  double dot = 0, na = 0, nb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  if (na == 0 && nb == 0) return 1;
  if (na == 0 || nb == 0) return 0;
  return dot / (std::sqrt(na) * std::sqrt(nb));
}

LayerAlignment align_layers(const std::vector<std::vector<double>>& model,
                            const std::vector<std::vector<double>>& reference) {
  LayerAlignment r;
  const std::size_t lm = model.size(), lr = reference.size();
  r.similarity.assign(lm, std::vector<double>(lr, 0.0));
  for (std::size_t j = 0; j < lm; ++j)
    for (std::size_t i = 0; i < lr; ++i)
      r.similarity[j][i] = sketch_cosine(model[j], reference[i]);
  if (lm == 0 || lr == 0) return r;
  // best[j][i]: the best score of layers 0..j with map[j] = i; from[j][i] the
  // argmax of best[j-1][0..i] it extends (the prefix maximum, ties lowest).
  std::vector<std::vector<double>> best(lm, std::vector<double>(lr));
  std::vector<std::vector<std::size_t>> from(lm, std::vector<std::size_t>(lr, 0));
  for (std::size_t i = 0; i < lr; ++i)
    best[0][i] = r.similarity[0][i];
  for (std::size_t j = 1; j < lm; ++j) {
    std::size_t arg = 0;
    for (std::size_t i = 0; i < lr; ++i) {
      if (best[j - 1][i] > best[j - 1][arg]) arg = i;
      best[j][i] = best[j - 1][arg] + r.similarity[j][i];
      from[j][i] = arg;
    }
  }
  std::size_t i = 0;
  for (std::size_t k = 1; k < lr; ++k)
    if (best[lm - 1][k] > best[lm - 1][i]) i = k;
  r.map.assign(lm, 0);
  for (std::size_t j = lm; j-- > 0;) {
    r.map[j] = static_cast<std::int64_t>(i);
    if (j > 0) i = from[j][i];
  }
  double sum = 0;
  for (std::size_t j = 0; j < lm; ++j)
    sum += r.similarity[j][static_cast<std::size_t>(r.map[j])];
  r.mean_similarity = sum / static_cast<double>(lm);
  return r;
}

std::string alignment_slices_config(const LayerAlignment& alignment, const std::string& reference,
                                    const std::string& model, const std::string& dtype) {
  std::string out = fmt::format(
      "# Layer alignment found by llmerge compare: each slice pairs layers of\n"
      "# {} with the layers of {} they resemble most.\n"
      "merge_method: linear\nslices:\n",
      yaml_comment_safe(model), yaml_comment_safe(reference));
  const auto& map = alignment.map;
  for (std::size_t j = 0; j < map.size();) {
    std::size_t end = j + 1;
    while (end < map.size() && map[end] == map[end - 1] + 1)
      ++end;
    out += fmt::format(
        "  - sources:\n"
        "      - model: {}\n        layer_range: [{}, {}]\n        parameters: {{weight: 0.5}}\n"
        "      - model: {}\n        layer_range: [{}, {}]\n        parameters: {{weight: 0.5}}\n",
        yaml_scalar(model), j, end, yaml_scalar(reference), map[j], map[j] + (end - j));
    j = end;
  }
  out += fmt::format("dtype: {}\n", dtype);
  return out;
}

}  // namespace llmerge
