#pragma once
// A poll-mode worker: polls its assigned (port, queue) pairs in bursts, runs them through the current pipeline
// and table snapshots and transmits on its own tx queue of every port. Reports RCU quiescence once per loop;
// goes RCU-offline while it sleeps when idle.

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/fastpath/action_types.h"
#include "dataplane/fastpath/classifier.h"
#include "dataplane/fastpath/flow_cache.h"
#include "dataplane/fastpath/pipeline.h"
#include "dataplane/fastpath/port_io.h"
#include "dataplane/fastpath/rcu.h"
#include "dataplane/fastpath/smc_wire.h"
#include "dataplane/fastpath/stats.h"
#include "dataplane/fastpath/worker_context.h"

namespace esw::dp {

inline constexpr uint32_t kMaxMeters = 1024;

struct RxQueueRef {
  uint16_t port_index;  // switch port index
  uint16_t queue;
  PortIo io;            // the port's burst functions (a copy: one cache line with the queue)
  const void* owner;    // the port object (control side: tells a reopened slot from the port it replaced)
};

// What one worker polls. Immutable once published; replaced (RCU) when ports come and go.
struct PollList {
  std::vector<RxQueueRef> queues;
};

struct WorkerParams {
  uint16_t index = 0;
  unsigned lcore = 0;
  uint16_t burst = 32;
  uint32_t idle_sleep_us = 0;
  uint32_t max_rules = 0;
  uint32_t flow_cache_entries = 8192;
  uint32_t flow_cache_insert_inv_prob = 10;
  Rcu* rcu = nullptr;
  const Published<Pipeline>* pipeline = nullptr;
  const Published<TableSet>* tables = nullptr;
  const Published<PollList>* poll = nullptr;
  const Published<SmcView>* smc = nullptr;  // SMC session flows and RoCEv2 grants (main lcore publishes)
  rte_ring* smc_ring = nullptr;             // SMC events to the main lcore (MP/SC, shared by the workers)
  const std::atomic<bool>* stop = nullptr;
};

class Worker {
 public:
  explicit Worker(const WorkerParams& params);


  // The poll loop; returns when *stop becomes true, after flushing its tx buffers.
  void run() noexcept;
  static int launch(void* self) noexcept;  // rte_eal_remote_launch entry

  const WorkerParams& params() const { return params_; }
  const WorkerStats& stats() const { return ctx_.stats; }
  const QueueCounters& queue_counters(uint16_t port, uint16_t queue) const {
    return queue_counters_[size_t(port) * kMaxQueuesPerPort + queue];
  }
  // Main lcore, only for a port index no snapshot reaches any more (after a grace period).
  void reset_port_counters(uint16_t port) noexcept;
  const RuleCounter* rule_counters() const { return rule_counters_.get(); }
  const FlowCache<CachedWalk>& flow_cache() const { return cache_; }

 private:
  void refresh_meters(const Pipeline& p) noexcept;

  WorkerParams params_;
  std::unique_ptr<QueueCounters[]> queue_counters_;  // [kMaxPorts * kMaxQueuesPerPort]
  std::unique_ptr<RuleCounter[]> rule_counters_;
  std::unique_ptr<MeterRuntime[]> meters_;
  FlowCache<CachedWalk> cache_;
  WorkerContext ctx_;
};

}  // namespace esw::dp
