// What a config from the browser may name, checked before it is planned:
// every model reference must be a folder (or .safetensors file) inside a root
// or the HF cache, or a Hugging Face id ("org/name[@revision]"), which the
// library only looks up in the local cache. The library finds the references
// (llmerge::config_references); this holds them to the roots.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "llmerge/error.h"
#include "roots.h"

namespace llmerge::server {

// Why the model reference `ref` is refused; nullopt when it may be read.
std::optional<std::string> refuse_reference(const std::string& ref, const Roots& roots);

// One Problem (with the YAML line and column) per reference in `yaml` that
// refuse_reference refuses; "model+adapter" is checked as both folders.
// Throws Error(config) when the YAML does not parse.
std::vector<Problem> check_config_references(const std::string& yaml, const std::string& name,
                                             const Roots& roots);

}  // namespace llmerge::server
