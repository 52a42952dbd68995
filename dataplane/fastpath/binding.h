#pragma once
// Vport binding enforcement (anti-spoofing): a dedicated first stage that runs on the parsed key of every
// packet from a spoof-checked vport, before the flow cache and the tables. A vport may only send frames whose
// headers match its configured identity, whatever its guest does; what does not match is dropped and counted on
// that vport under a reason (DropReason::kSpoofedMac ...). Trace shows the stage's verdict.
//
// Why a stage and not generated rules: the checks are per ingress vport, a handful of compares on fields the
// parser already extracted, and their drop reasons must be exact; as rules they would multiply with every
// bound prefix and hide the reason behind a rule id. The egress side (frames to a vport) is checked when an
// output is chosen.
//
// Rules enforced (spoofchk on):
//  - eth_src == hw_addr; ethertype ARP, IPv4 or IPv6 only; no VLAN tag at all (access vports, no QinQ hopping).
//  - IPv4 source bound (exact or prefix); 0.0.0.0 only for DHCP client discovery (UDP 68->67) and only when
//    dhcp_client is on. UDP from port 67 (DHCP server) is dropped unless trusted (DHCP guard).
//  - ARP: sender MAC == hw_addr, sender IP bound (0.0.0.0 allowed: ARP probes, RFC 5227).
//  - IPv6 source bound, the link-local address derived from hw_addr (EUI-64), or :: for DAD NS only.
//    ND: SLL/TLL options == hw_addr; an NA's target (and a DAD probe's) must be bound or the link-local. RA (type 134) dropped unless trusted
//    (RA guard). DHCPv6: server messages (UDP 547->546) dropped unless trusted; client messages (546->547)
//    allowed only with dhcp_client.
//  - RoCEv2 (UDP 4791) dropped when roce is off; when on it passes the same IP checks as everything else.
//  - SMC: nothing here; `smc: deny` removes the SMC option from SYN/SYN-ACKs (smc_stage.h), it drops nothing.
//    roce_strict is enforced at output, where the destination vport is known (smc_stage.h).
// Inactive vports: everything from and to them is dropped (kInactive) - their representor stays.
//
// A Binding is built from a vport's config by the rule compiler (dataplane/rules/binding_build.h); the fast path
// only reads it (it is part of the pipeline snapshot).

#include <array>
#include <cstdint>
#include <vector>

#include "dataplane/fastpath/flow_key.h"
#include "dataplane/fastpath/stats.h"

namespace esw::dp {

struct Prefix4 {
  uint32_t addr;  // network order
  uint32_t mask;  // network order
};
struct Prefix6 {
  std::array<uint8_t, 16> addr;
  std::array<uint8_t, 16> mask;
};

struct Binding {
  bool spoofchk = true;
  bool active = true;
  bool trust = false;
  bool roce = false;
  bool roce_strict = false;  // RoCEv2 to other vports only for QPs/rkeys granted by an SMC-R CLC exchange
  bool smc_allowed = true;
  bool dhcp_client = false;
  bool egress_multicast = true;
  bool has_mac = false;
  std::array<uint8_t, 6> mac{};
  std::array<uint8_t, 16> link_local{};  // fe80::/64 + EUI-64 of mac
  std::vector<Prefix4> ipv4;
  std::vector<Prefix6> ipv6;
  uint32_t rate_meter = UINT32_MAX;  // meter index for tx_max, UINT32_MAX = none
};

// kCount = allowed. Pure function of the binding and the parsed key.
// Is the address (network order) within the vport's bound IPv4 prefixes; the IPv6 one within its bound IPv6
// prefixes or its link-local address (also used by the SMC identity check, smc_identity.h).
bool v4_bound(const Binding& b, uint32_t a) noexcept;
bool v6_bound(const Binding& b, const uint8_t* a) noexcept;

DropReason check_ingress(const Binding& b, const FlowKey& key) noexcept;

// May a frame with destination MAC `dst` be delivered to this vport? (Filtering is part of the binding
// enforcement: vports with spoofchk off take every frame the rules send them.)
inline bool egress_allowed(const Binding& b, const uint8_t* dst) noexcept {
  if (!b.active) return false;
  if (!b.spoofchk) return true;
  if (dst[0] & 1) return b.egress_multicast;
  if (!b.has_mac) return true;
  for (int i = 0; i < 6; ++i) {
    if (dst[i] != b.mac[i]) return false;
  }
  return true;
}

}  // namespace esw::dp
