#include "dataplane/daemon/switch.h"

#include <malloc.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring_elem.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>

#include "dataplane/daemon/eal.h"
#include "dataplane/error.h"
#include "dataplane/rules/packet_synth.h"
#include "dataplane/fastpath/parser.h"
#include "dataplane/fastpath/proto.h"
#include "representors/representor.h"
#include "vdpa/vdpa.h"

namespace esw::dp {

Switch::Switch(const cfg::Config& config) {
  if (!Eal::initialised()) throw Error("switch: the EAL is not initialised");
  rep::register_port_kinds();
  vdpa::register_port_kinds();
  const cfg::DataplaneConfig& dp = config.dataplane;
  if (dp.worker_cores.empty()) throw Error("dataplane.worker_cores: at least one worker core is needed");
  const uint16_t nb_workers = static_cast<uint16_t>(dp.worker_cores.size());
  for (int c : dp.worker_cores) {
    if (!rte_lcore_is_enabled(static_cast<unsigned>(c))) {
      throw Error(fmt::format("dataplane.worker_cores: core {} is not available to the EAL", c));
    }
  }
  config_.dataplane = dp;
  max_rules_ = dp.max_rules;

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
    // SMC events: one MP/SC ring of fixed-size records for every worker; a full ring is counted by the workers.
    static std::atomic<unsigned> ring_seq{0};
    smc_ring_ = rte_ring_create_elem(fmt::format("esw_smc_{}_{}", getpid() % 100000, ring_seq++).c_str(),
                                     sizeof(SmcEvent), kSmcRingSize, static_cast<int>(rte_socket_id()),
                                     RING_F_SC_DEQ);
    if (smc_ring_ == nullptr) {
      throw Error(fmt::format("smc event ring: cannot allocate {} x {} bytes: {}", kSmcRingSize, sizeof(SmcEvent),
                              rte_strerror(rte_errno)));
    }
    smc_cur_ = std::make_unique<SmcView>();
    smc_pub_.publish(smc_cur_.get());
    smc_ = std::make_unique<smc::SessionTable>(smc::Config{.capacity = 4096,
                                                           .idle_timeout_ns = 600ull * 1000 * 1000 * 1000});
    rcu_ = std::make_unique<Rcu>(nb_workers);
    for (uint16_t w = 0; w < nb_workers; ++w) rte_rcu_qsbr_thread_register(rcu_->qsbr(), w);
    classifier_ = std::make_unique<Classifier>(*rcu_);
    for (uint16_t w = 0; w < nb_workers; ++w) {
      poll_pub_.push_back(std::make_unique<Published<PollList>>());
      poll_cur_.push_back(std::make_unique<PollList>());
      poll_pub_.back()->publish(poll_cur_.back().get());
      WorkerParams wp;
      wp.index = w;
      wp.lcore = static_cast<unsigned>(dp.worker_cores[w]);
      wp.burst = dp.burst;
      wp.idle_sleep_us = dp.idle_sleep_us;
      wp.max_rules = max_rules_;
      wp.flow_cache_entries = dp.flow_cache_entries;
      wp.flow_cache_insert_inv_prob = dp.flow_cache_insert_inv_prob;
      wp.rcu = rcu_.get();
      wp.pipeline = &pipeline_;
      wp.tables = &classifier_->published();
      wp.poll = poll_pub_.back().get();
      wp.smc = &smc_pub_;
      wp.smc_ring = smc_ring_;
      wp.stop = &stop_;
      workers_.push_back(std::make_unique<Worker>(wp));
    }
    const ApplyResult r = apply(config);
    if (!r.ok) {
      std::string msg;
      for (const auto& e : r.errors) msg += (msg.empty() ? "" : "; ") + e.to_string();
      throw Error(msg);
    }
  } catch (...) {
    close();
    if (smc_ring_ != nullptr) rte_ring_free(smc_ring_);  // no destructor runs for a constructor that throws
    smc_ring_ = nullptr;
    throw;
  }
}

Switch::~Switch() {
  close();
  classifier_.reset();
  retired_.clear();
  current_.reset();
  smc_retired_.clear();
  if (smc_ring_ != nullptr) rte_ring_free(smc_ring_);
  if (pool_ != nullptr) rte_mempool_free(pool_);
}

