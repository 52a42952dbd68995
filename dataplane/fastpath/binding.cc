#include "dataplane/fastpath/binding.h"

#include <cstring>

#include "dataplane/fastpath/bytes.h"
#include "dataplane/fastpath/proto.h"

namespace esw::dp {

namespace {

bool mac_is(const Binding& b, const uint8_t* m) noexcept { return std::memcmp(m, b.mac.data(), 6) == 0; }

}  // namespace

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

DropReason check_ingress(const Binding& b, const FlowKey& k) noexcept {
  if (!b.active) return DropReason::kInactive;
  if (!b.spoofchk) {
    if (!b.roce && (k.flags & kFlagRoce)) return DropReason::kRoceDisabled;
    return DropReason::kCount;
  }
  if (!mac_is(b, k.eth_src)) return DropReason::kSpoofedMac;
  if (k.flags & (kFlagVlan | kFlagQinQ)) return DropReason::kVlanViolation;
  // RARP from the bound MAC: how a vport announces where it now is after a live migration (vdpa/migration.h),
  // as QEMU's and rte_vhost's announce do. It claims no IP address.
  if (k.eth_type == to_be16(kEthTypeRarp)) return DropReason::kCount;

  if (k.eth_type == to_be16(kEthTypeArp)) {
    if (!mac_is(b, k.arp_sha)) return DropReason::kArpSpoof;
    if (k.ipv4_src != 0 && !v4_bound(b, k.ipv4_src)) return DropReason::kArpSpoof;
    return DropReason::kCount;
  }

  const bool udp = k.ip_proto == kProtoUdp && !(k.ip_frag & kFragLater);
  if (k.eth_type == to_be16(kEthTypeIpv4)) {
    if (udp && k.tp_src == to_be16(kPortDhcpServer) && !b.trust) return DropReason::kDhcpGuard;
    if (k.ipv4_src == 0) {
      // Only DHCP discovery may come from 0.0.0.0.
      if (udp && k.tp_src == to_be16(kPortDhcpClient) && k.tp_dst == to_be16(kPortDhcpServer)) {
        return b.dhcp_client ? DropReason::kCount : DropReason::kDhcpGuard;
      }
      return DropReason::kSpoofedIp;
    }
    if (!v4_bound(b, k.ipv4_src)) return DropReason::kSpoofedIp;
  } else if (k.eth_type == to_be16(kEthTypeIpv6)) {
    const bool icmp6 = k.ip_proto == kProtoIcmpv6 && !(k.ip_frag & kFragAny);
    const uint8_t type = icmp6 ? static_cast<uint8_t>(from_be16(k.tp_src)) : 0;
    if (icmp6 && type == kNdRouterAdvert && !b.trust) return DropReason::kRaGuard;
    if (udp && k.tp_src == to_be16(kPortDhcp6Server) && !b.trust) return DropReason::kDhcpGuard;
    if (icmp6 && (type == kNdNeighborSolicit || type == kNdNeighborAdvert)) {
      // Link-layer address options must be ours. An NA announces its target, so the target must be ours; an NS
      // asks about someone else's target - except DAD (source ::), which probes our own tentative address.
      if (!all_zero(k.arp_sha, 6) && !mac_is(b, k.arp_sha)) return DropReason::kNdSpoof;
      if (!all_zero(k.arp_tha, 6) && !mac_is(b, k.arp_tha)) return DropReason::kNdSpoof;
      const bool dad = all_zero(k.ipv6_src, 16);
      if ((type == kNdNeighborAdvert || dad) && !v6_bound(b, k.nd_target)) return DropReason::kNdSpoof;
      if (dad) return type == kNdNeighborSolicit ? DropReason::kCount : DropReason::kNdSpoof;
    }
    if (all_zero(k.ipv6_src, 16)) {
      // Besides DAD (above), only MLD reports (ICMPv6 143) and DHCPv6 solicit come from ::.
      if (icmp6 && type == kMldv2Report) return DropReason::kCount;
      return DropReason::kSpoofedIp;
    }
    if (!v6_bound(b, k.ipv6_src)) return DropReason::kSpoofedIp;
    if (udp && k.tp_src == to_be16(kPortDhcp6Client) && k.tp_dst == to_be16(kPortDhcp6Server) && !b.dhcp_client) {
      return DropReason::kDhcpGuard;
    }
  } else {
    return DropReason::kEthertype;
  }
  if (!b.roce && (k.flags & kFlagRoce)) return DropReason::kRoceDisabled;
  return DropReason::kCount;
}

}  // namespace esw::dp
