// The mergekit YAML config, parsed into plain structs. No weights, no model
// folders: this stage only reads the YAML text.
//
// Schema (mergekit/config.py; docs/mergekit-semantics.md §2):
//
//   merge_method: ties               # required
//   base_model: org/base             # optional; slices may override it
//   models:                          # exactly one of models / slices
//     - model: org/a
//       parameters: {weight: 0.5, density: [1, 0.7, 0.1]}
//   slices:
//     - sources:
//         - model: org/a
//           layer_range: [0, 24]
//           parameters: {...}
//       base_model: org/base         # optional
//       parameters: {...}            # optional
//   parameters: {...}                # top level
//   dtype: bfloat16                  # compute/input dtype
//   out_dtype: bfloat16              # saved dtype
//   tokenizer_source: base           # base, union or a model; or
//   tokenizer:                       #   (source defaults to union)
//     source: union
//     pad_to_multiple_of: 64
//     tokens:
//       "<|im_start|>": {source: org/a, force: false}
//       "<x>": {source: {kind: model_token, model: org/a, token: "<y>"}}  # or token_id: 5
//       "<z>": {source: {kind: zero}}
//   chat_template: chatml            # optional
//
// llmerge's extension (docs/recipes.md): a slice may name its own
// `merge_method`; then the top-level one may be left out, and a slice with
// one source and no method is passthrough. The seed project's format
// ("MergeKit for MLX": models as {name, path, base_model: true}, `advanced:`)
// is translated into this schema by seed_format.h before it is parsed.
//
// A parameter value is a scalar (number, bool, string), a gradient (a list of
// numbers), or a list of conditionals [{filter: str?, value: scalar|gradient}].
//
// Stricter than mergekit, on purpose: unknown keys and wrong types are
// Error(config) with file:line:col and a "did you mean" suggestion. Method
// names and parameter names are checked by the planner, which knows the
// method registry; the locations they need are kept here.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace llmerge {

// A position in the YAML file, 1-based. line == 0 means unknown.
struct SourceLocation {
  int line = 0;
  int column = 0;
};

// A parameter value as written in the config.
struct ParameterValue;

struct ParameterCondition {
  std::optional<std::string> filter;  // absent or "*" matches every tensor
  // Scalar or gradient only (mergekit does not nest conditionals).
  std::shared_ptr<ParameterValue> value;
  SourceLocation location;
};

struct ParameterValue {
  enum class Kind { number, boolean, string, gradient, conditions };
  Kind kind = Kind::number;
  double number = 0;                           // Kind::number
  bool boolean = false;                        // Kind::boolean
  std::string string;                          // Kind::string
  std::vector<double> gradient;                // Kind::gradient (non-empty)
  std::vector<ParameterCondition> conditions;  // Kind::conditions (non-empty)
  SourceLocation location;
};

// An evaluated scalar: what a method receives.
using ParameterScalar = std::variant<double, bool, std::string>;

// Evaluates `value` for a tensor name at gradient position t in [0, 1],
// exactly as mergekit's evaluate_setting: conditions in order, first match
// wins (plain substring, or absent / "*"); gradients interpolate
// piecewise-linearly between equally spaced anchors. nullopt when no
// condition matches ("not set at this level").
std::optional<ParameterScalar> evaluate_parameter(const ParameterValue& value,
                                                  std::string_view tensor_name, double t);

// name -> value, in the order written.
struct ParameterEntry {
  std::string name;
  ParameterValue value;
  SourceLocation location;  // of the key
};
using ParameterMap = std::vector<ParameterEntry>;
const ParameterEntry* find_parameter(const ParameterMap& map, std::string_view name);

struct ModelSource {
  std::string model;  // a reference: local path or "org/name[@revision]"
  std::optional<std::pair<std::int64_t, std::int64_t>> layer_range;  // [start, end)
  ParameterMap parameters;
  SourceLocation location;              // of the entry
  SourceLocation layer_range_location;  // of layer_range, if present
};

struct Slice {
  std::vector<ModelSource> sources;
  std::optional<std::string> base_model;
  SourceLocation base_model_location;
  // llmerge's extension: this slice's own method (nullopt: the top-level one).
  std::optional<std::string> merge_method;
  SourceLocation merge_method_location;
  ParameterMap parameters;
  SourceLocation location;
};

