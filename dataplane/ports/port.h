#pragma once
// The port seam: everything the switch can burst packets from and to is a Port, whatever is behind it: an
// ethdev (NIC, af_packet, af_xdp, tap, memif, pcap, ring; ports/ethdev.h), a tap file descriptor served on the
// main lcore (representors/), later a vhost-user device served by rte_vhost directly (vdpa/).
//
// Two faces:
//  - Control (main lcore): open/start/stop/close, link state, driver counters, and `service()`, the backend's
//    share of the main lcore's event loop (a file descriptor to watch and work to do when it is readable or on
//    the periodic service tick). Failures throw esw::dp::Error naming the port and the cause.
//  - Fast path: `io()` describes how workers reach the port — a burst rx and a burst tx function per queue
//    (PortIo, fastpath/port_io.h). Workers call it once per burst, never per packet; ethdevs are called directly.
//
// The switch owns the port index space (FlowKey::in_port, up to kMaxPorts), independent of DPDK port ids: a
// port that is not an ethdev costs no ethdev (Debian's DPDK has RTE_MAX_ETHPORTS = 32).
//
// Threading: main lcore only, except what io() hands to the workers. A port is closed only after a grace
// period in which no worker can still reach it.

#include <rte_ether.h>
#include <rte_mempool.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/offload/xdp_drop_rule.h"
#include "dataplane/fastpath/binding.h"
#include "dataplane/fastpath/port_io.h"
#include "dataplane/fastpath/stats.h"

namespace esw::dp {

enum class PortRole : uint8_t { kUplink, kVport, kRepresentor };
const char* port_role_name(PortRole r);

struct PortSpec {
  std::string name;     // switch-level name (uplink0, vm1, rep-vm1)
  PortRole role = PortRole::kVport;
  std::string kind = "ethdev";  // backend: "ethdev", "tap" (representors/)
  std::string devargs;  // ethdev: "net_tap0,iface=eswup0" or "0000:03:00.0"; tap: the interface name
  uint16_t rx_queues = 1;
  uint16_t tx_queues = 1;  // wanted: one per worker; a backend may offer fewer (then workers share them)
  uint16_t rx_desc = 1024;
  uint16_t tx_desc = 1024;
  // net_af_xdp: "builtin" = eswitch's XDP program (ports/xdp_guard.h) instead of the PMD's; mode auto|native|generic.
  std::string xdp_program = "none";
  std::string xdp_mode = "auto";
};

// What an uplink's XDP program hands to the switch besides the vports' own addresses (dataplane/xdp/uplink.bpf.c).
struct UplinkXdpPolicy {
  bool broadcast_to_switch = false, multicast_to_switch = false;
};

// What the driver counts below the switch (loss before a packet reaches a worker). valid=false: the backend
// cannot tell.
struct DriverCounters {
  bool valid = false;
  uint64_t ipackets = 0, opackets = 0;
  uint64_t imissed = 0;    // dropped by the device/host side before the rx queue (ring full, ...)
  uint64_t ierrors = 0, oerrors = 0;
  uint64_t rx_nombuf = 0;  // no mbuf for a received frame
  // An uplink's XDP program (xdp: builtin): frames it gave to the switch and frames it passed to the host.
  bool xdp_uplink = false;
  uint64_t xdp_to_switch = 0, xdp_to_host = 0;
};

// A backend's session with its peer (a vhost-user guest, ...): connection, what was negotiated, per-queue
// traffic as the backend itself counted it. present=false: the backend has no peer session to report.
struct PeerQueue {
  bool rx_enabled = false, tx_enabled = false;  // the peer's send ring (our rx) / receive ring (our tx) is on
  uint64_t rx_packets = 0, tx_packets = 0, tx_dropped = 0;
};
struct PeerStatus {
  bool present = false;
  bool connected = false;
  uint64_t features = 0;                   // negotiated (0 while not connected)
  std::vector<std::string> feature_names;  // the negotiated features by name
  uint64_t connects = 0, disconnects = 0;
  std::vector<PeerQueue> queues;           // one per configured queue pair
  std::vector<std::pair<std::string, uint64_t>> counters;  // backend-specific, by name (vhost: offloads, announces)
  std::string state;  // backend-specific state worth showing (vhost: the migration state), empty if none
};

class Port {
 public:
  Port() = default;
  Port(const Port&) = delete;
  Port& operator=(const Port&) = delete;
  virtual ~Port() = default;

