#pragma once
// The switch instance: packet pool, ports, workers, the classifier (tables) and the pipeline snapshot, built
// from a config after the EAL is up. Lifecycle: construct (opens everything, nothing forwards) -> start() ->
// stop() -> close() (ports closed, every mbuf back in the pool). The destructor does whatever is left.
//
// Threading: every method runs on the main lcore (the control thread). Workers see only the published
// snapshots and their own state.

#include <rte_mempool.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "dataplane/actions.h"
#include "dataplane/classifier.h"
#include "dataplane/pipeline.h"
#include "dataplane/port.h"
#include "dataplane/rcu.h"
#include "dataplane/ruleset.h"
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

struct RuleStats {
  uint32_t id;
  uint8_t table;
  uint32_t priority;
  std::string where;    // where the rule came from (config path or generator)
  std::string match;    // canonical match text
  std::string actions;  // canonical action text
  uint64_t packets;     // count action only
  uint64_t bytes;
};

struct TraceResult {
  std::string packet;  // the parsed key, as match text
  TraceRecord record;
  std::vector<std::string> lines;  // human-readable: one line per table step, then the verdict
  std::string verdict;             // "output:vm2", "drop (rule)", ...
};

class Switch {
 public:
  static constexpr uint32_t kDefaultMaxRules = 1 << 18;

  explicit Switch(const cfg::Config& config);
  Switch(const Switch&) = delete;
  Switch& operator=(const Switch&) = delete;
  ~Switch();

  void start();
  void stop() noexcept;
  void close() noexcept;

  // Replaces the user tables, rules and meters (the generated foundation rules stay) as one transaction:
  // compiled and validated first; on any error nothing changes and `error` names the rule.
  bool set_rules(const std::vector<TableDef>& tables, const std::vector<RuleDef>& rules,
                 const std::vector<MeterProfile>& meters, std::string& error);

  // Runs one packet through the same pipeline code as the workers, without sending it anywhere.
  TraceResult trace(uint16_t in_port, const uint8_t* data, size_t len);
  // Trace from a description: "in_port=vm1,eth_src=...,ipv4,ipv4_src=...,tcp,tcp_dst=80".
  bool trace(std::string_view description, TraceResult& out, std::string& error);

  // Frees snapshots whose grace period has passed. Call from the main loop.
  void maintain() noexcept;

  std::vector<PortStats> port_stats() const;
  std::vector<RuleStats> rule_stats() const;
  ClassifierStats classifier_stats() const { return classifier_->stats(); }
  MempoolReport mempool_report() const;
  const std::vector<std::unique_ptr<Port>>& ports() const { return ports_; }
  int port_index(const std::string& name) const;  // -1 when unknown
  const PortNames& port_names() const { return names_; }
  rte_mempool* pool() const { return pool_; }
  bool running() const { return running_; }

  // Prints a per-port counter table to `out`.
  void print_summary(FILE* out) const;

 private:
  bool install(const RuleSetInput& input, std::string& error);

  cfg::Config config_;
  rte_mempool* pool_ = nullptr;
  std::vector<std::unique_ptr<Port>> ports_;
  PortNames names_;
  std::unique_ptr<Rcu> rcu_;
  std::unique_ptr<Classifier> classifier_;
  ActionInterner interner_;
  Published<Pipeline> pipeline_;
  std::unique_ptr<Pipeline> current_;
  struct Retired {
    uint64_t token;
    std::unique_ptr<Pipeline> pipeline;
  };
  std::vector<Retired> retired_;
  CompiledRuleSet installed_;           // what is live: rule origins and matches, by id
  std::vector<RuleCounter> baseline_;   // counters at install time, by rule id (ids are reused)
  uint64_t meter_generation_ = 0;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> stop_{false};
  bool running_ = false;
};

}  // namespace esw::dp
