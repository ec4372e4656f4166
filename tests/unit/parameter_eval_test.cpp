// evaluate_parameter follows mergekit's evaluate_setting (docs/mergekit-semantics.md §2.4);
// expected values are computed by hand from that formula.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "config/config.h"

namespace llmerge {
namespace {

ParameterValue number(double x) {
  ParameterValue v;
  v.kind = ParameterValue::Kind::number;
  v.number = x;
  return v;
}

ParameterValue gradient(std::vector<double> anchors) {
  ParameterValue v;
  v.kind = ParameterValue::Kind::gradient;
  v.gradient = std::move(anchors);
  return v;
}

ParameterValue conditions(
    std::vector<std::pair<std::optional<std::string>, ParameterValue>> items) {
  ParameterValue v;
  v.kind = ParameterValue::Kind::conditions;
  for (auto& [filter, value] : items) {
    ParameterCondition c;
    c.filter = filter;
    c.value = std::make_shared<ParameterValue>(std::move(value));
    v.conditions.push_back(std::move(c));
  }
  return v;
}

double eval_number(const ParameterValue& v, std::string_view tensor, double t) {
  const auto r = evaluate_parameter(v, tensor, t);
  EXPECT_TRUE(r.has_value());
  EXPECT_TRUE(r && std::holds_alternative<double>(*r));
  return r && std::holds_alternative<double>(*r) ? std::get<double>(*r) : std::nan("");
}

TEST(ParameterEval, ScalarNumberIgnoresTensorAndPosition) {
  EXPECT_EQ(eval_number(number(0.25), "model.layers.3.mlp.up_proj.weight", 0.7), 0.25);
}

TEST(ParameterEval, BooleanAndStringScalarsPassThrough) {
  ParameterValue b;
  b.kind = ParameterValue::Kind::boolean;
  b.boolean = true;
  ParameterValue s;
  s.kind = ParameterValue::Kind::string;
  s.string = "sum";
  EXPECT_EQ(evaluate_parameter(b, "x", 0.5), ParameterScalar{true});
  EXPECT_EQ(evaluate_parameter(s, "x", 0.5), ParameterScalar{std::string("sum")});
}

TEST(ParameterEval, GradientEndpointsAreFirstAndLastAnchor) {
  const auto g = gradient({0.1, 0.9, 0.4});
  EXPECT_EQ(eval_number(g, "w", 0.0), 0.1);
  EXPECT_EQ(eval_number(g, "w", 1.0), 0.4);
}

TEST(ParameterEval, TwoAnchorGradientIsLinearInT) {
  const auto g = gradient({0.2, 1.0});
  // scaled = 0.25, frac = 0.25: 0.75 * 0.2 + 0.25 * 1.0
  EXPECT_NEAR(eval_number(g, "w", 0.25), 0.4, 1e-15);
  EXPECT_NEAR(eval_number(g, "w", 0.5), 0.6, 1e-15);
}

TEST(ParameterEval, GradientHitsInteriorAnchorExactly) {
  const auto g = gradient({0, 0.5, 0.3, 0.7, 1});
  EXPECT_EQ(eval_number(g, "w", 0.5), 0.3);  // scaled = 2 exactly
  EXPECT_EQ(eval_number(g, "w", 0.25), 0.5);
}

TEST(ParameterEval, GradientInterpolatesBetweenNeighbouringAnchorsOnly) {
  const auto g = gradient({0, 0.5, 0.3, 0.7, 1});
  // t = 0.6: scaled = 2.4, between anchors 2 (0.3) and 3 (0.7), frac 0.4.
  const double scaled = 0.6 * 4;
  const double frac = scaled - 2;
  EXPECT_NEAR(eval_number(g, "w", 0.6), (1 - frac) * 0.3 + frac * 0.7, 1e-15);
  EXPECT_NEAR(eval_number(g, "w", 0.6), 0.46, 1e-12);
}

TEST(ParameterEval, SingleAnchorGradientIsConstantEvenForInfinity) {
  EXPECT_EQ(eval_number(gradient({0.7}), "w", 0.3), 0.7);
  // (1 - 0) * inf + 0 * inf would be NaN; a single anchor is returned as is.
  EXPECT_EQ(eval_number(gradient({std::numeric_limits<double>::infinity()}), "w", 0.3),
            std::numeric_limits<double>::infinity());
}

TEST(ParameterEval, PositionOutsideUnitIntervalIsClamped) {
  const auto g = gradient({0.1, 0.5, 0.9});
  EXPECT_EQ(eval_number(g, "w", 1.5), 0.9);
  EXPECT_EQ(eval_number(g, "w", -0.5), 0.1);
  EXPECT_EQ(eval_number(g, "w", std::nan("")), 0.1);
}

// mergekit examples/gradient-slerp.yml, docs/mergekit-semantics.md §2.8.
TEST(ParameterEval, GradientSlerpExampleMatchesHandComputation) {
  const MergeConfig cfg = parse_config(R"(merge_method: slerp
base_model: a
slices:
  - sources:
      - model: a
        layer_range: [0, 40]
      - model: b
        layer_range: [0, 40]
parameters:
  t:
    - filter: self_attn
      value: [0, 0.5, 0.3, 0.7, 1]
    - filter: mlp
      value: [1, 0.5, 0.7, 0.3, 0]
    - value: 0.5
)",
                                       "gradient-slerp.yml");
  const ParameterEntry* t = find_parameter(cfg.parameters, "t");
  ASSERT_NE(t, nullptr);
  // Layer 20 of a 40-layer slice: t = 20/39, scaled = 80/39, i0 = 2, frac = 2/39.
  const double pos = 20.0 / 39.0;
  EXPECT_NEAR(eval_number(t->value, "model.layers.20.self_attn.q_proj.weight", pos),
              0.3 + (2.0 / 39.0) * (0.7 - 0.3), 1e-12);
  EXPECT_NEAR(eval_number(t->value, "model.layers.20.self_attn.q_proj.weight", pos),
              0.32051282051282054, 1e-12);
  EXPECT_NEAR(eval_number(t->value, "model.layers.20.mlp.up_proj.weight", pos),
              0.7 + (2.0 / 39.0) * (0.3 - 0.7), 1e-12);
  EXPECT_EQ(eval_number(t->value, "model.embed_tokens.weight", 0.0), 0.5);
  EXPECT_EQ(eval_number(t->value, "model.norm.weight", 0.0), 0.5);
}

TEST(ParameterEval, FirstMatchingConditionWinsEvenIfALaterOneIsMoreSpecific) {
  const auto v = conditions({{"layers", number(1)}, {"layers.3.self_attn", number(2)}});
  EXPECT_EQ(eval_number(v, "model.layers.3.self_attn.q_proj.weight", 0), 1);
}

TEST(ParameterEval, StarAndAbsentFiltersMatchEveryTensor) {
  const auto star = conditions({{"mlp", number(1)}, {"*", number(2)}});
  EXPECT_EQ(eval_number(star, "lm_head.weight", 0), 2);
  const auto absent = conditions({{"mlp", number(1)}, {std::nullopt, number(3)}});
  EXPECT_EQ(eval_number(absent, "lm_head.weight", 0), 3);
}

TEST(ParameterEval, FilterIsAPlainSubstringNotAPattern) {
  const auto v = conditions({{"self_attn.*", number(1)}, {"layers.1", number(2)}});
  // "self_attn.*" is not a glob; "layers.1" also matches layer 10.
  EXPECT_EQ(eval_number(v, "model.layers.10.self_attn.k_proj.weight", 0), 2);
}

TEST(ParameterEval, NoMatchingConditionIsNotSet) {
  const auto v = conditions({{"self_attn", number(1)}, {"mlp", number(2)}});
  EXPECT_EQ(evaluate_parameter(v, "model.norm.weight", 0.5), std::nullopt);
}

TEST(ParameterEval, GradientUnderAConditionUsesTheSameT) {
  const auto v = conditions({{"mlp", gradient({0, 1})}, {std::nullopt, number(9)}});
  EXPECT_NEAR(eval_number(v, "model.layers.7.mlp.down_proj.weight", 0.3), 0.3, 1e-15);
  EXPECT_EQ(eval_number(v, "model.layers.7.self_attn.o_proj.weight", 0.3), 9);
}

TEST(ParameterEval, FindParameterLooksUpByExactName) {
  ParameterMap map;
  map.push_back({"weight", number(0.5), {3, 7}});
  map.push_back({"density", number(0.2), {4, 7}});
  ASSERT_NE(find_parameter(map, "density"), nullptr);
  EXPECT_EQ(find_parameter(map, "density")->value.number, 0.2);
  EXPECT_EQ(find_parameter(map, "densit"), nullptr);
  EXPECT_EQ(find_parameter({}, "weight"), nullptr);
}

TEST(ClosestMatch, SuggestsTheKeyOneTypoAway) {
  const std::vector<std::string> keys = {"merge_method", "base_model", "models", "slices"};
  EXPECT_EQ(closest_match("merge_methd", keys), "merge_method");
  EXPECT_EQ(closest_match("slcies", keys), "slices");  // a transposition costs 2 <= 6/3
}

TEST(ClosestMatch, ThresholdIsAThirdOfTheWordLength) {
  const std::vector<std::string> keys = {"abcdef"};
  EXPECT_EQ(closest_match("abcdxy", keys), "abcdef");      // distance 2 = 6/3
  EXPECT_EQ(closest_match("abcxyz", keys), std::nullopt);  // distance 3
  EXPECT_EQ(closest_match("x", {"t"}), "t");               // short words still allow one edit
  EXPECT_EQ(closest_match("xy", {"t"}), std::nullopt);
}

TEST(ClosestMatch, TiesGoToTheFirstCandidate) {
  EXPECT_EQ(closest_match("cat", {"bat", "car"}), "bat");
  EXPECT_EQ(closest_match("cat", {"car", "bat"}), "car");
}

TEST(ClosestMatch, NoCandidatesOrHugeWordGiveNothing) {
  EXPECT_EQ(closest_match("models", {}), std::nullopt);
  EXPECT_EQ(closest_match(std::string(100000, 'a'), {"models"}), std::nullopt);
}

}  // namespace
}  // namespace llmerge
