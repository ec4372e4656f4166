// compare() (include/llmerge/compare.h): the public face of src/analysis/.
// The result keeps the JSON document; describe() and html() render from it.
#include "llmerge/compare.h"

#include <limits>

#include <nlohmann/json.hpp>

#include "analysis/compare_document.h"
#include "analysis/compare_engine.h"
#include "core/error.h"
#include "core/json_text.h"

namespace llmerge {

namespace {

template <class T>
T value_or(const nlohmann::json& v, T fallback) {
  return v.is_number() ? v.get<T>() : fallback;
}

}  // namespace

CompareResult compare(const std::vector<std::string>& models, const CompareOptions& options) {
  CompareSettings settings;
  settings.base = options.base;
  settings.density = options.density;
  settings.threads = options.threads;
  settings.chunk_elements = options.chunk_elements;
  settings.base_dir = options.base_dir;
  settings.cancel = options.cancel;
  settings.progress = options.progress;
  const CompareData data = run_compare(models, settings);
  const nlohmann::ordered_json doc = compare_document(data, options.per_tensor);

  CompareResult r;
  for (const auto& m : data.models)
    r.models.push_back(m.name);
  r.base = data.base ? data.base->name : std::string();
  const auto nan = std::numeric_limits<double>::quiet_NaN();
  for (const auto& p : doc["pairs"]) {
    ComparePair cp;
    cp.a = p["a"].get<std::size_t>();
    cp.b = p["b"].get<std::size_t>();
    cp.cosine = value_or(p["cosine"], nan);
    cp.relative_l2 = value_or(p["relative_l2"], nan);
    cp.task_cosine = value_or(p["task_cosine"], nan);
    cp.sign_agreement = value_or(p["sign_agreement"], nan);
    cp.sign_conflict = value_or(p["sign_conflict"], nan);
    cp.top_k_overlap = value_or(p["top_k_overlap"], nan);
    r.pairs.push_back(cp);
  }
  const auto& rec = doc["recommendation"];
  r.recommended_method = rec["method"].get<std::string>();
  r.recommended_config = rec["config"].get<std::string>();
  for (const auto& reason : rec["reasons"])
    r.reasons.push_back(reason.get<std::string>());
  r.document = json_text(doc, 2);
  return r;
}

std::string CompareResult::json() const {
  return document;
}

std::string CompareResult::describe() const {
  return compare_text(nlohmann::json::parse(document));
}

std::string CompareResult::html() const {
  return compare_html(nlohmann::json::parse(document));
}

std::string compare_report_html(const std::string& json) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(json);
    if (doc.value("schema", "") != "llmerge.compare") throw std::runtime_error("no schema field");
    return compare_html(doc);
  } catch (const std::exception& e) {
    throw Error(
        ErrorKind::format,
        std::string("not an llmerge compare document (schema llmerge.compare): ") + e.what());
  }
}

}  // namespace llmerge
