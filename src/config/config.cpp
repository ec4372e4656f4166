// YAML text -> MergeConfig (mergekit config.py MergeConfiguration;
// docs/mergekit-semantics.md §2.1-§2.3). Stricter than mergekit on purpose:
// unknown keys and wrong types are errors with a location.
#include "config/config.h"

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "config/seed_format.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/utf8.h"

namespace llmerge {

namespace {

// A merge config is a few kilobytes. The cap bounds yaml-cpp's memory (a few
// hundred bytes per node) on hostile input.
constexpr std::size_t k_text_bytes_max = std::size_t{1} << 20;
// Flow nesting ([...] and {...}) a config may have; yaml-cpp recurses per level.
constexpr int k_flow_depth_max = 64;
// Aliases share nodes, so a short file can describe an exponentially large tree
// ("billion laughs"). Every node the traversal touches counts, so a bomb stops here.
constexpr std::size_t k_node_visits_max = 1'000'000;
// Long scalars are cut in messages.
constexpr std::size_t k_quote_chars_max = 40;

constexpr std::string_view k_value_expected =
    "a number, a list of numbers, or a list of {filter, value}";

const std::vector<std::string> k_top_level_keys = {
    "merge_method", "base_model",       "models",    "slices",        "parameters", "dtype",
    "out_dtype",    "tokenizer_source", "tokenizer", "chat_template", "name",       "modules"};
const std::vector<std::string> k_model_keys = {"model", "parameters", "layer_range"};
const std::vector<std::string> k_source_keys = {"model", "layer_range", "parameters"};
// residual_weight: mergekit parses it into OutputSliceDefinition and never reads it.
// Accepted (and type-checked) so that existing configs load; it has no effect.
// merge_method: llmerge's per-slice extension (docs/recipes.md).
const std::vector<std::string> k_slice_keys = {"sources", "base_model", "parameters",
                                               "residual_weight", "merge_method"};
const std::vector<std::string> k_condition_keys = {"filter", "value"};
const std::vector<std::string> k_tokenizer_keys = {"source", "tokens", "pad_to_multiple_of"};
const std::vector<std::string> k_token_keys = {"source", "force"};
const std::vector<std::string> k_token_source_keys = {"kind", "model", "token", "token_id"};

std::string child_path(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : fmt::format("{}.{}", parent, key);
}
std::string item_path(const std::string& parent, std::size_t i) {
  return fmt::format("{}[{}]", parent, i);
}

bool is_quoted(const YAML::Node& n) {
  return n.Tag() == "!" || n.Tag() == "tag:yaml.org,2002:str";
}

enum class NumberParse { not_a_number, ok, out_of_range };

// Decimal integers and floats, plus YAML's .inf / .nan. PyYAML's rarer int
// spellings (0x.., 0o.., 1_000) stay strings.
NumberParse parse_number(std::string_view s, double& out) {
  std::string_view body = s;
  const bool negative = !body.empty() && body[0] == '-';
  if (!body.empty() && (body[0] == '+' || body[0] == '-')) body.remove_prefix(1);
  if (body == ".inf" || body == ".Inf" || body == ".INF") {
    out = negative ? -std::numeric_limits<double>::infinity()
                   : std::numeric_limits<double>::infinity();
    return NumberParse::ok;
  }
  if (s == ".nan" || s == ".NaN" || s == ".NAN") {
    out = std::numeric_limits<double>::quiet_NaN();
    return NumberParse::ok;
  }
  // from_chars would also take "inf" and "nan", which YAML reads as strings.
  if (body.empty() || !((body[0] >= '0' && body[0] <= '9') || body[0] == '.'))
    return NumberParse::not_a_number;
  double v = 0;
  const char* end = body.data() + body.size();
  const auto [ptr, ec] = std::from_chars(body.data(), end, v, std::chars_format::general);
  if (ptr != end) return NumberParse::not_a_number;
  if (ec == std::errc::result_out_of_range) return NumberParse::out_of_range;
  if (ec != std::errc()) return NumberParse::not_a_number;
  out = negative ? -v : v;
  return NumberParse::ok;
}

// PyYAML's (YAML 1.1) boolean spellings, so configs mean what they meant to mergekit.
std::optional<bool> parse_bool(std::string_view s) {
  for (std::string_view t : {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"})
    if (s == t) return true;
  for (std::string_view f : {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"})
    if (s == f) return false;
  return std::nullopt;
}

std::string quote(const std::string& s) {
  if (s.size() <= k_quote_chars_max) return "'" + s + "'";
  return "'" + s.substr(0, k_quote_chars_max) + "...'";
}

std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Scalar: {
      double d = 0;
      if (!is_quoted(n) && parse_number(n.Scalar(), d) != NumberParse::not_a_number)
        return "the number " + n.Scalar();
      if (!is_quoted(n) && parse_bool(n.Scalar())) return "the boolean " + n.Scalar();
      return "the string " + quote(n.Scalar());
    }
    default:
      return "nothing (null)";
  }
}

SourceLocation location_of(const YAML::Node& n, SourceLocation fallback) {
  const YAML::Mark m = n.Mark();
  // A missing value (`key:`) is a null node whose mark points at the next token.
  if (!n.IsDefined() || n.IsNull() || m.is_null() || m.line < 0) return fallback;
  return {m.line + 1, m.column + 1};
}

struct MapEntry {
  std::string key;
  SourceLocation key_location;
  YAML::Node value;
};

class Parser {
 public:
  Parser(const std::string& file, std::map<std::pair<int, int>, std::string>& paths)
      : file_(file), paths_(paths) {}

  void parse_document(const YAML::Node& root, MergeConfig& config);

 private:
  [[noreturn]] void fail(ErrorKind kind, SourceLocation at, const std::string& message) const {
    throw Error(kind, message, ErrorContext{file_, at.line, at.column, {}});
  }
  [[noreturn]] void fail_type(const YAML::Node& n, SourceLocation at, const std::string& path,
                              std::string_view expected) const {
    fail(ErrorKind::config, at,
         fmt::format("{}: expected {}; found {}", path, expected, describe(n)));
  }
  void visit(SourceLocation at) {
    if (++visits_ > k_node_visits_max)
      fail(ErrorKind::config, at,
           fmt::format("config is too large: more than {} YAML nodes once aliases are expanded",
                       k_node_visits_max));
  }

  std::vector<MapEntry> map_entries(const YAML::Node& map, SourceLocation at,
                                    const std::string& path,
                                    const std::vector<std::string>* allowed);
  std::string parse_string(const YAML::Node& n, SourceLocation at, const std::string& path);
  std::string parse_model_reference(const YAML::Node& n, SourceLocation at,
                                    const std::string& path);
  std::string parse_tokenizer_source(const YAML::Node& n, SourceLocation at,
                                     const std::string& path);
  std::string parse_dtype(const YAML::Node& n, SourceLocation at, const std::string& path);
  ParameterValue parse_value(const YAML::Node& n, SourceLocation at, const std::string& path,
                             bool allow_conditions);
  ParameterMap parse_parameters(const YAML::Node& n, SourceLocation at, const std::string& path);
  std::pair<std::int64_t, std::int64_t> parse_layer_range(const YAML::Node& n, SourceLocation at,
                                                          const std::string& path);
  ModelSource parse_model_entry(const YAML::Node& n, SourceLocation at, const std::string& path,
                                bool is_slice_source);
  std::vector<ModelSource> parse_model_list(const YAML::Node& n, SourceLocation at,
                                            const std::string& path, bool is_slice_source);
  Slice parse_slice(const YAML::Node& n, SourceLocation at, const std::string& path);
  void parse_tokenizer(const YAML::Node& n, SourceLocation at, MergeConfig& config);
  TokenOverride parse_token_override(const MapEntry& e);
  std::int64_t parse_int(const YAML::Node& n, SourceLocation at, const std::string& path);

  const std::string& file_;
  std::map<std::pair<int, int>, std::string>& paths_;  // MergeConfig::yaml_paths
  std::size_t visits_ = 0;
};

std::vector<MapEntry> Parser::map_entries(const YAML::Node& map, SourceLocation at,
                                          const std::string& path,
                                          const std::vector<std::string>* allowed) {
  std::vector<MapEntry> out;
  std::set<std::string> seen;
  std::vector<std::pair<YAML::Node, SourceLocation>> merges;  // `<<:` sources, in order
  const std::string where = path.empty() ? "" : " in " + path;
  for (const auto& kv : map) {
    const SourceLocation key_at = location_of(kv.first, at);
    visit(key_at);
    if (!kv.first.IsScalar())
      fail_type(kv.first, key_at, path.empty() ? "top level" : path, "string keys");
    const std::string& key = kv.first.Scalar();
    // A YAML merge key (`<<: *defaults`, or a list of aliases), as PyYAML
    // reads it: the mapping's own keys win, then earlier sources over later.
    if (key == "<<" && !is_quoted(kv.first)) {
      const SourceLocation value_at = location_of(kv.second, key_at);
      if (kv.second.IsMap()) {
        merges.emplace_back(kv.second, value_at);
      } else if (kv.second.IsSequence()) {
        for (const YAML::Node& item : kv.second) {
          if (!item.IsMap())
            fail_type(item, location_of(item, value_at), path, "a mapping to merge");
          merges.emplace_back(item, location_of(item, value_at));
        }
      } else {
        fail_type(kv.second, value_at, path.empty() ? "<<" : path + ".<<",
                  "a mapping (or a list of mappings) to merge");
      }
      continue;
    }
    if (allowed && std::find(allowed->begin(), allowed->end(), key) == allowed->end()) {
      std::string message =
          fmt::format("unknown {}key {}{}", path.empty() ? "top-level " : "", quote(key), where);
      if (auto match = closest_match(key, *allowed))
        message += fmt::format("; did you mean '{}'?", *match);
      else
        message += fmt::format("; expected one of: {}", fmt::join(*allowed, ", "));
      fail(ErrorKind::config, key_at, message);
    }
    // PyYAML keeps the last duplicate silently; a duplicate is almost always a mistake.
    if (!seen.insert(key).second)
      fail(
          ErrorKind::config, key_at,
          fmt::format("duplicate {}key {}{}", path.empty() ? "top-level " : "", quote(key), where));
    paths_.try_emplace({key_at.line, key_at.column}, path.empty() ? key : path + "." + key);
    out.push_back({key, key_at, kv.second});
  }
  for (const auto& [source, source_at] : merges) {
    for (auto& entry : map_entries(source, source_at, path, allowed)) {
      if (seen.insert(entry.key).second) out.push_back(std::move(entry));
    }
  }
  return out;
}

std::string Parser::parse_string(const YAML::Node& n, SourceLocation at, const std::string& path) {
  visit(at);
  if (!n.IsScalar()) fail_type(n, at, path, "a string");
  return n.Scalar();
}

std::string Parser::parse_model_reference(const YAML::Node& n, SourceLocation at,
                                          const std::string& path) {
  visit(at);
  if (n.IsMap())
    fail(ErrorKind::unsupported, at,
         fmt::format("{}: model references in dict form ({{model: {{path, revision}}}}) are not "
                     "supported yet; write 'path' or 'org/name@revision'",
                     path));
  if (!n.IsScalar()) fail_type(n, at, path, "a model reference (a path or org/name[@revision])");
  const std::string& ref = n.Scalar();
  if (ref.empty()) fail(ErrorKind::config, at, path + ": the model reference is empty");
  // mergekit's ModelReference: path[@revision][+adapter[@revision]], at most
  // one '+' and one '@' per part (docs/lora.md).
  const std::size_t plus = ref.find('+');
  if (plus != std::string::npos &&
      (plus == 0 || plus + 1 == ref.size() || ref.find('+', plus + 1) != std::string::npos))
    fail(ErrorKind::config, at,
         fmt::format("{}: malformed model reference {}; expected 'model' or 'model+adapter' "
                     "(one '+', a LoRA adapter after it)",
                     path, quote(ref)));
  const std::string_view whole = ref;
  for (std::string_view part :
       {whole.substr(0, plus),
        plus == std::string::npos ? std::string_view{} : whole.substr(plus + 1)}) {
    const std::size_t at_sign = part.find('@');
    if (at_sign != std::string::npos && (at_sign == 0 || at_sign + 1 == part.size() ||
                                         part.find('@', at_sign + 1) != std::string::npos))
      fail(ErrorKind::config, at,
           fmt::format("{}: malformed model reference {}; expected 'path' or "
                       "'org/name@revision', optionally followed by '+adapter'",
                       path, quote(ref)));
  }
  return ref;
}

std::string Parser::parse_tokenizer_source(const YAML::Node& n, SourceLocation at,
                                           const std::string& path) {
  if (n.IsScalar() && (n.Scalar() == "base" || n.Scalar() == "union")) {
    visit(at);
    return n.Scalar();
  }
  return parse_model_reference(n, at, path);
}

std::string Parser::parse_dtype(const YAML::Node& n, SourceLocation at, const std::string& path) {
  std::string name = parse_string(n, at, path);
  if (!dtype_from_torch_name(name))
    fail(ErrorKind::config, at,
         fmt::format("{}: unknown dtype {}; expected bfloat16 (bf16), float16 (fp16, f16, half) "
                     "or float32 (fp32, f32, float), optionally prefixed 'torch.'",
                     path, quote(name)));
  return name;
}

ParameterValue Parser::parse_value(const YAML::Node& n, SourceLocation at, const std::string& path,
                                   bool allow_conditions) {
  visit(at);
  ParameterValue value;
  value.location = at;
  if (n.IsScalar()) {
    const std::string& text = n.Scalar();
    if (is_quoted(n)) {
      value.kind = ParameterValue::Kind::string;
      value.string = text;
      return value;
    }
    switch (parse_number(text, value.number)) {
      case NumberParse::ok:
        value.kind = ParameterValue::Kind::number;
        return value;
      case NumberParse::out_of_range:
        fail(ErrorKind::config, at, fmt::format("{}: the number {} is out of range", path, text));
      case NumberParse::not_a_number:
        break;
    }
    if (auto b = parse_bool(text)) {
      value.kind = ParameterValue::Kind::boolean;
      value.boolean = *b;
      return value;
    }
    value.kind = ParameterValue::Kind::string;
    value.string = text;
    return value;
  }
  if (n.IsMap()) {
    if (n["value"] || n["filter"])
      fail(ErrorKind::config, at,
           fmt::format("{}: a conditional parameter must be a list: write `- filter: ...` and "
                       "`  value: ...` (one list item per condition)",
                       path));
    fail_type(n, at, path, k_value_expected);
  }
  if (!n.IsSequence()) fail_type(n, at, path, k_value_expected);
  if (n.size() == 0) fail(ErrorKind::config, at, path + ": the list is empty");

  if (n[0].IsMap()) {
    if (!allow_conditions)
      fail(ErrorKind::config, location_of(n[0], at),
           fmt::format("{}: conditional parameters do not nest; a condition's value is a number "
                       "or a list of numbers",
                       path));
    value.kind = ParameterValue::Kind::conditions;
    std::size_t i = 0;
    for (const YAML::Node& item : n) {
      const std::string item_at_path = item_path(path, i++);
      const SourceLocation item_at = location_of(item, at);
      visit(item_at);
      if (!item.IsMap())
        fail_type(item, item_at, item_at_path, "a {filter, value} map like the first item");
      ParameterCondition cond;
      cond.location = item_at;
      for (const MapEntry& e : map_entries(item, item_at, item_at_path, &k_condition_keys)) {
        const SourceLocation value_at = location_of(e.value, e.key_location);
        if (e.key == "filter") {
          if (!e.value.IsNull())
            cond.filter = parse_string(e.value, value_at, item_at_path + ".filter");
        } else {
          cond.value = std::make_shared<ParameterValue>(
              parse_value(e.value, value_at, item_at_path + ".value", false));
        }
      }
      if (!cond.value)
        fail(ErrorKind::config, item_at,
             fmt::format("{}: missing key 'value' in a conditional parameter", item_at_path));
      value.conditions.push_back(std::move(cond));
    }
    return value;
  }

  value.kind = ParameterValue::Kind::gradient;
  std::size_t i = 0;
  for (const YAML::Node& item : n) {
    const std::string item_at_path = item_path(path, i++);
    const SourceLocation item_at = location_of(item, at);
    visit(item_at);
    if (item.IsSequence())
      fail(
          ErrorKind::config, item_at,
          fmt::format("{}: lists do not nest; a gradient is a flat list of numbers", item_at_path));
    if (!item.IsScalar() || is_quoted(item)) fail_type(item, item_at, item_at_path, "a number");
    double number = 0;
    switch (parse_number(item.Scalar(), number)) {
      case NumberParse::ok:
        break;
      case NumberParse::out_of_range:
        fail(ErrorKind::config, item_at,
             fmt::format("{}: the number {} is out of range", item_at_path, item.Scalar()));
      case NumberParse::not_a_number:
        // mergekit (Python) interpolates booleans as 0/1.
        if (auto b = parse_bool(item.Scalar())) {
          number = *b ? 1 : 0;
          break;
        }
        fail_type(item, item_at, item_at_path, "a number (a gradient is a list of numbers)");
    }
    value.gradient.push_back(number);
  }
  return value;
}

ParameterMap Parser::parse_parameters(const YAML::Node& n, SourceLocation at,
                                      const std::string& path) {
  visit(at);
  ParameterMap out;
  if (n.IsNull()) return out;
  if (!n.IsMap()) fail_type(n, at, path, "a map of parameter names to values");
  // Names are checked by the planner, which knows the method's parameters.
  for (const MapEntry& e : map_entries(n, at, path, nullptr)) {
    const SourceLocation value_at = location_of(e.value, e.key_location);
    out.push_back(
        {e.key, parse_value(e.value, value_at, child_path(path, e.key), true), e.key_location});
  }
  return out;
}

std::pair<std::int64_t, std::int64_t> Parser::parse_layer_range(const YAML::Node& n,
                                                                SourceLocation at,
                                                                const std::string& path) {
  visit(at);
  constexpr std::string_view expected = "a list of two integers [start, end]";
  if (!n.IsSequence()) fail_type(n, at, path, expected);
  if (n.size() != 2)
    fail(ErrorKind::config, at,
         fmt::format("{}: expected {}; found a list of {}", path, expected, n.size()));
  std::int64_t bounds[2] = {0, 0};
  for (std::size_t i = 0; i < 2; ++i) {
    const YAML::Node item = n[i];
    const SourceLocation item_at = location_of(item, at);
    visit(item_at);
    const std::string item_at_path = item_path(path, i);
    if (!item.IsScalar() || is_quoted(item)) fail_type(item, item_at, item_at_path, "an integer");
    std::string_view text = item.Scalar();
    if (!text.empty() && text[0] == '+') text.remove_prefix(1);
    const char* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, bounds[i]);
    if (ptr != end || ec == std::errc::invalid_argument)
      fail_type(item, item_at, item_at_path, "an integer");
    if (ec == std::errc::result_out_of_range)
      fail(ErrorKind::config, item_at,
           fmt::format("{}: {} is out of range", item_at_path, item.Scalar()));
  }
  if (bounds[0] < 0)
    fail(ErrorKind::config, at,
         fmt::format("{}: layer_range [{}, {}] starts before layer 0", path, bounds[0], bounds[1]));
  if (bounds[1] <= bounds[0])
    fail(ErrorKind::config, at,
         fmt::format("{}: layer_range [{}, {}] is empty; it is [start, end) with end > start", path,
                     bounds[0], bounds[1]));
  return {bounds[0], bounds[1]};
}

ModelSource Parser::parse_model_entry(const YAML::Node& n, SourceLocation at,
                                      const std::string& path, bool is_slice_source) {
  visit(at);
  if (n.IsScalar())
    fail(ErrorKind::config, at,
         fmt::format("{}: expected a map like `- model: {}`; found the string {}", path, n.Scalar(),
                     quote(n.Scalar())));
  if (!n.IsMap())
    fail_type(
        n, at, path,
        is_slice_source ? "a map {model, layer_range, parameters}" : "a map {model, parameters}");
  ModelSource source;
  source.location = at;
  bool has_model = false;
  const auto& allowed = is_slice_source ? k_source_keys : k_model_keys;
  for (const MapEntry& e : map_entries(n, at, path, &allowed)) {
    const SourceLocation value_at = location_of(e.value, e.key_location);
    const std::string key_path = child_path(path, e.key);
    if (e.key == "model") {
      source.model = parse_model_reference(e.value, value_at, key_path);
      has_model = true;
    } else if (e.key == "parameters") {
      source.parameters = parse_parameters(e.value, value_at, key_path);
    } else if (!is_slice_source) {  // layer_range under models:
      fail(ErrorKind::config, e.key_location,
           fmt::format("{}: layer_range belongs in slices[].sources[]; under models: every "
                       "model is merged whole",
                       path));
    } else {
      source.layer_range = parse_layer_range(e.value, value_at, key_path);
      source.layer_range_location = value_at;
    }
  }
  if (!has_model) fail(ErrorKind::config, at, path + ": missing required key 'model'");
  if (is_slice_source && !source.layer_range)
    fail(ErrorKind::config, at, path + ": missing required key 'layer_range'");
  return source;
}

std::vector<ModelSource> Parser::parse_model_list(const YAML::Node& n, SourceLocation at,
                                                  const std::string& path, bool is_slice_source) {
  visit(at);
  if (!n.IsSequence())
    fail_type(n, at, path,
              is_slice_source ? "a list of {model, layer_range, parameters}"
                              : "a list of {model, parameters}");
  if (n.size() == 0) fail(ErrorKind::config, at, path + ": the list is empty");
  std::vector<ModelSource> out;
  std::size_t i = 0;
  for (const YAML::Node& item : n)
    out.push_back(
        parse_model_entry(item, location_of(item, at), item_path(path, i++), is_slice_source));
  return out;
}

Slice Parser::parse_slice(const YAML::Node& n, SourceLocation at, const std::string& path) {
  visit(at);
  if (!n.IsMap()) fail_type(n, at, path, "a map {sources, base_model, parameters}");
  Slice slice;
  slice.location = at;
  bool has_sources = false;
  for (const MapEntry& e : map_entries(n, at, path, &k_slice_keys)) {
    const SourceLocation value_at = location_of(e.value, e.key_location);
    const std::string key_path = child_path(path, e.key);
    if (e.key == "sources") {
      slice.sources = parse_model_list(e.value, value_at, key_path, true);
      has_sources = true;
    } else if (e.key == "base_model") {
      visit(value_at);
      if (!e.value.IsNull()) {
        slice.base_model = parse_model_reference(e.value, value_at, key_path);
        slice.base_model_location = value_at;
      }
    } else if (e.key == "parameters") {
      slice.parameters = parse_parameters(e.value, value_at, key_path);
    } else if (e.key == "merge_method") {
      slice.merge_method = parse_string(e.value, value_at, key_path);
      if (slice.merge_method->empty())
        fail(ErrorKind::config, value_at, key_path + ": merge_method is empty; name a method");
      // A method the translation added (a seed slice of one source) has no mark.
      slice.merge_method_location = e.value.Mark().is_null() ? at : value_at;
    } else {  // residual_weight: dead in mergekit, so only its type is checked
      double unused = 0;
      visit(value_at);
      if (!e.value.IsNull() && (!e.value.IsScalar() || is_quoted(e.value) ||
                                parse_number(e.value.Scalar(), unused) != NumberParse::ok))
        fail_type(e.value, value_at, key_path, "a number");
    }
  }
  if (!has_sources) fail(ErrorKind::config, at, path + ": missing required key 'sources'");
  return slice;
}

std::int64_t Parser::parse_int(const YAML::Node& n, SourceLocation at, const std::string& path) {
  visit(at);
  if (!n.IsScalar() || is_quoted(n)) fail_type(n, at, path, "an integer");
  std::string_view text = n.Scalar();
  if (!text.empty() && text[0] == '+') text.remove_prefix(1);
  std::int64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ptr != end || ec == std::errc::invalid_argument) fail_type(n, at, path, "an integer");
  if (ec == std::errc::result_out_of_range)
    fail(ErrorKind::config, at, fmt::format("{}: {} is out of range", path, n.Scalar()));
  return value;
}

TokenOverride Parser::parse_token_override(const MapEntry& e) {
  TokenOverride o;
  o.token = e.key;
  o.location = e.key_location;
  o.source_location = e.key_location;
  const std::string path = "tokenizer.tokens." + e.key;
  const SourceLocation at = location_of(e.value, e.key_location);
  visit(at);
  if (e.value.IsNull()) return o;
  if (!e.value.IsMap()) fail_type(e.value, at, path, "a map {source, force}");
  for (const MapEntry& f : map_entries(e.value, at, path, &k_token_keys)) {
    const SourceLocation value_at = location_of(f.value, f.key_location);
    if (f.key == "force") {
      visit(value_at);
      const auto b =
          f.value.IsScalar() && !is_quoted(f.value) ? parse_bool(f.value.Scalar()) : std::nullopt;
      if (!b) fail_type(f.value, value_at, path + ".force", "true or false");
      o.force = *b;
      continue;
    }
    o.source_location = value_at;
    if (f.value.IsNull()) continue;
    if (!f.value.IsMap()) {
      o.kind = TokenOverride::Kind::model;
      o.model = parse_model_reference(f.value, value_at, path + ".source");
      continue;
    }
    const std::string spath = path + ".source";
    std::optional<std::string> kind;
    for (const MapEntry& g : map_entries(f.value, value_at, spath, &k_token_source_keys)) {
      const SourceLocation g_at = location_of(g.value, g.key_location);
      if (g.key == "kind") {
        kind = parse_string(g.value, g_at, spath + ".kind");
        if (*kind != "model_token" && *kind != "zero")
          fail(ErrorKind::config, g_at,
               fmt::format("{}.kind: expected 'model_token' or 'zero'; found '{}'", spath, *kind));
      } else if (g.key == "model") {
        o.model = parse_model_reference(g.value, g_at, spath + ".model");
      } else if (g.key == "token") {
        o.src_token = parse_string(g.value, g_at, spath + ".token");
      } else {
        o.src_id = parse_int(g.value, g_at, spath + ".token_id");
      }
    }
    if (!kind)
      fail(ErrorKind::config, value_at,
           fmt::format("{}: missing 'kind' (model_token or zero); a model is written "
                       "`source: <model>`",
                       spath));
    if (*kind == "zero") {
      if (!o.model.empty() || o.src_token || o.src_id)
        fail(ErrorKind::config, value_at,
             fmt::format("{}: kind 'zero' takes no model, token or token_id", spath));
      o.kind = TokenOverride::Kind::zero;
      continue;
    }
    o.kind = TokenOverride::Kind::model_token;
    if (o.model.empty())
      fail(ErrorKind::config, value_at, fmt::format("{}: model_token needs a 'model'", spath));
    // mergekit's ModelTokenEmbedding validator: exactly one of the two.
    if (o.src_token.has_value() == o.src_id.has_value())
      fail(ErrorKind::config, value_at,
           fmt::format("{}: model_token needs exactly one of 'token' and 'token_id'", spath));
  }
  return o;
}

void Parser::parse_tokenizer(const YAML::Node& n, SourceLocation at, MergeConfig& config) {
  visit(at);
  if (n.IsNull()) return;
  if (!n.IsMap()) fail_type(n, at, "tokenizer", "a map {source, tokens, pad_to_multiple_of}");
  // mergekit's default source is "union".
  config.tokenizer_source = "union";
  for (const MapEntry& e : map_entries(n, at, "tokenizer", &k_tokenizer_keys)) {
    const SourceLocation value_at = location_of(e.value, e.key_location);
    if (e.key == "source") {
      if (!e.value.IsNull())
        config.tokenizer_source = parse_tokenizer_source(e.value, value_at, "tokenizer.source");
    } else if (e.key == "pad_to_multiple_of") {
      if (e.value.IsNull()) continue;
      const std::int64_t m = parse_int(e.value, value_at, "tokenizer.pad_to_multiple_of");
      // An upper bound keeps the padded vocabulary far from overflow.
      if (m < 1 || m > (1 << 20))
        fail(ErrorKind::config, value_at,
             fmt::format("tokenizer.pad_to_multiple_of: {} is out of range [1, 1048576]", m));
      config.pad_to_multiple_of = m;
      config.pad_to_multiple_of_location = value_at;
    } else {
      if (e.value.IsNull()) continue;
      if (!e.value.IsMap())
        fail_type(e.value, value_at, "tokenizer.tokens", "a map of tokens to {source, force}");
      for (const MapEntry& t : map_entries(e.value, value_at, "tokenizer.tokens", nullptr))
        config.tokenizer_tokens.push_back(parse_token_override(t));
    }
  }
}

void Parser::parse_document(const YAML::Node& root, MergeConfig& config) {
  const SourceLocation root_at = location_of(root, {1, 1});
  visit(root_at);
  if (!root.IsMap())
    fail_type(root, root_at, "config", "a map of keys (merge_method, models or slices, ...)");
  std::optional<SourceLocation> models_at, slices_at, tokenizer_at;
  bool has_merge_method = false;
  for (const MapEntry& e : map_entries(root, root_at, "", &k_top_level_keys)) {
    const SourceLocation at = location_of(e.value, e.key_location);
    const bool null = e.value.IsNull();
    if (e.key == "merge_method") {
      config.merge_method = parse_string(e.value, at, e.key);
      config.merge_method_location = at;
      has_merge_method = true;
      // `merge_method: ""` or a bare tag (`!x`): no method, which the planner
      // would otherwise meet as none at all.
      if (config.merge_method.empty())
        fail(ErrorKind::config, at,
             "merge_method is empty; name a method (`llmerge methods` lists them)");
    } else if (e.key == "base_model") {
      if (!null) config.base_model = parse_model_reference(e.value, at, e.key);
      config.base_model_location = at;
    } else if (e.key == "models" || e.key == "slices") {
      const bool is_models = e.key == "models";
      if ((is_models ? slices_at : models_at).has_value())
        fail(ErrorKind::config, e.key_location,
             "models and slices are mutually exclusive: use models: to merge whole models, or "
             "slices: to pick layer ranges");
      if (is_models) {
        models_at = e.key_location;
        config.models = parse_model_list(e.value, at, e.key, false);
      } else {
        slices_at = e.key_location;
        visit(at);
        if (!e.value.IsSequence()) fail_type(e.value, at, e.key, "a list of slices");
        if (e.value.size() == 0) fail(ErrorKind::config, at, "slices: the list is empty");
        std::size_t i = 0;
        for (const YAML::Node& item : e.value)
          config.slices.push_back(
              parse_slice(item, location_of(item, at), item_path("slices", i++)));
      }
    } else if (e.key == "parameters") {
      config.parameters = parse_parameters(e.value, at, e.key);
    } else if (e.key == "dtype") {
      if (!null) config.dtype = parse_dtype(e.value, at, e.key);
      config.dtype_location = at;
    } else if (e.key == "out_dtype") {
      if (!null) config.out_dtype = parse_dtype(e.value, at, e.key);
      config.out_dtype_location = at;
    } else if (e.key == "tokenizer_source" || e.key == "tokenizer") {
      if (tokenizer_at)
        fail(ErrorKind::config, e.key_location,
             "tokenizer_source and tokenizer are mutually exclusive; write `tokenizer: {source: "
             "...}` or `tokenizer_source: ...`, not both");
      tokenizer_at = e.key_location;
      if (e.key == "tokenizer")
        parse_tokenizer(e.value, at, config);
      else if (!null)
        config.tokenizer_source = parse_tokenizer_source(e.value, at, e.key);
      config.tokenizer_source_location = at;
    } else if (e.key == "chat_template") {
      if (!null) config.chat_template = parse_string(e.value, at, e.key);
      config.chat_template_location = at;
    } else if (e.key == "name") {
      config.name = parse_string(e.value, at, e.key);  // mergekit-multi's stage name
      config.name_location = at;
    } else {  // modules
      fail(ErrorKind::unsupported, e.key_location,
           "multi-module configs (modules:) are not supported yet; use models: or slices:");
    }
  }
  if (!models_at && !slices_at)
    fail(ErrorKind::config, root_at,
         "the config needs models: (whole models) or slices: (layer ranges)");
  // llmerge's extension: with a method on every slice (a slice of one source
  // is passthrough without one), the top-level merge_method may be left out.
  if (!has_merge_method) {
    if (!slices_at) fail(ErrorKind::config, root_at, "missing required key 'merge_method'");
    for (std::size_t i = 0; i < config.slices.size(); ++i) {
      Slice& slice = config.slices[i];
      if (slice.merge_method) continue;
      if (slice.sources.size() != 1)
        fail(ErrorKind::config, slice.location,
             fmt::format("slices[{}]: no merge_method for a slice of {} sources; give it one, or "
                         "a top-level merge_method",
                         i, slice.sources.size()));
      slice.merge_method = "passthrough";
      slice.merge_method_location = slice.location;
    }
  }
}

// Ignores every event; only the number of documents matters.
class DocumentCounter : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

std::vector<YAML::Node> load_documents(std::string_view yaml_text, const std::string& file) {
  const auto error = [&](ErrorKind kind, int line, int column, const std::string& message) {
    return Error(kind, message, ErrorContext{file, line, column, {}});
  };
  if (yaml_text.size() > k_text_bytes_max)
    throw error(
        ErrorKind::config, 0, 0,
        fmt::format("config is {} bytes; the limit is {} (a merge config is a few kilobytes)",
                    yaml_text.size(), k_text_bytes_max));
  // YAML allows no control characters but tab, newline and carriage return
  // (YAML 1.2, c-printable); yaml-cpp would call a NUL "unknown escape character".
  {
    int line = 1;
    int column = 1;
    for (const char ch : yaml_text) {
      const auto c = static_cast<unsigned char>(ch);
      if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) {
        throw error(ErrorKind::config, line, column,
                    fmt::format("invalid YAML: control byte 0x{:02X}{} at line {}, column {}; a "
                                "config may hold only printable text (was the file saved as "
                                "text?)",
                                c, c == 0 ? " (NUL)" : "", line, column));
      }
      if (c == '\n') {
        ++line;
        column = 1;
      } else if ((c & 0xC0) != 0x80) {  // count characters, not UTF-8 continuation bytes
        ++column;
      }
    }
  }
  // YAML is Unicode text (YAML 1.2 §5.2), and mergekit reads a config as
  // UTF-8: other bytes would reach messages, mergekit_config.yml and JSON.
  if (const std::size_t bad = find_invalid_utf8(yaml_text); bad != std::string_view::npos) {
    const std::string_view before = yaml_text.substr(0, bad);
    const int line = 1 + static_cast<int>(std::count(before.begin(), before.end(), '\n'));
    const std::size_t line_start = before.rfind('\n') + 1;  // npos + 1 == 0
    int column = 1;
    for (std::size_t k = line_start; k < bad; ++k)
      column += (static_cast<unsigned char>(yaml_text[k]) & 0xC0) != 0x80;
    throw error(ErrorKind::config, line, column,
                fmt::format("invalid YAML: byte 0x{:02X} at line {}, column {} is not UTF-8; save "
                            "the config as UTF-8 text",
                            static_cast<unsigned char>(yaml_text[bad]), line, column));
  }
  // yaml-cpp recurses once per level of flow nesting and gives up deep down
  // with "bad file"; say what is wrong, and where. Brackets inside quoted
  // scalars count too, which only makes the bound stricter than needed; a
  // merge config nests five levels.
  {
    int depth = 0;
    int line = 1;
    int column = 0;
    for (const char ch : yaml_text) {
      ++column;
      if (ch == '\n') {
        ++line;
        column = 0;
      }
      depth += (ch == '[' || ch == '{') ? 1 : (ch == ']' || ch == '}') ? -1 : 0;
      if (depth > k_flow_depth_max)
        throw error(ErrorKind::config, line, column,
                    fmt::format("invalid YAML: [...] or {{...}} nested more than {} deep at line "
                                "{}, column {}",
                                k_flow_depth_max, line, column));
    }
  }
  std::vector<YAML::Node> documents;
  try {
    const std::string text(yaml_text);
    // yaml-cpp 0.7's LoadAll never returns, allocating until the process is
    // killed, on a stray ',' in block context (jbeder/yaml-cpp#1040): the
    // parser keeps reporting an empty document without consuming the token.
    // A document takes at least one line, so count them first, bounded.
    {
      std::istringstream in(text);
      YAML::Parser parser(in);
      DocumentCounter counter;
      const auto max_documents =
          static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) + 2;
      std::size_t count = 0;
      while (parser.HandleNextDocument(counter)) {
        if (++count > max_documents) {
          throw error(ErrorKind::config, 0, 0,
                      "invalid YAML: the parser is stuck (a ',' outside [...] or {...}?)");
        }
      }
    }
    documents = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    const bool has_mark = !e.mark.is_null() && e.mark.line >= 0;
    throw error(ErrorKind::config, has_mark ? e.mark.line + 1 : 0, has_mark ? e.mark.column + 1 : 0,
                "invalid YAML: " + e.msg);
  }
  std::vector<YAML::Node> out;
  for (const YAML::Node& doc : documents)
    if (!doc.IsNull()) out.push_back(doc);
  if (out.empty()) throw error(ErrorKind::config, 0, 0, "the config is empty");
  return out;
}

