#include "parse_errors.h"

#include <algorithm>

#include <fmt/core.h>
#include <fmt/ranges.h>

namespace llmerge::cli {

namespace {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

std::vector<std::string> flag_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::Option* o : app.get_options()) {
    for (const auto& l : o->get_lnames())
      names.push_back("--" + l);
    for (const auto& s : o->get_snames())
      names.push_back("-" + s);
  }
  return names;
}

}  // namespace

std::string nearest(std::string_view typed, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(2, typed.size() / 3) + 1;
  for (const auto& c : candidates) {
    const std::size_t d = edit_distance(typed, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

int report_parse_error(CLI::App& app, const CLI::ParseError& e, int argc, char** argv) {
  if (dynamic_cast<const CLI::Success*>(&e) != nullptr) return app.exit(e);
  // The subcommand typed: the first argument that names one.
  CLI::App* sub = nullptr;
  for (int i = 1; i < argc && !sub; ++i) {
    for (CLI::App* s : app.get_subcommands({})) {
      if (s->get_name() == argv[i]) sub = s;
    }
  }
  std::vector<std::string> subcommand_names;
  for (const CLI::App* s : app.get_subcommands({}))
    subcommand_names.push_back(s->get_name());
  const std::string where = sub ? sub->get_name() + ": " : "";
  const std::string help =
      sub ? fmt::format("llmerge {} --help", sub->get_name()) : "llmerge --help";

  std::string message;
  if (dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr) {
    // What was not expected, in the order typed.
    std::vector<std::string> extras = app.remaining(true);
    const auto flag = std::find_if(extras.begin(), extras.end(),
                                   [](const std::string& a) { return a.starts_with("-"); });
    if (!sub && !extras.empty() && !extras.front().starts_with("-")) {
      const std::string guess = nearest(extras.front(), subcommand_names);
      message = fmt::format("unknown command '{}'", extras.front());
      if (!guess.empty()) message += fmt::format("; did you mean '{}'?", guess);
    } else if (flag != extras.end()) {
      const std::string typed = flag->substr(0, flag->find('='));
      const std::string guess = nearest(typed, flag_names(sub ? *sub : app));
      message = fmt::format("{}unknown flag '{}'", where, typed);
      if (!guess.empty()) message += fmt::format("; did you mean '{}'?", guess);
    } else {
      message = where + "unexpected argument";
      for (const auto& a : extras)
        message += " '" + a + "'";
    }
  } else if (!sub && dynamic_cast<const CLI::RequiredError*>(&e) != nullptr) {
    // `llmerge rnu x`: the first word names no command.
    const std::string first = argc > 1 ? argv[1] : "";
    if (!first.empty() && !first.starts_with("-")) {
      const std::string guess = nearest(first, subcommand_names);
      message = fmt::format("unknown command '{}'", first);
      if (!guess.empty()) message += fmt::format("; did you mean '{}'?", guess);
    } else {
      message = fmt::format("say which command to run: {}", fmt::join(subcommand_names, ", "));
    }
  } else {
    message = where + e.what();
  }
  fmt::print(stderr, "llmerge: error: {}\n  see '{}'\n", message, help);
  return 2;
}

}  // namespace llmerge::cli
