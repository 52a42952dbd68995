#include "dataplane/daemon/xdp_offload.h"

#include <cstdio>

#include <fmt/format.h>

namespace esw::dp {

void XdpOffload::install(const std::vector<uint32_t>& new_ids,
                         const std::array<std::unique_ptr<Port>, kMaxPorts>& slots) {
  std::map<uint16_t, Live> next;
  for (const PortPlan& pp : planned) {
    Port* port = slots[pp.port].get();
    if (port == nullptr) continue;
    std::vector<uint32_t> ids;
    for (uint64_t k : pp.keys) ids.push_back(k >= kNewBase ? new_ids[k - kNewBase] : static_cast<uint32_t>(k));
    auto old = live_.find(pp.port);
    if (old != live_.end() && old->second.rules == pp.rules && old->second.name == pp.name) {
      // Same rules in the same slots: only the ids may have moved (kept rules keep theirs).
      const size_t n = old->second.ids.size();
      ids.resize(n);
      next[pp.port] = Live{pp.name, std::move(ids), pp.rules};
      continue;
    }
    if (!port->xdp_rules_capable() || !port->xdp_program_current()) {
      if (!pp.rules.empty()) {
        fmt::print(stderr, "eswitchd: warning: port {}: offload: eswitch's XDP program is not on its interface "
                   "(detached or replaced from outside); its {} drop rule(s) run in software only until an apply "
                   "finds the program again\n", pp.name, pp.rules.size());
      }
      continue;
    }
    // suspend_changed emptied this program and carried its counts: it has no old hits.
    std::vector<uint64_t> old_hits;
    std::string err;
    const size_t got = port->set_xdp_drop_rules(pp.rules, old_hits, err);
    if (got < pp.rules.size()) {
      fmt::print(stderr, "eswitchd: warning: port {}: offload: {} of {} drop rule(s) run in XDP, the other {} in "
                 "software only: {}\n", pp.name, got, pp.rules.size(), pp.rules.size() - got, err);
    }
    ids.resize(got);
    next[pp.port] = Live{pp.name, std::move(ids), pp.rules};
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
    if (pp != nullptr && pp->rules == l.rules && pp->name == l.name && current) continue;
    if (port != nullptr && port->name() == l.name && port->xdp_rules_capable()) {
      std::vector<uint64_t> old_hits;
      std::string err;
      port->set_xdp_drop_rules({}, old_hits, err);
      for (size_t s = 0; s < old_hits.size() && s < l.ids.size(); ++s) carried_[l.ids[s]] += old_hits[s];
    }
    l.ids.clear();
    l.rules.clear();
  }
}

void XdpOffload::forget(const std::vector<uint32_t>& removed_ids) {
  for (uint32_t id : removed_ids) carried_.erase(id);
}

std::map<uint32_t, XdpOffload::RuleReport> XdpOffload::report(
    const std::array<std::unique_ptr<Port>, kMaxPorts>& slots) const {
  std::map<uint32_t, RuleReport> out;
  for (const auto& [id, n] : carried_) out[id].xdp_drops += n;
  for (const auto& [idx, l] : live_) {
    const Port* port = slots[idx].get();
    if (port == nullptr || port->name() != l.name) continue;
    // A program replaced from outside runs none of them any more (its counts stay readable until the next apply).
    const bool current = port->xdp_program_current();
    std::vector<uint64_t> hits;
    port->xdp_rule_hits(hits);
    for (size_t s = 0; s < l.ids.size(); ++s) {
      RuleReport& r = out[l.ids[s]];
      if (current) r.ports.push_back(l.name);
      if (s < hits.size()) r.xdp_drops += hits[s];
    }
  }
  return out;
}

}  // namespace esw::dp

// ---- Switch's hook (declared in switch.h): which rules each offload vport's program takes in this apply.
#include <deque>

#include "dataplane/daemon/switch_plan.h"

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
    offload::XdpPortTraits traits{idx, b.rate_meter != UINT32_MAX, b.roce_strict};
    XdpOffload::PortPlan pp;
    pp.port = idx;
    pp.name = vc.name;
    for (const offload::XdpDecision& d : offload::plan_xdp_port(views, traits)) {
      if (d.reason.empty()) {
        pp.keys.push_back(keys[d.index]);
        pp.rules.push_back(d.rule);
      } else if (vc.attach.offload == "required" && !generated[d.index]) {
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
