// The HTML report of a compare document (compare_document.h): one page with
// inline CSS and SVG drawn here, so it opens offline and runs no script.
// Every text from the document (model names, tensor names) is escaped.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <fmt/core.h>

#include "analysis/compare_document.h"

namespace llmerge {

namespace {

using nlohmann::json;

std::string esc(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string figure(const json& v) {
  return v.is_number() ? fmt::format("{:.4f}", v.get<double>()) : std::string("–");
}

std::string pair_label(const json& p) {
  return fmt::format("{}–{}", p["a"].get<int>(), p["b"].get<int>());
}

// Viridis-like ramp from dark blue (0) through teal to yellow (1).
std::string colour(double t) {
  if (!std::isfinite(t)) return "#dddddd";
  t = std::clamp(t, 0.0, 1.0);
  static constexpr double k_stops[5][3] = {
      {68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
  const double x = t * 4;
  const int i = std::min(3, static_cast<int>(x));
  const double f = x - i;
  int rgb[3];
  for (int c = 0; c < 3; ++c)
    rgb[c] = static_cast<int>(std::lround(k_stops[i][c] + f * (k_stops[i + 1][c] - k_stops[i][c])));
  return fmt::format("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]);
}

const char* k_series[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
                          "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};

struct Range {
  double lo = INFINITY, hi = -INFINITY;
  void add(const json& v) {
    if (!v.is_number()) return;
    lo = std::min(lo, v.get<double>());
    hi = std::max(hi, v.get<double>());
  }
  bool empty() const { return !(lo <= hi); }
  double norm(double v) const { return hi > lo ? (v - lo) / (hi - lo) : 0.5; }
};

std::string legend(const Range& r, double x, double y) {
  std::string s;
  for (int i = 0; i < 10; ++i)
    s += fmt::format(R"(<rect x="{}" y="{}" width="12" height="10" fill="{}"/>)", x + i * 12, y,
                     colour(i / 9.0));
  s += fmt::format(R"(<text x="{}" y="{}" class="small">{:.4f}</text>)", x, y + 22, r.lo);
  s += fmt::format(R"(<text x="{}" y="{}" class="small" text-anchor="end">{:.4f}</text>)", x + 120,
                   y + 22, r.hi);
  return s;
}

// Layers down, model pairs across, one cell per (layer, pair): `field`.
std::string heatmap(const json& doc, const std::string& field, const std::string& title) {
  const auto& layers = doc["layers"];
  const auto& pairs = doc["pairs"];
  if (layers.empty()) return "<p>No layered tensors were compared.</p>";
  Range r;
  for (const auto& l : layers)
    for (const auto& p : l["pairs"])
      r.add(p[field]);
  if (r.empty()) return "";
  const double cell_w = std::max(40.0, 240.0 / static_cast<double>(pairs.size()));
  const double cell_h = std::clamp(360.0 / static_cast<double>(layers.size()), 6.0, 22.0);
  const double left = 60, top = 40;
  const double w = left + cell_w * static_cast<double>(pairs.size()) + 160;
  const double h = top + cell_h * static_cast<double>(layers.size()) + 20;
  std::string s = fmt::format(
      R"(<svg xmlns="http://www.w3.org/2000/svg" width="{:.0f}" height="{:.0f}" role="img" aria-label="{}">)",
      w, h, esc(title));
  s += fmt::format(R"(<text x="{}" y="16" class="title">{}</text>)", left, esc(title));
  for (std::size_t p = 0; p < pairs.size(); ++p) {
    s += fmt::format(R"(<text x="{:.1f}" y="{}" class="small" text-anchor="middle">{}</text>)",
                     left + cell_w * (p + 0.5), top - 6, esc(pair_label(pairs[p])));
  }
  const std::size_t label_every = std::max<std::size_t>(1, static_cast<std::size_t>(12 / cell_h));
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const auto& l = layers[i];
    const double y = top + cell_h * static_cast<double>(i);
    if (i % label_every == 0) {
      s += fmt::format(R"(<text x="{}" y="{:.1f}" class="small" text-anchor="end">{}</text>)",
                       left - 6, y + cell_h * 0.8, l["layer"].get<std::int64_t>());
    }
    for (std::size_t p = 0; p < l["pairs"].size(); ++p) {
      const json& v = l["pairs"][p][field];
      s += fmt::format(
          R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}"><title>layer {} pair {}: {} {}</title></rect>)",
          left + cell_w * p, y, cell_w - 1, cell_h - 1,
          colour(v.is_number() ? r.norm(v.get<double>()) : NAN), l["layer"].get<std::int64_t>(),
          esc(pair_label(l["pairs"][p])), field, figure(v));
    }
  }
  s += legend(r, left + cell_w * static_cast<double>(pairs.size()) + 20, top);
  return s + "</svg>";
}

// One line per pair over the layer index: `field`.
std::string curves(const json& doc, const std::string& field, const std::string& title) {
  const auto& layers = doc["layers"];
  if (layers.size() < 1) return "";
  Range r;
  for (const auto& l : layers)
    for (const auto& p : l["pairs"])
      r.add(p[field]);
  if (r.empty()) return "";
  if (r.hi - r.lo < 1e-6) {
    r.lo -= 0.001;
    r.hi += 0.001;
  }
  const double left = 70, top = 30, pw = 520, ph = 200;
  const double n = static_cast<double>(std::max<std::size_t>(layers.size() - 1, 1));
  std::string s = fmt::format(
      R"(<svg xmlns="http://www.w3.org/2000/svg" width="{:.0f}" height="{:.0f}" role="img" aria-label="{}">)",
      left + pw + 130, top + ph + 40, esc(title));
  s += fmt::format(R"(<text x="{}" y="16" class="title">{}</text>)", left, esc(title));
  s += fmt::format(R"(<rect x="{}" y="{}" width="{}" height="{}" class="frame"/>)", left, top, pw,
                   ph);
  // Enough decimals that the five ticks differ (cosines of fine-tunes sit at 0.999...).
  const int digits = std::clamp(static_cast<int>(std::ceil(-std::log10(r.hi - r.lo))) + 2, 2, 8);
  for (int t = 0; t <= 4; ++t) {
    const double v = r.lo + (r.hi - r.lo) * t / 4;
    const double y = top + ph - ph * t / 4;
    s += fmt::format(R"(<text x="{}" y="{:.1f}" class="small" text-anchor="end">{:.{}f}</text>)",
                     left - 4, y + 3, v, digits);
    s += fmt::format(R"(<line x1="{}" x2="{}" y1="{:.1f}" y2="{:.1f}" class="grid"/>)", left,
                     left + pw, y, y);
  }
  s += fmt::format(R"(<text x="{}" y="{}" class="small" text-anchor="middle">layer</text>)",
                   left + pw / 2, top + ph + 32);
  const auto first = layers.front()["layer"].get<std::int64_t>();
  const auto last = layers.back()["layer"].get<std::int64_t>();
  s += fmt::format(R"(<text x="{}" y="{}" class="small">{}</text>)", left, top + ph + 14, first);
  s += fmt::format(R"(<text x="{}" y="{}" class="small" text-anchor="end">{}</text>)", left + pw,
                   top + ph + 14, last);
  const std::size_t npairs = doc["pairs"].size();
  for (std::size_t p = 0; p < npairs; ++p) {
    std::string points;
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const json& v = layers[i]["pairs"][p][field];
      if (!v.is_number()) continue;
      points += fmt::format("{:.1f},{:.1f} ", left + pw * (layers.size() > 1 ? i / n : 0.5),
                            top + ph - ph * r.norm(v.get<double>()));
    }
    const char* c = k_series[p % 10];
    s += fmt::format(R"(<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>)", points,
                     c);
    s += fmt::format(R"(<text x="{}" y="{}" class="small" fill="{}">pair {}</text>)",
                     left + pw + 10, top + 12 + 14 * p, c, esc(pair_label(doc["pairs"][p])));
  }
  return s + "</svg>";
}

// The layer-similarity matrix of one alignment, with the chosen map drawn on it.
std::string alignment_svg(const json& a) {
  const auto& sim = a["similarity"];
  const std::size_t rows = sim.size();
  const std::size_t cols = rows ? sim[0].size() : 0;
  if (rows == 0 || cols == 0) return "";
  const double cell = std::clamp(360.0 / static_cast<double>(std::max(rows, cols)), 4.0, 24.0);
  const double left = 60, top = 40;
  Range r;
  for (const auto& row : sim)
    for (const auto& v : row)
      r.add(v);
  const std::string title =
      fmt::format("model {} layers (down) × model 0 layers (across)", a["model"].get<int>());
  std::string s = fmt::format(
      R"(<svg xmlns="http://www.w3.org/2000/svg" width="{:.0f}" height="{:.0f}" role="img" aria-label="{}">)",
      std::max(left + cell * cols + 160, 460.0), top + cell * rows + 30, esc(title));
  s += fmt::format(R"(<text x="{}" y="16" class="title">{}</text>)", left, esc(title));
  for (std::size_t j = 0; j < rows; ++j) {
    for (std::size_t i = 0; i < cols; ++i) {
      const json& v = sim[j][i];
      s += fmt::format(
          R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}"><title>{} → {}: {}</title></rect>)",
          left + cell * i, top + cell * j, cell, cell,
          colour(v.is_number() ? r.norm(v.get<double>()) : NAN), j, i, figure(v));
    }
  }
  std::string points;
  for (std::size_t j = 0; j < a["map"].size(); ++j) {
    const double i = a["map"][j].get<double>();
    points += fmt::format("{:.1f},{:.1f} ", left + cell * (i + 0.5), top + cell * (j + 0.5));
  }
  s += fmt::format(R"(<polyline points="{}" fill="none" stroke="#ff2060" stroke-width="2"/>)",
                   points);
  s += fmt::format(R"(<text x="{}" y="{}" class="small">0</text>)", left - 12, top + cell * 0.8);
  if (!r.empty()) s += legend(r, left + cell * cols + 20, top);
  return s + "</svg>";
}

std::string table(const json& pairs, bool with_base) {
  std::string s = "<table><tr><th>pair</th><th>cosine</th><th>relative L2</th>";
  if (with_base)
    s += "<th>task cosine</th><th>sign agreement</th><th>sign conflict</th><th>top-k overlap</th>";
  s += "</tr>";
  for (const auto& p : pairs) {
    s += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td>", esc(pair_label(p)),
                     figure(p["cosine"]), figure(p["relative_l2"]));
    if (with_base) {
      s += fmt::format("<td>{}</td><td>{}</td><td>{}</td><td>{}</td>", figure(p["task_cosine"]),
                       figure(p["sign_agreement"]), figure(p["sign_conflict"]),
                       figure(p["top_k_overlap"]));
    }
    s += "</tr>";
  }
  return s + "</table>";
}

constexpr const char* k_style = R"(
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child{text-align:left}
pre{background:#f6f6f6;padding:1em;overflow:auto}
svg{display:block;margin:1em 0}.title{font-size:13px;font-weight:600}.small{font-size:11px}
.frame{fill:none;stroke:#888}.grid{stroke:#eee}
.reason{margin:.2em 0})";

}  // namespace

std::string compare_html(const nlohmann::json& doc) {
  const bool with_base = !doc["base"].is_null();
  std::string s = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">";
  s += "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src "
       "'unsafe-inline'; img-src data:\">";
  s += "<title>llmerge compare</title><style>" + std::string(k_style) + "</style></head><body>";
  s += "<h1>llmerge compare</h1><table><tr><th>model</th><th>name</th><th>layers</th>"
       "<th>parameters</th><th>dtype</th></tr>";
  auto model_row = [&](const std::string& label, const json& m) {
    s += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", esc(label),
                     esc(m["name"].get<std::string>()), m["layers"].get<std::int64_t>(),
                     m["parameters"].get<std::uint64_t>(), esc(m["dtype"].get<std::string>()));
  };
  for (std::size_t m = 0; m < doc["models"].size(); ++m)
    model_row(std::to_string(m), doc["models"][m]);
  if (with_base) model_row("base", doc["base"]);
  s += "</table>";
  s += fmt::format(
      "<p>{} elements compared per model; {} tensors skipped. Density for sign "
      "conflict and top-k overlap: {}.</p>",
      doc["elements"].get<std::int64_t>(), doc["skipped"]["count"].get<std::size_t>(),
      doc["options"]["density"].get<double>());

