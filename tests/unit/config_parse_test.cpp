// parse_config: mergekit's YAML schema (docs/mergekit-semantics.md §2.1-§2.3) into
// MergeConfig, and the located errors for everything it rejects.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "config/config.h"
#include "core/error.h"
#include "test_util.h"

namespace llmerge {
namespace {

// Parses `yaml` expecting an Error of `kind` whose message contains `text`,
// located at line:column of config.yaml.
void expect_error(const std::string& yaml, ErrorKind kind, const std::string& text, int line,
                  int column) {
  try {
    parse_config(yaml, "config.yaml");
    ADD_FAILURE() << "no error; expected: " << text;
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(e.message().find(text), std::string::npos) << e.what();
    EXPECT_EQ(e.context().file, "config.yaml");
    EXPECT_EQ(e.context().line, line) << e.what();
    EXPECT_EQ(e.context().column, column) << e.what();
  }
}

const char* const k_ties = R"(merge_method: ties
base_model: org/base
models:
  - model: org/a
    parameters:
      weight: 0.5
      density: [1, 0.7, 0.1]
  - model: org/b@main
    parameters:
      weight:
        - filter: mlp
          value: 0.3
        - value: 0.7
parameters:
  normalize: true
  int8_mask: yes
  method: "0.5"
dtype: bfloat16
out_dtype: float16
tokenizer_source: base
chat_template: chatml
)";

TEST(ConfigParse, TiesConfigParsesIntoModelsWithParameters) {
  const MergeConfig c = parse_config(k_ties, "ties.yaml");
  EXPECT_EQ(c.file, "ties.yaml");
  EXPECT_EQ(c.text, k_ties);
  EXPECT_EQ(c.merge_method, "ties");
  EXPECT_EQ(c.merge_method_location.line, 1);
  EXPECT_EQ(c.merge_method_location.column, 15);
  EXPECT_EQ(c.base_model, "org/base");
  EXPECT_TRUE(c.slices.empty());
  ASSERT_EQ(c.models.size(), 2u);

  const ModelSource& a = c.models[0];
  EXPECT_EQ(a.model, "org/a");
  EXPECT_FALSE(a.layer_range.has_value());
  EXPECT_EQ(a.location.line, 4);
  EXPECT_EQ(a.location.column, 5);
  ASSERT_EQ(a.parameters.size(), 2u);
  EXPECT_EQ(a.parameters[0].name, "weight");
  EXPECT_EQ(a.parameters[0].location.line, 6);
  EXPECT_EQ(a.parameters[0].location.column, 7);
  EXPECT_EQ(a.parameters[0].value.kind, ParameterValue::Kind::number);
  EXPECT_EQ(a.parameters[0].value.number, 0.5);
  EXPECT_EQ(a.parameters[0].value.location.column, 15);
  EXPECT_EQ(a.parameters[1].value.kind, ParameterValue::Kind::gradient);
  EXPECT_EQ(a.parameters[1].value.gradient, (std::vector<double>{1, 0.7, 0.1}));

  const ModelSource& b = c.models[1];
  EXPECT_EQ(b.model, "org/b@main");
  const ParameterValue& w = b.parameters.at(0).value;
  ASSERT_EQ(w.kind, ParameterValue::Kind::conditions);
  ASSERT_EQ(w.conditions.size(), 2u);
  EXPECT_EQ(w.conditions[0].filter, "mlp");
  EXPECT_EQ(w.conditions[0].value->number, 0.3);
  EXPECT_EQ(w.conditions[0].location.line, 11);
  EXPECT_EQ(w.conditions[0].location.column, 11);
  EXPECT_FALSE(w.conditions[1].filter.has_value());
  EXPECT_EQ(w.conditions[1].value->number, 0.7);

  ASSERT_EQ(c.parameters.size(), 3u);
  EXPECT_EQ(c.parameters[0].value.kind, ParameterValue::Kind::boolean);
  EXPECT_TRUE(c.parameters[0].value.boolean);
  EXPECT_EQ(c.parameters[1].value.kind, ParameterValue::Kind::boolean);  // YAML 1.1 "yes"
  EXPECT_TRUE(c.parameters[1].value.boolean);
  EXPECT_EQ(c.parameters[2].value.kind, ParameterValue::Kind::string);  // quoted stays text
  EXPECT_EQ(c.parameters[2].value.string, "0.5");

  EXPECT_EQ(c.dtype, "bfloat16");
  EXPECT_EQ(c.dtype_location.line, 18);
  EXPECT_EQ(c.dtype_location.column, 8);
  EXPECT_EQ(c.out_dtype, "float16");
  EXPECT_EQ(c.tokenizer_source, "base");
  EXPECT_EQ(c.chat_template, "chatml");
}

TEST(ConfigParse, SlicesConfigParsesRangesAndPerSliceSettings) {
  const MergeConfig c = parse_config(R"(slices:
  - sources:
      - model: org/a
        layer_range: [0, 16]
      - model: org/b
        layer_range: [8, 24]
        parameters:
          t: 0.3
    base_model: org/a
    parameters:
      t: [0, 1]
    residual_weight: 0.1
  - sources:
      - model: org/b
        layer_range: [24, 32]
merge_method: slerp
tokenizer:
  source: org/b
)",
                                     "slices.yaml");
  EXPECT_EQ(c.merge_method, "slerp");
  EXPECT_TRUE(c.models.empty());
  EXPECT_FALSE(c.base_model.has_value());
  ASSERT_EQ(c.slices.size(), 2u);
  const Slice& s0 = c.slices[0];
  EXPECT_EQ(s0.location.line, 2);
  EXPECT_EQ(s0.location.column, 5);
  ASSERT_EQ(s0.sources.size(), 2u);
  EXPECT_EQ(s0.sources[0].layer_range, (std::pair<std::int64_t, std::int64_t>{0, 16}));
  EXPECT_EQ(s0.sources[1].layer_range, (std::pair<std::int64_t, std::int64_t>{8, 24}));
  EXPECT_EQ(s0.sources[1].layer_range_location.line, 6);
  EXPECT_EQ(s0.sources[1].layer_range_location.column, 22);
  EXPECT_EQ(s0.sources[1].parameters.at(0).value.number, 0.3);
  EXPECT_EQ(s0.base_model, "org/a");
  EXPECT_EQ(s0.base_model_location.line, 9);
  EXPECT_EQ(s0.parameters.at(0).value.gradient, (std::vector<double>{0, 1}));
  const Slice& s1 = c.slices[1];
  EXPECT_EQ(s1.sources.at(0).model, "org/b");
  EXPECT_EQ(s1.sources.at(0).layer_range, (std::pair<std::int64_t, std::int64_t>{24, 32}));
  EXPECT_FALSE(s1.base_model.has_value());
  EXPECT_EQ(c.tokenizer_source, "org/b");
  EXPECT_EQ(c.tokenizer_source_location.line, 18);
}

