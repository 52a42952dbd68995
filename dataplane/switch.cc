#include "dataplane/switch.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include <fmt/format.h>

#include "dataplane/eal.h"
#include "dataplane/error.h"

namespace esw::dp {

namespace {

bool parse_mac(const std::string& s, uint64_t& out) {
  rte_ether_addr a{};
  if (rte_ether_unformat_addr(s.c_str(), &a) != 0) return false;
  out = Pipeline::mac_key(a.addr_bytes);
  return true;
}

}  // namespace

Switch::Switch(const cfg::Config& config) : config_(config) {
  if (!Eal::initialised()) throw Error("switch: the EAL is not initialised");
  const cfg::DataplaneConfig& dp = config.dataplane;
  if (dp.worker_cores.empty()) throw Error("dataplane.worker_cores: at least one worker core is needed");
  const size_t nb_ports = config.uplinks.size() + config.vports.size();
  if (nb_ports > kMaxPorts) throw Error(fmt::format("switch: {} ports configured, at most {}", nb_ports, kMaxPorts));
  const uint16_t nb_workers = static_cast<uint16_t>(dp.worker_cores.size());
  for (int c : dp.worker_cores) {
    if (!rte_lcore_is_enabled(static_cast<unsigned>(c))) {
      throw Error(fmt::format("dataplane.worker_cores: core {} is not available to the EAL", c));
    }
  }

  try {
    Eal::clear_dpdk_errors();
    static std::atomic<unsigned> pool_seq{0};
    pool_ = rte_pktmbuf_pool_create(fmt::format("esw_pkts_{}", pool_seq++).c_str(), dp.mbufs,
                                    dp.mbuf_cache, 0, RTE_MBUF_DEFAULT_BUF_SIZE, static_cast<int>(rte_socket_id()));
    if (pool_ == nullptr) {
      const double need_mb = static_cast<double>(dp.mbufs) * (RTE_MBUF_DEFAULT_BUF_SIZE + 128 + 64) / (1 << 20);
      throw Error(fmt::format("packet pool: cannot allocate {} mbufs (~{:.0f} MiB; dataplane.memory_mb is {}): {}",
                              dp.mbufs, need_mb, dp.memory_mb, rte_strerror(rte_errno)));
    }

    std::vector<PortInfo> infos;
    std::vector<std::string> names;
    auto add_port = [&](const std::string& name, PortRole role, const cfg::Attachment& a,
                        const std::optional<std::string>& hw_addr) {
      PortSpec spec;
      spec.name = name;
      spec.role = role;
      spec.devargs = a.devargs;
      spec.rx_queues = a.rx_queues;
      spec.tx_queues = std::max<uint16_t>(a.tx_queues, nb_workers);
      spec.rx_desc = dp.rx_queue_size;
      spec.tx_desc = dp.tx_queue_size;
      auto port = std::make_unique<Port>();
      const auto index = static_cast<uint16_t>(ports_.size());
      port->open(spec, index, pool_);
      PortInfo info{index, role == PortRole::kUplink, false, 0};
      if (hw_addr && !parse_mac(*hw_addr, info.mac)) {
        throw Error(fmt::format("port {}: hw_addr '{}' is not a MAC address", name, *hw_addr));
      }
      info.has_mac = hw_addr.has_value();
      infos.push_back(info);
      names.push_back(name);
      ports_.push_back(std::move(port));
    };
    for (const auto& u : config.uplinks) add_port(u.name, PortRole::kUplink, u.attach, std::nullopt);
    for (const auto& v : config.vports) add_port(v.name, PortRole::kVport, v.attach, v.hw_addr);

    const size_t qs_size = rte_rcu_qsbr_get_memsize(nb_workers);
    qsbr_ = static_cast<rte_rcu_qsbr*>(rte_zmalloc("esw_qsbr", qs_size, RTE_CACHE_LINE_SIZE));
    if (qsbr_ == nullptr || rte_rcu_qsbr_init(qsbr_, nb_workers) != 0) {
      throw Error("switch: cannot allocate the RCU state");
    }
    publish(std::make_unique<Pipeline>(config.pipeline, infos, names));

    std::vector<uint16_t> port_ids;
    for (const auto& p : ports_) port_ids.push_back(p->port_id());
    for (uint16_t w = 0; w < nb_workers; ++w) {
      WorkerParams wp;
      wp.index = w;
      wp.lcore = static_cast<unsigned>(dp.worker_cores[w]);
      wp.burst = dp.burst;
      wp.idle_sleep_us = dp.idle_sleep_us;
      wp.qsbr = qsbr_;
      wp.pipeline = &pipeline_;
      wp.stop = &stop_;
      auto worker = std::make_unique<Worker>(wp);
      worker->set_ports(port_ids);
      rte_rcu_qsbr_thread_register(qsbr_, w);
      workers_.push_back(std::move(worker));
    }
    // Spread (port, queue) pairs over the workers round-robin.
    size_t next = 0;
    for (const auto& p : ports_) {
      for (uint16_t q = 0; q < p->spec().rx_queues; ++q) {
        workers_[next++ % workers_.size()]->add_rx_queue(p->index(), p->port_id(), q);
      }
    }
  } catch (...) {
    close();
    throw;
  }
}

Switch::~Switch() {
  close();
  if (pool_ != nullptr) rte_mempool_free(pool_);
}

void Switch::publish(std::unique_ptr<Pipeline> next) {
  // One release store; the old snapshot is freed only after every worker has passed a quiescent state.
  const Pipeline* old = current_.get();
  pipeline_.store(next.get(), std::memory_order_release);
  if (old != nullptr && running_) rte_rcu_qsbr_synchronize(qsbr_, RTE_QSBR_THRID_INVALID);
  current_ = std::move(next);
}

void Switch::start() {
  for (auto& p : ports_) p->start();
  stop_.store(false);
  for (auto& w : workers_) {
    int rc = rte_eal_remote_launch(&Worker::launch, w.get(), w->params().lcore);
    if (rc != 0) {
      stop();
      throw Error(fmt::format("worker {}: cannot launch on lcore {}: {}", w->params().index, w->params().lcore,
                              rte_strerror(-rc)));
    }
  }
  running_ = true;
}

void Switch::stop() noexcept {
  stop_.store(true);
  for (auto& w : workers_) {
    if (rte_eal_get_lcore_state(w->params().lcore) != WAIT) rte_eal_wait_lcore(w->params().lcore);
  }
  running_ = false;
  for (auto& p : ports_) p->stop();
}

void Switch::close() noexcept {
  stop();
  for (auto& p : ports_) p->close();
  // Keep ports_ (their names and counters stay readable); workers_ hold only plain state.
  if (qsbr_ != nullptr) {
    rte_free(qsbr_);
    qsbr_ = nullptr;
  }
}

int Switch::port_index(const std::string& name) const {
  for (const auto& p : ports_) {
    if (p->name() == name) return p->index();
  }
  return -1;
}

std::vector<PortStats> Switch::port_stats() const {
  std::vector<PortStats> out;
  for (const auto& p : ports_) {
    PortStats s;
    s.name = p->name();
    s.role = p->spec().role;
    s.driver = p->driver_name();
    s.link_up = p->is_started() && p->link_up();
    s.rx_queues.resize(p->spec().rx_queues);
    for (const auto& w : workers_) {
      s.counters += w->stats().ports[p->index()];
      for (const auto& q : w->rx_queues()) {
        if (q.port_index == p->index()) {
          QueueCounters& qc = s.rx_queues[q.queue];
          qc.packets += q.counters->packets;
          qc.bytes += q.counters->bytes;
          qc.polls += q.counters->polls;
          qc.empty_polls += q.counters->empty_polls;
        }
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

MempoolReport Switch::mempool_report() const {
  MempoolReport r;
  if (pool_ == nullptr) return r;
  r.size = pool_->size;
  r.in_use = rte_mempool_in_use_count(pool_);
  return r;
}

void Switch::print_summary(FILE* out) const {
  fmt::print(out, "{:<10} {:<8} {:<14} {:>10} {:>12} {:>10} {:>12} {:>8} {:>8}\n", "port", "role", "driver",
             "rx_pkts", "rx_bytes", "tx_pkts", "tx_bytes", "tx_drop", "dropped");
  for (const PortStats& s : port_stats()) {
    const PortCounters& c = s.counters;
    fmt::print(out, "{:<10} {:<8} {:<14} {:>10} {:>12} {:>10} {:>12} {:>8} {:>8}\n", s.name, port_role_name(s.role),
               s.driver, c.rx_packets, c.rx_bytes, c.tx_packets, c.tx_bytes, c.tx_dropped, c.dropped_total());
  }
}

}  // namespace esw::dp
