#include "dataplane/daemon/xdp_offload.h"

#include <cstdio>
#include <cstring>

#include <fmt/format.h>

namespace esw::dp {

void XdpOffload::carry(const Live& l, const std::vector<offload::XdpSlotCount>& old) {
  for (size_t s = 0; s < old.size() && s < l.ids.size(); ++s) {
    Carried& c = carried_[l.ids[s]];
    if (s >= l.out.size() || l.out[s] == kNoOut) {
      c.drops += old[s].packets;
    } else {
      c.steered += old[s].packets;
      c.steered_bytes += old[s].bytes;
      offload::XdpSlotCount& t = carried_tx_[l.out_name[s]];
      t.packets += old[s].packets;
      t.bytes += old[s].bytes;
    }
  }
}

void XdpOffload::install(const std::vector<uint32_t>& new_ids,
                         const std::array<std::unique_ptr<Port>, kMaxPorts>& slots) {
  auto id_of = [&](uint64_t k) { return k >= kNewBase ? new_ids[k - kNewBase] : static_cast<uint32_t>(k); };
  refused_.clear();
  for (const PortPlan& pp : planned) {
    for (const auto& [k, why] : pp.refused) refused_.emplace(id_of(k), why);
  }
  std::map<uint16_t, Live> next;
  for (const PortPlan& pp : planned) {
    Port* port = slots[pp.port].get();
    if (port == nullptr) continue;
    std::vector<uint32_t> ids;
    for (uint64_t k : pp.keys) ids.push_back(id_of(k));
    std::vector<std::string> out_name;
    for (uint16_t o : pp.out) out_name.push_back(o != kNoOut && slots[o] != nullptr ? slots[o]->name() : "");
    auto old = live_.find(pp.port);
    if (old != live_.end() && old->second.rules == pp.rules && old->second.name == pp.name &&
        old->second.tx_ifindex == pp.tx_ifindex && old->second.out_name == out_name) {
      // Same rules in the same slots: only the ids may have moved (kept rules keep theirs).
      const size_t n = old->second.ids.size();
      ids.resize(n);
      next[pp.port] = Live{pp.name, std::move(ids), pp.rules, pp.out, std::move(out_name), pp.tx_ifindex};
      continue;
    }
    if (!port->xdp_rules_capable() || !port->xdp_program_current()) {
      if (!pp.rules.empty()) {
        fmt::print(stderr, "eswitchd: warning: port {}: offload: eswitch's XDP program is not on its interface "
                   "(detached or replaced from outside); its {} drop/steer rule(s) run in software only until an "
                   "apply finds the program again\n", pp.name, pp.rules.size());
      }
      continue;
    }
    // suspend_changed emptied this program and carried its counts: it has no old hits.
    std::vector<offload::XdpSlotCount> old_counts;
    std::string err;
    const size_t got = port->set_xdp_drop_rules(pp.rules, pp.tx_ifindex, old_counts, err);
    if (got < pp.rules.size()) {
      fmt::print(stderr, "eswitchd: warning: port {}: offload: {} of {} drop/steer rule(s) run in XDP, the other {} "
                 "in software only: {}\n", pp.name, got, pp.rules.size(), pp.rules.size() - got, err);
      for (size_t s = got; s < pp.rules.size(); ++s) refused_.emplace(ids[s], fmt::format("{}: {}", pp.name, err));
    }
    ids.resize(got);
    next[pp.port] = Live{pp.name, std::move(ids), pp.rules, pp.out, std::move(out_name), pp.tx_ifindex};
  }
  // Ports whose offload was turned off (or that went away) were emptied by suspend_changed.
  live_ = std::move(next);
  planned.clear();
}

void XdpOffload::suspend_changed(const std::array<std::unique_ptr<Port>, kMaxPorts>& slots) {
  for (auto& [idx, l] : live_) {
    const PortPlan* pp = nullptr;
    for (const PortPlan& q : planned) {
      if (q.port == idx) pp = &q;
    }
    Port* port = slots[idx].get();
    // A program detached or replaced from outside since the last apply: its rules are no longer running; what
    // it dropped is read through the maps still open, and install writes the rules again (or falls back).
    const bool current = port != nullptr && port->name() == l.name && port->xdp_program_current();
    bool same = pp != nullptr && pp->rules == l.rules && pp->name == l.name && pp->tx_ifindex == l.tx_ifindex && current;
    for (size_t s = 0; same && s < pp->out.size(); ++s) {
      // A destination port replaced by another of the same index: rewrite (its counters are another port's).
      same = pp->out[s] == kNoOut || (slots[pp->out[s]] != nullptr && slots[pp->out[s]]->name() == l.out_name[s]);
    }
    if (same) continue;
    if (port != nullptr && port->name() == l.name && port->xdp_rules_capable()) {
      std::vector<offload::XdpSlotCount> old;
      std::string err;
      port->set_xdp_drop_rules({}, {}, old, err);
      carry(l, old);
    }
    l.ids.clear();
    l.rules.clear();
    l.out.clear();
    l.out_name.clear();
    l.tx_ifindex.clear();
  }
}

void XdpOffload::forget(const std::vector<uint32_t>& removed_ids) {
  for (uint32_t id : removed_ids) carried_.erase(id);
}

std::map<uint32_t, XdpOffload::RuleReport> XdpOffload::report(
    const std::array<std::unique_ptr<Port>, kMaxPorts>& slots) const {
  std::map<uint32_t, RuleReport> out;
  for (const auto& [id, why] : refused_) out[id].refused = why;
  for (const auto& [idx, l] : live_) {
    const Port* port = slots[idx].get();
    if (port == nullptr || port->name() != l.name) continue;
    // A program replaced from outside runs none of them any more (its counts stay readable until the next apply).
    const bool current = port->xdp_program_current();
    std::vector<offload::XdpSlotCount> hits;
    port->xdp_rule_hits(hits);
    for (size_t s = 0; s < l.ids.size(); ++s) {
      RuleReport& r = out[l.ids[s]];
      if (current) {
        r.ports.push_back(l.name);
        r.refused.clear();
      }
      if (s >= hits.size()) continue;
      if (l.out[s] != kNoOut) {
        r.xdp_steered += hits[s].packets;
        r.xdp_steered_bytes += hits[s].bytes;
      } else {
        r.xdp_drops += hits[s].packets;
      }
    }
  }
  for (const auto& [id, c] : carried_) {
    RuleReport& r = out[id];
    r.xdp_drops += c.drops;
    r.xdp_steered += c.steered;
    r.xdp_steered_bytes += c.steered_bytes;
  }
  return out;
}

void XdpOffload::add_steered_tx(uint16_t idx, const std::string& name, uint64_t& tx_packets, uint64_t& tx_bytes,
                                const std::array<std::unique_ptr<Port>, kMaxPorts>& slots) const {
  if (const auto c = carried_tx_.find(name); c != carried_tx_.end()) {
    tx_packets += c->second.packets;
    tx_bytes += c->second.bytes;
  }
  for (const auto& [in, l] : live_) {
    bool any = false;
    for (size_t s = 0; s < l.ids.size() && !any; ++s) any = l.out[s] == idx && l.out_name[s] == name;
    const Port* port = slots[in].get();
    if (!any || port == nullptr || port->name() != l.name) continue;
    std::vector<offload::XdpSlotCount> hits;
    port->xdp_rule_hits(hits);
    for (size_t s = 0; s < l.ids.size() && s < hits.size(); ++s) {
      if (l.out[s] != idx || l.out_name[s] != name) continue;
      tx_packets += hits[s].packets;
      tx_bytes += hits[s].bytes;
    }
  }
}

}  // namespace esw::dp

