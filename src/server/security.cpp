#include "security.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <random>

#include "llmerge/error.h"

namespace llmerge::server {

std::string random_token() {
  // std::random_device reads the OS's generator (getrandom / /dev/urandom)
  // on Linux and macOS with libstdc++ and libc++.
  std::random_device rd;
  std::string out;
  for (int i = 0; i < 8; ++i) {
    char buf[9];
    std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(rd()));
    out += buf;
  }
  return out;
}

bool tokens_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size() || a.empty()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::string cookie_value(std::string_view header, std::string_view name) {
  std::size_t pos = 0;
  while (pos < header.size()) {
    std::size_t end = header.find(';', pos);
    if (end == std::string_view::npos) end = header.size();
    std::string_view part = header.substr(pos, end - pos);
    while (!part.empty() && part.front() == ' ')
      part.remove_prefix(1);
    if (part.size() > name.size() && part.substr(0, name.size()) == name &&
        part[name.size()] == '=') {
      return std::string(part.substr(name.size() + 1));
    }
    pos = end + 1;
  }
  return "";
}

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

HostCheck::HostCheck(std::string bind_host, int port) : port_(port) {
  names_ = {"127.0.0.1", "localhost", "[::1]"};
  bind_host = lower(bind_host);
  if (bind_host == "0.0.0.0" || bind_host == "::" || bind_host == "[::]") {
    any_ = true;
  } else if (bind_host.find(':') != std::string::npos && bind_host.front() != '[') {
    names_.push_back("[" + bind_host + "]");
  } else {
    names_.push_back(bind_host);
  }
}

bool HostCheck::host_ok(std::string_view host_header) const {
  const std::string host = lower(host_header);
  if (host.empty()) return false;
  const std::size_t colon = host.rfind(':');
  const bool has_port = colon != std::string::npos && host.find(']', colon) == std::string::npos;
  const std::string name = has_port ? host.substr(0, colon) : host;
  if (has_port && host.substr(colon + 1) != std::to_string(port_)) return false;
  if (!has_port && port_ != 80) return false;
  if (any_) return !name.empty();
  return std::find(names_.begin(), names_.end(), name) != names_.end();
}

bool HostCheck::origin_ok(std::string_view origin_header, std::string_view host_header) const {
  if (origin_header.empty()) return true;
  // The page is served over plain http: its origin is http://<Host>.
  return lower(origin_header) == "http://" + lower(host_header) && host_ok(host_header);
}

}  // namespace llmerge::server
