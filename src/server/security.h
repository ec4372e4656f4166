// The web server's request checks, as Jupyter's server does them:
//
//  - a random token, printed in the URL; every request must carry it (query
//    `token=`, header `Authorization: token <t>`, or the cookie the first
//    request sets), compared in constant time;
//  - the Host header must name the address the server was reached on
//    (loopback names by default), so a DNS-rebound name is refused;
//  - a request with an Origin (or Sec-Fetch-Site) header must come from the
//    server's own origin, and every request that changes state must be a POST
//    with a JSON body, which a cross-site form cannot send without a CORS
//    preflight that this server never answers: that is the CSRF defence.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace llmerge::server {

// 32 random bytes from the OS, as 64 hex digits.
std::string random_token();

bool tokens_equal(std::string_view a, std::string_view b);

// The value of cookie `name` in a Cookie header ("" when absent).
std::string cookie_value(std::string_view header, std::string_view name);

// Which Host headers a server bound to `bind_host`:`port` answers. Loopback
// names always; the bound name too when it is not a wildcard; any host when it
// is a wildcard (0.0.0.0, ::): the token still guards every request then.
class HostCheck {
 public:
  HostCheck(std::string bind_host, int port);
  bool host_ok(std::string_view host_header) const;
  // Origin "http://<host>" of an allowed host (an absent Origin passes).
  bool origin_ok(std::string_view origin_header, std::string_view host_header) const;

 private:
  std::vector<std::string> names_;
  bool any_ = false;
  int port_;
};

}  // namespace llmerge::server