TEST(ConfigParse, NumbersAcceptYamlSpellings) {
  const MergeConfig c = parse_config(R"(merge_method: linear
models:
  - model: a
    parameters: {a: 1, b: -2.5e-1, c: +.5, d: .inf, e: inf, f: 1_000, g: [true, 0]}
)",
                                     "c.yaml");
  const ParameterMap& p = c.models.at(0).parameters;
  EXPECT_EQ(p.at(0).value.number, 1);
  EXPECT_EQ(p.at(1).value.number, -0.25);
  EXPECT_EQ(p.at(2).value.number, 0.5);
  EXPECT_EQ(p.at(3).value.number, std::numeric_limits<double>::infinity());
  EXPECT_EQ(p.at(4).value.kind, ParameterValue::Kind::string);  // YAML reads "inf" as text
  EXPECT_EQ(p.at(5).value.kind, ParameterValue::Kind::string);
  EXPECT_EQ(p.at(6).value.gradient, (std::vector<double>{1, 0}));  // Python bools are 0/1
}

TEST(ConfigParse, NullOptionalKeysAreAbsent) {
  const MergeConfig c =
      parse_config("merge_method: linear\nbase_model:\ndtype: ~\nmodels:\n  - model: a\n", "c");
  EXPECT_FALSE(c.base_model.has_value());
  EXPECT_FALSE(c.dtype.has_value());
}

