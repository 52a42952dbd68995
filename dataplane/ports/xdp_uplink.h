#pragma once
// eswitch's own XDP program on an af_xdp uplink (dataplane/xdp/uplink.bpf.c): frames the switch owns go to the
// AF_XDP socket, everything else to the host kernel, so one interface serves the host's networking and the
// switch. The af_xdp PMD loads and attaches the program (devarg xdp_prog=); this class finds it on the interface,
// keeps its maps in step with the vports of the config (every apply) and reads its per-CPU counters.
//
// Owned: the hw_addr of every active vport, the solicited-node multicast MAC of each of its IPv6 addresses (/128
// bindings and its link-local address; a shorter IPv6 prefix cannot be enumerated: its neighbour solicitations
// reach the switch only with `multicast: switch`), ARP whose target is in an active vport's IPv4 prefixes, and
// other broadcast / multicast frames when the uplink's xdp config says `switch`.
//
// Threading: main lcore only.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/fastpath/binding.h"

namespace esw::dp {

struct UplinkOwned {
  std::vector<std::array<uint8_t, 6>> macs;
  std::vector<Prefix4> arp;
  bool broadcast = false, multicast = false;
};

// What the vports' bindings make the switch own on an uplink.
UplinkOwned uplink_owned(const std::vector<const Binding*>& vports, bool broadcast, bool multicast);

class XdpUplink {
 public:
  XdpUplink() = default;
  XdpUplink(const XdpUplink&) = delete;
  XdpUplink& operator=(const XdpUplink&) = delete;
  ~XdpUplink();

  std::string attach(const std::string& iface, const std::string& want_mode);
  bool attached() const { return cfg_fd_ >= 0; }
  const std::string& mode() const { return mode_; }
  // Mirrors `owned` into the maps: new entries first, then stale ones deleted. Returns "" or the cause.
  std::string set(const UplinkOwned& owned);
  // Frames given to the switch / passed to the host since the program was loaded (summed over CPUs).
  void counters(uint64_t& to_switch, uint64_t& to_host) const;
  void release() noexcept;

 private:
  int cfg_fd_ = -1, macs_fd_ = -1, arp_fd_ = -1, stats_fd_ = -1;
  std::string mode_;
};

}  // namespace esw::dp
