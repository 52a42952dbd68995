#include "dataplane/daemon/switch.h"

#include <malloc.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

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
    throw;
  }
}

Switch::~Switch() {
  close();
  classifier_.reset();
  retired_.clear();
  current_.reset();
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
  // Not at once: the API server frees the request (its YAML and config model) after the reply is sent.
  if (trim_in_ticks_ > 0 && --trim_in_ticks_ == 0) malloc_trim(0);
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
