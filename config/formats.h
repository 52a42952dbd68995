#pragma once
// The string formats of the schema (internal to config/): checks for CheckedText (config/yaml_reader.h). Each
// returns the problem, if any, as the message the user sees; some put the text in canonical form in place.

#include <optional>
#include <string>
#include <string_view>

namespace esw::cfg::detail {

std::optional<std::string> check_api_version(std::string& text);
std::optional<std::string> check_port_name(std::string& text);
std::optional<std::string> check_vport_name(std::string& text);

// Names of meters, tables and rules: what `what` says ("meter", ...).
struct IdentifierCheck {
  std::string_view what;
  std::optional<std::string> operator()(std::string& text) const;
};
inline IdentifierCheck check_identifier(std::string_view what) { return {what}; }

// A unicast MAC address; normalises to lower case so that equal addresses compare equal.
std::optional<std::string> check_unicast_mac(std::string& text);

// The prefix becomes part of file names under /var/run/dpdk and hugetlbfs: no '/', no leading '.'.
std::optional<std::string> check_file_prefix(std::string& text);
std::optional<std::string> check_api_socket(std::string& text);
std::optional<std::string> check_group(std::string& text);
// A vhost-user socket: an absolute path; a path that exists and is not a socket is refused (never replaced).
std::optional<std::string> check_vhost_socket(std::string& text);

// An address or prefix bound to a vport; puts it in canonical form (RFC 5952, no /32 or /128).
std::optional<std::string> check_ipv4_binding(std::string& text);
std::optional<std::string> check_ipv6_binding(std::string& text);

}  // namespace esw::cfg::detail
