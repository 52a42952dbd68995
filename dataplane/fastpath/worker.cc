#include "dataplane/fastpath/worker.h"

#include <rte_cycles.h>
#include <unistd.h>

#include <algorithm>

namespace esw::dp {

namespace {
// Empty polls before an idle worker starts to sleep, and the first sleep; sleeps double up to idle_sleep_us.
constexpr uint32_t kIdlePollsBeforeSleep = 1024;
constexpr uint32_t kFirstSleepUs = 1;
}  // namespace

Worker::Worker(const WorkerParams& params)
    : params_(params),
      queue_counters_(std::make_unique<QueueCounters[]>(size_t(kMaxPorts) * kMaxQueuesPerPort)),
      rule_counters_(std::make_unique<RuleCounter[]>(params.max_rules)),
      meters_(std::make_unique<MeterRuntime[]>(kMaxMeters)),
      cache_(params.flow_cache_entries, params.flow_cache_insert_inv_prob, 0x9e3779b97f4a7c15ull + params.index) {
  ctx_.worker_index = params.index;
  ctx_.flow_cache = &cache_;
  ctx_.rule_counters = rule_counters_.get();
  ctx_.meters = meters_.get();
  ctx_.meter_generation = ~uint64_t(0);
  ctx_.smc_ring = params.smc_ring;
}

void Worker::reset_port_counters(uint16_t port) noexcept {
  ctx_.stats.ports[port] = PortCounters{};
  for (uint16_t q = 0; q < kMaxQueuesPerPort; ++q) queue_counters_[size_t(port) * kMaxQueuesPerPort + q] = {};
}

int Worker::launch(void* self) noexcept {
  static_cast<Worker*>(self)->run();
  return 0;
}

// Meter state is per core: rebuilt (no allocation) when the snapshot's meter table changes.
void Worker::refresh_meters(const Pipeline& p) noexcept {
  const uint32_t n = std::min<uint32_t>(static_cast<uint32_t>(p.meters.size()), kMaxMeters);
  for (uint32_t i = 0; i < n; ++i) init_meter(p.meters[i], meters_[i]);
  ctx_.nb_meters = n;
  ctx_.meter_generation = p.meter_generation;
}

void Worker::run() noexcept {
  const uint16_t burst = std::min<uint16_t>(params_.burst, kMaxRxBurst);
  Rcu& rcu = *params_.rcu;
  const unsigned tid = params_.index;
  rcu.online(tid);
  rte_mbuf* pkts[kMaxRxBurst];
  uint32_t idle_polls = 0;
  uint32_t sleep_us = kFirstSleepUs;
  WorkerCycles& cyc = ctx_.stats.cycles;
  uint64_t tsc = rte_rdtsc();

  while (!params_.stop->load(std::memory_order_relaxed)) {
    const Pipeline* pipeline = params_.pipeline->acquire();
    const TableSet* tables = params_.tables->acquire();
    const PollList* poll = params_.poll->acquire();
    ctx_.smc = params_.smc != nullptr ? params_.smc->acquire() : nullptr;
    if (pipeline->meter_generation != ctx_.meter_generation) [[unlikely]] refresh_meters(*pipeline);
    ctx_.io = pipeline->ports.io.data();
    uint32_t received = 0;
    for (const RxQueueRef& q : poll->queues) {
      const uint16_t n = q.io.rx_burst(q.queue, pkts, burst);
      QueueCounters& qc = queue_counters_[size_t(q.port_index) * kMaxQueuesPerPort + q.queue];
      qc.polls++;
      if (n == 0) {
        qc.empty_polls++;
        continue;
      }
      uint64_t bytes = 0;
      for (uint16_t i = 0; i < n; ++i) bytes += pkts[i]->pkt_len;
      qc.packets += n;
      qc.bytes += bytes;
      PortCounters& pc = ctx_.stats.ports[q.port_index];
      pc.rx_packets += n;
      pc.rx_bytes += bytes;
      received += n;
      pipeline->process<false>(ctx_, *tables, q.port_index, pkts, n);
    }
    ctx_.flush_all();
    ctx_.stats.loops++;
    rcu.quiescent(tid);  // no snapshot pointer lives past here

    if (received != 0) {
      idle_polls = 0;
      sleep_us = kFirstSleepUs;
    } else if (params_.idle_sleep_us != 0 && ++idle_polls > kIdlePollsBeforeSleep) {
      // Offline while asleep so a writer waiting for a grace period does not wait for us.
      rcu.offline(tid);
      usleep(sleep_us);
      rcu.online(tid);
      ctx_.stats.idle_sleeps++;
      sleep_us = std::min(sleep_us * 2, params_.idle_sleep_us);
    }
    const uint64_t now = rte_rdtsc();
    if (received != 0) {
      cyc.busy_cycles += now - tsc;
      cyc.packets += received;
      cyc.busy_loops++;
    } else {
      cyc.idle_cycles += now - tsc;
    }
    tsc = now;
  }
  ctx_.flush_all();
  rcu.offline(tid);
}

}  // namespace esw::dp
