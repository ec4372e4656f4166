// `llmerge convert-config CONFIG [-o FILE]`: print a config in mergekit's own
// schema (the seed's format translated, per-slice methods as a mergekit-multi
// recipe; docs/recipes.md).
#include <cstdio>
#include <fstream>
#include <memory>

#include <fmt/core.h>

#include "command.h"
#include "llmerge/llmerge.h"

namespace llmerge::cli {

namespace {

struct ConvertCommand {
  std::string config;
  std::string out;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorKind::io, "cannot open config", ErrorContext{path, 0, 0, {}});
  // The parser caps the size; one byte past its cap is enough for it to say so.
  std::string text(std::size_t{1} << 20 | 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  return text;
}

int run_convert(const ConvertCommand& c) {
  const std::string yaml = convert_config(read_file(c.config), c.config);
  if (c.out.empty()) {
    fmt::print("{}", yaml);
    return 0;
  }
  std::ofstream out(c.out, std::ios::binary | std::ios::trunc);
  out << yaml;
  out.close();
  if (!out)
    throw Error(ErrorKind::io, "cannot write the converted config", ErrorContext{c.out, 0, 0, {}});
  return 0;
}

const bool registered = register_command(
    {"convert-config",
     "Print a config (the seed's format, per-slice methods) in mergekit's own schema", 25,
     [](CLI::App& app) {
       auto c = std::make_shared<ConvertCommand>();
       app.add_option("config", c->config, "YAML config")->required();
       app.add_option("-o,--output", c->out, "write to this file instead of stdout");
       return [c] { return run_convert(*c); };
     }});

}  // namespace

}  // namespace llmerge::cli
