#include "dataplane/daemon/switch.h"
#include "dataplane/daemon/switch_plan.h"

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
#include "dataplane/rules/pair_hash.h"
#include "dataplane/fastpath/parser.h"
#include "representors/representor.h"
#include "vdpa/vdpa.h"

namespace esw::dp {

namespace {

// The binding-relevant part of a vport, for diffs.
std::string binding_text(const cfg::VportConfig& v) {
  std::string ips;
  for (const auto& a : v.ipv4) ips += a + " ";
  for (const auto& a : v.ipv6) ips += a + " ";
  return fmt::format("hw_addr={} ip=[{}] vlan={} state={} spoofchk={} trust={} roce={} roce_strict={} smc={} "
                     "dhcp_client={} egress_multicast={} tx_max_bps={}",
                     v.hw_addr.value_or("-"), ips, v.vlan ? std::to_string(*v.vlan) : "-",
                     v.state == cfg::VportState::kActive ? "active" : "inactive", v.spoofchk, v.trust, v.roce,
                     v.roce_strict, v.smc == cfg::SmcPolicy::kAllow ? "allow" : "deny", v.dhcp_client, v.egress_multicast,
                     v.rate.tx_max_bps) +
         (v.smc_ism ? fmt::format(" smc_ism={}:{}:{}:{:o}:{}:{}", v.smc_ism->socket, v.smc_ism->owner, v.smc_ism->group,
                                  v.smc_ism->mode, v.smc_ism->max_dmbs, v.smc_ism->max_bytes)
                    : "");
}

// Rule identity as two independent 64-bit hashes (dataplane/rules/pair_hash.h): equal text -> equal pair; a
// collision of both for different rules is not a practical concern at 2^-128.
void identity_hash(const std::string& s, uint64_t out[2]) {
  PairHasher h;
  h.add(s);
  h.finish(out);
}

// Applies that add or remove at least this many rules give the freed heap back afterwards (Switch::maintain).
constexpr size_t kTrimAfterRules = 1000;

struct PairHash {
  size_t operator()(const std::pair<uint64_t, uint64_t>& p) const { return p.first ^ (p.second * 0x9e3779b97f4a7c15ull); }
};

}  // namespace

// The config the switch will keep as its running one: all of `c` but the rule bodies (the classifier has the
// rules, and a 100k-rule model would cost more memory than the rules themselves; copying it whole cost more
// than compiling them). The names of named rules go to `names`, for show and trace.
cfg::Config without_rule_bodies(const cfg::Config& c, std::unordered_map<uint64_t, std::string>& names) {
  cfg::Config out;
  out.api_version = c.api_version;
  out.dataplane = c.dataplane;
  out.uplinks = c.uplinks;
  out.vports = c.vports;
  out.pipeline = c.pipeline;
  out.representors = c.representors;
  out.meters = c.meters;
  out.tables.reserve(c.tables.size());
  for (size_t t = 0; t < c.tables.size(); ++t) {
    const cfg::TableConfig& tc = c.tables[t];
    cfg::TableConfig& copy = out.tables.emplace_back();
    copy.id = tc.id;
    copy.name = tc.name;
    copy.miss = tc.miss;
    copy.loc = tc.loc;
    for (size_t r = 0; r < tc.rules.size(); ++r) {
      if (!tc.rules[r].name.empty()) names[RuleBook::config_key(t, r)] = tc.rules[r].name;
    }
  }
  return out;
}

bool Switch::plan(const cfg::Config& desired, const std::vector<TableDef>& extra_tables,
                  const std::vector<RuleDef>& extra_rules, const std::vector<MeterProfile>& extra_meters,
                  bool keep_config_rules, Plan& p, ApplyResult& result) {
  p.desired = without_rule_bodies(desired, p.rule_names);
  // Runtime rule changes plan from the running config, which has no rule bodies: its rules keep their names.
  if (keep_config_rules) p.rule_names = book_.config_names();
  auto error = [&](const std::string& path, int line, const std::string& msg) {
    cfg::Error e;
    e.path = path;
    e.line = line;
    e.message = msg;
    result.errors.push_back(std::move(e));
  };

  if (current_ != nullptr && config_.dataplane != desired.dataplane) {
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
    wanted.push_back({u.name, PortRole::kUplink, "ethdev", u.attach, "", false, fmt::format("uplinks[{}]", i), u.line});
  }
  for (size_t i = 0; i < desired.vports.size(); ++i) {
    const auto& v = desired.vports[i];
    wanted.push_back({v.name, PortRole::kVport, "ethdev", v.attach, "", false, fmt::format("vports[{}]", i), v.line});
    if (const auto& vu = v.attach.vhost_user) {  // served by rte_vhost directly (vdpa/), not an ethdev
      wanted.back().kind = "vhost_user";
      wanted.back().attach.devargs = vdpa::vhost_user_devargs(*vu);
      wanted.back().attach.rx_queues = wanted.back().attach.tx_queues = vu->queues;
    }
    if (auto rp = rep::plan_representor(desired.representors, v)) {
      cfg::Attachment a;
      a.devargs = rp->devargs;
      wanted.push_back({rp->name, PortRole::kRepresentor, rp->kind, a, v.name, false,
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
    if (port.spec().role != w.role || port.spec().kind != w.kind || port.spec().devargs != w.attach.devargs ||
        port.spec().rx_queues != std::max<uint16_t>(w.attach.rx_queues, 1) ||
        port.spec().xdp_program != (w.attach.xdp && w.attach.xdp->builtin ? "builtin" : "none")) {
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
  rules.reserve(rules.size() + extra_rules.size());
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
  std::unordered_map<std::pair<uint64_t, uint64_t>, std::vector<const RuleBook::Installed*>, PairHash> by_source;
  if (same_context) {
    by_source.reserve(book_.size());
    for (const RuleBook::Installed& r : book_.installed()) {
      if (r.origin != RuleDef::Origin::kGenerated) by_source[{r.source[0], r.source[1]}].push_back(&r);
    }
  }
  std::unordered_map<uint32_t, bool> claimed;
  std::set<unsigned> kept_tables;
  if (keep_config_rules) {
    for (const RuleBook::Installed& r : book_.installed()) {
      if (r.origin != RuleDef::Origin::kConfig) continue;
      p.keep.push_back({r.id, r.origin, r.origin_a, r.origin_b});
      p.keep_by_source.push_back(r.id);
      claimed[r.id] = true;
      kept_tables.insert(r.table);
    }
  }
  // What is not kept compiles: `rules` keeps those, in order (compacted in place, no second 100k-rule vector), and
  // `hashes` their source hashes, which the compiler takes instead of hashing each rule again.
  // Nothing to keep: every rule compiles (which hashes its source, once).
  size_t nb_compile = by_source.empty() ? rules.size() : 0;
  std::vector<std::array<uint64_t, 2>> hashes(rules.size() - nb_compile);
  for (size_t i = nb_compile; i < rules.size(); ++i) {
    RuleDef& r = rules[i];
    uint64_t* h = hashes[nb_compile].data();
    rule_source_hash(r, h);
    auto it = by_source.find({h[0], h[1]});
    if (it != by_source.end() && !it->second.empty()) {
      const RuleBook::Installed* ir = it->second.back();
      it->second.pop_back();
      p.keep.push_back({ir->id, r.origin, r.origin_a, r.origin_b});
      p.keep_by_source.push_back(ir->id);
      claimed[ir->id] = true;
      kept_tables.insert(ir->table);
      continue;
    }
    if (nb_compile != i) rules[nb_compile] = std::move(r);
    ++nb_compile;
  }
  rules.resize(nb_compile);
  if (!hashes.empty()) hashes.resize(nb_compile);  // empty: nothing was hashed here

  RuleSetInput in;
  in.config = &desired;
  in.ports = &p.names;
  in.nb_ports = p.nb_ports;
  in.tables = std::move(tables);
  in.rules = std::move(rules);
  in.source_hashes = std::move(hashes);
  in.meters = p.meters;
  in.more_tables.assign(kept_tables.begin(), kept_tables.end());
  compile_rule_set(in, interner_, p.compiled, result.errors);
  if (!result.errors.empty()) return false;

  // Compiled rules: the same canonical identity keeps its id (and so its counters); the rest is added or removed.
  std::unordered_map<std::pair<uint64_t, uint64_t>, std::vector<uint32_t>, PairHash> have;
  have.reserve(book_.size());
  for (const RuleBook::Installed& r : book_.installed()) {
    if (!claimed.count(r.id)) have[{r.identity[0], r.identity[1]}].push_back(r.id);
  }
  p.identity.resize(p.compiled.rules.size());
  p.add.reserve(p.compiled.rules.size());
  for (size_t i = 0; i < p.compiled.rules.size(); ++i) {
    uint64_t* h = p.identity[i].data();
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
  const size_t live_rules = book_.size() - p.remove_ids.size() + p.add.size();
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
  result.diff.reserve(result.diff.size() + current.size() + p.nb_ports + desired.vports.size() + p.add_tables.size() +
                      p.remove_tables.size() + p.remove_ids.size() + p.add.size());
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
    std::unordered_map<uint32_t, const RuleBook::Installed*> by_id;
    for (const RuleBook::Installed& r : book_.installed()) by_id[r.id] = &r;
    for (uint32_t id : p.remove_ids) {
      const std::optional<RuleInfo> info = classifier_->find(id);
      std::string what;
      if (info) {
        const MaskedKey mk{info->spec.value, info->spec.mask, 0};
        what = fmt::format("{}|{}|{}|{}", info->spec.table, info->spec.priority, format_match(mk, names_),
                           format_actions(*static_cast<const ActionList*>(info->spec.actions), names_,
                                          info->spec.goto_table));
      }
      result.diff.push_back({'-', "rule", book_.where_of(*by_id[id], extra_rules_), what});
    }
  }
  // The identity text is only hashed after this (p.identity): the diff takes it.
  for (size_t i : p.add) {
    result.diff.push_back({'+', "rule", p.compiled.rules[i].where, std::move(p.compiled.rules[i].identity)});
  }
  return true;
}

bool Switch::execute_plan(Plan& p, ApplyResult& result) {
  ++state_version_;  // whatever happens below, a plan made before is stale
  // 0. Which drop rules offload vports' XDP programs take (offload: required can refuse the apply here).
  if (!plan_xdp_offload(p, result)) return false;
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
    spec.kind = s.kind;
    spec.devargs = s.attach.devargs;
    spec.rx_queues = std::max<uint16_t>(s.attach.rx_queues, 1);
    spec.tx_queues = std::max<uint16_t>(s.attach.tx_queues, nb_workers);
    spec.rx_desc = config_.dataplane.rx_queue_size;
    spec.tx_desc = config_.dataplane.tx_queue_size;
    if (s.attach.xdp) {
      spec.xdp_program = s.attach.xdp->builtin ? "builtin" : "none";
      spec.xdp_mode = s.attach.xdp->mode;
    }
    std::unique_ptr<Port> port;
    try {
      port = make_port(spec.kind);
      port->open(spec, i, pool_, nb_workers);
      if (running_) port->start();
    } catch (const Error& e) {
      cfg::Error ce;
      ce.path = s.where + ".attach";
      ce.line = s.line;
      ce.message = e.what();
      result.errors.push_back(std::move(ce));
      if (port) port->close();
      undo_ports();
      return false;
    }
    slots_[i] = std::move(port);
    opened.push_back(i);
    watch_service(*slots_[i]);
  }

  // 2. Tables: one classifier batch (tables first, then rules, removals last), published whole.
  const std::vector<uint32_t> new_ids = book_.take_ids(p.add.size());
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
  xdp_offload_.suspend_changed(slots_);  // XDP rules that change go to software first (xdp_offload.h)
  const CommitResult cr = classifier_->commit(batch);
  if (!cr.ok()) {
    cfg::Error ce;
    ce.path = "tables";
    ce.message = cr.message();
    result.errors.push_back(std::move(ce));
    book_.give_back(new_ids);
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
    next->ports.io[i] = slots_[i]->io();
    index_of[p.slots[i].name] = i;
  }
  for (size_t v = 0; v < p.desired.vports.size(); ++v) {
    const auto& vc = p.desired.vports[v];
    const uint16_t vi = index_of[vc.name];
    next->ports.binding[vi] = p.bindings[v].get();
    slots_[vi]->set_binding(*p.bindings[v]);  // a backend's share of the binding (an XDP program's maps)
    const auto rp = rep::plan_representor(p.desired.representors, vc);
    auto rep = rp ? index_of.find(rp->name) : index_of.end();
    if (rep != index_of.end()) {
      next->ports.representor_of[vi] = rep->second;
      next->ports.rep_peer[rep->second] = vi;
      // The representor's carrier follows the vport's state.
      slots_[rep->second]->set_carrier(vc.state == cfg::VportState::kActive);
    }
  }
  // Uplinks with eswitch's XDP program hand the switch only the frames its vports own (every apply).
  {
    std::vector<const Binding*> vb;
    for (const auto& b : p.bindings) vb.push_back(b.get());
    for (const auto& u : p.desired.uplinks) {
      const auto it = index_of.find(u.name);
      if (it == index_of.end() || !u.attach.xdp) continue;
      slots_[it->second]->set_uplink_vports(vb, {u.attach.xdp->broadcast_to_switch, u.attach.xdp->multicast_to_switch});
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
  // The new rules are live in software: now the XDP programs may take their share (xdp_offload.h).
  xdp_offload_.forget(p.remove_ids);
  xdp_offload_.install(new_ids, slots_);
  std::unique_ptr<Pipeline> old_pipeline = std::move(current_);
  current_ = std::move(next);
  std::vector<uint16_t> closing = p.to_close;

  // Representors and vports that go away must not be polled any more; new ones start being polled.
  names_ = p.names;
  {
    std::vector<std::unique_ptr<Port>> gone;
    for (uint16_t i : closing) {
      unwatch_service(*slots_[i]);
      gone.push_back(std::move(slots_[i]));
    }
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
  book_.remove(p.remove_ids);
  book_.relocate(p.keep);  // kept rules keep id and counters; where they come from may have moved in the file
  for (size_t k = 0; k < p.add.size(); ++k) {
    const CompiledRule& c = p.compiled.rules[p.add[k]];
    RuleBook::Installed r{new_ids[k], c.origin, c.origin_a, c.origin_b, {0, 0}, {0, 0}, c.spec.table};
    std::copy(p.identity[p.add[k]].begin(), p.identity[p.add[k]].end(), r.identity);  // hashed by plan()
    if (c.origin != RuleDef::Origin::kGenerated) std::copy(c.source, c.source + 2, r.source);
    RuleCounter base{};
    for (const auto& w : workers_) {
      base.packets += w->rule_counters()[r.id].packets;
      base.bytes += w->rule_counters()[r.id].bytes;
    }
    book_.add(r, base);
  }
  book_.shrink();
  std::vector<std::string> generated_where;
  for (const RuleDef& g : generated_rules(p.desired)) generated_where.push_back(g.where);
  book_.set_generated_where(std::move(generated_where));
  std::copy(p.context, p.context + 2, context_);
  // The running config keeps tables (ids, names, miss actions) but not rule bodies (without_rule_bodies).
  book_.set_config_names(std::move(p.rule_names));
  config_ = std::move(p.desired);
  if (p.add.size() + p.remove_ids.size() >= kTrimAfterRules) trim_in_ticks_ = 3;
  return true;
}

ApplyResult Switch::apply(const cfg::Config& desired, bool dry_run) {
  return finish_apply(prepare_apply(desired, dry_run));
}

std::shared_ptr<Switch::PreparedApply> Switch::prepare_apply(const cfg::Config& desired, bool dry_run) {
  auto pa = std::make_shared<PreparedApply>();
  pa->desired = &desired;
  pa->dry_run = dry_run;
  pa->state_version = state_version_;
  try {
    pa->planned = plan(desired, extra_tables_, extra_rules_, extra_meters_, false, pa->plan, pa->result);
  } catch (const std::exception& e) {
    pa->failure = e.what();  // thrown again by finish_apply, on the caller's thread
  }
  return pa;
}

ApplyResult Switch::finish_apply(std::shared_ptr<PreparedApply> pa) {
  if (pa->state_version != state_version_) {
    fmt::print("eswitchd: apply: the switch changed since the apply was planned; planning it again\n");
    pa = prepare_apply(*pa->desired, pa->dry_run);  // stale: plan again
  }
  if (!pa->failure.empty()) throw Error(pa->failure);
  const cfg::Config& desired = *pa->desired;
  ApplyResult& result = pa->result;
  Plan& p = pa->plan;
  if (!pa->planned) return std::move(result);
  if (pa->dry_run) {
    result.ok = true;
    return std::move(result);
  }
  if (ownership_.claim) {
    std::string why;
    if (!ownership_.claim(desired, why)) {
      cfg::Error e;
      e.message = why;
      result.errors.push_back(std::move(e));
      return std::move(result);
    }
  }
  std::vector<std::string> before(kMaxPorts);
  for (uint16_t i = 0; i < kMaxPorts; ++i) before[i] = slots_[i] ? slots_[i]->name() : std::string();
  result.ok = execute_plan(p, result);
  if (ownership_.settle) ownership_.settle(config_);
  // Grants are between port indexes: when a port an SMC session runs over went away (its index may be reused),
  // the session table starts over (sessions and their grants end; the table offers no per-port removal).
  if (result.ok) {
    bool gone = false;
    smc_->for_each([&](const smc::Session& s) {
      for (uint16_t v : {s.client_vport, s.server_vport}) {
        if (v != smc::kNoVport && v < kMaxPorts && (!slots_[v] || slots_[v]->name() != before[v])) gone = true;
      }
    });
    if (gone) {
      smc_ = std::make_unique<smc::SessionTable>(smc_->config());
      publish_smc();
    }
  }
  return std::move(result);
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
  extra_rule_texts_.assign(rules.size(), std::string());  // not runtime rules: nothing to save
  extra_meters_ = meters;
  return true;
}

ApplyResult Switch::change_rules(const std::vector<std::string>& add, const std::vector<std::string>& remove) {
  ApplyResult result;
  std::vector<RuleDef> next = extra_rules_;
  std::vector<std::string> next_texts = extra_rule_texts_;  // parallel to next (what eswitchd saves)
  auto error = [&](const std::string& path, const std::string& msg) {
    cfg::Error e;
    e.path = path;
    e.message = msg;
    result.errors.push_back(std::move(e));
  };
  for (size_t i = 0; i < remove.size(); ++i) {
    const size_t before = next.size();
    for (size_t k = next.size(); k-- > 0;) {
      if (next[k].where == remove[i]) {
        next.erase(next.begin() + static_cast<ptrdiff_t>(k));
        next_texts.erase(next_texts.begin() + static_cast<ptrdiff_t>(k));
      }
    }
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
    for (size_t k = next.size(); k-- > 0;) {
      if (next[k].where == r.where) {
        next.erase(next.begin() + static_cast<ptrdiff_t>(k));
        next_texts.erase(next_texts.begin() + static_cast<ptrdiff_t>(k));
      }
    }
    next.push_back(std::move(r));
    next_texts.push_back(add[i]);
  }
  if (!result.errors.empty()) return result;
  Plan p;
  if (!plan(config_, extra_tables_, next, extra_meters_, true, p, result)) return result;
  result.ok = execute_plan(p, result);
  if (result.ok) {
    extra_rules_ = std::move(next);
    extra_rule_texts_ = std::move(next_texts);
    ++runtime_rules_version_;
  }
  return result;
}

}  // namespace esw::dp
