#include "dataplane/ruleset.h"

#include <map>
#include <set>

#include <fmt/format.h>

namespace esw::dp {

std::vector<std::string> port_names(const cfg::Config& config) {
  std::vector<std::string> names;
  for (const auto& u : config.uplinks) names.push_back(u.name);
  for (const auto& v : config.vports) names.push_back(v.name);
  return names;
}

bool parse_rule_text(std::string_view text, RuleDef& out, std::string& error) {
  out = RuleDef{};
  size_t act = text.rfind("actions=");
  if (act != std::string_view::npos && act != 0 && text[act - 1] != ' ' && text[act - 1] != ',') {
    act = std::string_view::npos;
  }
  std::string_view match = act == std::string_view::npos ? text : text.substr(0, act);
  std::string_view actions = act == std::string_view::npos ? std::string_view() : text.substr(act + 8);
  size_t pos = 0;
  while (pos < match.size()) {
    size_t comma = match.find(',', pos);
    if (comma == std::string_view::npos) comma = match.size();
    std::string_view item = match.substr(pos, comma - pos);
    pos = comma + 1;
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    std::string k(item.substr(0, eq));
    std::string v = eq == std::string_view::npos ? std::string() : std::string(item.substr(eq + 1));
    if (k == "table" || k == "priority") {
      unsigned long n = 0;
      try {
        n = std::stoul(v);
      } catch (...) {
        error = fmt::format("{}: '{}' is not a number", k, v);
        return false;
      }
      if (k == "table") {
        if (n >= kMaxTables) {
          error = fmt::format("table: {} is not a table number (0..{})", n, kMaxTables - 1);
          return false;
        }
        out.table = static_cast<uint8_t>(n);
      } else {
        out.priority = static_cast<uint32_t>(n);
      }
      continue;
    }
    out.match.emplace_back(std::move(k), std::move(v));
  }
  if (actions.empty()) {
    error = "no actions= part (use actions=drop to drop)";
    return false;
  }
  return parse_action_text(actions, out.actions, error);
}

std::vector<RuleDef> generated_rules(const cfg::Config& config) {
  std::vector<RuleDef> rules;
  const std::vector<std::string> names = port_names(config);
  const size_t n_up = config.uplinks.size();
  auto is_uplink = [&](size_t i) { return i < n_up; };
  if (config.pipeline.mode == cfg::PipelineMode::kCrossConnect) {
    for (size_t i = 0; i < config.pipeline.cross_connect.size(); ++i) {
      const auto& xc = config.pipeline.cross_connect[i];
      RuleDef r;
      r.priority = 100;
      r.match = {{"in_port", xc.from}};
      r.actions = {{"output", xc.to}};
      r.where = fmt::format("pipeline.cross_connect[{}]", i);
      rules.push_back(std::move(r));
    }
    return rules;
  }
  for (size_t vi = 0; vi < config.vports.size(); ++vi) {
    const auto& v = config.vports[vi];
    if (!v.hw_addr) continue;
    RuleDef to{0, 100, {{"eth_dst", *v.hw_addr}}, {{"output", v.name}}, fmt::format("vports[{}] (l2: to {})", vi, v.name)};
    RuleDef hairpin{0, 110, {{"in_port", v.name}, {"eth_dst", *v.hw_addr}}, {{"drop", ""}},
                    fmt::format("vports[{}] (l2: hairpin)", vi)};
    rules.push_back(std::move(to));
    rules.push_back(std::move(hairpin));
  }
  for (size_t p = 0; p < names.size(); ++p) {
    RuleDef flood{0, 50, {{"in_port", names[p]}, {"eth_dst", "01:00:00:00:00:00/01:00:00:00:00:00"}}, {},
                  fmt::format("{} (l2: flood from {})", is_uplink(p) ? "uplinks" : "vports", names[p])};
    RuleDef unknown{0, 10, {{"in_port", names[p]}}, {}, fmt::format("vports (l2: unknown unicast from {})", names[p])};
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

bool compile_rule_set(const RuleSetInput& in, ActionInterner& interner, CompiledRuleSet& out, std::string& error) {
  out = CompiledRuleSet{};
  const std::vector<std::string> names = port_names(*in.config);
  const PortNames pn = PortNames::from_list(names);
  ActionContext actx{&pn, static_cast<uint16_t>(names.size()), static_cast<uint32_t>(in.meters.size())};

  auto pipeline = std::make_unique<Pipeline>();
  pipeline->ports.nb_ports = static_cast<uint16_t>(names.size());
  pipeline->max_rules = in.max_rules;
  pipeline->interner = &interner;
  pipeline->meters = in.meters;
  for (size_t i = 0; i < in.meters.size(); ++i) {
    MeterRuntime probe;
    if (!init_meter(in.meters[i], probe)) {
      error = fmt::format("meters[{}]: invalid meter parameters (rates and bursts must be > 0, pir >= cir)", i);
      return false;
    }
  }

  // Tables: 0 always exists; others as declared or as referenced by rules.
  std::set<unsigned> tables{0};
  std::map<unsigned, const TableDef*> declared;
  for (const TableDef& t : in.tables) {
    if (!declared.emplace(t.id, &t).second) {
      error = fmt::format("{}: table {} is declared twice", t.where, t.id);
      return false;
    }
    tables.insert(t.id);
  }
  std::vector<RuleDef> all = generated_rules(*in.config);
  all.insert(all.end(), in.rules.begin(), in.rules.end());
  for (const RuleDef& r : all) tables.insert(r.table);

  const ActionList* default_miss = nullptr;
  {
    CompiledActions ca;
    if (!compile_actions({{"to_representor", ""}}, actx, ca, error)) return false;
    default_miss = interner.intern(std::move(ca.list));
  }
  for (unsigned t : tables) {
    auto it = declared.find(t);
    if (it == declared.end() || it->second->miss.empty()) {
      pipeline->miss_actions[t] = default_miss;
      continue;
    }
    CompiledActions ca;
    std::string e;
    if (!compile_actions(it->second->miss, actx, ca, e)) {
      error = fmt::format("{}.miss: {}", it->second->where, e);
      return false;
    }
    if (ca.goto_table != kNoTable || ca.has_rewrite) {
      error = fmt::format("{}.miss: a miss action cannot goto or set fields", it->second->where);
      return false;
    }
    pipeline->miss_actions[t] = interner.intern(std::move(ca.list));
  }

  out.tables.assign(tables.begin(), tables.end());
  out.specs.reserve(all.size());
  if (all.size() > in.max_rules) {
    error = fmt::format("{} rules, at most {} (dataplane.max_rules)", all.size(), in.max_rules);
    return false;
  }
  for (size_t i = 0; i < all.size(); ++i) {
    const RuleDef& r = all[i];
    const std::string where = r.where.empty() ? fmt::format("rules[{}]", i) : r.where;
    MaskedKey mk;
    std::string e;
    for (const auto& [k, v] : r.match) {
      const bool ok = v.empty() && find_field(k) == nullptr ? set_match_keyword(mk, k, e)
                                                            : set_match_field(mk, k, v, pn, e);
      if (!ok) {
        error = fmt::format("{}.match: {}", where, e);
        return false;
      }
    }
    if (!finish_match(mk, e)) {
      error = fmt::format("{}.match: {}", where, e);
      return false;
    }
    CompiledActions ca;
    if (!compile_actions(r.actions, actx, ca, e)) {
      error = fmt::format("{}.{}", where, e);
      return false;
    }
    if (ca.goto_table != kNoTable && !tables.count(ca.goto_table)) {
      error = fmt::format("{}: goto_table {} does not exist", where, ca.goto_table);
      return false;
    }
    if (ca.goto_table != kNoTable && ca.goto_table <= r.table) {
      error = fmt::format("{}: goto_table {} must be higher than the rule's table {} (no loops)", where,
                          ca.goto_table, r.table);
      return false;
    }
    RuleSpec spec;
    spec.value = mk.value;
    spec.mask = mk.mask;
    spec.id = static_cast<uint32_t>(i);
    spec.priority = r.priority;
    spec.table = r.table;
    spec.goto_table = ca.goto_table;
    if (ca.has_rewrite) {
      out.rewrites.push_back(ca.rewrite);
      spec.rewrite = &out.rewrites.back();
    }
    spec.actions = interner.intern(std::move(ca.list));
    out.specs.push_back(spec);
    out.rule_where.push_back(where);
    out.rule_matches.push_back(mk);
  }
  out.pipeline = std::move(pipeline);
  return true;
}

}  // namespace esw::dp
