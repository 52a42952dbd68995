#include "dataplane/switch.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include <chrono>
#include <thread>

#include <fmt/format.h>

#include "dataplane/eal.h"
#include "dataplane/error.h"
#include "dataplane/packet_synth.h"
#include "dataplane/parser.h"

namespace esw::dp {

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
    pool_ = rte_pktmbuf_pool_create(fmt::format("esw_pkts_{}", pool_seq++).c_str(), dp.mbufs, dp.mbuf_cache, 0,
                                    RTE_MBUF_DEFAULT_BUF_SIZE, static_cast<int>(rte_socket_id()));
    if (pool_ == nullptr) {
      const double need_mb = static_cast<double>(dp.mbufs) * (RTE_MBUF_DEFAULT_BUF_SIZE + 128 + 64) / (1 << 20);
      throw Error(fmt::format("packet pool: cannot allocate {} mbufs (~{:.0f} MiB; dataplane.memory_mb is {}): {}",
                              dp.mbufs, need_mb, dp.memory_mb, rte_strerror(rte_errno)));
    }

    auto add_port = [&](const std::string& name, PortRole role, const cfg::Attachment& a) {
      PortSpec spec;
      spec.name = name;
      spec.role = role;
      spec.devargs = a.devargs;
      spec.rx_queues = a.rx_queues;
      spec.tx_queues = std::max<uint16_t>(a.tx_queues, nb_workers);
      spec.rx_desc = dp.rx_queue_size;
      spec.tx_desc = dp.tx_queue_size;
      auto port = std::make_unique<Port>();
      port->open(spec, static_cast<uint16_t>(ports_.size()), pool_);
      ports_.push_back(std::move(port));
    };
    for (const auto& u : config.uplinks) add_port(u.name, PortRole::kUplink, u.attach);
    for (const auto& v : config.vports) add_port(v.name, PortRole::kVport, v.attach);
    names_ = PortNames::from_list(esw::dp::port_names(config));

    rcu_ = std::make_unique<Rcu>(nb_workers);
    for (uint16_t w = 0; w < nb_workers; ++w) rte_rcu_qsbr_thread_register(rcu_->qsbr(), w);
    classifier_ = std::make_unique<Classifier>(*rcu_);
    std::string error;
    RuleSetInput input;
    input.config = &config_;
    input.max_rules = kDefaultMaxRules;
    if (!install(input, error)) throw Error(error);

    std::vector<uint16_t> port_ids;
    for (const auto& p : ports_) port_ids.push_back(p->port_id());
    for (uint16_t w = 0; w < nb_workers; ++w) {
      WorkerParams wp;
      wp.index = w;
      wp.lcore = static_cast<unsigned>(dp.worker_cores[w]);
      wp.burst = dp.burst;
      wp.idle_sleep_us = dp.idle_sleep_us;
      wp.max_rules = kDefaultMaxRules;
      wp.rcu = rcu_.get();
      wp.pipeline = &pipeline_;
      wp.tables = &classifier_->published();
      wp.stop = &stop_;
      auto worker = std::make_unique<Worker>(wp);
      worker->set_ports(port_ids);
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
  // Workers are stopped: nothing reads the snapshots any more.
  classifier_.reset();
  retired_.clear();
  current_.reset();
  if (pool_ != nullptr) rte_mempool_free(pool_);
}

bool Switch::install(const RuleSetInput& input, std::string& error) {
  CompiledRuleSet next;
  if (!compile_rule_set(input, interner_, next, error)) return false;
  if (current_ == nullptr || next.pipeline->meters.size() != current_->meters.size() || !input.meters.empty()) {
    next.pipeline->meter_generation = ++meter_generation_;
  } else {
    next.pipeline->meter_generation = current_->meter_generation;
  }

  // One batch: everything installed goes, everything compiled comes; the classifier publishes it whole.
  Batch batch;
  batch.reserve(installed_.specs.size() + next.specs.size());
  for (const RuleSpec& s : installed_.specs) batch.remove(s.id);
  for (unsigned t : installed_.tables) batch.remove_table(t);
  for (unsigned t : next.tables) batch.add_table(t);
  for (const RuleSpec& s : next.specs) batch.add(s);
  const CommitResult cr = classifier_->commit(batch);
  if (!cr.ok()) {
    const std::string where = cr.rule_id < next.rule_where.size() ? next.rule_where[cr.rule_id] : "rules";
    error = fmt::format("{}: {}", where, cr.message());
    return false;
  }

  // Counters are per rule id and ids are reused: remember where each one stands now.
  baseline_.assign(next.specs.size(), RuleCounter{});
  for (const auto& w : workers_) {
    for (size_t id = 0; id < baseline_.size(); ++id) {
      baseline_[id].packets += w->rule_counters()[id].packets;
      baseline_[id].bytes += w->rule_counters()[id].bytes;
    }
  }

  const Pipeline* old = pipeline_.publish(next.pipeline.get());
  const uint64_t token = rcu_->start();
  if (old != nullptr) retired_.push_back({token, std::move(current_)});
  current_ = std::move(next.pipeline);
  installed_ = std::move(next);
  // "Applied" means every packet received from now on meets the new rules: wait until each worker has passed a
  // quiescent state (one poll loop, microseconds; sleeping workers are offline and do not count).
  if (running_) {
    while (!rcu_->done(token)) std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  return true;
}

bool Switch::set_rules(const std::vector<TableDef>& tables, const std::vector<RuleDef>& rules,
                       const std::vector<MeterProfile>& meters, std::string& error) {
  RuleSetInput input;
  input.config = &config_;
  input.tables = tables;
  input.rules = rules;
  input.meters = meters;
  input.max_rules = kDefaultMaxRules;
  return install(input, error);
}

void Switch::maintain() noexcept {
  classifier_->reclaim();
  std::erase_if(retired_, [&](const Retired& r) { return rcu_->done(r.token); });
}

TraceResult Switch::trace(uint16_t in_port, const uint8_t* data, size_t len) {
  TraceResult out;
  FlowKey key;
  HeaderOffsets off;
  parse_packet(data, static_cast<uint32_t>(len), in_port, key, off);
  out.packet = format_key(key, names_);

  rte_mbuf* m = rte_pktmbuf_alloc(pool_);
  if (m == nullptr || len > rte_pktmbuf_tailroom(m)) {
    rte_pktmbuf_free(m);
    out.verdict = "error: no mbuf for the trace packet";
    return out;
  }
  std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(len)), data, len);
  auto ctx = std::make_unique<WorkerContext>();  // scratch: trace transmits nothing and counts nothing live
  const TableSet* tables = classifier_->acquire();
  const Pipeline* p = pipeline_.acquire();
  p->process<true>(*ctx, *tables, in_port, &m, 1, &out.record);