MergeConfig parse_document_node(YAML::Node root, const std::string& file, std::string text) {
  MergeConfig config;
  config.file = file;
  config.text = std::move(text);
  if (auto marker = seed_format_marker(root)) {
    config.dialect = MergeConfig::Dialect::seed;
    config.dialect_location = *marker;
    try {
      translate_seed_format(root, file, config.notes);
    } catch (const YAML::Exception& e) {  // a shape the translation did not expect
      throw Error(ErrorKind::config, "cannot read this seed-format config: " + e.msg,
                  ErrorContext{file, marker->line, marker->column, {}});
    }
  }
  Parser(file, config.yaml_paths).parse_document(root, config);
  return config;
}

}  // namespace

std::vector<YAML::Node> load_yaml_documents(std::string_view yaml_text, const std::string& file) {
  return load_documents(yaml_text, file);
}

MergeConfig parse_yaml_document(YAML::Node root, const std::string& file, std::string text) {
  return parse_document_node(std::move(root), file, std::move(text));
}

MergeConfig parse_config(std::string_view yaml_text, const std::string& file) {
  auto documents = load_documents(yaml_text, file);
  if (documents.size() > 1) {
    const SourceLocation at = location_of(documents[1], {});
    throw Error(ErrorKind::unsupported,
                "several YAML documents: this is a multi-stage recipe (mergekit-multi); "
                "`llmerge run` and `llmerge plan` take it, a single config cannot",
                ErrorContext{file, at.line, at.column, {}});
  }
  return parse_document_node(documents.front(), file, std::string(yaml_text));
}

