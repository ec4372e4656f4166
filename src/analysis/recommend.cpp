#include "analysis/recommend.h"

#include <cmath>

#include <fmt/core.h>

#include "analysis/yaml_text.h"

namespace llmerge {

namespace {

struct Means {
  double cosine = 1, min_cosine = 1, task_cosine = 0, sign_conflict = 0, top_k_overlap = 0;
};

Means means(const CompareData& data) {
  Means m;
  const bool with_base = data.base.has_value();
  double cos = 0, task = 0, conflict = 0, overlap = 0;
  int n_conflict = 0, n_overlap = 0;
  for (const PairSums& s : data.total) {
    const PairFigures f = pair_figures(s, with_base);
    cos += f.cosine;
    m.min_cosine = std::min(m.min_cosine, f.cosine);
    if (!with_base) continue;
    task += f.task_cosine;
    if (!std::isnan(f.sign_conflict)) {
      conflict += f.sign_conflict;
      ++n_conflict;
    }
    if (!std::isnan(f.top_k_overlap)) {
      overlap += f.top_k_overlap;
      ++n_overlap;
    }
  }
  const double n = static_cast<double>(std::max<std::size_t>(data.total.size(), 1));
  m.cosine = cos / n;
  m.task_cosine = task / n;
  m.sign_conflict = n_conflict ? conflict / n_conflict : 0;
  m.top_k_overlap = n_overlap ? overlap / n_overlap : 1;
  return m;
}

std::string models_block(const CompareData& data, const std::string& per_model) {
  std::string out = "models:\n";
  for (const auto& m : data.models) {
    out += fmt::format("  - model: {}\n", yaml_scalar(m.name));
    if (!per_model.empty()) out += fmt::format("    parameters: {}\n", per_model);
  }
  return out;
}

std::string number(double v) {
  return fmt::format("{:.4g}", v);
}

}  // namespace

Recommendation recommend(const CompareData& data, const std::vector<LayerAlignment>& alignments) {
  Recommendation r;
  const std::string dtype = data.models.front().dtype;
  const std::size_t n = data.models.size();
  const double weight = 1.0 / static_cast<double>(n);
  for (std::size_t m = 1; m < n; ++m) {
    if (data.models[m].layers == data.models[0].layers) continue;
    r.method = "linear";
    r.parameters = {{"weight", 0.5}};
    r.reasons.push_back(fmt::format(
        "model {} has {} layers and model 0 has {}: an element-wise merge needs layer-by-layer "
        "partners, so the layers are paired by the alignment (mean similarity {})",
        m, data.models[m].layers, data.models[0].layers,
        number(alignments[m - 1].mean_similarity)));
    if (n > 2)
      r.reasons.push_back("the config pairs only these two models; add the others by hand");
    r.config =
        alignment_slices_config(alignments[m - 1], data.models[0].name, data.models[m].name, dtype);
    return r;
  }
  const Means mean = means(data);
  if (!data.base) {
    if (mean.min_cosine >= k_identical_cosine) {
      r.method = "linear";
      r.reasons.push_back(fmt::format(
          "the lowest pair cosine is {} ≥ {}: the models are practically equal, any method gives "
          "the same weights",
          number(mean.min_cosine), k_identical_cosine));
    } else if (n == 2) {
      r.method = "slerp";
      r.parameters = {{"t", 0.5}};
      r.reasons.push_back(fmt::format(
          "two models without a base, cosine {}: slerp interpolates along the arc between them, "
          "keeping the weights' norm, which linear averaging shrinks by about (1 - cos)/2",
          number(mean.cosine)));
      r.config = fmt::format(
          "merge_method: slerp\nbase_model: {}\nmodels:\n  - model: {}\n  - model: {}\n"
          "parameters:\n  t: 0.5\ndtype: {}\n",
          yaml_scalar(data.models[0].name), yaml_scalar(data.models[0].name),
          yaml_scalar(data.models[1].name), dtype);
      return r;
    } else {
      r.method = "linear";
      r.reasons.push_back(fmt::format(
          "{} models without a base (mean cosine {}): a plain average; give --base to consider "
          "the task-vector methods",
          n, number(mean.cosine)));
    }
    r.parameters = {{"weight", weight}};
    r.config =
        fmt::format("merge_method: linear\n{}dtype: {}\n",
                    models_block(data, fmt::format("{{weight: {}}}", number(weight))), dtype);
    return r;
  }
  const std::string base = yaml_scalar(data.base->name);
  const double d = data.density;
  if (mean.task_cosine >= k_colinear_task_cosine) {
    r.method = "linear";
    r.parameters = {{"weight", weight}};
    r.reasons.push_back(fmt::format(
        "mean task-vector cosine {} ≥ {}: the fine-tunes moved the base in nearly the same "
        "direction, so there is no interference to resolve",
        number(mean.task_cosine), k_colinear_task_cosine));
    r.config =
        fmt::format("merge_method: linear\n{}dtype: {}\n",
                    models_block(data, fmt::format("{{weight: {}}}", number(weight))), dtype);
    return r;
  }
  if (mean.sign_conflict >= k_high_sign_conflict) {
    r.method = "ties";
    r.parameters = {{"density", d}, {"weight", weight}};
    r.reasons.push_back(fmt::format(
        "mean sign conflict {} ≥ {} among the weights both models keep at density {}: TIES's "
        "sign election resolves exactly these",
        number(mean.sign_conflict), k_high_sign_conflict, number(d)));
  } else if (mean.top_k_overlap <= k_low_top_k_overlap) {
    r.method = "dare_ties";
    r.parameters = {{"density", d}, {"weight", weight}};
    r.reasons.push_back(fmt::format(
        "mean top-k overlap {} ≤ {} at density {} (sign conflict {} < {}): the models change "
        "mostly different weights, so dropping and rescaling at random loses little",
        number(mean.top_k_overlap), k_low_top_k_overlap, number(d), number(mean.sign_conflict),
        k_high_sign_conflict));
  } else {
    r.method = "task_arithmetic";
    r.parameters = {{"weight", weight}};
    r.reasons.push_back(fmt::format(
        "sign conflict {} < {} and top-k overlap {} > {} at density {}, task cosine {} < {}: "
        "the task vectors neither clash nor coincide, so adding them is enough",
        number(mean.sign_conflict), k_high_sign_conflict, number(mean.top_k_overlap),
        k_low_top_k_overlap, number(d), number(mean.task_cosine), k_colinear_task_cosine));
    r.config =
        fmt::format("merge_method: task_arithmetic\nbase_model: {}\n{}dtype: {}\n", base,
                    models_block(data, fmt::format("{{weight: {}}}", number(weight))), dtype);
    return r;
  }
  r.config = fmt::format(
      "merge_method: {}\nbase_model: {}\n{}dtype: {}\n", r.method, base,
      models_block(data, fmt::format("{{density: {}, weight: {}}}", number(d), number(weight))),
      dtype);
  return r;
}

}  // namespace llmerge
