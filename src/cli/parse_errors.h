// Command-line mistakes, reported as llmerge reports every error:
//   llmerge: error: run: unknown flag '--num-thread'; did you mean '--num-threads'?
// The suggestion is the subcommand's flag nearest by edit distance.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

namespace llmerge::cli {

// Prints the error for `e` (from parsing argv with `app`) to stderr and
// returns the exit code: 0 for --help and --version, 2 for every mistake.
int report_parse_error(CLI::App& app, const CLI::ParseError& e, int argc, char** argv);

// The candidate nearest to `typed` by Levenshtein distance, or "" when none
// is close (distance at most a third of its length, and at least 2 allowed).
std::string nearest(std::string_view typed, const std::vector<std::string>& candidates);

}  // namespace llmerge::cli