TEST(ConfigParse, UnknownTopLevelKeySuggestsTheClosest) {
  expect_error("merge_methd: ties\nmodels:\n  - model: a\n", ErrorKind::config,
               "unknown top-level key 'merge_methd'; did you mean 'merge_method'?", 1, 1);
}

TEST(ConfigParse, UnknownKeyInASourceSuggestsLayerRange) {
  expect_error(R"(merge_method: passthrough
slices:
  - sources:
      - model: a
        layer_rang: [0, 4]
)",
               ErrorKind::config,
               "unknown key 'layer_rang' in slices[0].sources[0]; did you mean 'layer_range'?", 5,
               9);
}

TEST(ConfigParse, UnknownKeyFarFromAnyListsTheAllowedKeys) {
  expect_error("merge_method: linear\nmodels:\n  - model: a\n    desnity: 0.5\n", ErrorKind::config,
               "unknown key 'desnity' in models[0]; expected one of: model, parameters", 4, 5);
}

TEST(ConfigParse, ParameterNamesAreLeftToThePlanner) {
  const MergeConfig c = parse_config(
      "merge_method: ties\nmodels:\n  - model: a\n    parameters: {desnity: 0.5}\n", "c");
  EXPECT_EQ(c.models.at(0).parameters.at(0).name, "desnity");
}

TEST(ConfigParse, LayerRangeMustBeAList) {
  expect_error(R"(merge_method: passthrough
slices:
  - sources:
      - model: a
        layer_range: 4
)",
               ErrorKind::config,
               "slices[0].sources[0].layer_range: expected a list of two integers [start, end]; "
               "found the number 4",
               5, 22);
}

TEST(ConfigParse, LayerRangeMustHaveTwoElements) {
  expect_error(R"(merge_method: passthrough
slices:
  - sources:
      - model: a
        layer_range: [0, 4, 8]
)",
               ErrorKind::config, "found a list of 3", 5, 22);
}

TEST(ConfigParse, LayerRangeElementsMustBeIntegers) {
  expect_error(R"(merge_method: passthrough
slices:
  - sources:
      - model: a
        layer_range: [0, 4.5]
)",
               ErrorKind::config,
               "slices[0].sources[0].layer_range[1]: expected an integer; found the number 4.5", 5,
               26);
}

TEST(ConfigParse, LayerRangeMustBeNonEmptyAndStartAtZeroOrLater) {
  expect_error(
      "merge_method: passthrough\nslices:\n  - sources:\n      - model: a\n        layer_range: "
      "[8, 8]\n",
      ErrorKind::config, "layer_range [8, 8] is empty", 5, 22);
  expect_error(
      "merge_method: passthrough\nslices:\n  - sources:\n      - model: a\n        layer_range: "
      "[-1, 8]\n",
      ErrorKind::config, "starts before layer 0", 5, 22);
}

TEST(ConfigParse, LayerRangeIsRequiredInSlicesAndRejectedUnderModels) {
  expect_error("merge_method: passthrough\nslices:\n  - sources:\n      - model: a\n",
               ErrorKind::config, "slices[0].sources[0]: missing required key 'layer_range'", 4, 9);
  expect_error("merge_method: linear\nmodels:\n  - model: a\n    layer_range: [0, 2]\n",
               ErrorKind::config, "layer_range belongs in slices[].sources[]", 4, 5);
}

TEST(ConfigParse, ModelsAndSlicesTogetherAreRejectedAtTheSecond) {
  expect_error(R"(merge_method: linear
models:
  - model: a
slices:
  - sources:
      - model: a
        layer_range: [0, 2]
)",
               ErrorKind::config, "models and slices are mutually exclusive", 4, 1);
}

