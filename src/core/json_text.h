// JSON documents as text, for what leaves the library (plan and inspect JSON,
// compare documents, HTTP bodies). Strings may hold bytes that are not UTF-8
// (a folder named in Latin-1, a path given on the command line), which
// nlohmann's dump() refuses with its own exception; here they become U+FFFD.
// Files written into an output model (config.json, tokenizer files) hold
// strings parsed from JSON or from a UTF-8 config, and are dumped as they are.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace llmerge {

inline std::string json_text(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace llmerge
