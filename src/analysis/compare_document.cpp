#include "analysis/compare_document.h"

#include <cmath>

#include "analysis/alignment.h"
#include "analysis/recommend.h"
#include "llmerge/version.h"

namespace llmerge {

namespace {

using Json = nlohmann::ordered_json;

Json number(double v) {
  return std::isfinite(v) ? Json(v) : Json();
}

Json round4(double v) {
  return std::isfinite(v) ? Json(std::round(v * 1e4) / 1e4) : Json();
}

Json pair_json(const CompareData& data, std::size_t p, const PairSums& s, bool with_ids) {
  const PairFigures f = pair_figures(s, data.base.has_value());
  Json j = Json::object();
  if (with_ids) {
    j["a"] = data.pairs[p].first;
    j["b"] = data.pairs[p].second;
  }
  j["cosine"] = number(f.cosine);
  j["relative_l2"] = number(f.relative_l2);
  j["task_cosine"] = number(f.task_cosine);
  j["sign_agreement"] = number(f.sign_agreement);
  j["sign_conflict"] = number(f.sign_conflict);
  j["top_k_overlap"] = number(f.top_k_overlap);
  return j;
}

Json pairs_json(const CompareData& data, const std::vector<PairSums>& sums) {
  Json a = Json::array();
  for (std::size_t p = 0; p < sums.size(); ++p)
    a.push_back(pair_json(data, p, sums[p], true));
  return a;
}

Json model_json(const ComparedModel& m) {
  return Json{{"name", m.name},
              {"path", m.path},
              {"layers", m.layers},
              {"tensors", m.tensors},
              {"parameters", m.parameters},
              {"dtype", m.dtype}};
}

}  // namespace

nlohmann::ordered_json compare_document(const CompareData& data, bool per_tensor) {
  Json doc;
  doc["schema"] = "llmerge.compare";
  doc["version"] = k_compare_schema_version;
  doc["llmerge"] = LLMERGE_VERSION;
  doc["options"] = {{"density", data.density}, {"base", data.base.has_value()}};
  doc["models"] = Json::array();
  for (const auto& m : data.models)
    doc["models"].push_back(model_json(m));
  doc["base"] = data.base ? model_json(*data.base) : Json();
  doc["pairs"] = pairs_json(data, data.total);
  doc["layers"] = Json::array();
  for (const auto& [layer, sums] : data.layers)
    doc["layers"].push_back({{"layer", layer}, {"pairs", pairs_json(data, sums)}});
  doc["modules"] = Json::array();
  for (int k = 0; k < k_module_kinds; ++k) {
    const auto& sums = data.modules[static_cast<std::size_t>(k)];
    if (sums.empty()) continue;
    doc["modules"].push_back({{"kind", module_kind_name(static_cast<ModuleKind>(k))},
                              {"pairs", pairs_json(data, sums)}});
  }
  if (per_tensor) {
    doc["tensors"] = Json::array();
    for (const auto& t : data.tensors) {
      doc["tensors"].push_back({{"name", t.name},
                                {"layer", t.layer},
                                {"kind", module_kind_name(t.kind)},
                                {"numel", t.numel},
                                {"pairs", pairs_json(data, t.pairs)}});
    }
  }
  Json first = Json::array();
  for (const auto& [name, reason] : data.skipped_first)
    first.push_back({{"name", name}, {"reason", reason}});
  doc["skipped"] = {{"count", data.skipped_count}, {"first", first}};
  doc["elements"] = data.elements;

  std::vector<LayerAlignment> alignments;
  doc["alignment"] = Json::array();
  for (std::size_t m = 1; m < data.models.size(); ++m) {
    alignments.push_back(align_layers(data.sketches[m], data.sketches[0]));
    const LayerAlignment& a = alignments.back();
    Json sim = Json::array();
    for (const auto& row : a.similarity) {
      Json r = Json::array();
      for (double v : row)
        r.push_back(round4(v));
      sim.push_back(std::move(r));
    }
    const bool differ = data.models[m].layers != data.models[0].layers;
    doc["alignment"].push_back(
        {{"model", m},
         {"reference", 0},
         {"layers", data.models[m].layers},
         {"reference_layers", data.models[0].layers},
         {"map", a.map},
         {"similarity", std::move(sim)},
         {"mean_similarity", round4(a.mean_similarity)},
         {"slices_config", differ
                               ? alignment_slices_config(a, data.models[0].name,
                                                         data.models[m].name, data.models[0].dtype)
                               : std::string()}});
  }
  const Recommendation rec = recommend(data, alignments);
  doc["recommendation"] = {{"method", rec.method},
                           {"parameters", rec.parameters},
                           {"reasons", rec.reasons},
                           {"config", rec.config}};
  return doc;
}

}  // namespace llmerge
