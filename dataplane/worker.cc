#include "dataplane/worker.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <unistd.h>

#include <algorithm>

namespace esw::dp {

namespace {
// Empty polls before an idle worker starts to sleep, and the first sleep; sleeps double up to idle_sleep_us.
constexpr uint32_t kIdlePollsBeforeSleep = 1024;
constexpr uint32_t kFirstSleepUs = 1;
}  // namespace

Worker::Worker(const WorkerParams& params) : params_(params) {
  ctx_.worker_index = params.index;
  queue_counters_.reserve(kMaxPorts);  // stable addresses for RxQueueRef::counters
}

void Worker::add_rx_queue(uint16_t port_index, uint16_t port_id, uint16_t queue) {
  queue_counters_.emplace_back();
  rxqs_.push_back({port_index, port_id, queue, &queue_counters_.back()});
}

void Worker::set_ports(const std::vector<uint16_t>& port_ids) {
  ctx_.nb_ports = static_cast<uint16_t>(port_ids.size());
  std::copy(port_ids.begin(), port_ids.end(), ctx_.port_ids.begin());
}

int Worker::launch(void* self) noexcept {
  static_cast<Worker*>(self)->run();
  return 0;
}

void Worker::run() noexcept {
  const uint16_t burst = std::min<uint16_t>(params_.burst, kMaxRxBurst);
  rte_rcu_qsbr* qs = params_.qsbr;
  const unsigned tid = params_.index;
  rte_rcu_qsbr_thread_online(qs, tid);
  rte_mbuf* pkts[kMaxRxBurst];
  uint32_t idle_polls = 0;
  uint32_t sleep_us = kFirstSleepUs;

  while (!params_.stop->load(std::memory_order_relaxed)) {
    const Pipeline* pipeline = params_.pipeline->load(std::memory_order_acquire);
    uint32_t received = 0;
    for (RxQueueRef& q : rxqs_) {
      const uint16_t n = rte_eth_rx_burst(q.port_id, q.queue, pkts, burst);
      q.counters->polls++;
      if (n == 0) {
        q.counters->empty_polls++;
        continue;
      }
      uint64_t bytes = 0;
      for (uint16_t i = 0; i < n; ++i) bytes += pkts[i]->pkt_len;
      q.counters->packets += n;
      q.counters->bytes += bytes;
      PortCounters& pc = ctx_.stats.ports[q.port_index];
      pc.rx_packets += n;
      pc.rx_bytes += bytes;
      received += n;
      pipeline->process(ctx_, q.port_index, pkts, n);
    }
    ctx_.flush_all();
    ctx_.stats.loops++;
    rte_rcu_qsbr_quiescent(qs, tid);  // no snapshot pointer lives past here

    if (received != 0) {
      idle_polls = 0;
      sleep_us = kFirstSleepUs;
    } else if (params_.idle_sleep_us != 0 && ++idle_polls > kIdlePollsBeforeSleep) {
      // Offline while asleep so a writer waiting for a grace period does not wait for us.
      rte_rcu_qsbr_thread_offline(qs, tid);
      usleep(sleep_us);
      rte_rcu_qsbr_thread_online(qs, tid);
      ctx_.stats.idle_sleeps++;
      sleep_us = std::min(sleep_us * 2, params_.idle_sleep_us);
    }
  }
  ctx_.flush_all();
  rte_rcu_qsbr_thread_offline(qs, tid);
}

}  // namespace esw::dp
