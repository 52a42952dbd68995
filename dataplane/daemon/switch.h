#pragma once
// The switch instance: packet pool, ports, workers, the classifier (tables) and the pipeline snapshot, built
// from a config after the EAL is up. Lifecycle: construct (opens everything, nothing forwards) -> start() ->
// stop() -> close() (ports closed, every mbuf back in the pool). The destructor does whatever is left.
//
// Threading: every method runs on the main lcore (the control thread). Workers see only the published
// snapshots and their own state.

#include <rte_mempool.h>
#include <rte_ring.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "config/config.h"
#include "dataplane/rules/actions.h"
#include "dataplane/fastpath/classifier.h"
#include "dataplane/daemon/xdp_offload.h"
#include "dataplane/daemon/rule_book.h"
#include "dataplane/smc/session_table.h"
#include "dataplane/fastpath/pipeline.h"
#include "dataplane/ports/port.h"
#include "dataplane/fastpath/rcu.h"
#include "dataplane/rules/ruleset.h"
#include "dataplane/fastpath/stats.h"
#include "dataplane/fastpath/worker.h"

namespace esw::dp {

inline constexpr unsigned kSmcRingSize = 4096;  // SMC events in flight from the workers to the main lcore

// An SMC-R session whose Accept and Confirm were both read: its QPs and rkeys are granted (roce_strict).
bool smc_granted(const smc::Session& s);

struct PortStats {
  std::string name;
  PortRole role;
  std::string driver;
  bool link_up;
  std::string kind;                      // port backend: ethdev, tap, vhost_user
  PortCounters counters;                 // summed over workers
  DriverCounters device;                 // below the switch: what the device/host side counted (loss before rx)
  std::vector<QueueCounters> rx_queues;  // per rx queue, summed over workers
};

// One worker's cycle accounting (dataplane/fastpath/stats.h WorkerCycles); tsc_hz converts cycles to time.
struct WorkerCycleStats {
  unsigned index = 0;
  unsigned lcore = 0;
  WorkerCycles cycles;
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

// Per-vport anti-spoofing and binding counters (drops by reason), summed over workers.
struct VportStats {
  std::string name;
  std::string representor;  // representor netdev ("rep-vm1"), "" when none
  bool active = true;
  uint64_t rx_packets = 0;  // from the vport into the switch
  uint64_t tx_packets = 0;  // from the switch to the vport
  std::vector<std::pair<std::string, uint64_t>> drops;  // reason name -> packets (every reason, zeros too)
};

// One difference between the running and a desired config. op: '+' added, '-' removed, '~' changed.
struct DiffItem {
  char op;
  std::string kind;    // "uplink", "vport", "table", "rule", "meter", "dataplane"
  std::string name;    // "vm1", "tables[0].rules[3]" (or the rule's name), ...
  std::string detail;  // what changed, human readable
};

struct ApplyResult {
  bool ok = false;
  std::vector<cfg::Error> errors;  // why nothing was applied (every problem found)
  std::vector<DiffItem> diff;      // what changed (or would change, for a dry run)
  bool restart_required = false;   // a dataplane section change that only a restart applies (reported, not applied)
};

// The SMC side of the switch (show smc, telemetry /eswitch/smc).
// One SMC session as show/telemetry report it (a summary of smc::Session, without its reassembly buffers).
struct SmcSessionInfo {
  struct End {
    uint16_t port = smc::kNoVport;  // switch port index
    std::string vport;
    uint8_t addr[16] = {};
    uint16_t tcp_port = 0;
    smc::SideIdentity id;
  };
  std::string state;  // smc::to_string(State)
  smc::Path path = smc::Path::kNone;
  uint8_t version = 0;
  uint8_t family = 4;
  End client, server;
  bool granted = false;  // RoCEv2 grants derived from it are published
  uint32_t decline_code = 0;
  std::string error;     // the last CLC problem, "" if none
  std::string refused;   // state "refused": why (smc::to_string(Refusal)) and by whom ("client"/"server")
  std::string refused_by;
  uint32_t clc_messages = 0;
  uint64_t bytes[2] = {};
  double age_s = 0;
  double idle_s = 0;
};

struct SmcReport {
  std::vector<SmcSessionInfo> sessions;
  smc::Counters table;
  size_t capacity = 0;
  uint64_t events_enqueued = 0;  // by the workers
  uint64_t events_lost = 0;      // ring full
  unsigned ring_size = 0;
  unsigned ring_used = 0;
  size_t flows = 0;              // published to the workers
  size_t qp_grants = 0;
  size_t rkey_grants = 0;
  double idle_timeout_s = 0;
  struct Vport {
    std::string name;
    std::string policy;  // allow | deny
    bool roce_strict = false;
    uint64_t smc_syn = 0;
    uint64_t smc_option_stripped = 0;
    uint64_t smc_clc = 0;
    uint64_t roce_qp_not_granted = 0;
    uint64_t roce_rkey_not_granted = 0;
    uint64_t smc_foreign_mac = 0;  // CLC identity enforcement (smc_identity.h)
    uint64_t smc_foreign_gid = 0;
    uint64_t smc_foreign_prefix = 0;
    uint64_t smc_flow_refused = 0;
    uint64_t smc_clc_unchecked = 0;
  };
  std::vector<Vport> vports;
};

struct TraceResult {
  std::string packet;  // the parsed key, as match text
  TraceRecord record;
  std::vector<std::string> lines;  // human-readable: the binding stage, one line per table step
  std::string verdict;             // "output:vm2", "drop (rule)", ...
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

