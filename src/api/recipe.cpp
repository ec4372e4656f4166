// Multi-stage recipes (llmerge/recipe.h): in one pass when every stage the
// output uses is element-wise (plan/stages.h), else each stage planned and
// run as its own merge once the stages it uses have been written.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include "api/describe.h"
#include "api/internal.h"
#include "config/recipe.h"
#include "core/cancel.h"
#include "core/error.h"
#include "exec/executor.h"
#include "output/run_merge.h"
#include "plan/stages.h"

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

// ---------------------------------------------------------------- one pass

// The stages the output stage uses, itself included, directly or not.
std::vector<bool> needed_stages(const Stages& r) {
  std::vector<bool> needed(r.stages.size(), false);
  needed[r.output_stage] = true;
  for (std::size_t i = r.stages.size(); i-- > 0;) {
    if (!needed[i]) continue;
    for (std::size_t d : r.depends_on[i])
      needed[d] = true;
  }
  return needed;
}

// Every stage planned from headers, before anything is written: the stages
// already in the intermediate folder (lazy) are read from there, the others
// are StageInputs of the stages that use them.
struct OnePass {
  std::vector<std::shared_ptr<MergePlan>> plans;  // per stage; nullptr: read from its folder
  std::vector<bool> on_disk;                      // lazy: the stage's model is in its folder
  std::vector<bool> needed;
  // Set when the recipe cannot run in one pass: why, and the stages planned
  // until then (the staged run plans them again, when their inputs exist).
  std::string staged_because;
  // The stages' plan notes, given only if the recipe runs in one pass (the
  // staged run gives them itself).
  std::vector<std::string> notes;
  // The recipe's own remarks (stages not computed), which no plan shows.
  std::vector<std::string> recipe_notes;
};

