#include "dataplane/daemon/telemetry.h"

#include <rte_cycles.h>
#include <rte_telemetry.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "dataplane/daemon/eal.h"
#include "dataplane/ports/port.h"
#include "dataplane/fastpath/stats.h"
#include "dataplane/daemon/switch.h"

namespace esw::dp {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kRulesPerPage = 64;
// Above this many ports a full listing would not fit DPDK's 16 KiB telemetry reply: list names only.
constexpr size_t kMaxDetailedPorts = 32;
constexpr auto kRulesMaxAge = std::chrono::seconds(1);
constexpr auto kRulesWait = std::chrono::seconds(1);

struct PortSnap {
  std::string name;
  std::string role;
  std::string driver;
  bool link_up = false;
  PortCounters counters;
  PeerStatus peer;  // the backend's session with its peer (a vhost-user guest): present = false when none
};

struct VportSnap {
  std::string name;
  std::string representor;
  bool active = false;
  uint64_t rx_packets = 0;
  uint64_t tx_packets = 0;
  std::vector<std::pair<std::string, uint64_t>> drops;
  PeerStatus peer;  // its port's (same name), as in `eswitchctl show ports`
};

struct TableSnap {
  std::string name;
  uint64_t rules = 0;
  uint64_t packets = 0;
  uint64_t bytes = 0;
  std::string miss;
};

struct Snapshot {
  TelemetryInfo info;
  SmcReport smc;
  unsigned workers = 0;
  std::vector<PortSnap> ports;
  std::vector<VportSnap> vports;
  ClassifierStats classifier;
  std::vector<WorkerCycleStats> worker_cycles;
  size_t configured_tables = 0;
  Clock::time_point at;
};

struct RuleSnapshot {
  std::vector<RuleStats> rules;  // by id order
  std::map<unsigned, TableSnap> tables;
  Clock::time_point at;
};

struct State {
  std::mutex mu;
  std::condition_variable cv;
  std::shared_ptr<const Snapshot> snap;
  std::shared_ptr<const RuleSnapshot> rules;
  uint64_t rules_requested = 0;  // bumped by callbacks that need a fresher rule snapshot
  uint64_t rules_served = 0;     // the request number the current rule snapshot answers
  bool registered = false;
  Clock::time_point started = Clock::now();
  std::shared_ptr<EventLoop::Notifier> waker;  // the main loop's: a rule refresh is wanted
};

State& state() {
  static State s;
  return s;
}

std::shared_ptr<const Snapshot> current() {
  State& s = state();
  std::lock_guard lock(s.mu);
  return s.snap;
}

// Returns a rule snapshot at most kRulesMaxAge old if the main loop delivers one within kRulesWait.
std::shared_ptr<const RuleSnapshot> current_rules() {
  State& s = state();
  std::unique_lock lock(s.mu);
  if (s.snap == nullptr) return s.rules;  // not running: nobody would answer
  if (s.rules != nullptr && Clock::now() - s.rules->at <= kRulesMaxAge) return s.rules;
  const uint64_t ticket = ++s.rules_requested;
  if (s.waker != nullptr) s.waker->notify();  // non-blocking: a flag and an eventfd write
  s.cv.wait_for(lock, kRulesWait, [&] { return s.rules_served >= ticket || s.snap == nullptr; });
  return s.rules;
}

int64_t age_ms(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

void add_u64(rte_tel_data* d, const std::string& name, uint64_t v) { rte_tel_data_add_dict_u64(d, name.c_str(), v); }
void add_str(rte_tel_data* d, const std::string& name, const std::string& v) {
  // Telemetry strings hold at most 127 characters: keep the start and mark the cut.
  if (v.size() < RTE_TEL_MAX_STRING_LEN) {
    rte_tel_data_add_dict_string(d, name.c_str(), v.c_str());
  } else {
    rte_tel_data_add_dict_string(d, name.c_str(), (v.substr(0, RTE_TEL_MAX_STRING_LEN - 4) + "...").c_str());
  }
}

void port_counters(rte_tel_data* d, const PortCounters& c, bool by_reason) {
  add_u64(d, "rx_packets", c.rx_packets);
  add_u64(d, "rx_bytes", c.rx_bytes);
  add_u64(d, "tx_packets", c.tx_packets);
  add_u64(d, "tx_bytes", c.tx_bytes);
  add_u64(d, "tx_dropped", c.tx_dropped);
  add_u64(d, "dropped", c.dropped_total());
  if (by_reason) {
    for (size_t i = 0; i < c.dropped.size(); ++i) {
      add_u64(d, fmt::format("dropped_{}", drop_reason_name(static_cast<DropReason>(i))), c.dropped[i]);
    }
  }
}

// A vhost-user session (PeerStatus), flat as dpdk-telemetry.py shows dicts: connection, negotiated features,
// migration state, per queue pair rx/tx/drops, the engine's own counters.
void peer_fields(rte_tel_data* d, const PeerStatus& p) {
  add_u64(d, "vhost_connected", p.connected ? 1 : 0);
  add_u64(d, "vhost_features", p.features);
  add_u64(d, "vhost_connects", p.connects);
  add_u64(d, "vhost_disconnects", p.disconnects);
  if (!p.state.empty()) add_str(d, "migration_state", p.state);
  for (size_t q = 0; q < p.queues.size(); ++q) {
    const PeerQueue& x = p.queues[q];
    add_u64(d, fmt::format("q{}_enabled", q), x.rx_enabled && x.tx_enabled ? 1 : 0);
    add_u64(d, fmt::format("q{}_rx_packets", q), x.rx_packets);
    add_u64(d, fmt::format("q{}_tx_packets", q), x.tx_packets);
    add_u64(d, fmt::format("q{}_tx_dropped", q), x.tx_dropped);
  }
  for (const auto& [k, v] : p.counters) add_u64(d, "vhost_" + k, v);
}

bool has_param(const char* params) { return params != nullptr && params[0] != '\0'; }

int not_running(rte_tel_data* d) {
  rte_tel_data_start_dict(d);
  add_u64(d, "running", 0);
  return 0;
}

// No rule snapshot yet: eswitchd is running but its main thread has not answered (a long apply in progress).
int no_rules(rte_tel_data* d) {
  if (current() == nullptr) return not_running(d);
  rte_tel_data_start_dict(d);
  add_u64(d, "running", 1);
  add_str(d, "status", "busy: eswitchd's main thread has not published the rules yet; ask again");
  return 0;
}

int cmd_info(const char*, const char*, rte_tel_data* d) {
  auto snap = current();
  if (snap == nullptr) return not_running(d);
  rte_tel_data_start_dict(d);
  add_u64(d, "running", 1);
  add_u64(d, "pid", static_cast<uint64_t>(getpid()));
  add_str(d, "file_prefix", Eal::file_prefix());
  add_str(d, "api_socket", snap->info.api_socket);
  add_u64(d, "generation", snap->info.generation);
  add_str(d, "config_hash", snap->info.config_hash);
  add_u64(d, "uptime_s", static_cast<uint64_t>(age_ms(state().started) / 1000));
  add_u64(d, "workers", snap->workers);
  add_u64(d, "ports", snap->ports.size());
  add_u64(d, "vports", snap->vports.size());
  add_u64(d, "tables", snap->classifier.tables);
  add_u64(d, "rules", snap->classifier.rules);
  add_u64(d, "age_ms", static_cast<uint64_t>(age_ms(snap->at)));
  return 0;
}

int cmd_ports(const char*, const char* params, rte_tel_data* d) {
  auto snap = current();
  if (snap == nullptr) return not_running(d);
  if (has_param(params)) {
    for (const auto& p : snap->ports) {
      if (p.name != params) continue;
      rte_tel_data_start_dict(d);
      add_str(d, "name", p.name);
      add_str(d, "role", p.role);
      add_str(d, "driver", p.driver);
      add_u64(d, "link_up", p.link_up ? 1 : 0);
      port_counters(d, p.counters, true);
      if (p.peer.present) peer_fields(d, p.peer);
      return 0;
    }
    return -1;  // no such port: dpdk-telemetry.py prints null
  }
  if (snap->ports.size() > kMaxDetailedPorts) {
    rte_tel_data_start_array(d, RTE_TEL_STRING_VAL);
    for (const auto& p : snap->ports) rte_tel_data_add_array_string(d, p.name.c_str());
    return 0;
  }
  rte_tel_data_start_dict(d);
  for (const auto& p : snap->ports) {
    rte_tel_data* c = rte_tel_data_alloc();
    if (c == nullptr) return -1;
    rte_tel_data_start_dict(c);
    add_str(c, "role", p.role);
    add_u64(c, "link_up", p.link_up ? 1 : 0);
    port_counters(c, p.counters, false);
    rte_tel_data_add_dict_container(d, p.name.c_str(), c, 0);
  }
  return 0;
}

int cmd_vports(const char*, const char* params, rte_tel_data* d) {
  auto snap = current();
  if (snap == nullptr) return not_running(d);
  auto totals = [](const VportSnap& v) {
    uint64_t t = 0;
    for (const auto& [reason, n] : v.drops) t += n;
    return t;
  };
  if (has_param(params)) {
    for (const auto& v : snap->vports) {
      if (v.name != params) continue;
      rte_tel_data_start_dict(d);
      add_str(d, "name", v.name);
      add_str(d, "representor", v.representor);
      add_u64(d, "active", v.active ? 1 : 0);
      add_u64(d, "rx_packets", v.rx_packets);
      add_u64(d, "tx_packets", v.tx_packets);
      add_u64(d, "drops", totals(v));
      for (const auto& [reason, n] : v.drops) add_u64(d, "drops_" + reason, n);
      if (v.peer.present) peer_fields(d, v.peer);
      return 0;
    }
    return -1;
  }
  if (snap->vports.size() > kMaxDetailedPorts) {
    rte_tel_data_start_array(d, RTE_TEL_STRING_VAL);
    for (const auto& v : snap->vports) rte_tel_data_add_array_string(d, v.name.c_str());
    return 0;
  }
  rte_tel_data_start_dict(d);
  for (const auto& v : snap->vports) {
    rte_tel_data* c = rte_tel_data_alloc();
    if (c == nullptr) return -1;
    rte_tel_data_start_dict(c);
    add_str(c, "representor", v.representor);
    add_u64(c, "active", v.active ? 1 : 0);
    add_u64(c, "rx_packets", v.rx_packets);
    add_u64(c, "tx_packets", v.tx_packets);
    add_u64(c, "drops", totals(v));
    if (v.peer.present) {
      add_u64(c, "vhost_connected", v.peer.connected ? 1 : 0);
      if (!v.peer.state.empty()) add_str(c, "migration_state", v.peer.state);
    }
    rte_tel_data_add_dict_container(d, v.name.c_str(), c, 0);
  }
  return 0;
}

int cmd_tables(const char*, const char*, rte_tel_data* d) {
  auto rules = current_rules();
  if (rules == nullptr) return no_rules(d);
  rte_tel_data_start_dict(d);
  size_t n = 0;
  for (const auto& [id, t] : rules->tables) {
    if (++n >= RTE_TEL_MAX_DICT_ENTRIES) break;
    rte_tel_data* c = rte_tel_data_alloc();
    if (c == nullptr) return -1;
    rte_tel_data_start_dict(c);
    add_str(c, "name", t.name);
    add_u64(c, "rules", t.rules);
    add_u64(c, "packets", t.packets);
    add_u64(c, "bytes", t.bytes);
    add_str(c, "miss", t.miss);
    rte_tel_data_add_dict_container(d, fmt::format("{}", id).c_str(), c, 0);
  }
  add_u64(d, "age_ms", static_cast<uint64_t>(age_ms(rules->at)));
  return 0;
}

int cmd_classifier(const char*, const char*, rte_tel_data* d) {
  auto snap = current();
  if (snap == nullptr) return not_running(d);
  const ClassifierStats& c = snap->classifier;
  rte_tel_data_start_dict(d);
  add_u64(d, "version", c.version);
  add_u64(d, "rules", c.rules);
  add_u64(d, "tables", c.tables);
  add_u64(d, "subtables", c.subtables);
  add_u64(d, "snapshot_bytes", c.snapshot_bytes);
  add_u64(d, "index_bytes", c.index_bytes);
  add_u64(d, "published", c.published);
  add_u64(d, "freed", c.freed);
  add_u64(d, "pending_reclaim", c.pending_reclaim);
  return 0;
}

// Per worker: busy/idle TSC cycles, packets and busy loop iterations since start (a client differences two reads;
// cycles per packet = busy cycles / packets), and the TSC rate.
int cmd_workers(const char*, const char*, rte_tel_data* d) {
  auto snap = current();
  if (snap == nullptr) return not_running(d);
  rte_tel_data_start_dict(d);
  add_u64(d, "tsc_hz", rte_get_tsc_hz());
  for (const WorkerCycleStats& w : snap->worker_cycles) {
    rte_tel_data* c = rte_tel_data_alloc();
    if (c == nullptr) return -1;
    rte_tel_data_start_dict(c);
    add_u64(c, "lcore", w.lcore);
    add_u64(c, "busy_cycles", w.cycles.busy_cycles);
    add_u64(c, "idle_cycles", w.cycles.idle_cycles);
    add_u64(c, "packets", w.cycles.packets);
    add_u64(c, "busy_loops", w.cycles.busy_loops);
    add_u64(c, "cycles_per_packet", w.cycles.packets != 0 ? w.cycles.busy_cycles / w.cycles.packets : 0);
    rte_tel_data_add_dict_container(d, fmt::format("{}", w.index).c_str(), c, 0);
  }
  return 0;
}

bool parse_u32(const char* params, uint32_t& out) {
  char* end = nullptr;
  const unsigned long v = std::strtoul(params, &end, 10);
  if (end == params || *end != '\0' || v > UINT32_MAX) return false;
  out = static_cast<uint32_t>(v);
  return true;
}

int cmd_rules(const char*, const char* params, rte_tel_data* d) {
  uint32_t first = 0;
  if (has_param(params) && !parse_u32(params, first)) return -1;
  auto rules = current_rules();
  if (rules == nullptr) return no_rules(d);
  rte_tel_data_start_dict(d);
  add_u64(d, "total", rules->rules.size());
  auto it = std::lower_bound(rules->rules.begin(), rules->rules.end(), first,
                             [](const RuleStats& r, uint32_t id) { return r.id < id; });
  size_t n = 0;
  for (; it != rules->rules.end() && n < kRulesPerPage; ++it, ++n) {
    rte_tel_data* c = rte_tel_data_alloc();
    if (c == nullptr) return -1;
    rte_tel_data_start_dict(c);
    add_u64(c, "table", it->table);
    add_u64(c, "priority", it->priority);
    add_u64(c, "packets", it->packets);
    add_u64(c, "bytes", it->bytes);
    add_str(c, "where", it->where);
    rte_tel_data_add_dict_container(d, fmt::format("{}", it->id).c_str(), c, 0);
  }
  if (it != rules->rules.end()) add_u64(d, "next", it->id);
  add_u64(d, "age_ms", static_cast<uint64_t>(age_ms(rules->at)));
  return 0;
}

int cmd_rule(const char*, const char* params, rte_tel_data* d) {
  uint32_t id = 0;
  if (!has_param(params) || !parse_u32(params, id)) return -1;
  auto rules = current_rules();
  if (rules == nullptr) return no_rules(d);
  auto it = std::lower_bound(rules->rules.begin(), rules->rules.end(), id,
                             [](const RuleStats& r, uint32_t v) { return r.id < v; });
  if (it == rules->rules.end() || it->id != id) return -1;
  rte_tel_data_start_dict(d);
  add_u64(d, "id", it->id);
  add_u64(d, "table", it->table);
  add_u64(d, "priority", it->priority);
  add_str(d, "where", it->where);
  add_str(d, "match", it->match);
  add_str(d, "actions", it->actions);
  add_u64(d, "packets", it->packets);
  add_u64(d, "bytes", it->bytes);
  add_u64(d, "age_ms", static_cast<uint64_t>(age_ms(rules->at)));
  return 0;
}

int cmd_counters(const char*, const char*, rte_tel_data* d) {
  auto snap = current();
  if (snap == nullptr) return not_running(d);
  auto rules = current_rules();
  PortCounters total;
  for (const auto& p : snap->ports) total += p.counters;
  rte_tel_data_start_dict(d);
  port_counters(d, total, true);
  if (rules != nullptr) {
    uint64_t packets = 0, bytes = 0, counted = 0;
    for (const auto& r : rules->rules) {
      packets += r.packets;
      bytes += r.bytes;
      counted += r.packets != 0 ? 1 : 0;
    }
    add_u64(d, "rule_packets", packets);
    add_u64(d, "rule_bytes", bytes);
    add_u64(d, "rules_hit", counted);
    add_u64(d, "rules_age_ms", static_cast<uint64_t>(age_ms(rules->at)));
  }
  add_u64(d, "age_ms", static_cast<uint64_t>(age_ms(snap->at)));
  return 0;
}

// /eswitch/smc: the session table's counters and sessions by state; per-session detail is `eswitchctl show smc`
// (a telemetry reply holds 16 KiB).
int cmd_smc(const char*, const char*, rte_tel_data* d) {
  auto snap = current();
  if (snap == nullptr) return not_running(d);
  const SmcReport& r = snap->smc;
  rte_tel_data_start_dict(d);
  add_u64(d, "sessions", r.sessions.size());
  std::map<std::string, uint64_t> by_state;
  for (const auto& s : r.sessions) by_state[s.state]++;
  for (const auto& [state, n] : by_state) add_u64(d, "sessions_" + state, n);
  add_u64(d, "sessions_created", r.table.created);
  add_u64(d, "sessions_overflow", r.table.overflow);
  add_u64(d, "sessions_ended_fin", r.table.ended_fin);
  add_u64(d, "sessions_ended_rst", r.table.ended_rst);
  add_u64(d, "sessions_aged", r.table.aged);
  add_u64(d, "declines", r.table.declines);
  add_u64(d, "clc_parsed", r.table.clc_parsed);
  add_u64(d, "clc_invalid", r.table.clc_invalid);
  add_u64(d, "clc_unexpected", r.table.clc_unexpected);
  add_u64(d, "clc_incomplete", r.table.clc_incomplete);
  add_u64(d, "events_enqueued", r.events_enqueued);
  add_u64(d, "events_lost", r.events_lost);
  add_u64(d, "events_read", r.table.events);
  add_u64(d, "qp_grants", r.qp_grants);
  add_u64(d, "rkey_grants", r.rkey_grants);
  uint64_t syn = 0, stripped = 0, clc = 0, qp = 0, rkey = 0;
  for (const auto& v : r.vports) {
    syn += v.smc_syn;
    stripped += v.smc_option_stripped;
    clc += v.smc_clc;
    qp += v.roce_qp_not_granted;
    rkey += v.roce_rkey_not_granted;
  }
  add_u64(d, "smc_syn", syn);
  add_u64(d, "smc_option_stripped", stripped);
  add_u64(d, "smc_clc", clc);
  add_u64(d, "roce_qp_not_granted", qp);
  add_u64(d, "roce_rkey_not_granted", rkey);
  add_u64(d, "age_ms", static_cast<uint64_t>(age_ms(snap->at)));
  return 0;
}

}  // namespace

void Telemetry::register_commands() {
  State& s = state();
  {
    std::lock_guard lock(s.mu);
    if (s.registered) return;
    s.registered = true;
  }
  rte_telemetry_register_cmd("/eswitch/smc", cmd_smc,
                             "eswitch SMC: sessions by state, CLC and event counters, grants, option strips");
  rte_telemetry_register_cmd("/eswitch/info", cmd_info, "eswitch: pid, file prefix, API socket, config generation");
  rte_telemetry_register_cmd("/eswitch/ports", cmd_ports, "eswitch port counters. Parameters: port name (optional)");
  rte_telemetry_register_cmd("/eswitch/vports", cmd_vports,
                             "eswitch vport counters and drops. Parameters: vport name (optional)");
  rte_telemetry_register_cmd("/eswitch/tables", cmd_tables, "eswitch tables: rules and count-action totals");
  rte_telemetry_register_cmd("/eswitch/classifier", cmd_classifier, "eswitch classifier snapshot statistics");
  rte_telemetry_register_cmd("/eswitch/workers", cmd_workers,
                             "eswitch workers: busy/idle TSC cycles, packets, cycles per packet (since start)");
  rte_telemetry_register_cmd("/eswitch/rules", cmd_rules,
                             "eswitch rules, 64 per page. Parameters: first rule id (optional)");
  rte_telemetry_register_cmd("/eswitch/rule", cmd_rule, "one eswitch rule. Parameters: rule id");
  rte_telemetry_register_cmd("/eswitch/counters", cmd_counters,
                             "eswitch totals: packets, drops by reason, count-action totals");
}

void Telemetry::publish(const Switch& sw, const TelemetryInfo& info, bool with_rules) {
  auto snap = std::make_shared<Snapshot>();
  snap->info = info;
  snap->workers = static_cast<unsigned>(sw.config().dataplane.worker_cores.size());
  std::map<std::string, PeerStatus> peers;  // ports with a peer session (vhost-user vports), by name
  for (const auto& port : sw.ports()) {
    if (port == nullptr) continue;
    PeerStatus ps = port->peer_status();
    if (ps.present) peers[port->name()] = std::move(ps);
  }
  auto peer_of = [&](const std::string& name) {
    auto it = peers.find(name);
    return it != peers.end() ? it->second : PeerStatus{};
  };
  for (const PortStats& p : sw.port_stats()) {
    snap->ports.push_back({p.name, port_role_name(p.role), p.driver, p.link_up, p.counters, peer_of(p.name)});
  }
  for (const VportStats& v : sw.vport_stats()) {
    snap->vports.push_back({v.name, v.representor, v.active, v.rx_packets, v.tx_packets, v.drops, peer_of(v.name)});
  }
  snap->classifier = sw.classifier_stats();
  snap->worker_cycles = sw.worker_cycles();
  snap->smc = sw.smc_report();
  snap->configured_tables = sw.config().tables.size();
  snap->at = Clock::now();

  std::shared_ptr<RuleSnapshot> rules;
  uint64_t ticket = 0;
  if (with_rules) {
    {
      std::lock_guard lock(state().mu);
      ticket = state().rules_requested;
    }
    rules = std::make_shared<RuleSnapshot>();
    rules->rules = sw.rule_stats();
    std::sort(rules->rules.begin(), rules->rules.end(),
              [](const RuleStats& a, const RuleStats& b) { return a.id < b.id; });
    for (const auto& t : sw.config().tables) {
      TableSnap& ts = rules->tables[t.id];
      ts.name = t.name;
      for (const auto& a : t.miss) {
        if (!ts.miss.empty()) ts.miss += ",";
        ts.miss += a.arg.empty() ? a.name : a.name + ":" + a.arg;
      }
    }
    for (const auto& r : rules->rules) {
      TableSnap& ts = rules->tables[r.table];
      ++ts.rules;
      ts.packets += r.packets;
      ts.bytes += r.bytes;
    }
    for (auto& [id, ts] : rules->tables) {
      if (ts.miss.empty()) ts.miss = "to_representor";
    }
    rules->at = Clock::now();
  }

  State& s = state();
  {
    std::lock_guard lock(s.mu);
    s.snap = std::move(snap);
    if (rules != nullptr) {
      s.rules = std::move(rules);
      s.rules_served = ticket;
    }
  }
  if (with_rules) s.cv.notify_all();
}

bool Telemetry::rules_wanted() {
  State& s = state();
  std::lock_guard lock(s.mu);
  return s.rules_requested > s.rules_served;
}

void Telemetry::clear() {
  State& s = state();
  {
    std::lock_guard lock(s.mu);
    s.snap.reset();
    s.rules.reset();
  }
  s.cv.notify_all();
}

void Telemetry::set_rules_waker(std::shared_ptr<EventLoop::Notifier> waker) {
  State& s = state();
  std::lock_guard lock(s.mu);
  s.waker = std::move(waker);
}

TelemetryPublisher::TelemetryPublisher(EventLoop& loop, const Switch& sw, std::function<TelemetryInfo()> info,
                                       std::chrono::milliseconds period)
    : loop_(loop), sw_(sw), info_(std::move(info)) {
  timer_ = loop_.add_timer(period, [this] { publish_now(); }, "telemetry snapshot");
  rules_wanted_ = loop_.add_notifier([this] { publish_now(); }, "telemetry: a client waits for rules");
  Telemetry::set_rules_waker(rules_wanted_);
  publish_now();
}

TelemetryPublisher::~TelemetryPublisher() {
  Telemetry::set_rules_waker(nullptr);
  loop_.remove(rules_wanted_->id());
  loop_.remove(timer_);
  Telemetry::clear();
}

void TelemetryPublisher::publish_now() { Telemetry::publish(sw_, info_(), Telemetry::rules_wanted()); }

}  // namespace esw::dp