  // Opens the backend and sets up its queues; does not start it. `nb_workers` is how many workers may send.
  virtual void open(const PortSpec& spec, uint16_t index, rte_mempool* pool, uint16_t nb_workers) = 0;
  virtual void start() = 0;
  virtual void stop() noexcept = 0;
  // Stops and releases everything; queued mbufs return to their pool. Idempotent.
  virtual void close() noexcept = 0;

  virtual bool link_up() const = 0;
  // Administrative carrier (a representor follows its vport's state). Backends without one ignore it.
  virtual void set_carrier(bool /*up*/) noexcept {}
  virtual DriverCounters driver_counters() const { return {}; }
  virtual PeerStatus peer_status() const { return {}; }
  // A vport's binding, on every apply, for backends that enforce part of it below the switch (an XDP program).
  virtual void set_binding(const Binding& /*b*/) noexcept {}
  // An uplink: the active vports' bindings, on every apply, for backends that sort frames below the switch (an
  // uplink XDP program hands the switch only what its vports own).
  virtual void set_uplink_vports(const std::vector<const Binding*>& /*vports*/, const UplinkXdpPolicy& /*p*/) noexcept {}
  // Drops made below the switch on the vport's behalf (by the same reasons as the binding stage): added in.
  virtual void add_early_drops(std::array<uint64_t, static_cast<size_t>(DropReason::kCount)>& /*dropped*/) const {}
  // Counts carried over from elsewhere (a vport migrated from another eswitchd, vdpa/migration.h): added in.
  virtual void add_carried(PortCounters& /*c*/) const {}

  // How workers reach this port; valid from open() to close().
  virtual PortIo io() const noexcept = 0;

  // Main-lcore service: file descriptors the event loop watches (e.g. a tap fd, an eventfd a worker writes when
  // it queued frames for the main lcore), and the work to do when one is readable or on the service tick
  // (moving frames between the host and the port's rings, ...). Never blocks.
  virtual std::vector<int> service_fds() const { return {}; }
  virtual bool needs_service() const noexcept { return false; }
  virtual void service() noexcept {}

  const PortSpec& spec() const { return spec_; }
  const std::string& name() const { return spec_.name; }
  uint16_t index() const { return index_; }  // switch port index = FlowKey::in_port
  // The DPDK port id when the backend is an ethdev, kNoEthdev otherwise (dpdk-dumpcap, telemetry).
  static constexpr uint16_t kNoEthdev = 0xffff;
  virtual uint16_t port_id() const { return kNoEthdev; }
  const std::string& device_name() const { return dev_name_; }
  const std::string& driver_name() const { return driver_; }
  const rte_ether_addr& mac() const { return mac_; }
  bool is_open() const { return open_; }
  bool is_started() const { return started_; }

  // XDP offload tier (offload/xdp_tier.h): can this port's own XDP program drop rules? (an af_xdp vport with
  // the builtin program). set_xdp_drop_rules: see XdpGuard::set_rules.
  virtual bool xdp_rules_capable() const { return false; }
  // Is the program whose maps the port holds still the one on its interface? (It may have been detached or
  // replaced from outside since the last apply; the next apply finds the maps again or falls back.)
  virtual bool xdp_program_current() const { return false; }
  virtual size_t set_xdp_drop_rules(const std::vector<offload::XdpDropRule>& /*rules*/,
                                    const std::vector<uint32_t>& /*tx_ifindex*/,
                                    std::vector<offload::XdpSlotCount>& old, std::string& err) {
    old.clear();
    err = "the port has no XDP program of eswitch's";
    return 0;
  }
  virtual void xdp_rule_hits(std::vector<offload::XdpSlotCount>& per_slot) const { per_slot.clear(); }
  // The kernel interface of an af_xdp port with eswitch's program ("" otherwise): where steer rules redirect.
  virtual std::string xdp_interface() const { return ""; }

 protected:
  PortSpec spec_;
  uint16_t index_ = 0;
  std::string dev_name_;
  std::string driver_;
  rte_ether_addr mac_{};
  bool open_ = false;
  bool started_ = false;
};

// Backends by kind ("ethdev" is built in; representors/ and vdpa/ register theirs at start-up, so the core
// depends on no backend and no backend on the daemon).
using PortFactory = std::unique_ptr<Port> (*)();
void register_port_kind(const std::string& kind, PortFactory factory);
// Throws Error when the kind is unknown.
std::unique_ptr<Port> make_port(const std::string& kind);

}  // namespace esw::dp