OnePass plan_one_pass(const Stages& r, const MergeOptions& options, const fs::path& dir,
                      const std::function<void(const std::string&)>& note) {
  OnePass op;
  const std::size_t n = r.stages.size();
  op.plans.resize(n);
  op.on_disk.assign(n, false);
  op.needed = needed_stages(r);
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < n; ++i) {
    if (r.stages[i].name) index[*r.stages[i].name] = i;
    op.on_disk[i] = i != r.output_stage && !options.run.intermediate_dir.empty() &&
                    options.run.lazy && has_model(dir / *r.stages[i].name);
  }
  std::map<std::size_t, std::shared_ptr<const StageInput>> inputs;
  for (std::size_t i = 0; i < n; ++i) {
    if (op.on_disk[i]) continue;
    // References to stages on disk become their folders, as in the staged
    // run; the others stay names that the planner finds in settings.stages.
    MergeConfig config = r.stages[i];
    PlanSettings settings = api_detail::to_internal(options.plan);
    std::optional<std::size_t> missing;  // a stage it uses that this pass does not compute
    for_each_model_reference(config, [&](std::string& ref, SourceLocation) {
      const auto it = index.find(ref);
      if (it == index.end()) return;
      if (op.on_disk[it->second]) {
        ref = fs::absolute(dir / ref).string();
      } else if (const auto in = inputs.find(it->second); in != inputs.end()) {
        settings.stages[ref] = in->second;
      } else {
        missing = it->second;
      }
    });
    if (missing) {
      // Only a stage the output does not use gets here (a used one that
      // cannot be streamed has made the recipe staged already).
      op.recipe_notes.push_back(fmt::format(
          "{}: the output does not use it and it uses {}, which is not computed in one pass; "
          "not planned (--staged writes both)",
          stage_label(r, i), stage_label(r, *missing)));
      continue;
    }
    try {
      op.plans[i] = std::make_shared<MergePlan>(make_plan(config, settings));
    } catch (const Error&) {
      if (n > 1) note(fmt::format("{}: its plan failed", stage_label(r, i)));
      throw;
    }
    const MergePlan& p = *op.plans[i];
    for (const auto& text : p.notes)
      op.notes.push_back(n == 1 ? text : fmt::format("{}: {}", stage_label(r, i), text));
    if (i == r.output_stage) continue;
    if (!op.needed[i]) {
      op.recipe_notes.push_back(
          fmt::format("{}: the output does not use it, so the one-pass run computes nothing of "
                      "it (--staged writes it)",
                      stage_label(r, i)));
    }
    if (const std::string why = stage_streaming_obstacle(p); !why.empty()) {
      if (!op.needed[i]) continue;  // no stage the output uses reads it
      op.staged_because = fmt::format("{} cannot be computed as the next stage reads it: {}",
                                      stage_label(r, i), why);
      return op;
    }
    auto in = std::make_shared<StageInput>();
    in->plan = op.plans[i];
    // The staged run copies the tokenizer files from there into the stage's
    // folder, which the next stage reads or copies in turn.
    if (options.run.copy_tokenizer) in->side_files = p.models[p.tokenizer_model].path();
    in->seed = options.run.random_seed;
    inputs[i] = std::move(in);
  }
  return op;
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
  // One pass plans every stage from headers; staged, a stage is planned once
  // the stages it uses are written.
  std::optional<OnePass> op;
  if (!options.run.staged && r.stages.size() > 1) {
    CancelScope scope(options.run.cancel);
    op = plan_one_pass(r, options, dir, [](const std::string&) {});
  }
  const bool one_pass = op && op->staged_because.empty();
  std::string s = fmt::format("recipe: {} stage(s), in run order\n", r.stages.size());
  for (std::size_t i = 0; i < r.stages.size(); ++i) {
    std::vector<std::string> uses;
    for (std::size_t d : r.depends_on[i])
      uses.push_back(*r.stages[d].name);
    std::string where =
        i == r.output_stage ? "the output folder" : (dir / *r.stages[i].name).string();
    if (one_pass && i != r.output_stage) {
      where = op->on_disk[i]  ? fmt::format("read from {} (--lazy)", where)
              : op->needed[i] ? std::string("computed as it is read, not written")
                              : std::string("not computed (the output does not use it)");
    }
    s += fmt::format("  {}. {}{} -> {}\n", i + 1, stage_label(r, i),
                     uses.empty() ? "" : fmt::format(" (uses {})", fmt::join(uses, ", ")), where);
  }
  if (one_pass) {
    s += "one pass: every stage the output uses is element-wise, so their tensors are computed "
         "as the next stage reads them and no intermediate model is written (--staged writes "
         "them)\n";
    const int threads = options.run.threads > 0 ? options.run.threads : default_thread_count();
    for (std::size_t i = 0; i < r.stages.size(); ++i) {
      if (op->on_disk[i] || !op->plans[i]) continue;  // read from disk; not planned (a note)
      s += fmt::format("\n== {} ==\n", stage_label(r, i));
      s += describe_plan(*op->plans[i], threads, options.run.chunk_elements);
    }
    for (const auto& text : op->recipe_notes)
      s += fmt::format("note: {}\n", text);
    return s;
  }
  if (op) s += fmt::format("staged: {}\n", op->staged_because);
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
  if (!options.run.staged && r.stages.size() > 1) {
    OnePass op = [&] {
      CancelScope scope(options.run.cancel);
      return plan_one_pass(r, options, dir, note);
    }();
    if (op.staged_because.empty()) {
      for (const auto& list : {&op.notes, &op.recipe_notes})
        for (const auto& text : *list)
          note(text);
      // The output protects every model it reads, the stages' inputs too.
      for (const auto& p : op.plans)
        if (p) check_output_path(*p, out_dir);
      for (std::size_t i = 0; i < r.stages.size(); ++i) {
        if (op.on_disk[i]) {
          note(fmt::format("{}: {} holds its model already (--lazy); read from there",
                           stage_label(r, i), (dir / *r.stages[i].name).string()));
          result.stages_skipped.push_back(*r.stages[i].name);
        } else if (op.needed[i]) {
          result.stages_run.push_back(r.stages[i].name.value_or(""));
        }
      }
      llmerge::run(detail::PlanData::make(std::move(*op.plans[r.output_stage])), out_dir,
                   options.run);
      result.one_pass = true;
      result.seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      return result;
    }
    note(
        fmt::format("one pass: {}; the recipe runs stage by stage (each stage is planned again "
                    "when its inputs are written)",
                    op.staged_because));
    result.staged_because = op.staged_because;
  }
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
