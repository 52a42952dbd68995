#pragma once
// Can an interface take frames an XDP program redirects to it (bpf_redirect_map into a devmap)? Asked of the
// kernel, not guessed: the netdev generic-netlink family's xdp-features of the interface (Linux >= 6.3) must have
// NETDEV_XDP_ACT_NDO_XMIT. For a veth that bit is set only while the veth's peer runs an XDP program or has GRO on
// (drivers/net/veth.c: veth_set_xdp_features); without it the kernel drops redirected frames without a counter.
// Used by the XDP offload tier before it lets a steer rule redirect (dataplane/xdp/README.md, "Steer rules").
//
// Threading: main lcore only (a netlink round trip per call; called once per destination and apply).

#include <cstdint>
#include <string>

namespace esw::dp {

// "" and `ifindex` set when IFACE takes XDP redirects; else why not, naming the interface and its driver.
std::string xdp_redirect_target(const std::string& iface, uint32_t& ifindex);

}  // namespace esw::dp
