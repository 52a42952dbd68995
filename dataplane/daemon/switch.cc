#include "dataplane/daemon/switch.h"

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
#include "dataplane/rules/binding_build.h"
#include "dataplane/rules/packet_synth.h"
#include "dataplane/fastpath/parser.h"

namespace esw::dp {

namespace {

std::string representor_name(const std::string& vport) { return "rep-" + vport; }

// A representor is the host end of a vport's wire. Left alone, the host's IPv6 stack would start talking on it
// (link-local address, DAD, router solicitations, MLD) and those frames would reach the guest unasked; the
// operator can turn IPv6 back on (sysctl net.ipv6.conf.rep-<vport>.disable_ipv6=0).
void quiet_host_end(const std::string& ifname) {
  if (FILE* f = fopen(fmt::format("/proc/sys/net/ipv6/conf/{}/disable_ipv6", ifname).c_str(), "w")) {
    fputs("1", f);
    fclose(f);
  }
}

// The binding-relevant part of a vport, for diffs.
std::string binding_text(const cfg::VportConfig& v) {
  std::string ips;
  for (const auto& a : v.ipv4) ips += a + " ";
  for (const auto& a : v.ipv6) ips += a + " ";
  return fmt::format("hw_addr={} ip=[{}] vlan={} state={} spoofchk={} trust={} roce={} smc={} dhcp_client={} "
                     "egress_multicast={} tx_max_bps={}",
                     v.hw_addr.value_or("-"), ips, v.vlan ? std::to_string(*v.vlan) : "-",
                     v.state == cfg::VportState::kActive ? "active" : "inactive", v.spoofchk, v.trust, v.roce,
                     v.smc == cfg::SmcPolicy::kAllow ? "allow" : "deny", v.dhcp_client, v.egress_multicast,
                     v.rate.tx_max_bps);
}

// Rule identity as two independent 64-bit hashes (std::hash and FNV-1a): equal text -> equal pair; a collision
// of both for different rules is not a practical concern at 2^-128.
void identity_hash(const std::string& s, uint64_t out[2]) {
  out[0] = std::hash<std::string>{}(s);
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  out[1] = h;
}

struct PairHash {
  size_t operator()(const std::pair<uint64_t, uint64_t>& p) const { return p.first ^ (p.second * 0x9e3779b97f4a7c15ull); }
};

bool same_dataplane(const cfg::DataplaneConfig& a, const cfg::DataplaneConfig& b) {
  return a.main_core == b.main_core && a.worker_cores == b.worker_cores && a.memory_mb == b.memory_mb &&
         a.hugepages == b.hugepages && a.mbufs == b.mbufs && a.mbuf_cache == b.mbuf_cache &&
         a.rx_queue_size == b.rx_queue_size && a.tx_queue_size == b.tx_queue_size && a.burst == b.burst &&
         a.idle_sleep_us == b.idle_sleep_us && a.file_prefix == b.file_prefix && a.eal_extra == b.eal_extra &&
         a.max_rules == b.max_rules && a.flow_cache_entries == b.flow_cache_entries &&
         a.flow_cache_insert_inv_prob == b.flow_cache_insert_inv_prob && a.api_socket == b.api_socket &&
         a.api_socket_group == b.api_socket_group;
}

}  // namespace

// What one apply will do, computed before anything changes.
struct Switch::Plan {
  cfg::Config desired;
  struct Slot {
    std::string name;
    PortRole role = PortRole::kVport;
    cfg::Attachment attach;
    std::string vport;  // representors: their vport
    bool is_new = false;
    std::string where;  // config path, for errors
    int line = 0;
  };
  std::array<Slot, kMaxPorts> slots;  // planned ports by index (name "" = free)
  std::vector<uint16_t> to_close;     // current ports that go away
  uint16_t nb_ports = 0;
  PortNames names;
  CompiledRuleSet compiled;
  std::vector<std::unique_ptr<Binding>> bindings;  // parallel to desired.vports
  std::vector<MeterProfile> meters;                // user meters, then vport rate meters
  struct Keep {
    uint32_t id;
    RuleDef::Origin origin;
    uint32_t a, b;
  };
  std::vector<Keep> keep;                          // installed rules that stay, with their (new) origin
  std::vector<uint32_t> keep_by_source;            // installed ids reused without compiling (subset of keep)
  uint64_t context[2] = {0, 0};
  std::vector<size_t> add;                         // compiled rules that need an id
  std::vector<uint32_t> remove_ids;
  std::vector<unsigned> add_tables, remove_tables;
};

Switch::Switch(const cfg::Config& config) {
  if (!Eal::initialised()) throw Error("switch: the EAL is not initialised");
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

size_t Switch::port_count() const {
  return static_cast<size_t>(std::count_if(slots_.begin(), slots_.end(), [](const auto& p) { return p != nullptr; }));
}

bool Switch::plan(const cfg::Config& desired, const std::vector<TableDef>& extra_tables,
                  const std::vector<RuleDef>& extra_rules, const std::vector<MeterProfile>& extra_meters,
                  bool keep_config_rules, Plan& p, ApplyResult& result) {
  p.desired = desired;
  auto error = [&](const std::string& path, int line, const std::string& msg) {
    cfg::Error e;
    e.path = path;
    e.line = line;
    e.message = msg;
    result.errors.push_back(std::move(e));
  };

  if (current_ != nullptr && !same_dataplane(config_.dataplane, desired.dataplane)) {
    result.restart_required = true;
    result.diff.push_back({'~', "dataplane", "dataplane", "changed; takes effect when eswitchd restarts"});
    p.desired.dataplane = config_.dataplane;  // the running process keeps what it started with
  }

  // Ports: keep the index of every port that stays, give new ones free slots (never a slot freed by this same
  // apply: a worker may still hold it until the grace period ends).
  std::map<std::string, uint16_t> current;
  for (uint16_t i = 0; i < kMaxPorts; ++i) {
    if (slots_[i]) current.emplace(slots_[i]->name(), i);
  }
  std::vector<Plan::Slot> wanted;
  for (size_t i = 0; i < desired.uplinks.size(); ++i) {
    const auto& u = desired.uplinks[i];
    wanted.push_back({u.name, PortRole::kUplink, u.attach, "", false, fmt::format("uplinks[{}]", i), u.line});
  }
  for (size_t i = 0; i < desired.vports.size(); ++i) {
    const auto& v = desired.vports[i];
    wanted.push_back({v.name, PortRole::kVport, v.attach, "", false, fmt::format("vports[{}]", i), v.line});
    if (desired.representors.kind == cfg::RepresentorKind::kTap) {
      cfg::Attachment a;
      a.devargs = fmt::format("net_tap_rep_{},iface={}", v.name, representor_name(v.name));
      wanted.push_back({representor_name(v.name), PortRole::kRepresentor, a, v.name, false,
                        fmt::format("vports[{}] (representor)", i), v.line});
    }
  }
  std::set<uint16_t> used;
  std::set<std::string> wanted_names;
  for (auto& w : wanted) {
    wanted_names.insert(w.name);
    auto it = current.find(w.name);
    if (it == current.end()) continue;
    const Port& port = *slots_[it->second];
    if (port.spec().role != w.role || port.spec().devargs != w.attach.devargs ||
        port.spec().rx_queues != std::max<uint16_t>(w.attach.rx_queues, 1)) {
      error(w.where + ".attach", w.line,
            fmt::format("port {} is live on '{}'; changing its attachment or role in place is not supported: "
                        "remove it in one apply and add it back in the next",
                        w.name, port.spec().devargs));
      // Keep planning with the port where it is, so the rules that name it compile and their own errors (if
      // any) are reported too; the apply fails anyway.
    }
    p.slots[it->second] = w;
    used.insert(it->second);
  }
  for (const auto& [name, idx] : current) {
    if (!wanted_names.count(name)) p.to_close.push_back(idx);
  }
  uint16_t next_free = 0;
  for (auto& w : wanted) {
    if (current.count(w.name)) continue;
    while (next_free < kMaxPorts && (used.count(next_free) || slots_[next_free] != nullptr)) ++next_free;
    if (next_free == kMaxPorts) {
      error(w.where, w.line, fmt::format("no free port slot: at most {} ports (representors included)", kMaxPorts));
      break;
    }
    w.is_new = true;
    p.slots[next_free] = w;
    used.insert(next_free);
  }
  std::vector<std::string> names(kMaxPorts);
  for (uint16_t i = 0; i < kMaxPorts; ++i) {
    if (!p.slots[i].name.empty()) {
      names[i] = p.slots[i].name;
      p.nb_ports = static_cast<uint16_t>(i + 1);
    }
  }
  names.resize(p.nb_ports);
  p.names = PortNames::from_list(names);

  // Bindings and vport rate meters.
  std::vector<TableDef> tables;
  std::vector<RuleDef> rules;
  rules_from_config(desired, tables, rules, p.meters);
  if (keep_config_rules) rules.clear();
  tables.insert(tables.end(), extra_tables.begin(), extra_tables.end());
  for (size_t i = 0; i < extra_rules.size(); ++i) {
    rules.push_back(extra_rules[i]);
    rules.back().origin = RuleDef::Origin::kExtra;
    rules.back().origin_a = static_cast<uint32_t>(i);
  }
  p.meters.insert(p.meters.end(), extra_meters.begin(), extra_meters.end());
  for (size_t i = 0; i < desired.vports.size(); ++i) {
    const cfg::VportConfig& v = desired.vports[i];
    auto b = std::make_unique<Binding>();
    std::string e;
    if (!make_binding(v, *b, e)) error(fmt::format("vports[{}]", i), v.line, e);
    if (v.rate.tx_max_bps != 0) {
      MeterProfile m;
      m.cir = v.rate.tx_max_bps / 8;
      m.cbs = v.rate.tx_burst_bytes != 0 ? v.rate.tx_burst_bytes : std::max<uint64_t>(m.cir / 10, 2 * 1518);
      m.ebs_or_pbs = 0;
      b->rate_meter = static_cast<uint32_t>(p.meters.size());
      p.meters.push_back(m);
    }
    p.bindings.push_back(std::move(b));
  }
  if (p.meters.size() > kMaxMeters) error("meters", 0, fmt::format("{} meters, at most {}", p.meters.size(), kMaxMeters));

  // Rules whose source is unchanged, in an unchanged context (port indexes, meters), stay as they are: no
  // compile, same id, same counters. Everything else is compiled, then matched by its canonical identity.
  {
    std::string ctx;
    for (uint16_t i = 0; i < p.nb_ports; ++i) ctx += p.slots[i].name + "/";
    for (const MeterProfile& m : p.meters) ctx += fmt::format("{},{},{},{},{},{}/", m.tr_tcm, m.cir, m.pir, m.cbs, m.ebs_or_pbs, 0);
    identity_hash(ctx, p.context);
  }
  const bool same_context = p.context[0] == context_[0] && p.context[1] == context_[1];
  std::unordered_map<std::pair<uint64_t, uint64_t>, std::vector<const InstalledRule*>, PairHash> by_source;
  if (same_context) {
    by_source.reserve(rules_.size());
    for (const InstalledRule& r : rules_) {
      if (r.origin != RuleDef::Origin::kGenerated) by_source[{r.source[0], r.source[1]}].push_back(&r);
    }
  }
  std::unordered_map<uint32_t, bool> claimed;
  std::set<unsigned> kept_tables;
  if (keep_config_rules) {
    for (const InstalledRule& r : rules_) {
      if (r.origin != RuleDef::Origin::kConfig) continue;
      p.keep.push_back({r.id, r.origin, r.origin_a, r.origin_b});
      p.keep_by_source.push_back(r.id);
      claimed[r.id] = true;
      kept_tables.insert(r.table);
    }
  }
  std::vector<RuleDef> to_compile;
  to_compile.reserve(rules.size());
  for (RuleDef& r : rules) {
    uint64_t h[2];
    rule_source_hash(r, h);
    auto it = by_source.find({h[0], h[1]});
    if (it != by_source.end() && !it->second.empty()) {
      const InstalledRule* ir = it->second.back();
      it->second.pop_back();
      p.keep.push_back({ir->id, r.origin, r.origin_a, r.origin_b});
      p.keep_by_source.push_back(ir->id);
      claimed[ir->id] = true;
      kept_tables.insert(ir->table);
      continue;
    }
    to_compile.push_back(std::move(r));
  }

  RuleSetInput in;
  in.config = &desired;
  in.ports = &p.names;
  in.nb_ports = p.nb_ports;
  in.tables = std::move(tables);
  in.rules = std::move(to_compile);
  in.meters = p.meters;
  in.more_tables.assign(kept_tables.begin(), kept_tables.end());
  compile_rule_set(in, interner_, p.compiled, result.errors);
  if (!result.errors.empty()) return false;

  // Compiled rules: the same canonical identity keeps its id (and so its counters); the rest is added or removed.
  std::unordered_map<std::pair<uint64_t, uint64_t>, std::vector<uint32_t>, PairHash> have;
  have.reserve(rules_.size());
  for (const InstalledRule& r : rules_) {
    if (!claimed.count(r.id)) have[{r.identity[0], r.identity[1]}].push_back(r.id);
  }
  for (size_t i = 0; i < p.compiled.rules.size(); ++i) {
    uint64_t h[2];
    identity_hash(p.compiled.rules[i].identity, h);
    auto it = have.find({h[0], h[1]});
    if (it != have.end() && !it->second.empty()) {
      const CompiledRule& c = p.compiled.rules[i];
      p.keep.push_back({it->second.back(), c.origin, c.origin_a, c.origin_b});
      it->second.pop_back();
    } else {
      p.add.push_back(i);
    }
  }
  for (auto& [identity, ids] : have) p.remove_ids.insert(p.remove_ids.end(), ids.begin(), ids.end());
  const size_t live_rules = rules_.size() - p.remove_ids.size() + p.add.size();
  if (live_rules > max_rules_) {
    error("tables", 0, fmt::format("{} rules, at most {} (dataplane.max_rules)", live_rules, max_rules_));
    return false;
  }
  std::set<unsigned> now_tables;
  if (current_ != nullptr) {
    for (unsigned t = 0; t < kMaxTables; ++t) {
      if (classifier_->acquire()->tables[t] != nullptr) now_tables.insert(t);
    }
  }
  const std::set<unsigned> next_tables(p.compiled.tables.begin(), p.compiled.tables.end());
  for (unsigned t : next_tables) {
    if (!now_tables.count(t)) p.add_tables.push_back(t);
  }
  for (unsigned t : now_tables) {
    if (!next_tables.count(t)) p.remove_tables.push_back(t);
  }

  // The diff, for people.
  for (const auto& [name, idx] : current) {
    if (!wanted_names.count(name)) {
      result.diff.push_back({'-', port_role_name(slots_[idx]->spec().role), name, slots_[idx]->spec().devargs});
    }
  }
  for (uint16_t i = 0; i < p.nb_ports; ++i) {
    if (p.slots[i].is_new) result.diff.push_back({'+', port_role_name(p.slots[i].role), p.slots[i].name, p.slots[i].attach.devargs});
  }
  for (const auto& v : desired.vports) {
    auto old = std::find_if(config_.vports.begin(), config_.vports.end(), [&](const auto& o) { return o.name == v.name; });
    if (old != config_.vports.end() && binding_text(*old) != binding_text(v)) {
      result.diff.push_back({'~', "vport", v.name, binding_text(*old) + " -> " + binding_text(v)});
    }
  }
  for (unsigned t : p.add_tables) result.diff.push_back({'+', "table", std::to_string(t), ""});
  for (unsigned t : p.remove_tables) result.diff.push_back({'-', "table", std::to_string(t), ""});
  if (!p.remove_ids.empty()) {
    std::unordered_map<uint32_t, const InstalledRule*> by_id;
    for (const InstalledRule& r : rules_) by_id[r.id] = &r;
    for (uint32_t id : p.remove_ids) {
      const std::optional<RuleInfo> info = classifier_->find(id);
      std::string what;
      if (info) {
        const MaskedKey mk{info->spec.value, info->spec.mask, 0};
        what = fmt::format("{}|{}|{}|{}", info->spec.table, info->spec.priority, format_match(mk, names_),
                           format_actions(*static_cast<const ActionList*>(info->spec.actions), names_,
                                          info->spec.goto_table));
      }
      result.diff.push_back({'-', "rule", where_of(*by_id[id]), what});
    }
  }
  for (size_t i : p.add) result.diff.push_back({'+', "rule", p.compiled.rules[i].where, p.compiled.rules[i].identity});
  return true;
}

bool Switch::execute_plan(Plan& p, ApplyResult& result) {
  // 1. Open (and start) the new ports. Any failure undoes the ports this apply opened: nothing changed.
  std::vector<uint16_t> opened;
  auto undo_ports = [&] {
    for (uint16_t i : opened) close_port(i);
  };
  const uint16_t nb_workers = static_cast<uint16_t>(workers_.size());
  for (uint16_t i = 0; i < p.nb_ports; ++i) {
    const Plan::Slot& s = p.slots[i];
    if (!s.is_new) continue;
    PortSpec spec;
    spec.name = s.name;
    spec.role = s.role;
    spec.devargs = s.attach.devargs;
    spec.rx_queues = std::max<uint16_t>(s.attach.rx_queues, 1);
    spec.tx_queues = std::max<uint16_t>(s.attach.tx_queues, nb_workers);
    spec.rx_desc = config_.dataplane.rx_queue_size;
    spec.tx_desc = config_.dataplane.tx_queue_size;
    auto port = std::make_unique<Port>();
    try {
      port->open(spec, i, pool_);
      if (s.role == PortRole::kRepresentor) quiet_host_end(representor_name(s.vport));
      if (running_) port->start();
    } catch (const Error& e) {
      cfg::Error ce;
      ce.path = s.where + ".attach";
      ce.line = s.line;
      ce.message = e.what();
      result.errors.push_back(std::move(ce));
      port->close();
      undo_ports();
      return false;
    }
    slots_[i] = std::move(port);
    opened.push_back(i);
  }

  // 2. Tables: one classifier batch (tables first, then rules, removals last), published whole.
  std::vector<uint32_t> new_ids;
  for (size_t k = 0; k < p.add.size(); ++k) {
    if (!free_ids_.empty()) {
      new_ids.push_back(free_ids_.back());
      free_ids_.pop_back();
    } else {
      new_ids.push_back(next_id_++);
    }
  }
  Batch batch;
  batch.reserve(p.add.size() + p.remove_ids.size());
  for (unsigned t : p.add_tables) batch.add_table(t);
  for (size_t k = 0; k < p.add.size(); ++k) {
    RuleSpec s = p.compiled.rules[p.add[k]].spec;
    s.id = new_ids[k];
    batch.add(s);
  }
  for (uint32_t id : p.remove_ids) batch.remove(id);
  for (unsigned t : p.remove_tables) batch.remove_table(t);
  const CommitResult cr = classifier_->commit(batch);
  if (!cr.ok()) {
    cfg::Error ce;
    ce.path = "tables";
    ce.message = cr.message();
    result.errors.push_back(std::move(ce));
    free_ids_.insert(free_ids_.end(), new_ids.begin(), new_ids.end());
    undo_ports();
    return false;
  }

  // 3. The pipeline snapshot: port map, bindings, representors, meters.
  auto next = std::make_unique<Pipeline>();
  next->interner = &interner_;
  next->miss_actions = p.compiled.miss_actions;
  next->meters = std::move(p.compiled.meters);
  next->max_rules = max_rules_;
  next->generation = ++generation_;
  next->ports.nb_ports = p.nb_ports;
  std::map<std::string, uint16_t> index_of;
  for (uint16_t i = 0; i < p.nb_ports; ++i) {
    if (p.slots[i].name.empty()) continue;
    next->ports.dpdk_port[i] = slots_[i]->port_id();
    index_of[p.slots[i].name] = i;
  }
  for (size_t v = 0; v < p.desired.vports.size(); ++v) {
    const auto& vc = p.desired.vports[v];
    const uint16_t vi = index_of[vc.name];
    next->ports.binding[vi] = p.bindings[v].get();
    auto rep = index_of.find(representor_name(vc.name));
    if (rep != index_of.end()) {
      next->ports.representor_of[vi] = rep->second;
      next->ports.rep_peer[rep->second] = vi;
      // The representor's carrier follows the vport's state.
      if (slots_[rep->second]->is_started()) {
        if (vc.state == cfg::VportState::kActive) rte_eth_dev_set_link_up(slots_[rep->second]->port_id());
        else rte_eth_dev_set_link_down(slots_[rep->second]->port_id());
      }
    }
  }
  next->bindings = std::move(p.bindings);
  const bool meters_changed = current_ == nullptr || current_->meters.size() != next->meters.size() ||
                              !std::equal(next->meters.begin(), next->meters.end(), current_->meters.begin(),
                                          [](const MeterProfile& a, const MeterProfile& b) {
                                            return a.tr_tcm == b.tr_tcm && a.cir == b.cir && a.pir == b.pir &&
                                                   a.cbs == b.cbs && a.ebs_or_pbs == b.ebs_or_pbs;
                                          });
  next->meter_generation = meters_changed ? ++meter_generation_ : current_->meter_generation;

  pipeline_.publish(next.get());
  std::unique_ptr<Pipeline> old_pipeline = std::move(current_);
  current_ = std::move(next);
  std::vector<uint16_t> closing = p.to_close;

  // Representors and vports that go away must not be polled any more; new ones start being polled.
  names_ = p.names;
  {
    std::vector<std::unique_ptr<Port>> gone;
    for (uint16_t i : closing) gone.push_back(std::move(slots_[i]));
    publish_poll_lists();
    wait_for_workers();
    // Only now, with no worker polling or sending to them any more, may the ports stop (a stopped port's rx/tx
    // must not be called).
    for (auto& port : gone) port->close();
    for (uint16_t i : closing) {
      for (auto& w : workers_) w->reset_port_counters(i);
    }
  }
  old_pipeline.reset();  // every worker is past it (or none runs)

  // 4. Bookkeeping: rule ids, counters baselines, the running config.
  std::set<uint32_t> removed(p.remove_ids.begin(), p.remove_ids.end());
  std::erase_if(rules_, [&](const InstalledRule& r) { return removed.count(r.id) != 0; });
  free_ids_.insert(free_ids_.end(), p.remove_ids.begin(), p.remove_ids.end());
  if (baseline_.size() < next_id_) baseline_.resize(next_id_);
  std::unordered_map<uint32_t, const Plan::Keep*> kept;
  kept.reserve(p.keep.size());
  for (const Plan::Keep& k : p.keep) kept[k.id] = &k;
  for (InstalledRule& r : rules_) {
    // Kept rules keep id and counters; where they come from may have moved in the file.
    auto it = kept.find(r.id);
    if (it == kept.end()) continue;
    r.origin = it->second->origin;
    r.origin_a = it->second->a;
    r.origin_b = it->second->b;
  }
  rules_.reserve(rules_.size() + p.add.size());
  for (size_t k = 0; k < p.add.size(); ++k) {
    const CompiledRule& c = p.compiled.rules[p.add[k]];
    InstalledRule r{new_ids[k], c.origin, c.origin_a, c.origin_b, {0, 0}, {0, 0}, c.spec.table};
    identity_hash(c.identity, r.identity);
    if (c.origin != RuleDef::Origin::kGenerated) std::copy(c.source, c.source + 2, r.source);
    RuleCounter base{};
    for (const auto& w : workers_) {
      base.packets += w->rule_counters()[r.id].packets;
      base.bytes += w->rule_counters()[r.id].bytes;
    }
    baseline_[r.id] = base;
    rules_.push_back(r);
  }
  rules_.shrink_to_fit();
  generated_where_.clear();
  for (const RuleDef& g : generated_rules(p.desired)) generated_where_.push_back(g.where);
  std::copy(p.context, p.context + 2, context_);
  // The running config keeps tables (ids, names, miss actions) but not rule bodies: the classifier has the
  // rules, and a 100k-rule YAML model would cost more memory than the rules themselves. Names of named rules
  // are kept for show and trace.
  rule_names_.clear();
  for (size_t t = 0; t < p.desired.tables.size(); ++t) {
    for (size_t r = 0; r < p.desired.tables[t].rules.size(); ++r) {
      if (!p.desired.tables[t].rules[r].name.empty()) {
        rule_names_[uint64_t(t) << 32 | r] = p.desired.tables[t].rules[r].name;
      }
    }
    p.desired.tables[t].rules.clear();
    p.desired.tables[t].rules.shrink_to_fit();
  }
  config_ = p.desired;
  return true;
}

ApplyResult Switch::apply(const cfg::Config& desired, bool dry_run) {
  ApplyResult result;
  Plan p;
  if (!plan(desired, extra_tables_, extra_rules_, extra_meters_, false, p, result)) return result;
  if (dry_run) {
    result.ok = true;
    return result;
  }
  result.ok = execute_plan(p, result);
  return result;
}

bool Switch::set_rules(const std::vector<TableDef>& tables, const std::vector<RuleDef>& rules,
                       const std::vector<MeterProfile>& meters, std::string& error) {
  ApplyResult result;
  Plan p;
  if (!plan(config_, tables, rules, meters, true, p, result) || !execute_plan(p, result)) {
    error.clear();
    for (const auto& e : result.errors) error += (error.empty() ? "" : "; ") + e.to_string();
    return false;
  }
  extra_tables_ = tables;
  extra_rules_ = rules;
  extra_meters_ = meters;
  return true;
}

ApplyResult Switch::change_rules(const std::vector<std::string>& add, const std::vector<std::string>& remove) {
  ApplyResult result;
  std::vector<RuleDef> next = extra_rules_;
  auto error = [&](const std::string& path, const std::string& msg) {
    cfg::Error e;
    e.path = path;
    e.message = msg;
    result.errors.push_back(std::move(e));
  };
  for (size_t i = 0; i < remove.size(); ++i) {
    const size_t before = next.size();
    std::erase_if(next, [&](const RuleDef& r) { return r.where == remove[i]; });
    if (next.size() == before) error(fmt::format("delete[{}]", i), fmt::format("no runtime rule named '{}'", remove[i]));
  }
  for (size_t i = 0; i < add.size(); ++i) {
    RuleDef r;
    std::string e;
    if (!parse_rule_text(add[i], r, e)) {
      error(fmt::format("add[{}]", i), e);
      continue;
    }
    if (r.where.empty()) {
      error(fmt::format("add[{}]", i), "a runtime rule needs name=NAME (it is deleted by name)");
      continue;
    }
    std::erase_if(next, [&](const RuleDef& o) { return o.where == r.where; });
    next.push_back(std::move(r));
  }
  if (!result.errors.empty()) return result;
  Plan p;
  if (!plan(config_, extra_tables_, next, extra_meters_, true, p, result)) return result;
  result.ok = execute_plan(p, result);
  if (result.ok) extra_rules_ = std::move(next);
  return result;
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
      if (q.port_index < kMaxPorts && slots_[q.port_index] != nullptr && slots_[q.port_index]->port_id() == q.port_id) {
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
      next[best]->queues.push_back({i, slots_[i]->port_id(), q});
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
  slots_[index]->close();
  slots_[index].reset();
}

void Switch::maintain() noexcept { classifier_->reclaim(); }

std::string Switch::where_of(const InstalledRule& r) const {
  switch (r.origin) {
    case RuleDef::Origin::kGenerated:
      return r.origin_a < generated_where_.size() ? generated_where_[r.origin_a] : "generated";
    case RuleDef::Origin::kConfig: {
      std::string w = fmt::format("tables[{}].rules[{}]", r.origin_a, r.origin_b);
      auto it = rule_names_.find(uint64_t(r.origin_a) << 32 | r.origin_b);
      if (it != rule_names_.end()) w += fmt::format(" ({})", it->second);
      return w;
    }
    case RuleDef::Origin::kExtra:
      return r.origin_a < extra_rules_.size() && !extra_rules_[r.origin_a].where.empty()
                 ? extra_rules_[r.origin_a].where
                 : fmt::format("rules[{}]", r.origin_a);
  }
  return "?";
}

TraceResult Switch::trace(uint16_t in_port, const uint8_t* data, size_t len) {
  TraceResult out;
  FlowKey key;
  HeaderOffsets off;
  parse_packet(data, static_cast<uint32_t>(len), in_port, key, off);
  out.packet = format_key(key, names_);

  rte_mbuf* m = rte_pktmbuf_alloc(pool_);
  if (m == nullptr || len > rte_pktmbuf_tailroom(m)) {
    rte_pktmbuf_free(m);
    out.verdict = "error: no mbuf for the trace packet";
    return out;
  }
  std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(len)), data, len);
  auto ctx = std::make_unique<WorkerContext>();  // scratch: trace transmits nothing and counts nothing live
  const TableSet* tables = classifier_->acquire();
  const Pipeline* p = pipeline_.acquire();
  ctx->port_ids = p->ports.dpdk_port.data();
  ctx->nb_ports = p->ports.nb_ports;
  p->process<true>(*ctx, *tables, in_port, &m, 1, &out.record);

  const TraceRecord& r = out.record;
  auto port = [&](uint16_t i) {
    std::string n = names_.name_of ? names_.name_of(i) : std::string();
    return n.empty() ? fmt::format("{}", i) : n;
  };
  if (r.passthrough) out.lines.push_back(fmt::format("representor {} -> vport {}", port(in_port), port(r.outputs.front())));
  if (r.binding_checked) {
    out.lines.push_back(fmt::format("binding {}: {}", port(in_port),
                                    r.binding == DropReason::kCount ? "ok" : drop_reason_name(r.binding)));
  }
  for (const auto& h : r.hits) {
    auto it = std::find_if(rules_.begin(), rules_.end(), [&](const InstalledRule& ir) { return ir.id == h.rule_id; });
    const std::string where = it != rules_.end() ? where_of(*it) : "?";
    const std::optional<RuleInfo> info = classifier_->find(h.rule_id);
    const std::string match = info ? format_match(MaskedKey{info->spec.value, info->spec.mask, 0}, names_) : "";
    out.lines.push_back(fmt::format("table {}: rule {} [{}] priority {} match {} -> {}", h.table, h.rule_id, where,
                                    h.priority, match.empty() ? "(any)" : match,
                                    format_actions(*h.actions, names_, h.goto_table)));
  }
  if (r.miss_table != kNoTable) {
    out.lines.push_back(fmt::format("table {}: miss -> {}", r.miss_table,
                                    r.miss_actions ? format_actions(*r.miss_actions, names_) : "(none)"));
  }
  std::string extra;
  for (uint16_t mp : r.mirrors) extra += fmt::format(", mirror:{}", port(mp));
  for (uint16_t ef : r.egress_filtered) extra += fmt::format(", egress_filter:{}", port(ef));
  if (r.dropped) {
    out.verdict = fmt::format("drop ({}){}", drop_reason_name(r.drop_reason), extra);
  } else {
    std::string outs;
    for (uint16_t o : r.outputs) outs += fmt::format("{}output:{}", outs.empty() ? "" : ", ", port(o));
    if (outs.empty()) outs = "drop (egress_filter)";
    out.verdict = outs + extra;
  }
  return out;
}

bool Switch::trace(std::string_view description, TraceResult& out, std::string& error) {
  MaskedKey mk;
  if (!parse_match(description, names_, mk, error)) return false;
  if (mk.mask.in_port != 0xffff) {
    error = "in_port is required (the port the packet enters on)";
    return false;
  }
  std::vector<uint8_t> bytes;
  if (!synthesize_packet(mk, bytes, error)) return false;
  out = trace(mk.value.in_port, bytes.data(), bytes.size());
  return true;
}

void Switch::start() {
  for (auto& p : slots_) {
    if (p) p->start();
  }
  // Representors of inactive vports start with their carrier down.
  for (const auto& v : config_.vports) {
    const int rep = port_index(representor_name(v.name));
    if (rep >= 0 && v.state == cfg::VportState::kInactive) rte_eth_dev_set_link_down(slots_[rep]->port_id());
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
    if (p) p->close();
  }
}

int Switch::port_index(const std::string& name) const {
  for (uint16_t i = 0; i < kMaxPorts; ++i) {
    if (slots_[i] && slots_[i]->name() == name) return i;
  }
  return -1;
}

std::vector<PortStats> Switch::port_stats() const {
  std::vector<PortStats> out;
  for (uint16_t i = 0; i < kMaxPorts; ++i) {
    const Port* p = slots_[i].get();
    if (p == nullptr) continue;
    PortStats s;
    s.name = p->name();
    s.role = p->spec().role;
    s.driver = p->driver_name();
    s.link_up = p->is_started() && p->link_up();
    s.rx_queues.resize(p->spec().rx_queues);
    for (const auto& w : workers_) {
      s.counters += w->stats().ports[i];
      for (uint16_t q = 0; q < p->spec().rx_queues; ++q) {
        const QueueCounters& c = w->queue_counters(i, q);
        s.rx_queues[q].packets += c.packets;
        s.rx_queues[q].bytes += c.bytes;
        s.rx_queues[q].polls += c.polls;
        s.rx_queues[q].empty_polls += c.empty_polls;
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<VportStats> Switch::vport_stats() const {
  std::vector<VportStats> out;
  for (const auto& v : config_.vports) {
    const int i = port_index(v.name);
    if (i < 0) continue;
    VportStats s;
    s.name = v.name;
    s.active = v.state == cfg::VportState::kActive;
    if (port_index(representor_name(v.name)) >= 0) s.representor = representor_name(v.name);
    PortCounters c;
    for (const auto& w : workers_) c += w->stats().ports[i];
    s.rx_packets = c.rx_packets;
    s.tx_packets = c.tx_packets;
    for (size_t r = 0; r < c.dropped.size(); ++r) {
      s.drops.emplace_back(drop_reason_name(static_cast<DropReason>(r)), c.dropped[r]);
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<RuleStats> Switch::rule_stats() const {
  std::vector<RuleStats> out;
  out.reserve(rules_.size());
  for (const InstalledRule& r : rules_) {
    const std::optional<RuleInfo> info = classifier_->find(r.id);
    if (!info) continue;
    const RuleSpec& spec = info->spec;
    RuleStats s{r.id, spec.table, spec.priority, where_of(r), format_match(MaskedKey{spec.value, spec.mask, 0}, names_),
                format_actions(*static_cast<const ActionList*>(spec.actions), names_, spec.goto_table), 0, 0};
    for (const auto& w : workers_) {
      s.packets += w->rule_counters()[r.id].packets;
      s.bytes += w->rule_counters()[r.id].bytes;
    }
    s.packets -= baseline_[r.id].packets;
    s.bytes -= baseline_[r.id].bytes;
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(), [](const RuleStats& a, const RuleStats& b) {
    return a.table != b.table ? a.table < b.table : a.priority != b.priority ? a.priority > b.priority : a.id < b.id;
  });
  return out;
}

MempoolReport Switch::mempool_report() const {
  MempoolReport r;
  if (pool_ == nullptr) return r;
  r.size = pool_->size;
  r.in_use = rte_mempool_in_use_count(pool_);
  return r;
}

void Switch::print_summary(FILE* out) const {
  fmt::print(out, "{:<12} {:<11} {:<14} {:>10} {:>12} {:>10} {:>12} {:>8} {:>8}\n", "port", "role", "driver",
             "rx_pkts", "rx_bytes", "tx_pkts", "tx_bytes", "tx_drop", "dropped");
  for (const PortStats& s : port_stats()) {
    const PortCounters& c = s.counters;
    fmt::print(out, "{:<12} {:<11} {:<14} {:>10} {:>12} {:>10} {:>12} {:>8} {:>8}\n", s.name,
               port_role_name(s.role), s.driver, c.rx_packets, c.rx_bytes, c.tx_packets, c.tx_bytes, c.tx_dropped,
               c.dropped_total());
  }
  for (const VportStats& v : vport_stats()) {
    std::string drops;
    for (const auto& [reason, n] : v.drops) {
      if (n != 0) drops += fmt::format(" {}={}", reason, n);
    }
    if (!drops.empty()) fmt::print(out, "vport {} drops:{}\n", v.name, drops);
  }
  for (const RuleStats& r : rule_stats()) {
    if (r.packets != 0) fmt::print(out, "rule {} [{}]: {} packets, {} bytes\n", r.id, r.where, r.packets, r.bytes);
  }
}

}  // namespace esw::dp
