// CLI flags generated from the options table (llmerge/options.h): every
// option a subcommand takes becomes --kebab-case (plus its short flag and
// aliases, and --no-X for booleans), with the table's help and default.
#pragma once

#include <map>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "llmerge/options.h"

namespace llmerge::cli {

class TableOptions {
 public:
  // Adds the flags of `command` to `app`.
  void add(CLI::App& app, const std::string& command);
  // The options with every given flag applied (set_option validates them).
  MergeOptions options() const;
  bool given(const std::string& name) const;

 private:
  struct Slot {
    const OptionInfo* info = nullptr;
    CLI::Option* option = nullptr;
    std::string text;
    bool flag = false;
  };
  std::map<std::string, std::unique_ptr<Slot>> slots_;
};

}  // namespace llmerge::cli
