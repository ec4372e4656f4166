// libFuzzer target: the YAML config loader and the planner.
//
// At start-up, four tiny synthetic models are written where examples/*.yaml
// expect them (demo/models/{base,a,b,shallow}: llama, 6 layers, or 4 for
// "shallow"), and the working directory moves there, so the example configs
// are valid seeds. Each input is parsed with parse_config and, if it parses,
// planned with make_plan; both must succeed or raise Error. A plan is then
// described, dumped as JSON and laid out into shards, as `llmerge plan` does.
// The front ends' views of the same text (the references a config names, the
// config as JSON: config/config_refs.h) must also succeed or raise Error.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "api/describe.h"
#include "config/config_refs.h"
#include "core/error.h"
#include "fuzz_util.h"
#include "output/layout.h"
#include "output/run_merge.h"
#include "plan/plan.h"
#include "synth/synth.h"

using namespace llmerge;
namespace fs = std::filesystem;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const fs::path root = fuzz::scratch_dir();
  // Hub ids must not find a real cache on this machine.
  fs::create_directories(root / "hub");
  ::setenv("HF_HUB_CACHE", (root / "hub").c_str(), 1);
  SynthOptions o;
  o.family = "llama";
  o.hidden = 16;
  o.intermediate = 32;
  o.heads = 2;
  o.kv_heads = 1;
  o.vocab = 32;
  o.threads = 1;
  o.layers = 6;
  o.seed = 1;
  try {
    write_synth_model(o, root / "demo/models/base");
    o.seed = 2;
    write_synth_model(o, root / "demo/models/a");
    o.seed = 3;
    write_synth_model(o, root / "demo/models/b");
    o.seed = 4;
    o.layers = 4;
    write_synth_model(o, root / "demo/models/shallow");
  } catch (const Error& e) {
    std::fprintf(stderr, "cannot write the fuzz models: %s\n", e.what());
    std::abort();
  }
  fs::current_path(root);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    for (const ConfigReferenceSite& site : find_config_references(text, "fuzz.yaml"))
      FUZZ_CHECK(site.line >= 1 && site.column >= 1 && !site.value.empty());
    (void)config_yaml_to_json(text, "fuzz.yaml");
  } catch (const Error&) {
  }
  MergeConfig config;
  try {
    config = parse_config(text, "fuzz.yaml");
  } catch (const Error&) {
    return 0;
  }
  try {
    PlanSettings options;
    options.shard_size_max = 4096;
    const MergePlan plan = make_plan(config, options);
    FUZZ_CHECK(plan.method != nullptr);
    FUZZ_CHECK(!plan.models.empty() && plan.models.size() == plan.model_refs.size());
    for (const PlannedTensor& t : plan.tensors) {
      for (const PlannedInput& in : t.inputs)
        FUZZ_CHECK(in.model < plan.models.size() && in.ref.info != nullptr);
      if (t.base) FUZZ_CHECK(t.base->model < plan.models.size());
    }
    (void)describe_plan(plan);
    (void)plan_to_json(plan).dump();
    (void)plan_shards(plan_tensor_specs(plan), options.shard_size_max);
    check_output_path(plan, "out/fuzz");
  } catch (const Error&) {
  }
  return 0;
}
