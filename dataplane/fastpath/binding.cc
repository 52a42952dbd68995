#include "dataplane/fastpath/binding.h"

#include <arpa/inet.h>
#include <rte_byteorder.h>
#include <rte_ether.h>

#include <cstring>

#include <fmt/format.h>

namespace esw::dp {

namespace {

constexpr uint16_t kEthIpv4 = RTE_BE16(0x0800);
constexpr uint16_t kEthIpv6 = RTE_BE16(0x86dd);
constexpr uint16_t kEthArp = RTE_BE16(0x0806);
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kProtoIcmp6 = 58;

bool parse_prefix4(const std::string& s, Prefix4& p) {
  const size_t slash = s.find('/');
  in_addr a{};
  if (inet_pton(AF_INET, s.substr(0, slash).c_str(), &a) != 1) return false;
  int len = 32;
  if (slash != std::string::npos) {
    try {
      len = std::stoi(s.substr(slash + 1));
    } catch (...) {
      return false;
    }
    if (len < 0 || len > 32) return false;
  }
  p.mask = len == 0 ? 0 : rte_cpu_to_be_32(~uint32_t(0) << (32 - len));
  p.addr = a.s_addr & p.mask;
  return true;
}

bool parse_prefix6(const std::string& s, Prefix6& p) {
  const size_t slash = s.find('/');
  if (inet_pton(AF_INET6, s.substr(0, slash).c_str(), p.addr.data()) != 1) return false;
  int len = 128;
  if (slash != std::string::npos) {
    try {
      len = std::stoi(s.substr(slash + 1));
    } catch (...) {
      return false;
    }
    if (len < 0 || len > 128) return false;
  }
  for (int i = 0; i < 16; ++i) {
    const int bits = std::max(0, std::min(8, len - 8 * i));
    p.mask[i] = static_cast<uint8_t>(bits == 0 ? 0 : 0xff << (8 - bits));
    p.addr[i] &= p.mask[i];
  }
  return true;
}

bool v4_bound(const Binding& b, uint32_t a) noexcept {
  for (const Prefix4& p : b.ipv4) {
    if ((a & p.mask) == p.addr) return true;
  }
  return false;
}

bool v6_bound(const Binding& b, const uint8_t* a) noexcept {
  if (std::memcmp(a, b.link_local.data(), 16) == 0) return true;
  for (const Prefix6& p : b.ipv6) {
    bool ok = true;
    for (int i = 0; i < 16 && ok; ++i) ok = (a[i] & p.mask[i]) == p.addr[i];
    if (ok) return true;
  }
  return false;
}

bool is_zero(const uint8_t* a, size_t n) noexcept {
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != 0) return false;
  }
  return true;
}

bool mac_is(const Binding& b, const uint8_t* m) noexcept { return std::memcmp(m, b.mac.data(), 6) == 0; }

uint16_t be16(uint16_t v) noexcept { return rte_be_to_cpu_16(v); }

}  // namespace

bool make_binding(const cfg::VportConfig& v, Binding& out, std::string& error) {
  out = Binding{};
  out.spoofchk = v.spoofchk;
  out.active = v.state == cfg::VportState::kActive;
  out.trust = v.trust;
  out.roce = v.roce;
  out.smc_allowed = v.smc == cfg::SmcPolicy::kAllow;
  out.dhcp_client = v.dhcp_client;
  out.egress_multicast = v.egress_multicast;
  if (v.hw_addr) {
    rte_ether_addr a{};
    if (rte_ether_unformat_addr(v.hw_addr->c_str(), &a) != 0) {
      error = fmt::format("vport {}: hw_addr '{}' is not a MAC address", v.name, *v.hw_addr);
      return false;
    }
    std::memcpy(out.mac.data(), a.addr_bytes, 6);
    out.has_mac = true;
    // fe80::/64 with the modified EUI-64 interface identifier (RFC 4291 appendix A).
    out.link_local = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, static_cast<uint8_t>(a.addr_bytes[0] ^ 0x02), a.addr_bytes[1],
                      a.addr_bytes[2], 0xff, 0xfe, a.addr_bytes[3], a.addr_bytes[4], a.addr_bytes[5]};
  } else if (v.spoofchk) {
    error = fmt::format("vport {}: spoofchk needs hw_addr", v.name);
    return false;
  }
  for (size_t i = 0; i < v.ipv4.size(); ++i) {
    Prefix4 p;
    if (!parse_prefix4(v.ipv4[i], p)) {
      error = fmt::format("vport {}: ipv4[{}] '{}' is not an IPv4 address or prefix", v.name, i, v.ipv4[i]);
      return false;
    }
    out.ipv4.push_back(p);
  }
  for (size_t i = 0; i < v.ipv6.size(); ++i) {
    Prefix6 p;
    if (!parse_prefix6(v.ipv6[i], p)) {
      error = fmt::format("vport {}: ipv6[{}] '{}' is not an IPv6 address or prefix", v.name, i, v.ipv6[i]);
      return false;
    }
    out.ipv6.push_back(p);
  }
  return true;
}