TEST(ConfigParse, NeitherModelsNorSlicesIsRejected) {
  expect_error("merge_method: linear\nbase_model: a\n", ErrorKind::config,
               "needs models: (whole models) or slices:", 1, 1);
}

TEST(ConfigParse, MergeMethodIsRequired) {
  expect_error("models:\n  - model: a\n", ErrorKind::config, "missing required key 'merge_method'",
               1, 1);
  expect_error("merge_method: [ties]\nmodels:\n  - model: a\n", ErrorKind::config,
               "merge_method: expected a string; found a list", 1, 15);
}

TEST(ConfigParse, UnknownDtypeListsTheAcceptedNames) {
  expect_error("merge_method: linear\nmodels:\n  - model: a\ndtype: bfloat61\n", ErrorKind::config,
               "dtype: unknown dtype 'bfloat61'; expected bfloat16", 4, 8);
  expect_error("merge_method: linear\nmodels:\n  - model: a\nout_dtype: int8\n", ErrorKind::config,
               "out_dtype: unknown dtype 'int8'", 4, 12);
}

TEST(ConfigParse, TokenizerTokensParseEverySourceKind) {
  const MergeConfig c = parse_config(
      "merge_method: linear\nmodels:\n  - model: a\ntokenizer:\n  pad_to_multiple_of: 8\n"
      "  tokens:\n    \"<a>\": {source: a, force: true}\n"
      "    \"<b>\": {source: {kind: model_token, model: a, token_id: 3}}\n"
      "    \"<c>\": {source: {kind: model_token, model: a, token: x}}\n"
      "    \"<d>\": {source: {kind: zero}}\n    \"<e>\":\n",
      "c.yaml");
  // mergekit's default source is union.
  EXPECT_EQ(c.tokenizer_source, "union");
  EXPECT_EQ(c.pad_to_multiple_of, 8);
  ASSERT_EQ(c.tokenizer_tokens.size(), 5u);
  EXPECT_EQ(c.tokenizer_tokens[0].kind, TokenOverride::Kind::model);
  EXPECT_EQ(c.tokenizer_tokens[0].model, "a");
  EXPECT_TRUE(c.tokenizer_tokens[0].force);
  EXPECT_EQ(c.tokenizer_tokens[0].location.line, 7);
  EXPECT_EQ(c.tokenizer_tokens[1].kind, TokenOverride::Kind::model_token);
  EXPECT_EQ(c.tokenizer_tokens[1].src_id, 3);
  EXPECT_EQ(c.tokenizer_tokens[2].src_token, "x");
  EXPECT_EQ(c.tokenizer_tokens[3].kind, TokenOverride::Kind::zero);
  EXPECT_EQ(c.tokenizer_tokens[4].kind, TokenOverride::Kind::automatic);
  EXPECT_EQ(parse_config("merge_method: linear\nmodels:\n  - model: a\ntokenizer_source: union\n",
                         "c.yaml")
                .tokenizer_source,
            "union");
}

TEST(ConfigParse, TokenizerTokensRejectMalformedSources) {
  const std::string head = "merge_method: linear\nmodels:\n  - model: a\ntokenizer:\n  tokens:\n";
  expect_error(head + "    x: {source: {kind: model_token, model: a}}\n", ErrorKind::config,
               "model_token needs exactly one of 'token' and 'token_id'", 6, 17);
  expect_error(head + "    x: {source: {kind: model_token, model: a, token: y, token_id: 1}}\n",
               ErrorKind::config, "model_token needs exactly one of", 6, 17);
  expect_error(head + "    x: {source: {kind: one}}\n", ErrorKind::config,
               "expected 'model_token' or 'zero'", 6, 24);
  expect_error(head + "    x: {source: {model: a}}\n", ErrorKind::config, "missing 'kind'", 6, 17);
  expect_error(head + "    x: {source: {kind: zero, model: a}}\n", ErrorKind::config,
               "kind 'zero' takes no model", 6, 17);
  expect_error(head + "    x: {force: maybe}\n", ErrorKind::config, "expected true or false", 6,
               16);
  expect_error(head + "    x: {sorce: a}\n", ErrorKind::config, "did you mean 'source'?", 6, 9);
  expect_error("merge_method: linear\nmodels:\n  - model: a\ntokenizer: {pad_to_multiple_of: 0}\n",
               ErrorKind::config, "pad_to_multiple_of: 0 is out of range", 4, 33);
}

