#pragma once
// The text forms of MAC, IPv4 and IPv6 addresses and of IP prefixes: one parser and one formatter each, used by
// the config loader, the rule compiler (match values, set_field), the binding builder and trace. No DPDK, no
// exceptions of its own; reentrant.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace esw::cfg {

// Six ':'-separated bytes of one or two hex digits each, either case: "02:00:c6:12:00:01", "2:0:c6:12:0:1".
bool parse_mac(std::string_view text, uint8_t out[6]) noexcept;
// Lower case, two digits per byte: "02:00:c6:12:00:01".
std::string mac_text(const uint8_t* mac);

// Strict dotted quad: four decimal octets without leading zeros (inet_aton would read "010" as octal).
bool parse_ipv4(std::string_view text, uint8_t out[4]) noexcept;
std::string ipv4_text(const uint8_t* address);

// Any valid spelling of an IPv6 address (inet_pton), no prefix length, no zone.
bool parse_ipv6(std::string_view text, uint8_t out[16]) noexcept;
// Canonical (RFC 5952): "2001:db8::1".
std::string ipv6_text(const uint8_t* address);

// An IPv4 or IPv6 address or prefix. IPv4 sits in the first 4 bytes.
struct IpPrefix {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};
  int len = 0;

  int bits() const { return v6 ? 128 : 32; }
  // Whether the first `n` bits of both are equal.
  bool same_first_bits(const IpPrefix& other, int n) const;
  bool contains(const IpPrefix& other) const { return len <= other.len && same_first_bits(other, len); }
  // The bits past `len` cleared.
  IpPrefix network() const;
  std::string address_text() const;
  // Canonical: RFC 5952 for IPv6, no "/32" or "/128" on a single address.
  std::string text() const;
};

// "addr" or "addr/len" (len: decimal without leading zeros, at most 3 digits; not checked against bits()).
std::optional<IpPrefix> parse_prefix(std::string_view text, bool v6);

}  // namespace esw::cfg
