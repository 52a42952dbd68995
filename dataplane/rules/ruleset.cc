#include "dataplane/rules/ruleset.h"

#include <cstdio>
#include <cstring>
#include <map>
#include <set>

#include <fmt/format.h>

#include "dataplane/rules/pair_hash.h"

namespace esw::dp {

namespace {

cfg::Error located(const std::string& path, const cfg::Loc& loc, const std::string& message) {
  cfg::Error e;
  e.path = path;
  e.line = loc.line;
  e.column = loc.column;
  e.message = message;
  return e;
}

// Meter rates are configured in bits/s; rte_meter counts bytes/s.
MeterProfile meter_profile(const cfg::MeterConfig& m) {
  MeterProfile p;
  p.tr_tcm = m.tr_tcm;
  p.cir = m.cir_bps / 8;
  p.cbs = m.cbs_bytes;
  p.pir = m.pir_bps / 8;
  p.ebs_or_pbs = m.tr_tcm ? m.pbs_bytes : m.ebs_bytes;
  return p;
}

}  // namespace

std::vector<std::string> port_names(const cfg::Config& config) {
  std::vector<std::string> names;
  for (const auto& u : config.uplinks) names.push_back(u.name);
  for (const auto& v : config.vports) names.push_back(v.name);
  return names;
}

bool parse_rule_text(std::string_view text, RuleDef& out, std::string& error) {
  // The config's parser of the one-string form (config/rule_text.cc): a runtime rule is checked exactly as the
  // same string in a config file is.
  out = RuleDef{};
  cfg::RuleConfig rc;
  uint32_t table = 0;
  std::vector<cfg::Error> errors;
  if (!cfg::parse_rule_text(text, "rule", rc, table, errors)) {
    error.clear();
    for (const cfg::Error& e : errors) error += (error.empty() ? "" : "; ") + e.message;
    return false;
  }
  out.table = static_cast<uint8_t>(table);
  out.priority = rc.priority;
  out.where = rc.name;
  for (cfg::MatchItem& m : rc.match) out.match.emplace_back(std::move(m.field), std::move(m.value));
  for (cfg::ActionConfig& a : rc.actions) out.actions.push_back(ActionItem{std::move(a.name), std::move(a.arg)});
  return true;
}

void rules_from_config(const cfg::Config& config, std::vector<TableDef>& tables, std::vector<RuleDef>& rules,
                       std::vector<MeterProfile>& meters) {
  std::map<std::string, size_t> meter_index;
  for (const auto& m : config.meters) {
    meter_index.emplace(m.name, meters.size());
    meters.push_back(meter_profile(m));
  }
  auto convert = [&](const std::vector<cfg::ActionConfig>& in, std::vector<ActionItem>& out,
                     std::vector<cfg::Loc>* locs) {
    for (const auto& a : in) {
      ActionItem item{a.name, a.arg};
      if (a.name == "meter") {
        auto it = meter_index.find(a.arg);
        if (it != meter_index.end()) item.arg = std::to_string(it->second);
      }
      out.push_back(std::move(item));
      if (locs != nullptr) locs->push_back(a.loc);
    }
  };
  for (size_t t = 0; t < config.tables.size(); ++t) {
    const cfg::TableConfig& tc = config.tables[t];
    TableDef td;
    td.id = static_cast<uint8_t>(tc.id);
    td.where = fmt::format("tables[{}]", t);
    td.loc = tc.loc;
    convert(tc.miss, td.miss, nullptr);
    tables.push_back(std::move(td));
    rules.reserve(rules.size() + tc.rules.size());
    for (size_t r = 0; r < tc.rules.size(); ++r) {
      const cfg::RuleConfig& rc = tc.rules[r];
      RuleDef& rd = rules.emplace_back();
      rd.table = static_cast<uint8_t>(tc.id);
      rd.priority = rc.priority;
      rd.where = fmt::format("tables[{}].rules[{}]", t, r);
      if (!rc.name.empty()) rd.where += fmt::format(" ({})", rc.name);
      rd.origin = RuleDef::Origin::kConfig;
      rd.origin_a = static_cast<uint32_t>(t);
      rd.origin_b = static_cast<uint32_t>(r);
      rd.loc = rc.loc;
      rd.match.reserve(rc.match.size());
      rd.match_locs.reserve(rc.match.size());
      for (const auto& m : rc.match) {
        rd.match.emplace_back(m.field, m.value);
        rd.match_locs.push_back(m.loc);
      }
      rd.actions.reserve(rc.actions.size());
      rd.action_locs.reserve(rc.actions.size());
      convert(rc.actions, rd.actions, &rd.action_locs);
    }
  }
}

std::vector<RuleDef> generated_rules(const cfg::Config& config) {
  std::vector<RuleDef> rules;
  const std::vector<std::string> names = port_names(config);
  const size_t n_up = config.uplinks.size();
  auto is_uplink = [&](size_t i) { return i < n_up; };
  auto rule = [](uint32_t prio, std::vector<std::pair<std::string, std::string>> match,
                 std::vector<ActionItem> actions, std::string where) {
    RuleDef r;
    r.priority = prio;
    r.match = std::move(match);
    r.actions = std::move(actions);
    r.where = std::move(where);
    return r;
  };
  // Generated rules use low priorities (10..110) in table 0, so a user rule can always override them.
  if (config.pipeline.mode == cfg::PipelineMode::kCrossConnect) {
    for (size_t i = 0; i < config.pipeline.cross_connect.size(); ++i) {
      const auto& xc = config.pipeline.cross_connect[i];
      rules.push_back(rule(100, {{"in_port", xc.from}}, {{"output", xc.to}},
                           fmt::format("pipeline.cross_connect[{}]", i)));
    }
    return rules;
  }
  for (const auto& v : config.vports) {
    if (!v.hw_addr) continue;
    rules.push_back(rule(100, {{"eth_dst", *v.hw_addr}}, {{"output", v.name}}, fmt::format("l2: to {}", v.name)));
    rules.push_back(rule(110, {{"in_port", v.name}, {"eth_dst", *v.hw_addr}}, {{"drop", ""}},
                         fmt::format("l2: hairpin {}", v.name)));
  }
  for (size_t p = 0; p < names.size(); ++p) {
    RuleDef flood = rule(50, {{"in_port", names[p]}, {"eth_dst", "01:00:00:00:00:00/01:00:00:00:00:00"}}, {},
                         fmt::format("l2: flood from {}", names[p]));
    RuleDef unknown = rule(10, {{"in_port", names[p]}}, {}, fmt::format("l2: unknown unicast from {}", names[p]));
    for (size_t q = 0; q < names.size(); ++q) {
      if (q == p || (is_uplink(p) && is_uplink(q))) continue;
      flood.actions.push_back({"output", names[q]});
      if (is_uplink(q)) unknown.actions.push_back({"output", names[q]});
    }
    if (!flood.actions.empty()) rules.push_back(std::move(flood));
    if (!is_uplink(p) && !unknown.actions.empty()) rules.push_back(std::move(unknown));
  }
  return rules;
}

bool compile_rule_set(const RuleSetInput& in, ActionInterner& interner, CompiledRuleSet& out,
                      std::vector<cfg::Error>& errors) {
  out = CompiledRuleSet{};
  const size_t errors_before = errors.size();
  const PortNames& pn = *in.ports;
  const ActionContext actx{&pn, in.nb_ports, static_cast<uint32_t>(in.meters.size())};

  for (size_t i = 0; i < in.meters.size(); ++i) {
    if (!meter_profile_valid(in.meters[i])) {
      const cfg::Loc loc = i < in.config->meters.size() ? in.config->meters[i].loc : cfg::Loc{};
      errors.push_back(located(fmt::format("meters[{}]", i), loc,
                               "invalid meter parameters: rates and bursts must be > 0 and pir >= cir"));
    }
  }
  out.meters = in.meters;

  // Tables: 0 always exists; others as declared or used by rules.
  std::set<unsigned> tables{0};
  std::map<unsigned, const TableDef*> declared;
  for (const TableDef& t : in.tables) {
    if (!declared.emplace(t.id, &t).second) {
      errors.push_back(located(t.where + ".id", t.loc, fmt::format("table {} is declared twice", t.id)));
    }
    tables.insert(t.id);
  }
  std::vector<RuleDef> all = generated_rules(*in.config);
  for (size_t g = 0; g < all.size(); ++g) {
    all[g].origin = RuleDef::Origin::kGenerated;
    all[g].origin_a = static_cast<uint32_t>(g);
  }
  // The generated rules, then the input's (read in place: a copy of 100k rules cost as much as compiling them).
  const size_t nb_generated = all.size();
  auto rule_at = [&](size_t i) -> const RuleDef& { return i < nb_generated ? all[i] : in.rules[i - nb_generated]; };
  const size_t nb_rules = nb_generated + in.rules.size();
  for (const RuleDef& r : all) tables.insert(r.table);
  for (const RuleDef& r : in.rules) tables.insert(r.table);
  tables.insert(in.more_tables.begin(), in.more_tables.end());

  CompiledActions dm;
  std::string e;
  if (!compile_actions({{"to_representor", ""}}, actx, dm, e)) {
    errors.push_back(located("tables", {}, e));
    return false;
  }
  const ActionList* default_miss = interner.intern(std::move(dm.list));
  for (unsigned t : tables) {
    auto it = declared.find(t);
    out.miss_actions[t] = default_miss;
    if (it == declared.end() || it->second->miss.empty()) continue;
    CompiledActions ca;
    if (!compile_actions(it->second->miss, actx, ca, e)) {
      errors.push_back(located(it->second->where + ".miss", it->second->loc, e));
    } else if (ca.goto_table != kNoTable || ca.has_rewrite) {
      errors.push_back(located(it->second->where + ".miss", it->second->loc, "a miss action cannot goto or set fields"));
    } else {
      out.miss_actions[t] = interner.intern(std::move(ca.list));
    }
  }
  out.tables.assign(tables.begin(), tables.end());

  out.rules.reserve(nb_rules);
  // Rules mostly share a few action lists: the list interned last is reused when the next has the same bytes
  // (what the interner keys by, so it would return that list too), and each list's text is formatted once.
  const ActionList* last_list = nullptr;
  std::map<std::pair<const ActionList*, uint8_t>, std::string> action_text;
  for (size_t i = 0; i < nb_rules; ++i) {
    const RuleDef& r = rule_at(i);
    std::string where = r.where.empty() ? fmt::format("rules[{}]", i) : r.where;
    MaskedKey mk;
    bool ok = true;
    for (size_t m = 0; m < r.match.size() && ok; ++m) {
      const auto& [k, v] = r.match[m];
      const bool keyword = v.empty() && find_field(k) == nullptr;
      if (!(keyword ? set_match_keyword(mk, k, e) : set_match_field(mk, k, v, pn, e))) {
        errors.push_back(located(fmt::format("{}.match.{}", where, k),
                                 m < r.match_locs.size() ? r.match_locs[m] : r.loc, e));
        ok = false;
      }
    }
    if (ok && !finish_match(mk, e)) {
      errors.push_back(located(where + ".match", r.loc, e));
      ok = false;
    }
    CompiledActions ca;
    if (!compile_actions(r.actions, actx, ca, e)) {
      // e starts with "actions[i] (...)": point at that item when we know where it is.
      size_t idx = 0;
      cfg::Loc loc = r.loc;
      if (std::sscanf(e.c_str(), "actions[%zu]", &idx) == 1 && idx < r.action_locs.size()) loc = r.action_locs[idx];
      errors.push_back(located(where, loc, e));
      continue;
    }
    if (ca.goto_table != kNoTable && !tables.count(ca.goto_table)) {
      errors.push_back(located(where, r.loc, fmt::format("goto_table {} does not exist", ca.goto_table)));
      continue;
    }
    if (ca.goto_table != kNoTable && ca.goto_table <= r.table) {
      errors.push_back(located(where, r.loc,
                               fmt::format("goto_table {} must be higher than the rule's table {} (no loops)",
                                           ca.goto_table, r.table)));
      continue;
    }
    if (!ok) continue;
    CompiledRule& cr = out.rules.emplace_back();  // built in place (a RuleSpec is two 128-byte keys)
    cr.spec.value = mk.value;
    cr.spec.mask = mk.mask;
    cr.spec.priority = r.priority;
    cr.spec.table = r.table;
    cr.spec.goto_table = ca.goto_table;
    if (ca.has_rewrite) {
      out.rewrites.push_back(ca.rewrite);
      cr.spec.rewrite = &out.rewrites.back();
    }
    const bool same_list = last_list != nullptr && last_list->actions.size() == ca.list.actions.size() &&
                           (ca.list.actions.empty() ||
                            std::memcmp(last_list->actions.data(), ca.list.actions.data(),
                                        ca.list.actions.size() * sizeof(Action)) == 0);
    const ActionList* list = same_list ? last_list : interner.intern(std::move(ca.list));
    last_list = list;
    cr.spec.actions = list;
    std::string& actions = action_text[{list, ca.goto_table}];
    if (actions.empty()) actions = format_actions(*list, pn, ca.goto_table);  // never "" ("(none)")
    // "table|priority|match|actions", built in the match text's buffer (format_match reserves room for it).
    cr.identity = format_match(mk, pn);
    cr.identity.insert(0, fmt::format("{}|{}|", r.table, r.priority));
    cr.identity += '|';
    cr.identity += actions;
    cr.where = std::move(where);
    cr.origin = r.origin;
    cr.origin_a = r.origin_a;
    cr.origin_b = r.origin_b;
    if (r.origin == RuleDef::Origin::kGenerated) continue;
    if (i >= nb_generated && i - nb_generated < in.source_hashes.size()) {
      cr.source[0] = in.source_hashes[i - nb_generated][0];
      cr.source[1] = in.source_hashes[i - nb_generated][1];
    } else {
      rule_source_hash(r, cr.source);
    }
  }
  return errors.size() == errors_before;
}

bool meter_profile_valid(const MeterProfile& p) noexcept {
  if (p.tr_tcm) return p.cir != 0 && p.pir != 0 && p.pir >= p.cir && p.cbs != 0 && p.ebs_or_pbs != 0;
  return p.cir != 0 && (p.cbs != 0 || p.ebs_or_pbs != 0);
}

void rule_source_hash(const RuleDef& r, uint64_t out[2]) {
  PairHasher h;
  h.add(uint64_t{r.table});
  h.add(uint64_t{r.priority});
  h.add(uint64_t{r.match.size()});
  for (const auto& [k, v] : r.match) {
    h.add(k);
    h.add(v);
  }
  h.add(uint64_t{r.actions.size()});
  for (const ActionItem& i : r.actions) {
    h.add(i.name);
    h.add(i.arg);
  }
  h.finish(out);
}

std::vector<cfg::Error> check_config(const cfg::Config& config) {
  std::vector<std::string> names = port_names(config);
  const PortNames pn = PortNames::from_list(names);
  RuleSetInput in;
  in.config = &config;
  in.ports = &pn;
  in.nb_ports = static_cast<uint16_t>(names.size());
  rules_from_config(config, in.tables, in.rules, in.meters);
  ActionInterner interner;
  CompiledRuleSet out;
  std::vector<cfg::Error> errors;
  compile_rule_set(in, interner, out, errors);
  return errors;
}

}  // namespace esw::dp
