// Multi-stage recipes (llmerge/recipe.h): each stage is planned and run as
// its own merge, when the stages it uses have been written.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <set>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include "api/internal.h"
#include "config/recipe.h"
#include "core/error.h"

namespace llmerge {

namespace detail {

struct RecipeData {
  RecipeGraph recipe;
  static llmerge::Recipe make(RecipeGraph recipe) {
    auto data = std::make_shared<RecipeData>();
    data->recipe = std::move(recipe);
    return llmerge::Recipe(std::move(data));
  }
  static const RecipeGraph& of(const llmerge::Recipe& r) { return r.data_->recipe; }
};

}  // namespace detail

namespace {

namespace fs = std::filesystem;
using Stages = RecipeGraph;

std::string stage_label(const Stages& r, std::size_t i) {
  return r.stages[i].name ? fmt::format("stage '{}'", *r.stages[i].name)
                          : std::string("the output stage");
}

// mergekit-multi's test for "already merged": a config.json and weights.
bool has_model(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_regular_file(dir / "config.json", ec)) return false;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".safetensors") return true;
  }
  return false;
}

// Stage i's config with the names of other stages replaced by their folders.
MergeConfig resolved_stage(const Stages& r, std::size_t i, const fs::path& stage_dir) {
  std::set<std::string> names;
  for (const auto& s : r.stages)
    if (s.name) names.insert(*s.name);
  MergeConfig config = r.stages[i];
  for_each_model_reference(config, [&](std::string& ref, SourceLocation) {
    if (names.count(ref)) ref = fs::absolute(stage_dir / ref).string();
  });
  return config;
}

}  // namespace

// ------------------------------------------------------------------ Recipe

Recipe Recipe::load(const std::string& path) {
  return detail::RecipeData::make(parse_recipe(read_config_file(path), path));
}

Recipe Recipe::parse(const std::string& yaml, const std::string& name) {
  return detail::RecipeData::make(parse_recipe(yaml, name));
}

std::size_t Recipe::size() const {
  return detail::RecipeData::of(*this).stages.size();
}

std::vector<std::string> Recipe::stage_names() const {
  std::vector<std::string> out;
  for (const auto& s : detail::RecipeData::of(*this).stages)
    out.push_back(s.name.value_or(""));
  return out;
}

std::string Recipe::describe(const MergeOptions& options) const {
  const Stages& r = detail::RecipeData::of(*this);
  const fs::path dir = options.run.intermediate_dir.empty()
                           ? fs::path("<temporary folder>")
                           : fs::path(options.run.intermediate_dir);
  std::string s = fmt::format("recipe: {} stage(s), in run order\n", r.stages.size());
  for (std::size_t i = 0; i < r.stages.size(); ++i) {
    std::vector<std::string> uses;
    for (std::size_t d : r.depends_on[i])
      uses.push_back(*r.stages[d].name);
    const std::string where =
        i == r.output_stage ? "the output folder" : (dir / *r.stages[i].name).string();
    s += fmt::format("  {}. {}{} -> {}\n", i + 1, stage_label(r, i),
                     uses.empty() ? "" : fmt::format(" (uses {})", fmt::join(uses, ", ")), where);
  }
  for (std::size_t i = 0; i < r.stages.size(); ++i) {
    bool ready = true;
    for (std::size_t d : r.depends_on[i])
      ready &= !options.run.intermediate_dir.empty() && has_model(dir / *r.stages[d].name);
    s += fmt::format("\n== {} ==\n", stage_label(r, i));
    if (!ready) {
      s += "planned when run: it uses stages not written yet\n";
      continue;
    }
    const Config config = detail::ConfigData::make(resolved_stage(r, i, dir));
    s += plan(config, options.plan, options.run.cancel).describe(options.run);
  }
  return s;
}

RecipeResult run_recipe(const Recipe& recipe, const std::string& out_dir,
                        const MergeOptions& options) {
  const Stages& r = detail::RecipeData::of(recipe);
  if (out_dir.empty()) throw Error(ErrorKind::config, "no output directory given");
  const auto start = std::chrono::steady_clock::now();
  RecipeResult result;
  result.output = out_dir;
  const bool temporary = options.run.intermediate_dir.empty();
  fs::path dir = options.run.intermediate_dir;
  if (temporary) {
    const fs::path out = fs::absolute(out_dir);
    dir = out.parent_path() /
          fmt::format(".{}.llmerge-stages-{}", out.filename().string(), ::getpid());
  }
  const auto note = [&](const std::string& text) {
    if (options.run.note) options.run.note(text);
  };
  try {
    for (std::size_t i = 0; i < r.stages.size(); ++i) {
      const bool is_output = i == r.output_stage;
      const fs::path target = is_output ? fs::path(out_dir) : dir / *r.stages[i].name;
      if (!is_output && !temporary && options.run.lazy && has_model(target)) {
        note(fmt::format("{}: {} holds its model already (--lazy); not run again",
                         stage_label(r, i), target.string()));
        result.stages_skipped.push_back(*r.stages[i].name);
        continue;
      }
      const Config config = detail::ConfigData::make(resolved_stage(r, i, dir));
      RunOptions run = options.run;
      if (!is_output) run.force = run.force || !options.run.lazy;  // --no-lazy: merge again
      // A failing stage's problems stay as they are (one cause, one problem);
      // a note says which stage they are from.
      const Plan p = [&] {
        try {
          return plan(config, options.plan, options.run.cancel);
        } catch (const Error&) {
          if (r.stages.size() > 1) note(fmt::format("{}: its plan failed", stage_label(r, i)));
          throw;
        }
      }();
      for (const auto& n : p.notes())
        note(r.stages.size() == 1 ? n : fmt::format("{}: {}", stage_label(r, i), n));
      const RunResult done = llmerge::run(p, target.string(), run);
      if (!is_output) result.intermediate_bytes += done.bytes;
      result.stages_run.push_back(r.stages[i].name.value_or(""));
    }
  } catch (...) {
    std::error_code ec;
    if (temporary) fs::remove_all(dir, ec);
    throw;
  }
  if (temporary) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

std::string convert_config(const std::string& yaml, const std::string& name) {
  return convert_to_mergekit(yaml, name);
}

}  // namespace llmerge
