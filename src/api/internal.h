// What the public handles (llmerge/llmerge.h) hold, and the conversions from
// public options to the internal ones. Only src/api/ includes this.
#pragma once

#include "config/config.h"
#include "llmerge/llmerge.h"
#include "plan/plan.h"

namespace llmerge {

namespace detail {

struct ConfigData {
  MergeConfig config;
  static Config make(MergeConfig config);
  static const MergeConfig& of(const Config& c) { return c.data_->config; }
};

struct PlanData {
  MergePlan plan;
  static Plan make(MergePlan plan);
  static const MergePlan& of(const Plan& p) { return p.data_->plan; }
};

}  // namespace detail

namespace api_detail {
// Parses and checks the public plan options (Error(config) naming the option).
PlanSettings to_internal(const PlanOptions& options);
}  // namespace api_detail

}  // namespace llmerge
