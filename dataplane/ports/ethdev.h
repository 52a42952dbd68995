#pragma once
// The ethdev backend: opens any ethdev from devargs (vdev: net_tap, net_af_xdp, net_af_packet, net_vhost,
// net_memif, net_pcap, net_ring, net_null, ...) or a PCI address, or attaches to an ethdev that already exists
// under that name (created by an embedding program or test, e.g. with rte_eth_from_rings), configures its
// queues and starts it. Workers call rte_eth_rx_burst/rte_eth_tx_burst directly (PortIo::Kind::kEthdev).
//
// af_xdp: DPDK 22.11's af_xdp PMD builds its UMEM on the rx mempool (zero copy) and keeps the mbufs of its fill
// ring when the port closes (2048 per queue, never returned). So an af_xdp port gets a pool of its own, freed
// with the port, and the switch's pool stays exact (eswitchd's shutdown check counts every mbuf back).
//
// xdp_program builtin (af_xdp only): the PMD loads eswitch's program (xdp_prog=, dataplane/xdp/guard.bpf.c)
// instead of its own; the port then keeps the program's maps in step with the vport's binding (set_binding) and
// reports its drops (add_early_drops). On an uplink it loads the uplink program instead (dataplane/xdp/uplink.bpf.c:
// only the vports' frames go to the switch, the rest to the host kernel) and keeps its maps in step with the
// vports (set_uplink_vports).
//
// Tx queues: one per worker when the device has that many; otherwise as many as it has, shared by workers
// with one lock per queue (taken once per burst).
//
// Threading: main lcore only.

#include <rte_ethdev.h>
#include <rte_spinlock.h>

#include <memory>
#include <vector>

#include "dataplane/ports/port.h"
#include "dataplane/ports/xdp_guard.h"
#include "dataplane/ports/xdp_uplink.h"

namespace esw::dp {

class EthdevPort final : public Port {
 public:
  ~EthdevPort() override;
  void open(const PortSpec& spec, uint16_t index, rte_mempool* pool, uint16_t nb_workers) override;
  void start() override;
  void stop() noexcept override;
  void close() noexcept override;
  bool link_up() const override;
  void set_carrier(bool up) noexcept override;
  DriverCounters driver_counters() const override;
  void set_binding(const Binding& b) noexcept override;
  void set_uplink_vports(const std::vector<const Binding*>& vports, const UplinkXdpPolicy& p) noexcept override;
  void add_early_drops(std::array<uint64_t, static_cast<size_t>(DropReason::kCount)>& dropped) const override;
  bool xdp_rules_capable() const override { return xdp_.attached(); }
  bool xdp_program_current() const override { return xdp_.program_current(); }
  size_t set_xdp_drop_rules(const std::vector<offload::XdpDropRule>& rules, const std::vector<uint32_t>& tx_ifindex,
                            std::vector<offload::XdpSlotCount>& old, std::string& err) override {
    return xdp_.set_rules(rules, tx_ifindex, old, err);
  }
  void xdp_rule_hits(std::vector<offload::XdpSlotCount>& per_slot) const override { xdp_.rule_hits(per_slot); }
  std::string xdp_interface() const override { return xdp_.attached() ? xdp_iface_ : std::string(); }
  PortIo io() const noexcept override;
  uint16_t port_id() const override { return port_id_; }

 private:
  [[noreturn]] void fail(const std::string& what, int err) const;

  uint16_t port_id_ = RTE_MAX_ETHPORTS;
  uint16_t nb_txq_ = 0;
  std::unique_ptr<rte_spinlock_t[]> txq_locks_;  // when workers share tx queues
  bool probed_by_us_ = false;
  rte_mempool* own_pool_ = nullptr;  // af_xdp: the UMEM's pool (see above)
  // af_packet: the PMD's sockets, whose kernel ring-overflow drops (read-and-reset) are added up as imissed.
  std::vector<int> afp_fds_;
  mutable uint64_t afp_drops_ = 0;
  std::string xdp_iface_;  // the interface of an af_xdp port with eswitch's program
  XdpGuard xdp_;  // xdp_program builtin on a vport: eswitch's guard program on the af_xdp interface
  XdpUplink xdp_uplink_;  // xdp_program builtin on an uplink: eswitch's uplink program
};

}  // namespace esw::dp
