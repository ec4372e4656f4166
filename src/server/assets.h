// The web UI's files (web/ in the source tree), embedded in the binary at
// build time by cmake/embed_assets.cmake.
#pragma once

#include <string_view>
#include <vector>

namespace llmerge::server {

struct Asset {
  std::string_view path;  // relative to web/, e.g. "index.html", "js/app.js"
  std::string_view mime;
  std::string_view data;
};

const std::vector<Asset>& assets();

}  // namespace llmerge::server
