// `llmerge plan CONFIG [--json]`: validate a config and show what `run` would do.
#include <memory>

#include <fmt/core.h>

#include "command.h"
#include "compat_flags.h"
#include "llmerge/llmerge.h"
#include "llmerge/text.h"
#include "table_options.h"

namespace llmerge::cli {

namespace {

struct PlanCommand {
  std::string config;
  TableOptions table;
  bool json = false;
  CompatFlags mergekit;
};

int run_plan(const PlanCommand& c) {
  print_notes(c.mergekit.apply());
  const MergeOptions options = c.table.options();
  if (const Recipe recipe = Recipe::load(c.config); recipe.size() > 1) {
    if (c.json) throw Error(ErrorKind::unsupported, "plan --json takes one config, not a recipe");
    fmt::print("{}", terminal_safe(recipe.describe(options)));
    return 0;
  }
  if (!c.json) {
    fmt::print(
        "{}",
        terminal_safe(
            plan(Config::load(c.config), options.plan, run_cancel_token()).describe(options.run)));
    return 0;
  }
  // With --json, problems are printed as JSON on stdout too, for tools.
  try {
    fmt::print("{}\n",
               plan(Config::load(c.config), options.plan, run_cancel_token()).json(options.run));
  } catch (const Error& e) {
    fmt::print("{}\n", e.problems_json());
    throw;
  }
  return 0;
}

const bool registered = register_command(
    {"plan", "Validate a config against the models' headers and print the merge plan", 20,
     [](CLI::App& app) {
       auto c = std::make_shared<PlanCommand>();
       app.add_option("config", c->config, "mergekit YAML config")->required();
       c->table.add(app, "plan");
       app.add_flag("--json", c->json,
                    "print the full plan (every tensor) as JSON; on failure, the problems");
       c->mergekit.add(app);
       return [c] { return run_plan(*c); };
     }});

}  // namespace

}  // namespace llmerge::cli