void Switch::start() {
  for (auto& p : slots_) {
    if (p) p->start();
  }
  // Representors of inactive vports start with their carrier down.
  for (const auto& v : config_.vports) {
    const auto rp = rep::plan_representor(config_.representors, v);
    const int rep = rp ? port_index(rp->name) : -1;
    if (rep >= 0) slots_[rep]->set_carrier(v.state == cfg::VportState::kActive);
  }
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
  for (auto& p : slots_) {
    if (p) p->stop();
  }
}

void Switch::close() noexcept {
  stop();
  for (auto& p : slots_) {
    if (p) {
      unwatch_service(*p);
      p->close();
    }
  }
}

size_t Switch::port_count() const {
  return static_cast<size_t>(std::count_if(slots_.begin(), slots_.end(), [](const auto& p) { return p != nullptr; }));
}

int Switch::port_index(const std::string& name) const {
  for (uint16_t i = 0; i < kMaxPorts; ++i) {
    if (slots_[i] && slots_[i]->name() == name) return i;
  }
  return -1;
}

void Switch::publish_poll_lists() {
  // Keep every (port, queue) on the worker that already polls it - two workers must never poll one queue, not
  // even across a snapshot change - and give new queues to the least loaded worker.
  const size_t nw = workers_.size();
  std::vector<std::unique_ptr<PollList>> next(nw);
  std::set<std::pair<uint16_t, uint16_t>> placed;
  for (size_t w = 0; w < nw; ++w) {
    next[w] = std::make_unique<PollList>();
    for (const RxQueueRef& q : poll_cur_[w]->queues) {
      if (q.port_index < kMaxPorts && slots_[q.port_index] != nullptr && q.owner == slots_[q.port_index].get()) {
        next[w]->queues.push_back(q);
        placed.insert({q.port_index, q.queue});
      }
    }
  }
  for (uint16_t i = 0; i < kMaxPorts; ++i) {
    if (slots_[i] == nullptr) continue;
    for (uint16_t q = 0; q < slots_[i]->spec().rx_queues; ++q) {
      if (placed.count({i, q})) continue;
      size_t best = 0;
      for (size_t w = 1; w < nw; ++w) {
        if (next[w]->queues.size() < next[best]->queues.size()) best = w;
      }
      next[best]->queues.push_back({i, q, slots_[i]->io(), slots_[i].get()});
    }
  }
  for (size_t w = 0; w < nw; ++w) {
    poll_pub_[w]->publish(next[w].get());
    retired_.push_back({0, nullptr, std::move(poll_cur_[w])});
    poll_cur_[w] = std::move(next[w]);
  }
}

void Switch::wait_for_workers() {
  // "Applied" means every packet received from now on meets the new state: wait until each worker has passed
  // a quiescent state (one poll loop; sleeping workers are offline and do not hold anything).
  const uint64_t token = rcu_->start();
  if (running_) {
    while (!rcu_->done(token)) std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  retired_.clear();
}

void Switch::close_port(uint16_t index) noexcept {
  if (slots_[index] == nullptr) return;
  unwatch_service(*slots_[index]);
  slots_[index]->close();
  slots_[index].reset();
}

void Switch::maintain() noexcept {
  classifier_->reclaim();
  drain_smc();
  // Not at once: the API server frees the request (its YAML and config model) after the reply is sent.
  if (trim_in_ticks_ > 0 && --trim_in_ticks_ == 0) malloc_trim(0);
}

namespace {

uint64_t now_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

// A worker's event as the session table takes it (dataplane/smc/session_table.h Event).
void to_table_event(const SmcEvent& e, smc::Event& out) {
  std::memcpy(out.tuple.src, e.src, 16);
  std::memcpy(out.tuple.dst, e.dst, 16);
  out.tuple.sport = from_be16(e.sport);
  out.tuple.dport = from_be16(e.dport);
  out.tuple.family = e.ip_version;
  out.in_vport = e.in_port;
  switch (e.type) {
    case SmcEventType::kSyn: out.kind = smc::EventKind::kSynOption; break;
    case SmcEventType::kSynAck: out.kind = smc::EventKind::kSynAckOption; break;
    case SmcEventType::kClc: out.kind = smc::EventKind::kClc; break;
    case SmcEventType::kFin: out.kind = smc::EventKind::kFin; break;
    case SmcEventType::kRst: out.kind = smc::EventKind::kRst; break;
  }
  out.refused = static_cast<smc::Refusal>(e.refused);
  out.seq = e.seq;
  out.payload_len = e.segment_len;
  out.copied = static_cast<uint16_t>(std::min<size_t>(e.payload_len, smc::kEventClcBytes));
  std::memcpy(out.clc, e.payload, out.copied);
}

}  // namespace

bool smc_granted(const smc::Session& s) {
  return s.state == smc::State::kConfirm && s.path == smc::Path::kR && s.client_id.has_qp && s.server_id.has_qp &&
         s.client_vport != smc::kNoVport && s.server_vport != smc::kNoVport;
}

void Switch::set_smc_idle_timeout(std::chrono::steady_clock::duration idle) {
  smc::Config c = smc_->config();
  c.idle_timeout_ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(idle).count());
  smc_ = std::make_unique<smc::SessionTable>(c);
  publish_smc();
}

