// What a config from the browser may name, checked before it is planned:
// every model reference must be a folder (or .safetensors file) inside a root
// or the HF cache, or a Hugging Face id ("org/name[@revision]"), which the
// library only looks up in the local cache. Also the YAML <-> JSON bridge the
// form uses to load a YAML text.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "llmerge/error.h"
#include "roots.h"

namespace llmerge::server {

// Why the model reference `ref` is refused; nullopt when it may be read.
std::optional<std::string> refuse_reference(const std::string& ref, const Roots& roots);

// The keys whose values are model references in mergekit's schema and
// llmerge's (`model`, `base_model`, `tokenizer_source`, `tokenizer.source`);
// "base" and "union" are keywords, not references. A reference
// "model+adapter" (a LoRA applied to a model) names two paths, checked both.
// One Problem (with the YAML line and column) per reference refused. The YAML
// must already parse (Config::parse ran first).
std::vector<Problem> check_config_references(const std::string& yaml, const std::string& name,
                                             const Roots& roots);

// A mergekit YAML text as JSON (plain scalars typed as YAML 1.2's core schema
// types them: null, booleans, numbers; quoted scalars stay strings). Throws
// Error(config) with the line and column when the YAML does not parse.
std::string yaml_to_json(const std::string& yaml);

}  // namespace llmerge::server
