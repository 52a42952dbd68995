#pragma once
// The switch instance: packet pool, ports, workers and the published pipeline snapshot, built from a config
// after the EAL is up. Lifecycle: construct (opens everything, nothing forwards) -> start() -> stop() ->
// close() (ports closed, every mbuf back in the pool) . The destructor does whatever of that is left.
//
// Threading: every method runs on the main lcore. Workers only see the pipeline snapshot and their own state.

#include <rte_mempool.h>
#include <rte_rcu_qsbr.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "dataplane/pipeline.h"
#include "dataplane/port.h"
#include "dataplane/stats.h"
#include "dataplane/worker.h"

namespace esw::dp {

struct PortStats {
  std::string name;
  PortRole role;
  std::string driver;
  bool link_up;
  PortCounters counters;                 // summed over workers
  std::vector<QueueCounters> rx_queues;  // per rx queue, summed over workers
};

struct MempoolReport {
  unsigned size = 0;
  unsigned in_use = 0;  // size - available (pool ring + every lcore cache)
};

class Switch {
 public:
  explicit Switch(const cfg::Config& config);
  Switch(const Switch&) = delete;
  Switch& operator=(const Switch&) = delete;
  ~Switch();

  void start();
  void stop() noexcept;
  void close() noexcept;

  std::vector<PortStats> port_stats() const;
  MempoolReport mempool_report() const;
  const std::vector<std::unique_ptr<Port>>& ports() const { return ports_; }
  int port_index(const std::string& name) const;  // -1 when unknown
  rte_mempool* pool() const { return pool_; }
  bool running() const { return running_; }

  // Prints a per-port counter table to `out`.
  void print_summary(FILE* out) const;

 private:
  void publish(std::unique_ptr<Pipeline> next);

  cfg::Config config_;
  rte_mempool* pool_ = nullptr;
  std::vector<std::unique_ptr<Port>> ports_;
  std::vector<std::unique_ptr<Worker>> workers_;
  rte_rcu_qsbr* qsbr_ = nullptr;
  std::atomic<const Pipeline*> pipeline_{nullptr};
  std::unique_ptr<Pipeline> current_;
  std::atomic<bool> stop_{false};
  bool running_ = false;
};

}  // namespace esw::dp