  // Makes the switch become `desired` as one transaction: validates everything first (rules compiled, ports
  // checked), then adds/removes vports (with their representors), uplinks, tables, rules and meters with the
  // smallest change: unchanged rules keep their ids and counters, traffic on unchanged ports is not disturbed.
  // On any error nothing changes. dry_run: validate and report the diff only. Returns when every worker runs
  // the new state (one grace period).
  ApplyResult apply(const cfg::Config& desired, bool dry_run = false);

  // apply() in two steps, so that its expensive part (validating and compiling every rule, matching them with the
  // installed ones, the diff) can run on a helper thread while the main thread keeps serving:
  //  - prepare_apply: any thread. Plans and changes nothing the main thread or a worker reads (it reads the switch
  //    and adds to the action interner, which only plans use). Meanwhile the main thread may read the switch
  //    (show, stats, trace, maintain, service_ports) but must not change it or plan (no apply, change_rules,
  //    set_rules, another prepare_apply). `desired` must outlive finish_apply.
  //  - finish_apply: main thread. Executes the plan (ports, one classifier batch, publish, bookkeeping) and
  //    returns what apply() returns. Should the switch have changed since the prepare anyway, it plans again.
  struct PreparedApply;
  std::shared_ptr<PreparedApply> prepare_apply(const cfg::Config& desired, bool dry_run);
  ApplyResult finish_apply(std::shared_ptr<PreparedApply> prepared);
  const cfg::Config& config() const { return config_; }

  // Replaces the user tables, rules and meters of the running config (tests and tools that speak rules, not
  // YAML); same transaction rules as apply().
  bool set_rules(const std::vector<TableDef>& tables, const std::vector<RuleDef>& rules,
                 const std::vector<MeterProfile>& meters, std::string& error);

  // Runtime rules (not part of the config, kept across applies), named: add replaces a rule of the same name.
  // Each text is the one-string rule form and must carry name=NAME, e.g.
  //   "table=0,priority=100,name=block-ssh,in_port=vm1,ipv4,tcp_dst=22 actions=drop".
  // One transaction: on any error nothing changes. Cost: O(rules) hashing plus the compile of what changed.
  ApplyResult change_rules(const std::vector<std::string>& add, const std::vector<std::string>& remove);
  size_t runtime_rule_count() const { return extra_rules_.size(); }
  // The runtime rules as they were added (texts, in installation order; what eswitchd saves and restores by
  // passing them to change_rules again), and a counter that changes with every successful change_rules.
  const std::vector<std::string>& runtime_rule_texts() const { return extra_rule_texts_; }
  const std::vector<RuleDef>& runtime_rules() const { return extra_rules_; }  // parallel to the texts
  uint64_t runtime_rules_version() const { return runtime_rules_version_; }

  // Runs one packet through the same pipeline code as the workers, without sending it anywhere.
  TraceResult trace(uint16_t in_port, const uint8_t* data, size_t len);
  // Trace from a description: "in_port=vm1,eth_src=...,ipv4,ipv4_src=...,tcp,tcp_dst=80".
  bool trace(std::string_view description, TraceResult& out, std::string& error);

  // Frees snapshots whose grace period has passed, drains the SMC event ring into the session table and
  // publishes what changed for the workers. Call from the main loop (eswitchd: every 50 ms). A few calls after a
  // big apply it also gives the freed heap back to the kernel (malloc_trim): the apply's temporaries and the
  // config model of a 100k-rule request would otherwise stay in the process's resident set.
  void maintain() noexcept;

  // SMC sessions: the idle timeout (default 600 s), and everything `show smc` reports.
  // Call before traffic: the table starts empty again.
  void set_smc_idle_timeout(std::chrono::steady_clock::duration idle);
  SmcReport smc_report() const;

  // The main lcore's share of port backends that need one (tap representors today, vhost later): every port
  // with a service fd is registered through `watch` when it opens and `unwatch` before it closes (ports that
  // are already open are registered by this call); service_ports() is the periodic tick (drains what workers
  // queued for the host). The event loop in eswitchd provides the hooks; without them nothing is watched.
  struct ServiceHooks {
    std::function<void(int fd, std::function<void()> on_readable)> watch;
    std::function<void(int fd)> unwatch;
  };
  void set_service_hooks(ServiceHooks hooks);