// ---- Switch's hook (declared in switch.h): which rules each offload vport's program takes in this apply.
#include <deque>

#include "dataplane/daemon/switch_plan.h"
#include "dataplane/ports/xdp_redirect.h"

namespace esw::dp {

bool Switch::plan_xdp_offload(Plan& p, ApplyResult& result) {
  xdp_offload_.planned.clear();
  bool any = false;
  for (const auto& v : p.desired.vports) any = any || v.attach.offload != "off";
  if (!any) return true;
  // The whole rule set after this apply: the installed rules that stay, then the added ones.
  std::deque<RuleInfo> kept;
  std::vector<offload::XdpRuleView> views;
  std::vector<uint64_t> keys;
  std::vector<bool> generated;  // the pipeline's own rules (l2 hairpin drops...): `required` does not insist on them
  for (const Plan::Keep& k : p.keep) {
    std::optional<RuleInfo> info = classifier_->find(k.id);
    if (!info) continue;
    kept.push_back(std::move(*info));
    RuleInfo& ri = kept.back();
    if (ri.has_rewrite) ri.spec.rewrite = &ri.rewrite;
    views.push_back({&ri.spec, static_cast<const ActionList*>(ri.spec.actions)});
    keys.push_back(k.id);
    generated.push_back(k.origin == RuleDef::Origin::kGenerated);
  }
  for (size_t k = 0; k < p.add.size(); ++k) {
    const CompiledRule& c = p.compiled.rules[p.add[k]];
    views.push_back({&c.spec, static_cast<const ActionList*>(c.spec.actions)});
    keys.push_back(XdpOffload::kNewBase + k);
    generated.push_back(c.origin == RuleDef::Origin::kGenerated);
  }
  // Where a rule is written, only for the error of `required` (not formatted for every rule of every apply).
  auto where = [&](size_t index) -> std::string {
    if (index >= kept.size()) return p.compiled.rules[p.add[index - kept.size()]].where;
    for (const RuleBook::Installed& r : book_.installed()) {
      if (r.id == keys[index]) return book_.where_of(r, extra_rules_);
    }
    return fmt::format("rule {}", keys[index]);
  };
  // Where steer rules may redirect: af_xdp ports open now (a port added by this apply: from the next apply on)
  // with eswitch's program, whose interface takes XDP redirects, with their egress filter.
  std::vector<offload::XdpSteerTarget> targets;
  for (uint16_t i = 0; i < p.nb_ports; ++i) {
    const Port* port = slots_[i].get();
    if (p.slots[i].name.empty()) continue;
    offload::XdpSteerTarget t;
    t.port = i;
    t.name = p.slots[i].name;
    const std::string iface = port != nullptr && port->name() == t.name ? port->xdp_interface() : std::string();
    if (port == nullptr || port->name() != t.name || p.slots[i].is_new) {
      t.refused = fmt::format("{} is opened by this apply (steer rules to it are offloaded from the next apply on)",
                              t.name);
    } else if (iface.empty() || !port->xdp_program_current()) {
      t.refused = fmt::format("{} is not an af_xdp port with eswitch's XDP program on its interface", t.name);
    } else if (std::string why = xdp_redirect_target(iface, t.ifindex); !why.empty()) {
      t.refused = why;
    }
    for (size_t v = 0; v < p.desired.vports.size(); ++v) {
      if (p.desired.vports[v].name != t.name || p.slots[i].role != PortRole::kVport) continue;
      const Binding& b = *p.bindings[v];
      t.vport = true;
      t.active = b.active;
      t.spoofchk = b.spoofchk;
      t.has_mac = b.has_mac;
      std::memcpy(t.mac, b.mac.data(), 6);
    }
    targets.push_back(std::move(t));
  }
  bool ok = true;
  for (size_t v = 0; v < p.desired.vports.size(); ++v) {
    const cfg::VportConfig& vc = p.desired.vports[v];
    if (vc.attach.offload == "off") continue;
    uint16_t idx = kMaxPorts;
    for (uint16_t i = 0; i < p.nb_ports; ++i) {
      if (p.slots[i].name == vc.name && p.slots[i].role == PortRole::kVport) idx = i;
    }
    if (idx == kMaxPorts) continue;
    const Binding& b = *p.bindings[v];
    offload::XdpPortTraits traits{idx, b.rate_meter != UINT32_MAX, b.roce_strict, &targets};
    XdpOffload::PortPlan pp;
    pp.port = idx;
    pp.name = vc.name;
    for (offload::XdpDecision& d : offload::plan_xdp_port(views, traits)) {
      if (d.reason.empty()) {
        if (d.steer) {
          // One devmap slot per destination.
          size_t slot = 0;
          while (slot < pp.tx_ifindex.size() && pp.tx_ifindex[slot] != d.out_ifindex) ++slot;
          if (slot == pp.tx_ifindex.size()) pp.tx_ifindex.push_back(d.out_ifindex);
          d.rule.tx_slot = static_cast<uint8_t>(slot);
        }
        pp.keys.push_back(keys[d.index]);
        pp.rules.push_back(d.rule);
        pp.out.push_back(d.steer ? d.out_port : XdpOffload::kNoOut);
      } else if (d.steer) {
        // Steer rules are offloaded where provably the same; `required` insists on drop rules only.
        pp.refused.emplace_back(keys[d.index], d.reason);
      } else if (vc.attach.offload != "required" || generated[d.index]) {
        pp.refused.emplace_back(keys[d.index], d.reason);
      } else {
        cfg::Error e;
        e.path = p.slots[idx].where + ".attach.offload";
        e.line = p.slots[idx].line;
        e.message = fmt::format("required, but rule {} cannot run in vport {}'s XDP program: {}",
                                where(d.index), vc.name, d.reason);
        result.errors.push_back(std::move(e));
        ok = false;
      }
    }
    xdp_offload_.planned.push_back(std::move(pp));
  }
  if (!ok) xdp_offload_.planned.clear();
  return ok;
}

std::map<uint32_t, XdpOffload::RuleReport> Switch::xdp_rule_report() const { return xdp_offload_.report(slots_); }

}  // namespace esw::dp
