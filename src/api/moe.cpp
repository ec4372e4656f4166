// The public moe entry points (llmerge/moe.h) over config/moe_config.h and
// plan/moe_planner.h; the plan runs through the ordinary run().
#include "llmerge/moe.h"

#include "api/internal.h"
#include "config/moe_config.h"
#include "core/cancel.h"
#include "core/json_text.h"
#include "plan/moe_planner.h"

namespace llmerge {

namespace detail {

struct MoeConfigData {
  MoeMergeConfig config;
  static MoeConfig make(MoeMergeConfig config) {
    auto data = std::make_shared<MoeConfigData>();
    data->config = std::move(config);
    return MoeConfig(std::move(data));
  }
  static const MoeMergeConfig& of(const MoeConfig& c) { return c.data_->config; }
};

}  // namespace detail

namespace {

using detail::MoeConfigData;

MoePlanSettings to_moe_settings(const PlanOptions& options) {
  MoePlanSettings s;
  s.plan = api_detail::to_internal(options);
  s.allow_all_same = options.allow_all_same;
  if (!options.gates.empty()) {
    std::filesystem::path gates = options.gates;
    if (gates.is_relative() && !options.base_dir.empty())
      gates = std::filesystem::path(options.base_dir) / gates;
    s.gates = gates;
  }
  return s;
}

}  // namespace

MoeConfig MoeConfig::load(const std::string& path) {
  return MoeConfigData::make(load_moe_config(path));
}

MoeConfig MoeConfig::parse(const std::string& yaml, const std::string& name) {
  return MoeConfigData::make(parse_moe_config(yaml, name));
}

const std::string& MoeConfig::text() const {
  return data_->config.text;
}
const std::string& MoeConfig::name() const {
  return data_->config.file;
}
std::string MoeConfig::gate_mode() const {
  return moe_gate_mode_name(data_->config.gate_mode);
}
bool MoeConfig::needs_prompt_gates() const {
  return !moe_gate_mode_is_random(data_->config.gate_mode);
}

Plan plan_moe(const MoeConfig& config, const PlanOptions& options, const CancelToken& cancel) {
  CancelScope scope(cancel);
  return detail::PlanData::make(make_moe_plan(MoeConfigData::of(config), to_moe_settings(options)));
}

std::string moe_gate_request(const MoeConfig& config, const PlanOptions& options) {
  return json_text(llmerge::moe_gate_request(MoeConfigData::of(config), to_moe_settings(options)),
                   2);
}

std::string moe_gate_tensor(std::int64_t layer, bool shared) {
  return moe_gate_tensor_name(layer, shared);
}

}  // namespace llmerge
