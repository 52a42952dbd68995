#pragma once
// eswitch commands for DPDK telemetry (rte_telemetry), readable with the stock dpdk-telemetry.py:
//
//   /eswitch/info                  pid, file prefix, API socket, config generation and hash, counts
//   /eswitch/ports[,NAME]          per-port counters (all ports, or one port with drops by reason)
//   /eswitch/vports[,NAME]         per-vport counters (all vports, or one vport with drops by reason)
//   /eswitch/tables                per-table rule count and count-action totals
//   /eswitch/classifier            classifier snapshot statistics
//   /eswitch/rules[,FIRST_ID]      rules, 64 per page from rule id FIRST_ID; "next" names the following page
//   /eswitch/rule,ID               one rule: match, actions, counters
//   /eswitch/counters              switch-wide totals: packets in/out, drops by reason, count-action totals
//
// Threading: the callbacks run in DPDK's telemetry threads and never touch the Switch. eswitchd's main thread
// publishes snapshots (plain data under a mutex): the cheap parts every ~200 ms and after each apply; the rule
// list (whose cost grows with the rule count) only when a telemetry client asked for rules, tables or counters:
// such a callback waits up to a second for the main loop to refresh it, then answers with what it has and says
// how old it is ("age_ms").

#include <cstdint>
#include <string>

namespace esw::dp {

class Switch;

struct TelemetryInfo {
  std::string api_socket;
  uint64_t generation = 0;
  std::string config_hash;
};

class Telemetry {
 public:
  // Registers the /eswitch/ commands. Once per process, after rte_eal_init(); later calls do nothing.
  static void register_commands();

  // Main thread. Refreshes the cheap snapshot (ports, vports, info), and the rule snapshot when `with_rules`.
  static void publish(const Switch& sw, const TelemetryInfo& info, bool with_rules);

  // Main thread. True when a telemetry client is waiting for a fresher rule snapshot.
  static bool rules_wanted();

  // Drops the snapshots (before the Switch goes away); the commands then answer with "running": 0.
  static void clear();
};

}  // namespace esw::dp
