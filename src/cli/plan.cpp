// `llmerge plan CONFIG [--json]`: validate a config and show what `run` would do.
#include <memory>

#include <fmt/core.h>

#include "api/describe.h"
#include "cli/command.h"
#include "cli/merge_options.h"
#include "core/format.h"

namespace llmerge::cli {

namespace {

struct PlanCommand {
  MergeOptions merge;
  bool json = false;
};

int run_plan(const PlanCommand& c) {
  const Plan plan = plan_from_options(c.merge);
  if (c.json) {
    fmt::print("{}\n", plan_to_json(plan).dump(2));
  } else {
    fmt::print("{}", terminal_safe(describe_plan(plan)));
  }
  return 0;
}

const bool registered = register_command(
    {"plan", "Validate a config against the models' headers and print the merge plan", 20,
     [](CLI::App& app) {
       auto c = std::make_shared<PlanCommand>();
       add_merge_options(app, c->merge);
       app.add_flag("--json", c->json, "print the full plan (every tensor) as JSON");
       return [c] { return run_plan(*c); };
     }});

}  // namespace

}  // namespace llmerge::cli