std::vector<MergeConfig> parse_documents(std::string_view yaml_text, const std::string& file) {
  auto documents = load_documents(yaml_text, file);
  std::vector<MergeConfig> out;
  for (const auto& doc : documents) {
    // Each stage's own text, for its output's mergekit_config.yml.
    std::string text = documents.size() == 1 ? std::string(yaml_text) : YAML::Dump(doc) + "\n";
    out.push_back(parse_document_node(doc, file, std::move(text)));
  }
  return out;
}

bool MergeConfig::per_slice_methods() const {
  for (const auto& s : slices)
    if (s.merge_method) return true;
  return false;
}

const std::string& MergeConfig::slice_method(std::size_t i) const {
  if (i < slices.size() && slices[i].merge_method) return *slices[i].merge_method;
  return merge_method;
}

SourceLocation MergeConfig::slice_method_location(std::size_t i) const {
  if (i < slices.size() && slices[i].merge_method) return slices[i].merge_method_location;
  return merge_method_location;
}

std::string read_config_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f)
    throw Error(ErrorKind::io, fmt::format("cannot open config: {}", std::strerror(errno)),
                ErrorContext{path, 0, 0, {}});
  std::string text;
  char buffer[1 << 14];
  std::size_t n = 0;
  // One byte past the cap is enough for parse_config to report the size.
  while (text.size() <= k_text_bytes_max && (n = std::fread(buffer, 1, sizeof buffer, f)) > 0)
    text.append(buffer, n);
  const bool failed = std::ferror(f) != 0;
  const int saved_errno = errno;
  std::fclose(f);
  if (failed)
    throw Error(ErrorKind::io, fmt::format("cannot read config: {}", std::strerror(saved_errno)),
                ErrorContext{path, 0, 0, {}});
  return text;
}

MergeConfig load_config(const std::string& path) {
  return parse_config(read_config_file(path), path);
}

}  // namespace llmerge