  const auto& rec = doc["recommendation"];
  s += "<h2>Recommendation</h2>";
  s += fmt::format("<p><b>{}</b> {}</p>", esc(rec["method"].get<std::string>()),
                   esc(rec["parameters"].dump()));
  for (const auto& r : rec["reasons"])
    s += "<p class=\"reason\">" + esc(r.get<std::string>()) + "</p>";
  if (!rec["config"].get<std::string>().empty())
    s += "<pre>" + esc(rec["config"].get<std::string>()) + "</pre>";

  s += "<h2>Whole model</h2>" + table(doc["pairs"], with_base);
  s += "<h2>By module kind</h2>";
  for (const auto& k : doc["modules"])
    s += "<h3>" + esc(k["kind"].get<std::string>()) + "</h3>" + table(k["pairs"], with_base);

  s += "<h2>By layer</h2>";
  bool depths_differ = false;
  for (const auto& m : doc["models"])
    depths_differ = depths_differ || m["layers"] != doc["models"][0]["layers"];
  if (depths_differ) {
    s += "<p>The models' depths differ: layers are compared by index here, for the indices "
         "every model has; the layer alignment below pairs them by similarity.</p>";
  }
  s += heatmap(doc, "cosine", "cosine by layer × model pair");
  if (with_base) {
    s += heatmap(doc, "task_cosine", "task-vector cosine by layer × model pair");
    s += heatmap(doc, "sign_conflict", "sign conflict by layer × model pair");
  }
  s += curves(doc, "cosine", "cosine per layer");
  s += curves(doc, "relative_l2", "relative L2 distance per layer");
  if (with_base) s += curves(doc, "sign_conflict", "sign conflict per layer");

