// The public entry points (llmerge/llmerge.h) over the internal pipeline:
// config/ -> plan/ -> exec/ -> output/.
#include <chrono>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "api/describe.h"
#include "api/internal.h"
#include "config/config_refs.h"
#include "core/cancel.h"
#include "core/error.h"
#include "core/json_text.h"
#include "output/conversion_card.h"
#include "output/run_merge.h"

namespace llmerge {

const char* version() {
  return LLMERGE_VERSION;
}

namespace detail {

Config ConfigData::make(MergeConfig config) {
  auto data = std::make_shared<ConfigData>();
  data->config = std::move(config);
  return Config(std::move(data));
}

Plan PlanData::make(MergePlan plan) {
  auto data = std::make_shared<PlanData>();
  data->plan = std::move(plan);
  return Plan(std::move(data));
}

}  // namespace detail

using detail::ConfigData;
using detail::PlanData;

// ------------------------------------------------------------------ Config

Config Config::load(const std::string& path) {
  return ConfigData::make(load_config(path));
}

Config Config::parse(const std::string& yaml, const std::string& name) {
  return ConfigData::make(parse_config(yaml, name));
}

const std::string& Config::text() const {
  return data_->config.text;
}
const std::string& Config::name() const {
  return data_->config.file;
}
const std::string& Config::merge_method() const {
  return data_->config.merge_method;
}

std::vector<ConfigReference> config_references(const std::string& yaml, const std::string& name) {
  std::vector<ConfigReference> out;
  for (auto& site : find_config_references(yaml, name))
    out.push_back({std::move(site.value), std::move(site.yaml_path), site.line, site.column});
  return out;
}

std::string config_to_json(const std::string& yaml, const std::string& name) {
  return config_yaml_to_json(yaml, name);
}

// -------------------------------------------------------------------- Plan

namespace {

int thread_count(const RunOptions& run) {
  return run.threads > 0 ? run.threads : default_thread_count();
}

}  // namespace

std::string Plan::json(const RunOptions& run) const {
  return json_text(plan_to_json(data_->plan, thread_count(run), run.chunk_elements), 2);
}

std::string Plan::describe(const RunOptions& run) const {
  return describe_plan(data_->plan, thread_count(run), run.chunk_elements);
}

std::vector<PlannedTensorInfo> Plan::tensors() const {
  std::vector<PlannedTensorInfo> out;
  out.reserve(data_->plan.tensors.size());
  for (const auto& t : data_->plan.tensors) {
    PlannedTensorInfo info;
    info.name = t.name;
    info.dtype = std::string(dtype_torch_name(t.dtype));
    info.shape = t.shape;
    info.method = t.method ? t.method->name : "";
    info.inputs = t.inputs.size() + (t.base ? 1 : 0);
    info.layer = t.layer;
    info.quantize_bits = t.quantize ? t.quantize->bits : 0;
    out.push_back(std::move(info));
  }
  return out;
}

std::vector<std::string> Plan::notes() const {
  return data_->plan.notes;
}
std::uint64_t Plan::output_bytes() const {
  return data_->plan.output_bytes();
}
std::int64_t Plan::output_layers() const {
  return data_->plan.out_layers;
}

std::uint64_t Plan::memory_estimate(const RunOptions& run) const {
  return data_->plan.peak_memory_estimate(thread_count(run), run.chunk_elements);
}

Plan plan(const Config& config, const PlanOptions& options, const CancelToken& cancel) {
  CancelScope scope(cancel);
  PlanSettings settings = api_detail::to_internal(options);
  return PlanData::make(make_plan(ConfigData::of(config), settings));
}

// --------------------------------------------------------------------- run

RunResult run(const Plan& plan, const std::string& out_dir, const RunOptions& options) {
  const MergePlan& p = PlanData::of(plan);
  if (out_dir.empty()) throw Error(ErrorKind::config, "no output directory given");
  if (options.chunk_elements < 1) {
    throw Error(ErrorKind::config, "chunk_elements must be at least 1");
  }
  RunSettings settings;
  settings.out_dir = out_dir;
  settings.writer.shard_size_max = p.options.shard_size_max;
  settings.writer.force = options.force;
  if (options.note) settings.writer.note = options.note;
  settings.execute.threads = thread_count(options);
  settings.execute.chunk_elements = options.chunk_elements;
  settings.execute.seed = options.random_seed;
  settings.execute.cancel = options.cancel;
  settings.execute.progress_interval_s = options.progress_interval_s;
  if (options.progress) {
    settings.execute.progress = [&options](const ExecuteProgress& e) {
      options.progress(
          Progress{e.tensors_done, e.tensors_total, e.bytes_done, e.bytes_total, e.seconds});
    };
  }
  settings.copy_tokenizer = options.copy_tokenizer;
  settings.write_model_card = options.write_model_card;
  CancelScope scope(options.cancel);
  const auto start = std::chrono::steady_clock::now();
  run_merge(p, settings);
  RunResult r;
  r.output = out_dir;
  r.tensors = p.tensors.size();
  r.bytes = p.output_bytes();
  r.layers = p.out_layers;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.memory_estimate = p.peak_memory_estimate(settings.execute.threads, options.chunk_elements);
  return r;
}

RunResult merge(const Config& config, const std::string& out_dir, const MergeOptions& options) {
  return run(plan(config, options.plan, options.run.cancel), out_dir, options.run);
}

RunResult quantize(const std::string& model, const std::string& out_dir,
                   const MergeOptions& options) {
  if (!options.plan.quantize && !options.plan.dequantize) {
    throw Error(ErrorKind::config,
                "say what to write: quantize=True (MLX-quantized, q_bits 4 unless given) or "
                "dequantize=True (dense)");
  }
  return merge(quantize_config(model), out_dir, options);
}

Config quantize_config(const std::string& model) {
  // A quoted YAML scalar, so that any path is taken literally.
  const std::string yaml = fmt::format("merge_method: passthrough\nmodels:\n  - model: {}\n",
                                       json_text(nlohmann::json(model)));
  return Config::parse(yaml, std::string(k_conversion_config_file));
}

RunResult fuse(const std::string& model, const std::string& adapter, const std::string& out_dir,
               const MergeOptions& options) {
  return merge(fuse_config(model, adapter), out_dir, options);
}

Config fuse_config(const std::string& model, const std::string& adapter) {
  if (model.empty() || adapter.empty())
    throw Error(ErrorKind::config, "fuse needs a model and an adapter");
  for (const auto* part : {&model, &adapter}) {
    if (part->find('+') != std::string::npos)
      throw Error(
          ErrorKind::config,
          fmt::format("'{}': give the model and the adapter separately, without '+'", *part));
  }
  // Its own name: errors are located in it, and the output is recorded as the
  // adapted model (a replayable passthrough of model+adapter), not as a
  // conversion of the base (output/conversion_card.h).
  const std::string yaml = fmt::format("merge_method: passthrough\nmodels:\n  - model: {}\n",
                                       json_text(nlohmann::json(model + "+" + adapter)));
  return Config::parse(yaml, "<llmerge fuse>");
}

}  // namespace llmerge
