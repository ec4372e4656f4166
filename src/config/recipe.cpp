// mergekit-multi recipes: stages, their dependency graph, cycle detection.
#include "config/recipe.h"

#include <algorithm>
#include <map>

#include <fmt/core.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace llmerge {

void for_each_model_reference(MergeConfig& config,
                              const std::function<void(std::string& ref, SourceLocation at)>& f) {
  if (config.base_model) f(*config.base_model, config.base_model_location);
  for (auto& m : config.models)
    f(m.model, m.location);
  for (auto& s : config.slices) {
    for (auto& src : s.sources)
      f(src.model, src.location);
    if (s.base_model) f(*s.base_model, s.base_model_location);
  }
  if (config.tokenizer_source && *config.tokenizer_source != "base")
    f(*config.tokenizer_source, config.tokenizer_source_location);
}

RecipeGraph parse_recipe(std::string_view yaml_text, const std::string& file) {
  std::vector<MergeConfig> docs = parse_documents(yaml_text, file);
  const auto fail = [&](SourceLocation at, const std::string& message) {
    throw Error(ErrorKind::config, message, ErrorContext{file, at.line, at.column, {}});
  };
  std::map<std::string, std::size_t> by_name;
  std::optional<std::size_t> unnamed;
  for (std::size_t i = 0; i < docs.size(); ++i) {
    if (!docs[i].name) {
      if (unnamed && docs.size() > 1)
        fail({}, fmt::format("recipe: documents {} and {} both have no `name:`; at most one "
                             "stage (the one written to the output folder) may be unnamed",
                             *unnamed + 1, i + 1));
      unnamed = i;
      continue;
    }
    if (!by_name.emplace(*docs[i].name, i).second)
      fail(
          docs[i].name_location,
          fmt::format("recipe: two stages are named '{}'; stage names must differ", *docs[i].name));
  }
  // Edges: stage i reads stage j's model. Kept with the reference's location.
  struct Edge {
    std::size_t to;
    SourceLocation at;
  };
  std::vector<std::vector<Edge>> reads(docs.size());
  for (std::size_t i = 0; i < docs.size(); ++i) {
    for_each_model_reference(docs[i], [&](std::string& ref, SourceLocation at) {
      auto it = by_name.find(ref);
      if (it == by_name.end()) return;
      for (const Edge& e : reads[i])
        if (e.to == it->second) return;
      reads[i].push_back({it->second, at});
    });
  }
  // Depth-first, in file order; a stage met again while on the stack closes a cycle.
  enum class Mark { none, active, done };
  std::vector<Mark> mark(docs.size(), Mark::none);
  std::vector<std::size_t> stack, order;
  const auto name_of = [&](std::size_t i) { return docs[i].name.value_or("(unnamed)"); };
  std::function<void(std::size_t)> visit = [&](std::size_t i) {
    mark[i] = Mark::active;
    stack.push_back(i);
    for (const Edge& e : reads[i]) {
      if (mark[e.to] == Mark::active) {
        std::vector<std::string> cycle;
        auto from = std::find(stack.begin(), stack.end(), e.to);
        for (auto it = from; it != stack.end(); ++it)
          cycle.push_back(name_of(*it));
        cycle.push_back(name_of(e.to));
        fail(e.at, fmt::format("recipe: the stages form a cycle: {}; each stage may use only "
                               "stages that do not use it",
                               fmt::join(cycle, " -> ")));
      }
      if (mark[e.to] == Mark::none) visit(e.to);
    }
    stack.pop_back();
    mark[i] = Mark::done;
    order.push_back(i);
  };
  for (std::size_t i = 0; i < docs.size(); ++i)
    if (mark[i] == Mark::none) visit(i);

  RecipeGraph recipe;
  std::vector<std::size_t> position(docs.size());
  for (std::size_t k = 0; k < order.size(); ++k)
    position[order[k]] = k;
  for (std::size_t k = 0; k < order.size(); ++k) {
    std::vector<std::size_t> deps;
    for (const Edge& e : reads[order[k]])
      deps.push_back(position[e.to]);
    recipe.depends_on.push_back(std::move(deps));
    recipe.stages.push_back(std::move(docs[order[k]]));
  }
  recipe.output_stage = unnamed ? position[*unnamed] : recipe.stages.size() - 1;
  return recipe;
}

}  // namespace llmerge
