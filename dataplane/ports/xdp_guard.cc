#include "dataplane/ports/xdp_guard.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "dataplane/ports/xdp_maps.h"

namespace esw::dp {
namespace {

// Layouts shared with guard.bpf.c.
struct GuardCfg {
  uint8_t mac[6];
  uint8_t enabled;
  uint8_t rule_frames;  // which frames meet the offloaded rules: kRules*
  uint8_t link_local[16];
};
// What the binding stage lets reach the tables: nothing from an inactive vport; from a spoof-checked one only
// ARP, IPv4 and IPv6, ARP after checks the program does not make (so only IPv4/IPv6 meet rules in XDP).
constexpr uint8_t kRulesNone = 0, kRulesIp = 1, kRulesAll = 2;
struct Lpm6 {
  uint32_t prefixlen;
  uint8_t addr[16];
};
constexpr uint32_t kDropSpoofedMac = 0, kDropSpoofedIp = 1;

int prefix_len(const uint8_t* mask, size_t n) {
  int len = 0;
  for (size_t i = 0; i < n; ++i) len += __builtin_popcount(mask[i]);
  return len;
}


}  // namespace

std::string xdp_uplink_object_path() {
  if (const char* env = std::getenv("ESWITCH_XDP_UPLINK_OBJ"); env != nullptr && *env != '\0') return env;
#ifdef ESW_XDP_UPLINK_BUILD_PATH
  if (access(ESW_XDP_UPLINK_BUILD_PATH, R_OK) == 0) return ESW_XDP_UPLINK_BUILD_PATH;
#endif
#ifdef ESW_XDP_UPLINK_INSTALL_PATH
  return ESW_XDP_UPLINK_INSTALL_PATH;
#else
  return "";
#endif
}

std::string xdp_guard_object_path() {
  if (const char* env = std::getenv("ESWITCH_XDP_OBJ"); env != nullptr && *env != '\0') return env;
#ifdef ESW_XDP_GUARD_BUILD_PATH
  if (access(ESW_XDP_GUARD_BUILD_PATH, R_OK) == 0) return ESW_XDP_GUARD_BUILD_PATH;
#endif
#ifdef ESW_XDP_GUARD_INSTALL_PATH
  return ESW_XDP_GUARD_INSTALL_PATH;
#else
  return "";
#endif
}

std::string xdp_guard_preflight(const std::string& object_path) {
  std::vector<char> log(1 << 20);
  bpf_object_open_opts oo{};
  oo.sz = sizeof oo;
  oo.kernel_log_buf = log.data();
  oo.kernel_log_size = log.size();
  bpf_object* obj = bpf_object__open_file(object_path.c_str(), &oo);
  if (obj == nullptr) return fmt::format("cannot open XDP program {}: {}", object_path, std::strerror(errno));
  const int rc = bpf_object__load(obj);
  bpf_object__close(obj);
  if (rc == 0) return "";
  // The verifier's last words (the cause is at the end of its log).
  std::vector<std::string> lines;
  std::string cur;
  for (size_t i = 0; i < log.size() && log[i] != '\0'; ++i) {
    if (log[i] == '\n') {
      if (!cur.empty()) lines.push_back(cur);
      cur.clear();
    } else {
      cur += log[i];
    }
  }
  if (!cur.empty()) lines.push_back(cur);
  std::string excerpt;
  for (size_t i = lines.size() >= 2 ? lines.size() - 2 : 0; i < lines.size(); ++i) {
    excerpt += (excerpt.empty() ? "" : " / ") + lines[i];
  }
  if (excerpt.empty()) excerpt = std::strerror(-rc);
  return fmt::format("the kernel refused XDP program {}: {}", object_path, excerpt);
}

XdpGuard::~XdpGuard() { release(); }

std::vector<std::pair<std::string, int*>> XdpGuard::map_fds() {
  return {{"esw_cfg", &cfg_fd_},     {"esw_ipv4", &v4_fd_},        {"esw_ipv6", &v6_fd_},
          {"esw_drops", &drops_fd_}, {"esw_rules", &rules_fd_},    {"esw_nrules", &nrules_fd_},
          {"esw_rule_hits", &hits_fd_}, {"esw_tx", &tx_fd_},       {"esw_rule_bytes", &bytes_fd_}};
}

void XdpGuard::close_maps() noexcept {
  nrules_ = 0;
  for (int* fd : {&cfg_fd_, &v4_fd_, &v6_fd_, &drops_fd_, &rules_fd_, &nrules_fd_, &hits_fd_, &tx_fd_, &bytes_fd_}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

void XdpGuard::release() noexcept {
  close_maps();
  iface_.clear();
  want_mode_.clear();
  prog_id_ = 0;
}

uint32_t xdp_attached_program_id(const std::string& iface) {
  const unsigned ifindex = if_nametoindex(iface.c_str());
  if (ifindex == 0) return 0;
  bpf_xdp_query_opts q{};
  q.sz = sizeof q;
  if (bpf_xdp_query(static_cast<int>(ifindex), 0, &q) != 0) return 0;
  switch (q.attach_mode) {
    case XDP_ATTACHED_DRV: return q.drv_prog_id;
    case XDP_ATTACHED_SKB: return q.skb_prog_id;
    case XDP_ATTACHED_HW: return q.hw_prog_id;
    case XDP_ATTACHED_MULTI: return q.drv_prog_id != 0 ? q.drv_prog_id : q.skb_prog_id;
    default: return 0;
  }
}

std::string xdp_find_program_maps(const std::string& iface, const std::string& want_mode,
                                  const std::vector<std::pair<std::string, int*>>& maps, std::string& mode,
                                  uint32_t* prog_id_out) {
  const unsigned ifindex = if_nametoindex(iface.c_str());
  if (ifindex == 0) return fmt::format("XDP: no interface {}", iface);
  bpf_xdp_query_opts q{};
  q.sz = sizeof q;
  if (int rc = bpf_xdp_query(static_cast<int>(ifindex), 0, &q); rc != 0) {
    return fmt::format("XDP: cannot query {}: {}", iface, std::strerror(-rc));
  }
  uint32_t prog_id = 0;
  switch (q.attach_mode) {
    case XDP_ATTACHED_DRV: mode = "native"; prog_id = q.drv_prog_id; break;
    case XDP_ATTACHED_SKB: mode = "generic"; prog_id = q.skb_prog_id; break;
    case XDP_ATTACHED_HW: mode = "offload"; prog_id = q.hw_prog_id; break;
    case XDP_ATTACHED_MULTI: mode = "multi"; prog_id = q.drv_prog_id != 0 ? q.drv_prog_id : q.skb_prog_id; break;
    default: return fmt::format("XDP: no program attached to {} (the kernel has no XDP for it?)", iface);
  }
  if (want_mode != "auto" && want_mode != mode) {
    return fmt::format("XDP: the program runs in {} mode on {}, mode {} was asked; DPDK 22.11's af_xdp PMD "
                       "attaches in the driver's own mode (native where the driver has XDP), so use mode: auto"
                       "{}", mode, iface, want_mode, want_mode == "native" ? " (this driver has no native XDP)" : "");
  }
  const int prog_fd = bpf_prog_get_fd_by_id(prog_id);
  if (prog_fd < 0) return fmt::format("XDP: cannot open program {} on {}: {}", prog_id, iface, std::strerror(errno));
  std::vector<uint32_t> map_ids(16);
  bpf_prog_info info{};
  info.nr_map_ids = static_cast<uint32_t>(map_ids.size());
  info.map_ids = reinterpret_cast<uint64_t>(map_ids.data());
  uint32_t len = sizeof info;
  const int rc = bpf_obj_get_info_by_fd(prog_fd, &info, &len);
  ::close(prog_fd);
  if (rc != 0) return fmt::format("XDP: cannot read program {} on {}: {}", prog_id, iface, std::strerror(errno));
  for (uint32_t i = 0; i < info.nr_map_ids && i < map_ids.size(); ++i) {
    const int fd = bpf_map_get_fd_by_id(map_ids[i]);
    if (fd < 0) continue;
    bpf_map_info mi{};
    uint32_t mlen = sizeof mi;
    int* slot = nullptr;
    if (bpf_obj_get_info_by_fd(fd, &mi, &mlen) == 0) {
      for (const auto& [name, out] : maps) {
        if (name == mi.name) slot = out;
      }
    }
    if (slot != nullptr && *slot < 0) *slot = fd;
    else ::close(fd);
  }
  std::string missing;
  for (const auto& [name, out] : maps) {
    if (*out < 0) missing += (missing.empty() ? "" : "/") + name;
  }
  if (missing.empty()) {
    if (prog_id_out != nullptr) *prog_id_out = prog_id;
    return "";
  }
  for (const auto& [name, out] : maps) {
    if (*out >= 0) ::close(*out);
    *out = -1;
  }
  return fmt::format("XDP: the program on {} is not eswitch's (maps {} missing)", iface, missing);
}

std::string XdpGuard::attach(const std::string& iface, const std::string& want_mode) {
  release();
  iface_ = iface;
  want_mode_ = want_mode;
  drops_base_ = {};
  return xdp_find_program_maps(iface, want_mode, map_fds(), mode_, &prog_id_);
}

bool XdpGuard::program_current() const {
  return attached() && prog_id_ != 0 && xdp_attached_program_id(iface_) == prog_id_;
}

std::string XdpGuard::refresh(bool& changed) {
  changed = false;
  if (!managed() || program_current()) return "";
  // The maps open are those of a program no longer on the interface: keep its drop counts, let its maps go.
  if (attached()) {
    drops_base_[0] += xdp_sum_per_cpu(drops_fd_, kDropSpoofedMac);
    drops_base_[1] += xdp_sum_per_cpu(drops_fd_, kDropSpoofedIp);
  }
  close_maps();
  prog_id_ = 0;
  std::string err = xdp_find_program_maps(iface_, want_mode_, map_fds(), mode_, &prog_id_);
  if (!err.empty()) return err;
  changed = true;
  return "";
}

std::string XdpGuard::set(const Binding& b) {
  bool changed = false;
  if (std::string e = refresh(changed); !e.empty()) return e;
  if (!attached()) return "";
  std::vector<XdpLpm4> v4;
  for (const Prefix4& p : b.ipv4) {
    XdpLpm4 k{};
    k.prefixlen = static_cast<uint32_t>(prefix_len(reinterpret_cast<const uint8_t*>(&p.mask), 4));
    std::memcpy(k.addr, &p.addr, 4);
    v4.push_back(k);
  }
  std::vector<Lpm6> v6;
  for (const Prefix6& p : b.ipv6) {
    Lpm6 k{};
    k.prefixlen = static_cast<uint32_t>(prefix_len(p.mask.data(), 16));
    std::memcpy(k.addr, p.addr.data(), 16);
    v6.push_back(k);
  }
  // Addresses first, then the switch: a new binding never drops a frame of the new identity on the way.
  if (std::string e = xdp_sync_set(v4_fd_, v4, "esw_ipv4"); !e.empty()) return e;
  if (std::string e = xdp_sync_set(v6_fd_, v6, "esw_ipv6"); !e.empty()) return e;
  GuardCfg c{};
  std::memcpy(c.mac, b.mac.data(), 6);
  std::memcpy(c.link_local, b.link_local.data(), 16);
  c.enabled = b.spoofchk && b.active && b.has_mac ? 1 : 0;
  // A spoof-checked vport without a MAC: the binding stage drops every frame (source MAC), the program checks
  // nothing (enabled 0), so no frame may meet a rule here (a steer rule would deliver what software drops).
  c.rule_frames = !b.active || (b.spoofchk && !b.has_mac) ? kRulesNone : b.spoofchk ? kRulesIp : kRulesAll;
  const uint32_t zero = 0;
  if (bpf_map_update_elem(cfg_fd_, &zero, &c, BPF_ANY) != 0) {
    return fmt::format("cannot update the XDP program's esw_cfg map: {}", std::strerror(errno));
  }
  return "";
}

void XdpGuard::add_drops(std::array<uint64_t, static_cast<size_t>(DropReason::kCount)>& dropped) const {
  dropped[static_cast<size_t>(DropReason::kSpoofedMac)] += drops_base_[0] + xdp_sum_per_cpu(drops_fd_, kDropSpoofedMac);
  dropped[static_cast<size_t>(DropReason::kSpoofedIp)] += drops_base_[1] + xdp_sum_per_cpu(drops_fd_, kDropSpoofedIp);
}

size_t XdpGuard::set_rules(const std::vector<offload::XdpDropRule>& rules, const std::vector<uint32_t>& tx_ifindex,
                           std::vector<offload::XdpSlotCount>& old, std::string& err) {
  old.clear();
  if (!attached()) {
    err = "no XDP program";
    return 0;
  }
  const uint32_t zero = 0;
  uint32_t n = 0;
  // Off first: while the slots change, every frame goes to the worker.
  if (bpf_map_update_elem(nrules_fd_, &zero, &n, BPF_ANY) != 0) {
    err = fmt::format("cannot update the XDP program's esw_nrules map: {}", std::strerror(errno));
    return 0;
  }
  const int ncpu = libbpf_num_possible_cpus();
  const std::vector<uint64_t> per_cpu(static_cast<size_t>(ncpu > 0 ? ncpu : 1), 0);  // zeroes a slot's counters
  for (uint32_t i = 0; i < nrules_; ++i) {
    old.push_back({xdp_sum_per_cpu(hits_fd_, i), xdp_sum_per_cpu(bytes_fd_, i)});
    bpf_map_update_elem(hits_fd_, &i, per_cpu.data(), BPF_ANY);
    bpf_map_update_elem(bytes_fd_, &i, per_cpu.data(), BPF_ANY);
  }
  nrules_ = 0;
  // The steer rules' destinations (a slot the devmap refuses: the rules steering there, and those after them,
  // stay in software; the program sends a frame whose slot is empty to the worker).
  std::vector<bool> tx_ok(tx_ifindex.size(), false);
  std::string tx_err;
  for (uint32_t t = 0; t < tx_ifindex.size(); ++t) {
    if (bpf_map_update_elem(tx_fd_, &t, &tx_ifindex[t], BPF_ANY) == 0) {
      tx_ok[t] = true;
    } else if (tx_err.empty()) {
      tx_err = fmt::format("the XDP program's esw_tx map refused interface {} (slot {}): {}", tx_ifindex[t], t,
                           std::strerror(errno));
    }
  }
  for (const offload::XdpDropRule& r : rules) {
    if (r.action == offload::XdpDropRule::kActRedirect && (r.tx_slot >= tx_ok.size() || !tx_ok[r.tx_slot])) {
      err = tx_err.empty() ? fmt::format("steer rule in slot {} has no destination", n) : tx_err;
      break;
    }
    if (bpf_map_update_elem(rules_fd_, &n, &r, BPF_ANY) != 0 ||
        bpf_map_update_elem(hits_fd_, &n, per_cpu.data(), BPF_ANY) != 0 ||
        bpf_map_update_elem(bytes_fd_, &n, per_cpu.data(), BPF_ANY) != 0) {
      err = fmt::format("cannot add rule slot {} to the XDP program's esw_rules map: {}", n, std::strerror(errno));
      break;
    }
    ++n;
  }
  if (bpf_map_update_elem(nrules_fd_, &zero, &n, BPF_ANY) != 0) {
    err = fmt::format("cannot update the XDP program's esw_nrules map: {}", std::strerror(errno));
    return 0;
  }
  nrules_ = n;
  return n;
}

void XdpGuard::rule_hits(std::vector<offload::XdpSlotCount>& per_slot) const {
  per_slot.assign(nrules_, {});
  for (uint32_t i = 0; i < nrules_; ++i) per_slot[i] = {xdp_sum_per_cpu(hits_fd_, i), xdp_sum_per_cpu(bytes_fd_, i)};
}

}  // namespace esw::dp
