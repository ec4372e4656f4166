// `llmerge methods [--json]`: every merge method with its parameters, from the
// registry (llmerge::methods_json), so it cannot drift from what the planner accepts.
#include <memory>

#include <fmt/core.h>

#include "command.h"
#include "llmerge/llmerge.h"

namespace llmerge::cli {

namespace {

const bool registered = register_command(
    {"methods", "List the merge methods and their parameters", 40, [](CLI::App& app) {
       auto json = std::make_shared<bool>(false);
       app.add_flag("--json", *json, "print the list as JSON");
       return [json] {
         fmt::print("{}", *json ? methods_json() + "\n" : methods_text());
         return 0;
       };
     }});

}  // namespace

}  // namespace llmerge::cli
