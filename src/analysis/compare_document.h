// compare's result as the JSON document of docs/compare.md (schema
// "llmerge.compare", version 1), and the two views rendered from it: the
// text summary and the HTML report. The views read only the document, so the
// web UI, which gets the JSON, can show exactly what the CLI shows.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "analysis/compare_engine.h"

namespace llmerge {

inline constexpr int k_compare_schema_version = 1;

// Aligns the layers, makes the recommendation and lays everything out.
nlohmann::ordered_json compare_document(const CompareData& data, bool per_tensor);

std::string compare_text(const nlohmann::json& document);
// One self-contained page: inline CSS and SVG, no script, nothing fetched.
std::string compare_html(const nlohmann::json& document);

}  // namespace llmerge
