#pragma once
// One drop or steer rule as the XDP offload tier hands it to an af_xdp vport's program (dataplane/xdp/guard.bpf.c,
// struct esw_rule: the same layout). The program tries a rule only on untagged frames it parsed like the
// worker's parser; a frame matches when every masked field equals the rule's (pre-masked) value:
//  - destination / source MAC, ethertype (network order);
//  - IPv4 source / destination (network order; rules with these match ethertype IPv4 exactly);
//  - IPv6 source / destination, four network-order words each (rules with these match ethertype IPv6 exactly);
//  - the IP protocol (IPv4 protocol, IPv6 next header when it is not an extension header: else the frame is
//    left to the worker for that rule);
//  - when dport_mask is not 0, the L4 destination port of an unfragmented TCP/UDP packet whose L4 header is
//    there (else left to the worker).
// A steer rule (action kActRedirect) takes only the frames guard.bpf.c calls steerable (see there and
// dataplane/xdp/README.md, "Steer rules"); its other frames go to the worker.
// Header-only: the port layer (ports/xdp_guard.*) writes it, offload/xdp_tier.* makes it.

#include <cstdint>

namespace esw::dp::offload {

struct XdpDropRule {
  uint32_t src = 0, src_mask = 0;
  uint32_t dst = 0, dst_mask = 0;
  uint32_t src6[4] = {0, 0, 0, 0}, src6_mask[4] = {0, 0, 0, 0};
  uint32_t dst6[4] = {0, 0, 0, 0}, dst6_mask[4] = {0, 0, 0, 0};
  uint8_t dmac[6] = {0, 0, 0, 0, 0, 0}, dmac_mask[6] = {0, 0, 0, 0, 0, 0};
  uint8_t smac[6] = {0, 0, 0, 0, 0, 0}, smac_mask[6] = {0, 0, 0, 0, 0, 0};
  uint16_t eth_type = 0, eth_type_mask = 0;
  uint16_t dport = 0, dport_mask = 0;
  uint8_t proto = 0, proto_mask = 0;
  uint8_t action = kActDrop;  // kActRedirect: a steer rule, the frame goes to esw_tx[tx_slot]
  uint8_t tx_slot = 0;
  uint8_t fields = 0;  // kField*: which of the wide compares the rule needs (the program skips the others)
  uint8_t pad[3] = {0, 0, 0};
  static constexpr uint8_t kActDrop = 0, kActRedirect = 1;
  static constexpr uint8_t kFieldMacs = 1, kFieldIpv6 = 2;
  bool operator==(const XdpDropRule&) const = default;
};
static_assert(sizeof(XdpDropRule) == 120, "layout shared with guard.bpf.c struct esw_rule");

// What one rule slot of the program counted (esw_rule_hits, esw_rule_bytes, summed over CPUs).
struct XdpSlotCount {
  uint64_t packets = 0, bytes = 0;
};

}  // namespace esw::dp::offload
