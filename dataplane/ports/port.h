#pragma once
// The port layer: opens any ethdev from devargs (vdev: net_tap, net_af_xdp, net_af_packet, net_vhost,
// net_memif, net_pcap, net_ring, net_null, ...) or a PCI address, or attaches to an ethdev that already exists
// under that name (created by an embedding program or test, e.g. with rte_eth_from_rings), configures its
// queues and starts it. Every failure is an Error naming the port and the cause.
//
// Threading: main lcore only. Workers use only port_id() and the queue numbers they were assigned.

#include <rte_ethdev.h>
#include <rte_mempool.h>

#include <cstdint>
#include <string>

namespace esw::dp {

enum class PortRole : uint8_t { kUplink, kVport, kRepresentor };
const char* port_role_name(PortRole r);

struct PortSpec {
  std::string name;     // switch-level name (uplink0, vm1)
  PortRole role = PortRole::kVport;
  std::string devargs;  // "net_tap0,iface=eswup0" or "0000:03:00.0"
  uint16_t rx_queues = 1;
  uint16_t tx_queues = 1;  // at least the number of workers that may send on it
  uint16_t rx_desc = 1024;
  uint16_t tx_desc = 1024;
};

class Port {
 public:
  Port() = default;
  Port(const Port&) = delete;
  Port& operator=(const Port&) = delete;
  ~Port();

  // Probes (or attaches) and configures the device; does not start it.
  void open(const PortSpec& spec, uint16_t index, rte_mempool* pool);
  void start();
  void stop() noexcept;
  // Stops, closes and (if we probed it) detaches the device. Queued mbufs return to their pool.
  void close() noexcept;

  const PortSpec& spec() const { return spec_; }
  const std::string& name() const { return spec_.name; }
  uint16_t index() const { return index_; }  // switch port index = FlowKey::in_port
  uint16_t port_id() const { return port_id_; }
  const std::string& device_name() const { return dev_name_; }
  const std::string& driver_name() const { return driver_; }
  const rte_ether_addr& mac() const { return mac_; }
  bool is_open() const { return open_; }
  bool is_started() const { return started_; }
  bool link_up() const;

 private:
  [[noreturn]] void fail(const std::string& what, int err) const;

  PortSpec spec_;
  uint16_t index_ = 0;
  uint16_t port_id_ = RTE_MAX_ETHPORTS;
  std::string dev_name_;
  std::string driver_;
  rte_ether_addr mac_{};
  bool open_ = false;
  bool started_ = false;
  bool probed_by_us_ = false;
};

}  // namespace esw::dp
