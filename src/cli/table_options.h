// CLI flags generated from the options table (llmerge/options.h): every
// option a subcommand takes becomes --kebab-case (plus its short flag and
// aliases, and --no-X for booleans), with the table's help and default.
// A bad value is reported with the flag as it was typed ("--bits takes one
// of 2, 3, 4, 5, 6, 8, not 7"), not the library's option name.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "llmerge/options.h"

namespace llmerge::cli {

class TableOptions {
 public:
  // Adds the flags of `command` to `app`.
  void add(CLI::App& app, const std::string& command);
  // The options with every given flag applied (set_option validates them).
  // Throws Error naming the flag as typed.
  MergeOptions options() const;
  bool given(const std::string& name) const;

 private:
  // One spelling of an option (its name or an alias), so that an error can
  // name the flag the user typed.
  struct Spelling {
    std::string flag;  // "--q-bits", "--bits"
    CLI::Option* option = nullptr;
    std::string text;
    bool value = false;
  };
  struct Slot {
    const OptionInfo* info = nullptr;
    std::vector<std::unique_ptr<Spelling>> spellings;
  };
  std::map<std::string, std::unique_ptr<Slot>> slots_;
};

// --help without CLI11's "{false}" after a --no-X flag: the help text already
// says the default.
std::shared_ptr<CLI::FormatterBase> help_formatter();

}  // namespace llmerge::cli
