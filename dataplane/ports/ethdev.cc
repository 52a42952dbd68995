#include "dataplane/ports/ethdev.h"

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_errno.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "dataplane/ports/af_packet_frags.h"
#include "dataplane/ports/dpdk_log.h"
#include "dataplane/error.h"

namespace esw::dp {

EthdevPort::~EthdevPort() { close(); }

void EthdevPort::fail(const std::string& what, int err) const {
  // The driver's own log line names the cause better than the errno the generic layers return.
  const std::string cause = last_dpdk_error();
  std::string msg = fmt::format("port {} ({}): {}", spec_.name, spec_.devargs, what);
  if (!cause.empty()) msg += fmt::format(": {}", cause);
  else if (err != 0) msg += fmt::format(": {}", rte_strerror(err < 0 ? -err : err));
  if (geteuid() != 0) msg += " (eswitchd needs root)";
  throw Error(msg);
}

void EthdevPort::open(const PortSpec& spec, uint16_t index, rte_mempool* pool, uint16_t nb_workers) {
  spec_ = spec;
  index_ = index;
  clear_dpdk_errors();
  if (spec.devargs.empty()) fail("no devargs", 0);
  dev_name_ = spec.devargs.substr(0, spec.devargs.find(','));

  std::string devargs = spec.devargs;
  const bool builtin_xdp = spec.xdp_program == "builtin";
  if (builtin_xdp) {
    if (dev_name_.rfind("net_af_xdp", 0) != 0) fail("xdp program builtin needs a net_af_xdp attachment", 0);
    const bool uplink = spec.role == PortRole::kUplink;
    const std::string obj = uplink ? xdp_uplink_object_path() : xdp_guard_object_path();
    if (obj.empty() || access(obj.c_str(), R_OK) != 0) {
      fail(fmt::format("XDP program object {} not found (built with eswitchd as dataplane/xdp/{}; or set {})",
                       obj.empty() ? "(none)" : obj, uplink ? "uplink.bpf.o" : "guard.bpf.o",
                       uplink ? "ESWITCH_XDP_UPLINK_OBJ" : "ESWITCH_XDP_OBJ"), 0);
    }
    if (const std::string err = xdp_guard_preflight(obj); !err.empty()) fail(err, 0);
    devargs += ",xdp_prog=" + obj;
  }

  uint16_t pid = RTE_MAX_ETHPORTS;
  if (rte_eth_dev_get_port_by_name(dev_name_.c_str(), &pid) != 0) {
    take_af_packet_sockets();  // forget sockets of devices probed by others
    int rc = rte_dev_probe(devargs.c_str());
    afp_fds_ = take_af_packet_sockets();
    if (rc < 0) {
      fail("cannot open device", rc);
    }
    probed_by_us_ = true;
    if (rte_eth_dev_get_port_by_name(dev_name_.c_str(), &pid) != 0) {
      // PCI devices may register ports under a different name (e.g. with representors); take the first
      // port of the probed device.
      uint16_t p;
      RTE_ETH_FOREACH_DEV(p) {
        rte_eth_dev_info info{};
        if (rte_eth_dev_info_get(p, &info) == 0 && info.device != nullptr &&
            dev_name_ == rte_dev_name(info.device)) {
          pid = p;
          break;
        }
      }
      if (pid == RTE_MAX_ETHPORTS) fail("device probed but no ethdev port appeared (not a network device?)", 0);
    }
  }
  port_id_ = pid;
  open_ = true;

  rte_eth_dev_info info{};
  int rc = rte_eth_dev_info_get(port_id_, &info);
  if (rc != 0) fail("cannot read device info", rc);
  driver_ = info.driver_name != nullptr ? info.driver_name : "?";
  if (driver_ == "net_af_packet" && !af_packet_keeps_fragments()) {
    fmt::print(stderr, "eswitchd: warning: port {}: this program does not export setsockopt, so net_af_packet "
               "reassembles IPv4 fragments before the switch sees them (dataplane/ports/af_packet_frags.h)\n",
               spec.name);
  }
  if (spec.rx_queues > info.max_rx_queues) {
    fail(fmt::format("{} rx queues requested, device supports {}", spec.rx_queues, info.max_rx_queues), 0);
  }
  // One tx queue per worker when the device has them; fewer are shared by the workers (one lock per queue).
  nb_txq_ = std::min<uint16_t>(std::max<uint16_t>(spec.tx_queues, 1), info.max_tx_queues);
  if (nb_txq_ == 0) fail("device has no tx queue", 0);
  if (nb_txq_ < nb_workers) {
    txq_locks_ = std::make_unique<rte_spinlock_t[]>(nb_txq_);
    for (uint16_t q = 0; q < nb_txq_; ++q) rte_spinlock_init(&txq_locks_[q]);
  }

  rte_eth_conf conf{};
  if (spec.rx_queues > 1 && info.flow_type_rss_offloads != 0) {
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_hf = (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP) &
                                       info.flow_type_rss_offloads;
  }
  rc = rte_eth_dev_configure(port_id_, spec.rx_queues, nb_txq_, &conf);
  if (rc != 0) fail("cannot configure", rc);

  uint16_t nb_rxd = spec.rx_desc, nb_txd = spec.tx_desc;
  rc = rte_eth_dev_adjust_nb_rx_tx_desc(port_id_, &nb_rxd, &nb_txd);
  if (rc != 0) fail("cannot adjust descriptor counts", rc);
  const int socket = rte_eth_dev_socket_id(port_id_);
  const unsigned sock = socket < 0 ? SOCKET_ID_ANY : static_cast<unsigned>(socket);
  if (driver_ == "net_af_xdp") {
    // Per queue: the fill ring (2048), the tx ring and its completions (2048 each: frames the switch sends
    // out are copied into mbufs of this pool) and what is in flight through the switch.
    static unsigned seq = 0;
    const unsigned n = 16384u * spec.rx_queues;
    own_pool_ = rte_pktmbuf_pool_create(fmt::format("esw_xdp_{}", seq++).c_str(), n, 0, 0,
                                        rte_pktmbuf_data_room_size(pool), static_cast<int>(rte_socket_id()));
    if (own_pool_ == nullptr) {
      fail(fmt::format("cannot allocate the af_xdp UMEM pool ({} mbufs; raise dataplane.memory_mb)", n), rte_errno);
    }
    pool = own_pool_;
  }
  for (uint16_t q = 0; q < spec.rx_queues; ++q) {
    rc = rte_eth_rx_queue_setup(port_id_, q, nb_rxd, sock, nullptr, pool);
    if (rc != 0) fail(fmt::format("cannot set up rx queue {}", q), rc);
  }
  for (uint16_t q = 0; q < nb_txq_; ++q) {
    rc = rte_eth_tx_queue_setup(port_id_, q, nb_txd, sock, nullptr);
    if (rc != 0) fail(fmt::format("cannot set up tx queue {}", q), rc);
  }
  rte_eth_macaddr_get(port_id_, &mac_);

  if (builtin_xdp) {
    // The PMD attached the program while setting up the rx queue: find it and its maps.
    std::string iface;
    const size_t at = spec.devargs.find("iface=");
    if (at != std::string::npos) iface = spec.devargs.substr(at + 6, spec.devargs.find(',', at) - (at + 6));
    xdp_iface_ = iface;
    const std::string err = spec.role == PortRole::kUplink ? xdp_uplink_.attach(iface, spec.xdp_mode)
                                                           : xdp_.attach(iface, spec.xdp_mode);
    if (!err.empty()) fail(err, 0);
  }
}

void EthdevPort::set_uplink_vports(const std::vector<const Binding*>& vports, const UplinkXdpPolicy& p) noexcept {
  if (!xdp_uplink_.attached()) return;
  std::string err;
  try {
    err = xdp_uplink_.set(uplink_owned(vports, p.broadcast_to_switch, p.multicast_to_switch));
  } catch (const std::exception& e) {
    err = e.what();
  }
  if (err.empty()) return;
  // The maps keep what was written before the failure (entries are added before stale ones are removed): frames
  // of vports whose entries are missing go to the host until an apply succeeds. Said once per apply.
  fmt::print(stderr, "eswitchd: warning: port {}: {}; vports whose entries are missing are not reachable over this "
             "uplink until the next apply\n", spec_.name, err);
}

void EthdevPort::set_binding(const Binding& b) noexcept {
  if (!xdp_.managed()) return;
  const uint32_t before = xdp_.program_id();
  std::string err;
  try {
    err = xdp_.set(b);  // first makes sure the maps are those of the program on the interface now
  } catch (const std::exception& e) {
    err = e.what();
  }
  if (err.empty()) {
    if (xdp_.program_id() != before) {
      fmt::print(stderr, "eswitchd: port {}: XDP: eswitch's program (id {}) is on {} again; its maps are in use\n",
                 spec_.name, xdp_.program_id(), xdp_iface_);
    }
    return;
  }
  // The worker's binding stage enforces everything anyway: switch the program's part off rather than let it
  // drop with a stale binding.
  Binding off;
  off.spoofchk = false;
  xdp_.set(off);
  fmt::print(stderr, "eswitchd: warning: port {}: {}; its binding is enforced by the worker alone\n", spec_.name, err);
}

void EthdevPort::add_early_drops(std::array<uint64_t, static_cast<size_t>(DropReason::kCount)>& dropped) const {
  xdp_.add_drops(dropped);
}

void EthdevPort::start() {
  clear_dpdk_errors();
  int rc = rte_eth_dev_start(port_id_);
  if (rc != 0) fail("cannot start", rc);
  started_ = true;
  // A switch port must see every frame, whatever its destination MAC.
  rc = rte_eth_promiscuous_enable(port_id_);
  if (rc != 0 && rc != -ENOTSUP) fail("cannot enable promiscuous mode", rc);
}

void EthdevPort::stop() noexcept {
  if (started_) {
    rte_eth_dev_stop(port_id_);
    started_ = false;
  }
}

void EthdevPort::close() noexcept {
  if (!open_) return;
  stop();
  // Remember the device before close: close releases the ethdev, the bus device stays until removed.
  rte_eth_dev_info info{};
  rte_device* dev = rte_eth_dev_info_get(port_id_, &info) == 0 ? info.device : nullptr;
  xdp_.release();
  xdp_uplink_.release();
  rte_eth_dev_close(port_id_);
  if (probed_by_us_ && dev != nullptr) rte_dev_remove(dev);
  probed_by_us_ = false;
  afp_fds_.clear();
  open_ = false;
  txq_locks_.reset();
  // The af_xdp UMEM is gone with the device; the mbufs of its fill ring go with the pool.
  if (own_pool_ != nullptr) rte_mempool_free(own_pool_);
  own_pool_ = nullptr;
}

bool EthdevPort::link_up() const {
  rte_eth_link link{};
  if (rte_eth_link_get_nowait(port_id_, &link) != 0) return false;
  return link.link_status == RTE_ETH_LINK_UP;
}

void EthdevPort::set_carrier(bool up) noexcept {
  if (!started_) return;
  if (up) rte_eth_dev_set_link_up(port_id_);
  else rte_eth_dev_set_link_down(port_id_);
}

DriverCounters EthdevPort::driver_counters() const {
  DriverCounters c;
  rte_eth_stats st{};
  if (!open_ || rte_eth_stats_get(port_id_, &st) != 0) return c;
  c.valid = true;
  c.ipackets = st.ipackets;
  c.opackets = st.opackets;
  // net_af_packet (22.11) does not read the kernel's ring-overflow drops: add them up here.
  if (!afp_fds_.empty()) afp_drops_ += af_packet_kernel_drops(afp_fds_);
  c.imissed = st.imissed + afp_drops_;
  c.ierrors = st.ierrors;
  c.oerrors = st.oerrors;
  c.rx_nombuf = st.rx_nombuf;
  if (xdp_uplink_.attached()) {
    c.xdp_uplink = true;
    xdp_uplink_.counters(c.xdp_to_switch, c.xdp_to_host);
  }
  return c;
}

PortIo EthdevPort::io() const noexcept {
  PortIo io;
  io.kind = PortIo::Kind::kEthdev;
  io.ethdev = port_id_;
  io.nb_txq = nb_txq_;
  io.txq_locks = txq_locks_.get();
  return io;
}

}  // namespace esw::dp