DropReason check_ingress(const Binding& b, const FlowKey& k) noexcept {
  if (!b.active) return DropReason::kInactive;
  if (!b.spoofchk) {
    if (!b.roce && (k.flags & kFlagRoce)) return DropReason::kRoceDisabled;
    if (!b.smc_allowed && k.smc_option) return DropReason::kSmcDenied;
    return DropReason::kCount;
  }
  if (!mac_is(b, k.eth_src)) return DropReason::kSpoofedMac;
  if (k.flags & (kFlagVlan | kFlagQinQ)) return DropReason::kVlanViolation;

  if (k.eth_type == kEthArp) {
    if (!mac_is(b, k.arp_sha)) return DropReason::kArpSpoof;
    if (k.ipv4_src != 0 && !v4_bound(b, k.ipv4_src)) return DropReason::kArpSpoof;
    return DropReason::kCount;
  }

  const bool udp = k.ip_proto == kProtoUdp && !(k.ip_frag & kFragLater);
  if (k.eth_type == kEthIpv4) {
    if (udp && be16(k.tp_src) == 67 && !b.trust) return DropReason::kDhcpGuard;
    if (k.ipv4_src == 0) {
      // Only DHCP discovery may come from 0.0.0.0.
      if (udp && be16(k.tp_src) == 68 && be16(k.tp_dst) == 67) {
        return b.dhcp_client ? DropReason::kCount : DropReason::kDhcpGuard;
      }
      return DropReason::kSpoofedIp;
    }
    if (!v4_bound(b, k.ipv4_src)) return DropReason::kSpoofedIp;
  } else if (k.eth_type == kEthIpv6) {
    const bool icmp6 = k.ip_proto == kProtoIcmp6 && !(k.ip_frag & kFragAny);
    const uint8_t type = icmp6 ? static_cast<uint8_t>(be16(k.tp_src)) : 0;
    if (icmp6 && type == 134 && !b.trust) return DropReason::kRaGuard;
    if (udp && be16(k.tp_src) == 547 && !b.trust) return DropReason::kDhcpGuard;
    if (icmp6 && (type == 135 || type == 136)) {
      // Link-layer address options must be ours. An NA announces its target, so the target must be ours; an NS
      // asks about someone else's target - except DAD (source ::), which probes our own tentative address.
      if (!is_zero(k.arp_sha, 6) && !mac_is(b, k.arp_sha)) return DropReason::kNdSpoof;
      if (!is_zero(k.arp_tha, 6) && !mac_is(b, k.arp_tha)) return DropReason::kNdSpoof;
      const bool dad = is_zero(k.ipv6_src, 16);
      if ((type == 136 || dad) && !v6_bound(b, k.nd_target)) return DropReason::kNdSpoof;
      if (dad) return type == 135 ? DropReason::kCount : DropReason::kNdSpoof;
    }
    if (is_zero(k.ipv6_src, 16)) {
      // Besides DAD (above), only MLD reports (ICMPv6 143) and DHCPv6 solicit come from ::.
      if (icmp6 && type == 143) return DropReason::kCount;
      return DropReason::kSpoofedIp;
    }
    if (!v6_bound(b, k.ipv6_src)) return DropReason::kSpoofedIp;
    if (udp && be16(k.tp_src) == 546 && be16(k.tp_dst) == 547 && !b.dhcp_client) return DropReason::kDhcpGuard;
  } else {
    return DropReason::kEthertype;
  }
  if (!b.roce && (k.flags & kFlagRoce)) return DropReason::kRoceDisabled;
  if (!b.smc_allowed && k.smc_option) return DropReason::kSmcDenied;
  return DropReason::kCount;
}

}  // namespace esw::dp
