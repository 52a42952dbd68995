#pragma once
// eswitch commands for DPDK telemetry (rte_telemetry), readable with the stock dpdk-telemetry.py:
//
//   /eswitch/info                  pid, file prefix, API socket, config generation and hash, counts
//   /eswitch/ports[,NAME]          per-port counters (all ports, or one port with drops by reason)
//   /eswitch/vports[,NAME]         per-vport counters (all vports, or one vport with drops by reason); a vhost-user
//                                  vport adds its session: vhost_connected, migration_state, and with NAME the
//                                  negotiated vhost_features, per queue pair qN_rx/tx_packets, qN_tx_dropped and
//                                  the engine's counters (vhost_*); /eswitch/ports,NAME the same
//   /eswitch/tables                per-table rule count and count-action totals
//   /eswitch/classifier            classifier snapshot statistics
//   /eswitch/workers               per worker: busy/idle TSC cycles, packets, cycles per packet
//   /eswitch/rules[,FIRST_ID]      rules, 64 per page from rule id FIRST_ID; "next" names the following page
//   /eswitch/rule,ID               one rule: match, actions, counters
//   /eswitch/counters              switch-wide totals: packets in/out, drops by reason, count-action totals
//
// Threading: the callbacks run in DPDK's telemetry threads and never touch the Switch. eswitchd's main thread
// publishes snapshots (plain data under a mutex) from its event loop (TelemetryPublisher): the cheap parts on a
// 200 ms timer and after each apply; the rule list (whose cost grows with the rule count) only when a telemetry
// client asked for rules, tables or counters: such a callback wakes the loop through a notifier and waits up to
// a second for the refresh, then answers with what it has and says how old it is ("age_ms").

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "dataplane/daemon/event_loop.h"

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

  // Any thread: a callback wants fresher rules; wakes whoever set_rules_waker() registered (nobody: no-op).
  static void set_rules_waker(std::shared_ptr<EventLoop::Notifier> waker);
};

// Publishes the snapshots from `loop`: the cheap parts every `period` (with the rules too when a client waits for
// them), and the rules at once when a telemetry callback asks for them. Main (loop) thread only; one at a time.
class TelemetryPublisher {
 public:
  TelemetryPublisher(EventLoop& loop, const Switch& sw, std::function<TelemetryInfo()> info,
                     std::chrono::milliseconds period = std::chrono::milliseconds(200));
  TelemetryPublisher(const TelemetryPublisher&) = delete;
  TelemetryPublisher& operator=(const TelemetryPublisher&) = delete;
  ~TelemetryPublisher();  // unregisters from the loop and clears the snapshots

  // Publishes now (eswitchd calls it after each apply that changed something).
  void publish_now();

 private:
  EventLoop& loop_;
  const Switch& sw_;
  std::function<TelemetryInfo()> info_;
  EventLoop::Id timer_ = 0;
  std::shared_ptr<EventLoop::Notifier> rules_wanted_;
};

}  // namespace esw::dp
