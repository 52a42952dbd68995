#include "dataplane/rules/binding_build.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "config/net_text.h"

namespace esw::dp {

namespace {

// The mask of a prefix of `len` bits over `n` bytes, and the address with the host bits cleared.
void prefix_bytes(const cfg::IpPrefix& p, size_t n, uint8_t* addr, uint8_t* mask) {
  for (size_t i = 0; i < n; ++i) {
    const int bits = std::max(0, std::min(8, p.len - 8 * static_cast<int>(i)));
    mask[i] = static_cast<uint8_t>(bits == 0 ? 0 : 0xff << (8 - bits));
    addr[i] = p.bytes[i] & mask[i];
  }
}

std::optional<cfg::IpPrefix> bound_prefix(const std::string& text, bool v6) {
  std::optional<cfg::IpPrefix> p = cfg::parse_prefix(text, v6);
  if (p && (p->len < 0 || p->len > p->bits())) return std::nullopt;
  return p;
}

}  // namespace

bool make_binding(const cfg::VportConfig& v, Binding& out, std::string& error) {
  out = Binding{};
  out.spoofchk = v.spoofchk;
  out.active = v.state == cfg::VportState::kActive;
  out.trust = v.trust;
  out.roce = v.roce;
  out.roce_strict = v.roce_strict;
  out.smc_allowed = v.smc == cfg::SmcPolicy::kAllow;
  out.dhcp_client = v.dhcp_client;
  out.egress_multicast = v.egress_multicast;
  if (v.hw_addr) {
    uint8_t a[6];
    if (!cfg::parse_mac(*v.hw_addr, a)) {
      error = fmt::format("vport {}: hw_addr '{}' is not a MAC address", v.name, *v.hw_addr);
      return false;
    }
    std::memcpy(out.mac.data(), a, 6);
    out.has_mac = true;
    // fe80::/64 with the modified EUI-64 interface identifier (RFC 4291 appendix A).
    out.link_local = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, static_cast<uint8_t>(a[0] ^ 0x02), a[1], a[2], 0xff, 0xfe,
                      a[3], a[4], a[5]};
  } else if (v.spoofchk) {
    error = fmt::format("vport {}: spoofchk needs hw_addr", v.name);
    return false;
  }
  for (size_t i = 0; i < v.ipv4.size(); ++i) {
    const std::optional<cfg::IpPrefix> p = bound_prefix(v.ipv4[i], false);
    if (!p) {
      error = fmt::format("vport {}: ipv4[{}] '{}' is not an IPv4 address or prefix", v.name, i, v.ipv4[i]);
      return false;
    }
    Prefix4 b;
    prefix_bytes(*p, 4, reinterpret_cast<uint8_t*>(&b.addr), reinterpret_cast<uint8_t*>(&b.mask));
    out.ipv4.push_back(b);
  }
  for (size_t i = 0; i < v.ipv6.size(); ++i) {
    const std::optional<cfg::IpPrefix> p = bound_prefix(v.ipv6[i], true);
    if (!p) {
      error = fmt::format("vport {}: ipv6[{}] '{}' is not an IPv6 address or prefix", v.name, i, v.ipv6[i]);
      return false;
    }
    Prefix6 b;
    prefix_bytes(*p, 16, b.addr.data(), b.mask.data());
    out.ipv6.push_back(b);
  }
  return true;
}

}  // namespace esw::dp
