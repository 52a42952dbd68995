#pragma once
// One drop rule as the XDP offload tier hands it to an af_xdp vport's program (dataplane/xdp/guard.bpf.c,
// struct esw_rule: the same layout). A frame matches when it is untagged IPv4 and
// (saddr & src_mask) == src, (daddr & dst_mask) == dst, (protocol & proto_mask) == proto and, when dport_mask is
// not 0, it is an unfragmented TCP/UDP packet with (dport & dport_mask) == dport. Values are pre-masked, in
// network order. Header-only: the port layer (ports/xdp_guard.*) writes it, offload/xdp_tier.* makes it.

#include <cstdint>

namespace esw::dp::offload {

struct XdpDropRule {
  uint32_t src = 0, src_mask = 0;
  uint32_t dst = 0, dst_mask = 0;
  uint16_t dport = 0, dport_mask = 0;
  uint8_t proto = 0, proto_mask = 0;
  uint8_t pad[2] = {0, 0};
  bool operator==(const XdpDropRule&) const = default;
};
static_assert(sizeof(XdpDropRule) == 24, "layout shared with guard.bpf.c struct esw_rule");

}  // namespace esw::dp::offload
