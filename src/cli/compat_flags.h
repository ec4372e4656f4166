// mergekit-yaml's command-line habits that are not llmerge options.
//
// mergekit's flags (mergekit/options.py) are accepted by `run` and `plan`, so
// a command line copied from mergekit works. Those that mean something here
// are library options in the options table (--allow-crimes, --random-seed,
// --out-shard-size, --copy-tokenizer, --write-model-card, --num-threads as
// -j). The rest are listed in compat_flags.cpp, each with the one line that
// says what it does here: --transformers-cache sets the Hugging Face cache
// that models are looked up in; the others (torch devices, pickles, writer
// pools, remote code) have no counterpart and are accepted with a note.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace llmerge::cli {

class CompatFlags {
 public:
  // Adds mergekit's flags (and their --no-X forms) to `app`.
  void add(CLI::App& app);
  // Applies the flags that are honoured (the HF cache root) and returns one
  // note per flag given ("--cuda has no effect: ..."), in table order.
  std::vector<std::string> apply() const;

 private:
  struct Given {
    const struct CompatFlag* flag = nullptr;
    CLI::Option* option = nullptr;
    bool value = false;  // for --x/--no-x flags
    std::string text;    // for flags that take a value
  };
  std::vector<Given> given_;
  int verbosity_ = 0;
  CLI::Option* verbose_ = nullptr;
};

// Prints the notes to stderr as "note: ..." lines.
void print_notes(const std::vector<std::string>& notes);

}  // namespace llmerge::cli