  const TraceRecord& r = out.record;
  auto port = [&](uint16_t i) {
    std::string n = names_.name_of ? names_.name_of(i) : std::string();
    return n.empty() ? fmt::format("{}", i) : n;
  };
  for (const auto& h : r.hits) {
    const std::string where = h.rule_id < installed_.rule_where.size() ? installed_.rule_where[h.rule_id] : "?";
    const std::string match =
        h.rule_id < installed_.rule_matches.size() ? format_match(installed_.rule_matches[h.rule_id], names_) : "";
    out.lines.push_back(fmt::format("table {}: rule {} [{}] priority {} match {} -> {}", h.table, h.rule_id, where,
                                    h.priority, match.empty() ? "(any)" : match,
                                    format_actions(*h.actions, names_, h.goto_table)));
  }
  if (r.miss_table != kNoTable) {
    out.lines.push_back(fmt::format("table {}: miss -> {}", r.miss_table,
                                    r.miss_actions ? format_actions(*r.miss_actions, names_) : "(none)"));
  }
  std::string mirrors;
  for (uint16_t mp : r.mirrors) mirrors += fmt::format(", mirror:{}", port(mp));
  if (r.dropped) {
    out.verdict = fmt::format("drop ({}){}", drop_reason_name(r.drop_reason), mirrors);
  } else {
    std::string outs;
    for (uint16_t o : r.outputs) outs += fmt::format("{}output:{}", outs.empty() ? "" : ", ", port(o));
    out.verdict = outs + mirrors;
  }
  return out;
}

bool Switch::trace(std::string_view description, TraceResult& out, std::string& error) {
  MaskedKey mk;
  if (!parse_match(description, names_, mk, error)) return false;
  if (mk.mask.in_port != 0xffff) {
    error = "in_port is required (the port the packet enters on)";
    return false;
  }
  std::vector<uint8_t> bytes;
  if (!synthesize_packet(mk, bytes, error)) return false;
  out = trace(mk.value.in_port, bytes.data(), bytes.size());
  return true;
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

std::vector<RuleStats> Switch::rule_stats() const {
  std::vector<RuleStats> out;
  for (const RuleSpec& s : installed_.specs) {
    RuleStats r{s.id, s.table, s.priority, installed_.rule_where[s.id],
                format_match(installed_.rule_matches[s.id], names_),
                format_actions(*static_cast<const ActionList*>(s.actions), names_, s.goto_table), 0, 0};
    for (const auto& w : workers_) {
      r.packets += w->rule_counters()[s.id].packets;
      r.bytes += w->rule_counters()[s.id].bytes;
    }
    r.packets -= baseline_[s.id].packets;
    r.bytes -= baseline_[s.id].bytes;
    out.push_back(std::move(r));
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