  // Exclusive ownership of what a config uses (eswitchd: dataplane/daemon/instance_lock.h). `claim` runs before
  // an apply changes anything and refuses it (false, `error` one line) when the desired config needs something
  // another instance owns; `settle` runs after every apply attempt with the config that now runs (releases what
  // is no longer used). Unset: nothing is checked.
  struct OwnershipHooks {
    std::function<bool(const cfg::Config& desired, std::string& error)> claim;
    std::function<void(const cfg::Config& running)> settle;
  };
  void set_ownership_hooks(OwnershipHooks hooks) { ownership_ = std::move(hooks); }
  void service_ports() noexcept;

  std::vector<PortStats> port_stats() const;
  std::vector<VportStats> vport_stats() const;
  std::vector<RuleStats> rule_stats() const;
  // Rules running in af_xdp vports' XDP programs (offload: auto | required): rule id -> ports, drops there.
  std::map<uint32_t, XdpOffload::RuleReport> xdp_rule_report() const;  // xdp_offload.cc
  ClassifierStats classifier_stats() const { return classifier_->stats(); }
  MempoolReport mempool_report() const;
  std::vector<WorkerCycleStats> worker_cycles() const;  // switch_perf.cc
  // Ports by switch index (nullptr = free slot).
  const std::array<std::unique_ptr<Port>, kMaxPorts>& ports() const { return slots_; }
  size_t port_count() const;
  int port_index(const std::string& name) const;  // -1 when unknown
  const PortNames& port_names() const { return names_; }
  rte_mempool* pool() const { return pool_; }
  bool running() const { return running_; }

  // Prints a per-port counter table to `out`.
  void print_summary(FILE* out) const;
  // One line per worker: "worker I lcore L: busy_cycles=B idle_cycles=I packets=P busy_loops=N" (switch_perf.cc).
  void print_worker_cycles(FILE* out) const;

 private:
  struct Plan;  // what one apply does (switch_plan.h, reconcile.cc)

  // keep_config_rules: the config's rules stay exactly as installed (runtime-rule changes; the running config
  // does not keep rule bodies, so they could not be compiled again from it).
  bool plan(const cfg::Config& desired, const std::vector<TableDef>& extra_tables,
            const std::vector<RuleDef>& extra_rules, const std::vector<MeterProfile>& extra_meters,
            bool keep_config_rules, Plan& plan, ApplyResult& result);
  bool execute_plan(Plan& plan, ApplyResult& result);
  bool plan_xdp_offload(Plan& plan, ApplyResult& result);  // xdp_offload.cc
  void publish_poll_lists();
  void wait_for_workers();
  void close_port(uint16_t index) noexcept;
  void drain_smc() noexcept;
  void publish_smc();
  void watch_service(Port& port);
  void unwatch_service(Port& port) noexcept;

  cfg::Config config_;
  rte_mempool* pool_ = nullptr;
  std::array<std::unique_ptr<Port>, kMaxPorts> slots_;
  PortNames names_;
  std::unique_ptr<Rcu> rcu_;
  std::unique_ptr<Classifier> classifier_;
  ActionInterner interner_;
  Published<Pipeline> pipeline_;
  std::unique_ptr<Pipeline> current_;
  uint64_t generation_ = 0;
  struct Retired {
    uint64_t token;
    std::unique_ptr<Pipeline> pipeline;
    std::unique_ptr<PollList> poll;
  };
  std::vector<Retired> retired_;
  std::vector<std::unique_ptr<Published<PollList>>> poll_pub_;  // per worker
  std::vector<std::unique_ptr<PollList>> poll_cur_;             // per worker
  uint32_t max_rules_ = 0;
  uint64_t state_version_ = 0;  // +1 per execute_plan: a prepared apply planned against an older state is redone
  RuleBook book_;  // installed rules: ids, origins, counter baselines
  XdpOffload xdp_offload_;  // drop rules in af_xdp vports' XDP programs (xdp_offload.h)
  // User rules installed through set_rules() rather than the config (kept across applies of the same config).
  std::vector<TableDef> extra_tables_;
  std::vector<RuleDef> extra_rules_;
  std::vector<std::string> extra_rule_texts_;  // parallel to extra_rules_: the text each runtime rule came from
  uint64_t runtime_rules_version_ = 0;
  std::vector<MeterProfile> extra_meters_;
  uint64_t context_[2] = {0, 0};  // hash of what compiled rules depend on besides their source (ports, meters)
  uint64_t meter_generation_ = 0;
  // SMC: events from the workers (MP/SC ring of SmcEvent), the session table, the view the workers read.
  rte_ring* smc_ring_ = nullptr;
  std::unique_ptr<smc::SessionTable> smc_;  // dataplane/smc/session_table.h (the CLC codec's)
  Published<SmcView> smc_pub_;
  std::unique_ptr<SmcView> smc_cur_;
  std::vector<std::pair<uint64_t, std::unique_ptr<SmcView>>> smc_retired_;  // (grace-period token, view)
  uint64_t smc_version_ = 0;
  // maintain() calls left until the heap is given back to the kernel after a big apply (0: nothing to do).
  int trim_in_ticks_ = 0;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> stop_{false};
  bool running_ = false;
  ServiceHooks hooks_;
  OwnershipHooks ownership_;
};

}  // namespace esw::dp
