// The text summary of a compare document (compare_document.h).
#include <cmath>
#include <string>

#include <fmt/core.h>

#include "analysis/compare_document.h"
#include "llmerge/text.h"

namespace llmerge {

namespace {

std::string figure(const nlohmann::json& v) {
  return v.is_number() ? fmt::format("{:.4f}", v.get<double>()) : std::string("-");
}

std::string pair_label(const nlohmann::json& p) {
  return fmt::format("{}-{}", p["a"].get<int>(), p["b"].get<int>());
}

}  // namespace

std::string compare_text(const nlohmann::json& doc) {
  std::string out;
  const auto& models = doc["models"];
  const bool with_base = !doc["base"].is_null();
  out += fmt::format("llmerge compare: {} models{}\n", models.size(),
                     with_base ? ", base " + doc["base"]["name"].get<std::string>() : "");
  for (std::size_t m = 0; m < models.size(); ++m) {
    const auto& x = models[m];
    out += fmt::format("  model {}: {} ({} layers, {} parameters, {})\n", m,
                       x["name"].get<std::string>(), x["layers"].get<std::int64_t>(),
                       x["parameters"].get<std::uint64_t>(), x["dtype"].get<std::string>());
  }
  const auto& skipped = doc["skipped"];
  out += fmt::format("  compared {} elements per model; {} tensors skipped\n",
                     doc["elements"].get<std::int64_t>(), skipped["count"].get<std::size_t>());
  for (std::size_t i = 0; i < skipped["first"].size() && i < 5; ++i) {
    out += fmt::format("    skipped {}: {}\n", skipped["first"][i]["name"].get<std::string>(),
                       skipped["first"][i]["reason"].get<std::string>());
  }
  const double density = doc["options"]["density"].get<double>();
  out += "\nwhole model\n";
  out += with_base
             ? fmt::format("  {:<6} {:>8} {:>8} {:>9} {:>9} {:>12} {:>12}\n", "pair", "cosine",
                           "rel_L2", "task_cos", "sign_agr", fmt::format("conflict@{}", density),
                           fmt::format("overlap@{}", density))
             : fmt::format("  {:<6} {:>8} {:>8}\n", "pair", "cosine", "rel_L2");
  for (const auto& p : doc["pairs"]) {
    out += fmt::format("  {:<6} {:>8} {:>8}", pair_label(p), figure(p["cosine"]),
                       figure(p["relative_l2"]));
    if (with_base) {
      out += fmt::format(" {:>9} {:>9} {:>12} {:>12}", figure(p["task_cosine"]),
                         figure(p["sign_agreement"]), figure(p["sign_conflict"]),
                         figure(p["top_k_overlap"]));
    }
    out += "\n";
  }
  const char* measure = with_base ? "sign_conflict" : "cosine";
  out += fmt::format("\nby module kind ({} per pair)\n", measure);
  for (const auto& k : doc["modules"]) {
    out += fmt::format("  {:<10}", k["kind"].get<std::string>());
    for (const auto& p : k["pairs"])
      out += fmt::format(" {}:{}", pair_label(p),
                         figure(with_base ? p["sign_conflict"] : p["cosine"]));
    out += "\n";
  }
  out += "\nby layer (cosine per pair" + std::string(with_base ? ", task cosine" : "") + ")\n";
  for (const auto& l : doc["layers"]) {
    out += fmt::format("  layer {:>3}", l["layer"].get<std::int64_t>());
    for (const auto& p : l["pairs"]) {
      out += fmt::format(" {}:{}", pair_label(p), figure(p["cosine"]));
      if (with_base) out += "/" + figure(p["task_cosine"]);
    }
    out += "\n";
  }
  for (const auto& a : doc["alignment"]) {
    std::string map;
    for (const auto& v : a["map"])
      map += (map.empty() ? "" : " ") + std::to_string(v.get<std::int64_t>());
    out += fmt::format(
        "\nlayer alignment of model {} ({} layers) onto model 0 ({} layers), mean "
        "similarity {}:\n  [{}]\n",
        a["model"].get<int>(), a["layers"].get<std::int64_t>(),
        a["reference_layers"].get<std::int64_t>(), figure(a["mean_similarity"]), map);
  }
  const auto& rec = doc["recommendation"];
  out += fmt::format("\nrecommended: {} {}\n", rec["method"].get<std::string>(),
                     rec["parameters"].dump());
  for (const auto& r : rec["reasons"])
    out += "  because " + r.get<std::string>() + "\n";
  if (!rec["config"].get<std::string>().empty()) {
    out += "\nconfig (llmerge run it, or edit it first):\n";
    out += rec["config"].get<std::string>();
  }
  return terminal_safe(out);
}

}  // namespace llmerge