void Switch::publish_smc() {
  // What the workers need: the flows of tracked sessions (their FIN/RST matter) and the RoCEv2 grants of SMC-R
  // sessions that completed Accept + Confirm (client -> server: the server's QP and RMB rkey from its Accept; back:
  // the client's, from its Confirm). A session that declined or fell back grants nothing.
  std::vector<uint64_t> flows, qps, rkeys, refused;
  smc_->for_each([&](const smc::Session& s) {
    const unsigned alen = s.client.family == 4 ? 4 : 16;
    flows.push_back(smc_flow_hash(s.client.src, to_be16(s.client.sport), s.client.dst, to_be16(s.client.dport), alen));
    if (s.state == smc::State::kRefused) refused.push_back(flows.back());  // its data is dropped both ways
    if (!smc_granted(s)) return;
    qps.push_back(roce_qp_grant(s.client_vport, s.server_vport, s.server_id.qpn));
    qps.push_back(roce_qp_grant(s.server_vport, s.client_vport, s.client_id.qpn));
    rkeys.push_back(roce_rkey_grant(s.client_vport, s.server_vport, s.server_id.rkey));
    rkeys.push_back(roce_rkey_grant(s.server_vport, s.client_vport, s.client_id.rkey));
  });
  auto next = std::make_unique<SmcView>();
  next->flows = KeySet(flows);
  next->qps = KeySet(qps);
  next->rkeys = KeySet(rkeys);
  next->refused = KeySet(refused);
  next->version = ++smc_version_;
  smc_pub_.publish(next.get());
  smc_retired_.emplace_back(rcu_->start(), std::move(smc_cur_));
  smc_cur_ = std::move(next);
}

void Switch::drain_smc() noexcept {
  try {
    // Bounded per tick: a flood of events cannot keep the main lcore from its other work (the ring then fills
    // and the workers count what is lost).
    SmcEvent batch[32];
    smc::Event ev;
    const uint64_t now = now_ns();
    unsigned total = 0;
    while (total < kSmcRingSize) {
      const unsigned n = rte_ring_dequeue_burst_elem(smc_ring_, batch, sizeof(SmcEvent), 32, nullptr);
      if (n == 0) break;
      for (unsigned i = 0; i < n; ++i) {
        to_table_event(batch[i], ev);
        smc_->apply(ev, now);
      }
      total += n;
    }
    const size_t aged = smc_->age(now);
    if (total != 0 || aged != 0) publish_smc();
    while (!smc_retired_.empty() && rcu_->done(smc_retired_.front().first)) {
      smc_retired_.erase(smc_retired_.begin());
    }
  } catch (const std::exception&) {
    // Out of memory building a view: the workers keep the previous one; the next tick tries again.
  }
}

void Switch::set_service_hooks(ServiceHooks hooks) {
  for (auto& p : slots_) {
    if (p) unwatch_service(*p);
  }
  hooks_ = std::move(hooks);
  for (auto& p : slots_) {
    if (p) watch_service(*p);
  }
}

void Switch::watch_service(Port& port) {
  if (!hooks_.watch) return;
  for (int fd : port.service_fds()) hooks_.watch(fd, [&port] { port.service(); });
}

void Switch::unwatch_service(Port& port) noexcept {
  if (!hooks_.unwatch) return;
  for (int fd : port.service_fds()) hooks_.unwatch(fd);
}

void Switch::service_ports() noexcept {
  for (auto& p : slots_) {
    if (p && p->needs_service()) p->service();
  }
}

}  // namespace esw::dp
