// What a config text names on disk, and the config as JSON: the two views a
// front end needs before it plans a config it does not trust (the web server
// holds every reference to its roots; its form edits the config as JSON).
// Both parse the text with the config stage's guards (size cap, control
// bytes, yaml-cpp's stray-comma loop) plus a bound on how far aliases may
// expand, so a small text cannot name an exponentially large tree.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace llmerge {

struct ConfigReferenceSite {
  std::string value;      // as written: a path, "org/name[@rev]", "model+adapter", a .jinja file
  std::string yaml_path;  // e.g. "slices[0].sources[1].model"
  int line = 0;           // 1-based
  int column = 0;
};

// Every value, in every document, under a key that names a model or a file:
// `model`, `base_model` (not the seed's `base_model: true`), `tokenizer_source`,
// `tokenizer.source`, the seed's `path`, and a one-line `chat_template` ending
// in .jinja. A seed-format slice's `model: <name>` names a models entry, not a
// path, and is left out. "base" and "union" are keywords and left out.
std::vector<ConfigReferenceSite> find_config_references(std::string_view yaml_text,
                                                        const std::string& file);

// The config's one document as JSON, plain scalars typed as YAML 1.2's core
// schema types them (null, booleans, integers, reals); quoted scalars stay
// strings. Throws Error(config) with a location for what does not parse, and
// for a multi-document recipe (the form edits one config).
std::string config_yaml_to_json(std::string_view yaml_text, const std::string& file);

}  // namespace llmerge