TEST(ConfigParse, TokenizerAndTokenizerSourceAreExclusive) {
  expect_error(
      "merge_method: linear\nmodels:\n  - model: a\ntokenizer_source: base\ntokenizer: {source: "
      "base}\n",
      ErrorKind::config, "tokenizer_source and tokenizer are mutually exclusive", 5, 1);
}

TEST(ConfigParse, ModulesConfigsAreUnsupported) {
  expect_error("merge_method: linear\nmodules:\n  text:\n    models:\n      - model: a\n",
               ErrorKind::unsupported,
               "multi-module configs (modules:) are not supported yet; use models: or slices:", 2,
               1);
}

TEST(ConfigParse, BareStringModelEntryShowsTheMapForm) {
  expect_error("merge_method: linear\nmodels:\n  - org/a\n", ErrorKind::config,
               "models[0]: expected a map like `- model: org/a`; found the string 'org/a'", 3, 5);
}

TEST(ConfigParse, MalformedLoraAndDictModelReferencesAreRefused) {
  expect_error("merge_method: linear\nmodels:\n  - model: org/a+\n", ErrorKind::config,
               "malformed model reference 'org/a+'", 3, 12);
  expect_error("merge_method: linear\nmodels:\n  - model: a+b+c\n", ErrorKind::config,
               "malformed model reference 'a+b+c'", 3, 12);
  expect_error("merge_method: linear\nmodels:\n  - model: a+b@c@d\n", ErrorKind::config,
               "malformed model reference 'a+b@c@d'", 3, 12);
  expect_error("merge_method: linear\nmodels:\n  - model: {model: {path: org/a}}\n",
               ErrorKind::unsupported, "models[0].model: model references in dict form", 3, 12);
  expect_error("merge_method: linear\nbase_model: a@b@c\nmodels:\n  - model: a\n",
               ErrorKind::config, "malformed model reference 'a@b@c'", 2, 13);
}

TEST(ConfigParse, UnlistedConditionalMapAsksForAList) {
  expect_error(R"(merge_method: slerp
base_model: a
models:
  - model: a
parameters:
  t:
    filter: self_attn
    value: 0.5
)",
               ErrorKind::config,
               "parameters.t: a conditional parameter must be a list: write `- filter: ...`", 7, 5);
}

TEST(ConfigParse, ParameterTypeErrorSaysWhatWasExpectedAndFound) {
  expect_error(R"(merge_method: linear
models:
  - model: a
    parameters:
      weight: 0.5
  - model: b
    parameters:
      weight: {x: 1}
)",
               ErrorKind::config,
               "models[1].parameters.weight: expected a number, a list of numbers, or a list of "
               "{filter, value}; found a map",
               8, 15);
}

TEST(ConfigParse, MalformedParameterListsAreLocated) {
  const std::string head = "merge_method: linear\nmodels:\n  - model: a\nparameters:\n";
  expect_error(head + "  w: [0.1, abc]\n", ErrorKind::config,
               "parameters.w[1]: expected a number (a gradient is a list of numbers); found the "
               "string 'abc'",
               5, 12);
  expect_error(head + "  w: []\n", ErrorKind::config, "parameters.w: the list is empty", 5, 6);
  expect_error(head + "  w: [[1, 2]]\n", ErrorKind::config, "parameters.w[0]: lists do not nest", 5,
               7);
  expect_error(head + "  w: [{value: 1}, 2]\n", ErrorKind::config,
               "parameters.w[1]: expected a {filter, value} map like the first item", 5, 19);
  expect_error(head + "  w:\n    - filter: mlp\n      valu: 1\n", ErrorKind::config,
               "unknown key 'valu' in parameters.w[0]; did you mean 'value'?", 7, 7);
  expect_error(head + "  w:\n    - filter: mlp\n", ErrorKind::config,
               "parameters.w[0]: missing key 'value'", 6, 7);
  expect_error(head + "  w:\n    - value: [{value: 1}]\n", ErrorKind::config,
               "parameters.w[0].value: conditional parameters do not nest", 6, 15);
  expect_error(head + "  w:\n", ErrorKind::config, "parameters.w: expected a number", 5, 3);
}

