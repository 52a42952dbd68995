#include "config/formats.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <limits>
#include <sys/stat.h>

#include "config/schema_limits.h"
#include "config/net_text.h"
#include "config/yaml_reader.h"

namespace esw::cfg::detail {

namespace {

bool is_ascii_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_ascii_alnum(char c) { return is_ascii_alpha(c) || (c >= '0' && c <= '9'); }

// A letter, then letters, digits and `extra` characters, `max_len` in all.
bool is_name(std::string_view text, size_t max_len, std::string_view extra) {
  return !text.empty() && text.size() <= max_len && is_ascii_alpha(text.front()) &&
         std::all_of(text.begin(), text.end(),
                     [&](char c) { return is_ascii_alnum(c) || extra.find(c) != std::string_view::npos; });
}

}  // namespace

std::optional<std::string> check_api_version(std::string& text) {
  if (text == kApiVersion) return std::nullopt;
  return fmt::format("expected {}, got {}", quoted(kApiVersion), quoted(text));
}

std::optional<std::string> check_port_name(std::string& text) {
  if (is_name(text, kMaxPortNameLen, "_-")) return std::nullopt;
  return fmt::format("{} is not a valid port name; expected a letter followed by at most {} letters, digits, '_' or '-'",
                     quoted(text), kMaxPortNameLen - 1);
}

std::optional<std::string> check_vport_name(std::string& text) {
  if (is_name(text, kMaxVportNameLen, "_-")) return std::nullopt;
  if (is_name(text, std::numeric_limits<size_t>::max(), "_-")) {
    return fmt::format("{} is {} characters long; a vport name has at most {} (its representor netdev is \"rep-{}\" "
                       "and Linux netdev names have at most {})",
                       quoted(text), text.size(), kMaxVportNameLen, text, kMaxPortNameLen);
  }
  return fmt::format(
      "{} is not a valid port name; expected a letter followed by at most {} letters, digits, '_' or '-'", quoted(text),
      kMaxVportNameLen - 1);
}

std::optional<std::string> IdentifierCheck::operator()(std::string& text) const {
  if (is_name(text, kMaxIdentifierLen, "_-.")) return std::nullopt;
  return fmt::format("{} is not a valid {} name; expected a letter followed by at most {} letters, digits, '_', '-' "
                     "or '.'",
                     quoted(text), what, kMaxIdentifierLen - 1);
}

// Normalises to lower case so that equal addresses compare equal.
std::optional<std::string> check_unicast_mac(std::string& text) {
  constexpr size_t kBytes = 6;
  uint8_t bytes[kBytes] = {};
  // Exactly two digits per byte here (parse_mac also reads "2:0:..."): 17 characters.
  if (text.size() != kBytes * 3 - 1 || !parse_mac(text, bytes)) {
    return fmt::format("{} is not a MAC address; expected six hex bytes like \"02:00:00:00:00:01\"", quoted(text));
  }
  if (bytes[0] & 1) {
    return fmt::format("{} is a multicast address; expected a unicast MAC address (lowest bit of the first byte clear)",
                       quoted(text));
  }
  if (std::all_of(std::begin(bytes), std::end(bytes), [](uint8_t b) { return b == 0; })) {
    return fmt::format("{} is the all-zero address; expected a unicast MAC address", quoted(text));
  }
  std::transform(text.begin(), text.end(), text.begin(),
                 [](char c) { return c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c; });
  return std::nullopt;
}

// The prefix becomes part of file names under /var/run/dpdk and hugetlbfs: no '/', no leading '.'.
std::optional<std::string> check_file_prefix(std::string& text) {
  const bool ok = text.empty() || (text.size() <= kMaxFilePrefixLen && is_ascii_alnum(text.front()) &&
                                   std::all_of(text.begin(), text.end(), [](char c) {
                                     return is_ascii_alnum(c) || c == '_' || c == '-' || c == '.';
                                   }));
  if (ok) return std::nullopt;
  return fmt::format(
      "{} is not a valid file prefix; expected \"\" (the default) or up to {} letters, digits, '_', "
      "'-' or '.', starting with a letter or digit",
      quoted(text), kMaxFilePrefixLen);
}

std::optional<std::string> check_api_socket(std::string& text) {
  const bool ok = text.empty() || (text.front() == '/' && text.back() != '/' && text.size() <= kMaxUnixPathLen &&
                                   text.find('\0') == std::string::npos);
  if (ok) return std::nullopt;
  return fmt::format("{} is not a valid socket path; expected an absolute file path of at most {} bytes (a Unix "
                     "socket address), or \"\" for no API socket",
                     quoted(text), kMaxUnixPathLen);
}

std::optional<std::string> check_vhost_socket(std::string& text) {
  if (text.empty() || text.front() != '/' || text.back() == '/' || text.size() > kMaxUnixPathLen ||
      text.find('\0') != std::string::npos || text.find(',') != std::string::npos) {
    return fmt::format("{} is not a valid vhost-user socket path; expected an absolute file path of at most {} "
                       "bytes without ','",
                       quoted(text), kMaxUnixPathLen);
  }
  struct stat st {};
  if (::stat(text.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode)) {
    return fmt::format("{} exists and is not a socket; eswitchd will not replace it", quoted(text));
  }
  return std::nullopt;
}

std::optional<std::string> check_group(std::string& text) {
  const bool ok = text.empty() || all_digits(text) ||
                  (text.size() <= kMaxGroupNameLen && (is_ascii_alpha(text.front()) || text.front() == '_') &&
                   std::all_of(text.begin(), text.end(),
                               [](char c) { return is_ascii_alnum(c) || c == '_' || c == '-' || c == '.'; }));
  if (ok) return std::nullopt;
  return fmt::format("{} is not a group; expected a group name (a letter or '_', then at most {} letters, digits, "
                     "'_', '-' or '.'), a numeric gid, or \"\" for the process's group",
                     quoted(text), kMaxGroupNameLen - 1);
}

namespace {

// Why an address (or a prefix's network address) cannot be bound to a vport, if it cannot.
std::optional<std::string_view> unbindable(const IpPrefix& p) {
  const auto& b = p.bytes;
  if (!p.v6) {
    if (b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] == 0) return "the unspecified address";
    if (b[0] == 127) return "a loopback address";
    if (b[0] >= 224 && b[0] < 240) return "a multicast address";
    if (b[0] >= 240) return "a reserved or broadcast address (240.0.0.0/4)";
    return std::nullopt;
  }
  const auto zero = [](uint8_t x) { return x == 0; };
  if (std::all_of(b.begin(), b.end(), zero)) return "the unspecified address";
  if (std::all_of(b.begin(), b.end() - 1, zero) && b[15] == 1) return "the loopback address";
  if (b[0] == 0xff) return "a multicast address";
  if (std::all_of(b.begin(), b.begin() + 10, zero) && b[10] == 0xff && b[11] == 0xff) {
    return "an IPv4-mapped address";
  }
  return std::nullopt;
}

// A bound address or prefix; puts it in canonical form.
std::optional<std::string> check_binding(std::string& text, bool v6) {
  const std::optional<IpPrefix> parsed = parse_prefix(text, v6);
  if (!parsed) {
    const size_t slash = text.find('/');
    if (slash != std::string::npos && parse_prefix(std::string_view(text).substr(0, slash), v6)) {
      return fmt::format("{} has an invalid prefix length; expected /1 to /{}", quoted(text), v6 ? 128 : 32);
    }
    return v6 ? fmt::format("{} is not an IPv6 address or prefix; expected an address like \"2001:db8::1\" or a "
                            "prefix like \"2001:db8:1::/64\"",
                            quoted(text))
              : fmt::format("{} is not an IPv4 address or prefix; expected an address like \"198.18.0.1\" or a "
                            "prefix like \"198.18.1.0/24\"",
                            quoted(text));
  }
  const IpPrefix& p = *parsed;
  if (p.len < 1 || p.len > p.bits()) {
    return fmt::format("{} has an invalid prefix length; expected /1 to /{}{}", quoted(text), p.bits(),
                       p.len == 0 ? " (to let a vport send from any address, set spoofchk: false)" : "");
  }
  if (std::optional<std::string_view> why = unbindable(p)) {
    if (v6 && why->starts_with("an IPv4-mapped")) {
      IpPrefix v4;
      std::copy(p.bytes.begin() + 12, p.bytes.end(), v4.bytes.begin());
      v4.len = 32;
      return fmt::format("{} is {}; bind {} under ipv4 instead", quoted(text), *why, v4.address_text());
    }
    return fmt::format("{} is {}; a vport is bound to unicast addresses", quoted(text), *why);
  }
  const IpPrefix network = p.network();
  if (network.bytes != p.bytes) {
    return fmt::format("{} has host bits set; the prefix is {} (or bind the address alone: {})", quoted(text),
                       network.text(), p.address_text());
  }
  text = p.text();
  return std::nullopt;
}

}  // namespace

std::optional<std::string> check_ipv4_binding(std::string& text) { return check_binding(text, false); }
std::optional<std::string> check_ipv6_binding(std::string& text) { return check_binding(text, true); }

}  // namespace esw::cfg::detail
