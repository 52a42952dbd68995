#include "dataplane/ports/xdp_uplink.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "dataplane/ports/xdp_guard.h"

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
struct Lpm4 {
  uint32_t prefixlen;
  uint8_t addr[4];
};

template <typename Key>
std::string sync_set(int fd, const std::vector<Key>& want, const char* what) {
  const uint8_t one = 1;
  for (const Key& k : want) {
    if (bpf_map_update_elem(fd, &k, &one, BPF_ANY) != 0) {
      return fmt::format("cannot update the uplink XDP program's {} map: {}", what, std::strerror(errno));
    }
  }
  std::vector<Key> stale;
  Key cur{}, next{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    const bool keep = std::any_of(want.begin(), want.end(),
                                  [&](const Key& k) { return std::memcmp(&k, &next, sizeof k) == 0; });
    if (!keep) stale.push_back(next);
    cur = next;
    prev = &cur;
  }
  for (const Key& k : stale) bpf_map_delete_elem(fd, &k);
  return "";
}

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
  std::vector<Lpm4> arp;
  for (const Prefix4& p : owned.arp) {
    Lpm4 k{};
    k.prefixlen = static_cast<uint32_t>(__builtin_popcount(p.mask));
    const uint32_t net = p.addr & p.mask;
    std::memcpy(k.addr, &net, 4);
    if (std::none_of(arp.begin(), arp.end(), [&](const Lpm4& x) { return std::memcmp(&x, &k, sizeof k) == 0; })) {
      arp.push_back(k);
    }
  }
  if (std::string e = sync_set(macs_fd_, macs, "esw_macs"); !e.empty()) return e;
  if (std::string e = sync_set(arp_fd_, arp, "esw_arp"); !e.empty()) return e;
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
  to_switch = to_host = 0;
  if (stats_fd_ < 0) return;
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return;
  std::vector<uint64_t> per_cpu(static_cast<size_t>(ncpu));
  for (uint32_t key : {0u, 1u}) {
    if (bpf_map_lookup_elem(stats_fd_, &key, per_cpu.data()) != 0) continue;
    uint64_t sum = 0;
    for (uint64_t n : per_cpu) sum += n;
    (key == 0 ? to_switch : to_host) = sum;
  }
}

}  // namespace esw::dp