  s += "<h2>Layer alignment</h2>";
  for (const auto& a : doc["alignment"]) {
    std::string map;
    for (const auto& v : a["map"])
      map += (map.empty() ? "" : ", ") + std::to_string(v.get<std::int64_t>());
    s += fmt::format("<p>Model {} onto model 0: map [{}], mean similarity {}.</p>",
                     a["model"].get<int>(), map, figure(a["mean_similarity"]));
    s += alignment_svg(a);
    if (!a["slices_config"].get<std::string>().empty())
      s += "<pre>" + esc(a["slices_config"].get<std::string>()) + "</pre>";
  }
  const auto& skipped = doc["skipped"]["first"];
  if (!skipped.empty()) {
    s += "<h2>Skipped tensors</h2><table><tr><th>tensor</th><th>reason</th></tr>";
    for (const auto& k : skipped) {
      s += fmt::format("<tr><td>{}</td><td>{}</td></tr>", esc(k["name"].get<std::string>()),
                       esc(k["reason"].get<std::string>()));
    }
    s += "</table>";
  }
  s += fmt::format("<p class=\"small\">llmerge {} · schema {} version {}</p>",
                   esc(doc["llmerge"].get<std::string>()), esc(doc["schema"].get<std::string>()),
                   doc["version"].get<int>());
  return s + "</body></html>\n";
}

}  // namespace llmerge