// One entry of `tokenizer.tokens` (mergekit/tokenizer/config.py): where the
// output row of `token` comes from when a model lacks it, or always (`force`).
struct TokenOverride {
  enum class Kind {
    automatic,    // no source: the default rules (docs/tokenizers.md)
    model,        // `source: <model>`: that model's row of this token
    model_token,  // `{kind: model_token, model, token | token_id}`: a row of that model
    zero,         // `{kind: zero}`
  };
  std::string token;
  Kind kind = Kind::automatic;
  std::string model;                     // model, model_token
  std::optional<std::string> src_token;  // model_token by token
  std::optional<std::int64_t> src_id;    // model_token by id
  bool force = false;
  SourceLocation location;         // of the key
  SourceLocation source_location;  // of `source`
};

struct MergeConfig {
  std::string file;  // the config's path as given (for messages)
  std::string text;  // the YAML text as given (written to mergekit_config.yml)

  std::string merge_method;
  SourceLocation merge_method_location;
  std::optional<std::string> base_model;
  SourceLocation base_model_location;
  std::vector<ModelSource> models;  // `models:` form (no layer_range)
  std::vector<Slice> slices;        // `slices:` form
  ParameterMap parameters;
  std::optional<std::string> dtype;  // as written, e.g. "bfloat16"
  SourceLocation dtype_location;
  std::optional<std::string> out_dtype;
  SourceLocation out_dtype_location;
  std::optional<std::string> tokenizer_source;  // "base", "union" or a model reference
  SourceLocation tokenizer_source_location;
  std::vector<TokenOverride> tokenizer_tokens;     // `tokenizer.tokens`, in order written
  std::optional<std::int64_t> pad_to_multiple_of;  // `tokenizer.pad_to_multiple_of`
  SourceLocation pad_to_multiple_of_location;
  std::optional<std::string> chat_template;
  SourceLocation chat_template_location;
  // The YAML path of the key at each (line, column): "slices[0].sources[1].model".
  std::map<std::pair<int, int>, std::string> yaml_paths;

  // mergekit-multi's document name (a stage of a recipe), if any.
  std::optional<std::string> name;
  SourceLocation name_location;
  // The schema the file was written in. `seed`: the seed project's format,
  // translated; dialect_location is its first key that mergekit lacks.
  enum class Dialect { mergekit, seed };
  Dialect dialect = Dialect::mergekit;
  SourceLocation dialect_location;
  // Remarks made while parsing (options that mean nothing here), passed on
  // as plan notes.
  std::vector<std::string> notes;

  // True when some slice names its own merge_method (llmerge's extension).
  bool per_slice_methods() const;
  // The method of slice `i`: its own, else the top-level one ("" if neither).
  const std::string& slice_method(std::size_t i) const;
  SourceLocation slice_method_location(std::size_t i) const;
};

// Parses YAML text. `file` names the config in messages. Throws Error(config)
// with the location of the first problem: YAML syntax, unknown key (with a
// "did you mean"), wrong type, both or neither of models/slices, missing
// merge_method, a `modules:` config (Error(unsupported)).
MergeConfig parse_config(std::string_view yaml_text, const std::string& file);
// Parses every document of a multi-document YAML (mergekit-multi's recipes),
// in file order. One document gives one config.
std::vector<MergeConfig> parse_documents(std::string_view yaml_text, const std::string& file);
// The config in mergekit's own schema, as YAML text: the seed's format is
// translated, and per-slice methods become a mergekit-multi recipe (one stage
// per merged slice, then a passthrough that stacks them; docs/recipes.md).
std::string convert_to_mergekit(std::string_view yaml_text, const std::string& file);
// The text of a config file (capped, as parse_config caps it). Error(io) if unreadable.
std::string read_config_file(const std::string& path);
// Reads the file, then parse_config. Error(io) if unreadable.
MergeConfig load_config(const std::string& path);

// The closest candidate by edit distance, if close enough to be a likely
// typo (distance <= max(1, len/3)); used for "did you mean" hints.
std::optional<std::string> closest_match(std::string_view word,
                                         const std::vector<std::string>& candidates);

}  // namespace llmerge
