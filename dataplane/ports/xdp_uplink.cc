#include "dataplane/ports/xdp_uplink.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "dataplane/ports/xdp_guard.h"
#include "dataplane/ports/xdp_maps.h"

namespace esw::dp {
namespace {

// Layouts shared with uplink.bpf.c.
struct UplinkCfg {
  uint8_t broadcast, multicast, pad[2];
};
struct MacKey {
  uint8_t addr[6];
  uint8_t pad[2];
};

std::array<uint8_t, 6> solicited_node_mac(const uint8_t* ip6) {
  return {0x33, 0x33, 0xff, ip6[13], ip6[14], ip6[15]};
}

}  // namespace

UplinkOwned uplink_owned(const std::vector<const Binding*>& vports, bool broadcast, bool multicast) {
  UplinkOwned o;
  o.broadcast = broadcast;
  o.multicast = multicast;
  auto add_mac = [&](const std::array<uint8_t, 6>& m) {
    if (std::find(o.macs.begin(), o.macs.end(), m) == o.macs.end()) o.macs.push_back(m);
  };
  for (const Binding* b : vports) {
    if (b == nullptr || !b->active) continue;
    if (b->has_mac) {
      add_mac(b->mac);
      add_mac(solicited_node_mac(b->link_local.data()));
    }
    for (const Prefix6& p : b->ipv6) {
      const bool host = std::all_of(p.mask.begin(), p.mask.end(), [](uint8_t x) { return x == 0xff; });
      if (host) add_mac(solicited_node_mac(p.addr.data()));
    }
    for (const Prefix4& p : b->ipv4) o.arp.push_back(p);
  }
  return o;
}

XdpUplink::~XdpUplink() { release(); }

void XdpUplink::release() noexcept {
  for (int* fd : {&cfg_fd_, &macs_fd_, &arp_fd_, &stats_fd_}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

std::string XdpUplink::attach(const std::string& iface, const std::string& want_mode) {
  release();
  return xdp_find_program_maps(iface, want_mode,
                               {{"esw_ucfg", &cfg_fd_}, {"esw_macs", &macs_fd_}, {"esw_arp", &arp_fd_},
                                {"esw_ustats", &stats_fd_}},
                               mode_);
}

std::string XdpUplink::set(const UplinkOwned& owned) {
  if (!attached()) return "";
  std::vector<MacKey> macs;
  for (const auto& m : owned.macs) {
    MacKey k{};
    std::memcpy(k.addr, m.data(), 6);
    macs.push_back(k);
  }
  std::vector<XdpLpm4> arp;
  for (const Prefix4& p : owned.arp) {
    XdpLpm4 k{};
    k.prefixlen = static_cast<uint32_t>(__builtin_popcount(p.mask));
    const uint32_t net = p.addr & p.mask;
    std::memcpy(k.addr, &net, 4);
    if (std::none_of(arp.begin(), arp.end(), [&](const XdpLpm4& x) { return std::memcmp(&x, &k, sizeof k) == 0; })) {
      arp.push_back(k);
    }
  }
  if (std::string e = xdp_sync_set(macs_fd_, macs, "esw_macs"); !e.empty()) return e;
  if (std::string e = xdp_sync_set(arp_fd_, arp, "esw_arp"); !e.empty()) return e;
  UplinkCfg c{};
  c.broadcast = owned.broadcast ? 1 : 0;
  c.multicast = owned.multicast ? 1 : 0;
  const uint32_t zero = 0;
  if (bpf_map_update_elem(cfg_fd_, &zero, &c, BPF_ANY) != 0) {
    return fmt::format("cannot update the uplink XDP program's esw_ucfg map: {}", std::strerror(errno));
  }
  return "";
}

void XdpUplink::counters(uint64_t& to_switch, uint64_t& to_host) const {
  to_switch = xdp_sum_per_cpu(stats_fd_, 0);
  to_host = xdp_sum_per_cpu(stats_fd_, 1);
}

}  // namespace esw::dp