TEST(ConfigParse, DuplicateKeysAreRejected) {
  expect_error("merge_method: linear\nmodels:\n  - model: a\n    model: b\n", ErrorKind::config,
               "duplicate key 'model' in models[0]", 4, 5);
}

TEST(ConfigParse, YamlSyntaxErrorKeepsYamlCppLocation) {
  expect_error("merge_method: linear\nmodels: [\n  - model: a\n", ErrorKind::config, "invalid YAML",
               3, 3);
}

TEST(ConfigParse, SeveralDocumentsAreUnsupported) {
  expect_error("merge_method: linear\nmodels:\n  - model: a\n---\nmerge_method: ties\n",
               ErrorKind::unsupported, "several YAML documents", 5, 1);
}

TEST(ConfigParse, EmptyOrNonMapDocumentIsRejected) {
  expect_error("# nothing\n", ErrorKind::config, "the config is empty", 0, 0);
  expect_error("- a\n- b\n", ErrorKind::config, "config: expected a map of keys", 1, 1);
}

TEST(ConfigParse, BillionLaughsTerminatesQuickly) {
  std::string yaml = "merge_method: linear\nmodels:\n  - model: a\nparameters:\n";
  yaml += "  l0: &l0 [1, 1, 1, 1, 1, 1, 1, 1, 1]\n";
  for (int level = 1; level <= 9; ++level) {
    const std::string prev = "*l" + std::to_string(level - 1);
    yaml += "  l" + std::to_string(level) + ": &l" + std::to_string(level) + " [";
    for (int i = 0; i < 9; ++i)
      yaml += (i ? ", " : "") + prev;
    yaml += "]\n";
  }
  const auto start = std::chrono::steady_clock::now();
  // yaml-cpp aliases share the anchored node, so the location is the anchor's (l0).
  expect_error(yaml, ErrorKind::config, "parameters.l1[0]: lists do not nest", 5, 7);
  EXPECT_LT(std::chrono::steady_clock::now() - start,
            std::chrono::seconds(2) * testing::k_sanitizer_slowdown);
}

// Aliases in places the schema allows: 1000 models x 1000 conditions x 1000
// anchors is 10^9 nodes once expanded, from a file of a few kilobytes.
TEST(ConfigParse, AliasExpansionIsCappedByNodeCount) {
  std::string yaml = "merge_method: linear\nmodels:\n  - &m\n    model: a\n    parameters:\n";
  yaml += "      weight:\n        - &c\n          value: [1";
  for (int i = 1; i < 1000; ++i)
    yaml += ", 1";
  yaml += "]\n";
  for (int i = 1; i < 1000; ++i)
    yaml += "        - *c\n";
  for (int i = 1; i < 1000; ++i)
    yaml += "  - *m\n";
  const auto start = std::chrono::steady_clock::now();
  try {
    parse_config(yaml, "bomb.yaml");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::config);
    EXPECT_NE(e.message().find("config is too large: more than 1000000 YAML nodes"),
              std::string::npos)
        << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start,
            std::chrono::seconds(10) * testing::k_sanitizer_slowdown);
}

