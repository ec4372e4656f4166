#include "plan/stages.h"

#include <algorithm>
#include <map>
#include <set>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/lora.h"
#include "plan/vocabulary.h"

namespace llmerge {

Model stage_output_model(const StageInput& stage, const std::string& name) {
  const MergePlan& plan = *stage.plan;
  // The header the stage's writer would give one shard: every tensor in
  // output order, dense (a quantized stage is never streamed), with the
  // writer's metadata. Shard boundaries are not seen by a plan.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = {{"format", "pt"}};
  std::uint64_t offset = 0;
  for (const auto& t : plan.tensors) {
    const std::uint64_t n = t.nbytes();
    header[t.name] = {{"dtype", std::string(dtype_name(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  const std::string json = header.dump();
  std::string prefix(8, '\0');
  for (std::size_t i = 0; i < 8; ++i)
    prefix[i] = static_cast<char>((json.size() >> (8 * i)) & 0xff);
  prefix += json;
  SafetensorsFile file = SafetensorsFile::parse_header(prefix, prefix.size() + offset,
                                                       fmt::format("stage '{}'", name));
  return Model::stage_output(stage.side_files, name, plan.out_config, std::move(file));
}

namespace {

struct Producer {
  const StageInput* stage = nullptr;
  std::map<std::string, const PlannedTensor*, std::less<>> tensors;
};

void link(PlannedInput& in, const std::vector<Producer>& producers) {
  const Producer& p = producers[in.model];
  if (p.stage == nullptr) return;
  const auto it = p.tensors.find(in.ref.info->name);
  if (it == p.tensors.end()) {
    throw Error(ErrorKind::internal,
                fmt::format("stage tensor '{}' is not in its plan", in.ref.info->name));
  }
  const PlannedTensor& t = *it->second;
  if (t.method == nullptr) {
    // Copied verbatim by the stage: its source holds the same bytes. A
    // verbatim copy always reads a stored tensor (link_stage_inputs runs
    // before plain copies are chosen, and those skip stage outputs).
    const PlannedInput& from = t.inputs.front();
    in.ref = from.ref;
    in.stage = from.stage;
    in.stage_tensor = from.stage_tensor;
    return;
  }
  in.stage = p.stage;
  in.stage_tensor = &t;
}

}  // namespace

void link_stage_inputs(MergePlan& plan) {
  std::vector<Producer> producers(plan.models.size());
  bool any = false;
  for (std::size_t m = 0; m < plan.models.size(); ++m) {
    if (!plan.models[m].is_stage_output()) continue;
    const auto it = plan.options.stages.find(plan.model_refs[m]);
    if (it == plan.options.stages.end()) continue;
    producers[m].stage = it->second.get();
    for (const auto& t : it->second->plan->tensors)
      producers[m].tensors.emplace(t.name, &t);
    any = true;
  }
  if (!any) return;
  std::set<const RowGather*> gathers;
  auto visit = [&](PlannedInput& in) {
    if (in.gather) {
      if (gathers.insert(in.gather.get()).second) {
        for (auto& table : in.gather->tables)
          link(table, producers);
      }
      return;
    }
    link(in, producers);
  };
  for (auto& t : plan.tensors) {
    if (t.base) visit(*t.base);
    for (auto& in : t.inputs)
      visit(in);
  }
}

std::string stage_streaming_obstacle(const MergePlan& stage) {
  if (stage.vocabulary && stage.vocabulary->rewrites()) {
    return "it builds its own tokenizer files (tokenizer_source aligns the vocabularies)";
  }
  if (stage.chat_template) return "it writes its own chat template into the tokenizer files";
  for (const auto& t : stage.tensors) {
    if (t.quantize) return fmt::format("it writes '{}' MLX-quantized", t.name);
    if (t.method == nullptr) continue;  // a verbatim copy: read from its source
    if (t.method->elementwise == nullptr) {
      return fmt::format(
          "its method {} is not element-wise: an output element of '{}' depends on statistics "
          "of the whole tensor (norms, angles, ranks or signs of other elements)",
          t.method->name, t.name);
    }
    if (const std::string why = t.method->elementwise(t.params); !why.empty()) {
      return fmt::format("tensor '{}': {}", t.name, why);
    }
  }
  return "";
}

std::uint64_t stage_source_bytes(const PlannedInput& in, std::int64_t chunk) {
  if (in.gather) {
    // Each slot's row gather opens every table (exec/sources.cpp).
    std::uint64_t sum = 0;
    for (const auto& table : in.gather->tables)
      sum += stage_source_bytes(table, chunk);
    return sum;
  }
  if (in.stage_tensor == nullptr) return 0;
  const PlannedTensor& t = *in.stage_tensor;
  const auto c = static_cast<std::uint64_t>(std::max<std::int64_t>(chunk, 1));
  const std::size_t inputs = t.inputs.size() + (t.base ? 1 : 0);
  // One f32 buffer per input of the stage's tensor and one for its output.
  std::uint64_t bytes = (inputs + 1) * c * sizeof(float);
  if (t.method->memory_bytes != nullptr) {
    bytes += t.method->memory_bytes(t.shape, t.numel(), t.inputs.size(), chunk);
  }
  auto add = [&](const PlannedInput& p) {
    bytes += stage_source_bytes(p, chunk);
    if (p.lora) bytes += lora_factor_bytes(*p.lora);
  };
  if (t.base) add(*t.base);
  for (const auto& p : t.inputs)
    add(p);
  return bytes;
}

}  // namespace llmerge