TEST(ConfigParse, DeepNestingIsRejected) {
  const std::string head = "merge_method: linear\nmodels:\n  - model: a\nparameters:\n  w: ";
  expect_error(head + std::string(60, '[') + "1" + std::string(60, ']') + "\n", ErrorKind::config,
               "parameters.w[0]: lists do not nest", 5, 7);
  // Past 64 levels the YAML itself is refused at the bracket, before yaml-cpp
  // recurses into it (its own guard, deeper down, says only "bad file").
  expect_error(head + std::string(100000, '[') + "\n", ErrorKind::config,
               "nested more than 64 deep at line 5, column 70", 5, 70);
  expect_error(head + std::string(40, '{') + "a: " + std::string(30, '[') + "\n", ErrorKind::config,
               "nested more than 64 deep", 5, 73);
}

// fuzz_config_plan: a bare tag (`!inear`) is an empty string, and the planner
// then dereferenced no method at all.
TEST(ConfigParse, AnEmptyMergeMethodIsRejectedWhereItIsWritten) {
  expect_error("merge_method: !inear\nmodels:\n  - model: a\n", ErrorKind::config,
               "merge_method is empty", 1, 15);
  expect_error("merge_method: ''\nmodels:\n  - model: a\n", ErrorKind::config,
               "merge_method is empty", 1, 15);
  expect_error(
      "slices:\n  - merge_method: \"\"\n    sources:\n"
      "      - {model: a, layer_range: [0, 1]}\n      - {model: b, layer_range: [0, 1]}\n",
      ErrorKind::config, "slices[0].merge_method: merge_method is empty", 2, 19);
}

TEST(ConfigParse, TextThatIsNotUtf8IsRejectedAtItsByte) {
  // Latin-1 "é" in a comment, a lone continuation byte, a truncated sequence,
  // an overlong '/', a UTF-16 surrogate: each at its line and column.
  expect_error("merge_method: linear\n# caf\xe9\n", ErrorKind::config,
               "byte 0xE9 at line 2, column 6 is not UTF-8", 2, 6);
  expect_error("\xbfg", ErrorKind::config, "byte 0xBF", 1, 1);
  expect_error("merge_method: linear # \xc3\xa9\xe2\x82", ErrorKind::config, "byte 0xE2", 1, 25);
  expect_error("models:\n  - model: \xc0\xaf\n", ErrorKind::config, "byte 0xC0", 2, 12);
  expect_error("models:\n  - model: \xed\xa0\x80\n", ErrorKind::config, "byte 0xED", 2, 12);
  // Well-formed UTF-8 (and a byte-order mark) is text.
  EXPECT_EQ(parse_config("\xef\xbb\xbfmerge_method: linear\nmodels:\n  - model: caf\xc3\xa9\n",
                         "config.yaml")
                .models[0]
                .model,
            "caf\xc3\xa9");
}

TEST(ConfigParse, OversizedTextIsRejectedBeforeParsing) {
  expect_error("merge_method: linear\n#" + std::string(2 << 20, 'x') + "\n", ErrorKind::config,
               "the limit is 1048576", 0, 0);
}

TEST(ConfigLoad, ReadsTheFileAndNamesItInErrors) {
  testing::TempDir dir;
  const auto path = (dir / "merge.yaml").string();
  testing::write_text(path, "merge_method: linear\nmodels:\n  - model: a\n");
  const MergeConfig c = load_config(path);
  EXPECT_EQ(c.file, path);
  EXPECT_EQ(c.text, "merge_method: linear\nmodels:\n  - model: a\n");
  EXPECT_EQ(c.models.at(0).model, "a");

  testing::write_text(path, "merge_method: linear\nmodel:\n  - model: a\n");
  try {
    load_config(path);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.context().file, path);
    EXPECT_EQ(std::string(e.what()), path +
                                         ":2:1: unknown top-level key 'model'; did you mean "
                                         "'models'?");
  }
}

TEST(ConfigLoad, MissingFileIsAnIoError) {
  testing::TempDir dir;
  try {
    load_config((dir / "absent.yaml").string());
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::io);
    EXPECT_NE(e.message().find("No such file or directory"), std::string::npos) << e.what();
  }
  try {
    load_config(dir.path().string());  // a directory opens but does not read
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::io);
  }
}

}  // namespace
}  // namespace llmerge
