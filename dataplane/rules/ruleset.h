#pragma once
// Compiles the user's view of the switch (tables, rules with field matches and action items, meters, plus the
// rules the foundation modes generate) into what the fast path runs: classifier rule specs, per-table miss
// action lists and meter profiles, as plain data. The daemon puts them into a Pipeline snapshot
// (dataplane/daemon/switch.cc); the offline validator (check_config, eswitchctl) needs no runtime pipeline.
// Control path only (main lcore or an offline tool); needs no EAL and links no DPDK library. Every error names
// the rule and, for rules from YAML, its line and column; a failed set changes nothing.

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "dataplane/rules/actions.h"
#include "dataplane/fastpath/classifier.h"
#include "dataplane/rules/fields.h"

namespace esw::dp {

struct TableDef {
  uint8_t id = 0;
  std::vector<ActionItem> miss;  // empty: to_representor (the ingress port's representor)
  std::string where;             // for messages: "tables[1]"
  cfg::Loc loc;
};

struct RuleDef {
  uint8_t table = 0;
  uint32_t priority = 0;
  // field=value pairs and keywords (value empty), in the order written: {"in_port","vm1"}, {"tcp",""}, ...
  std::vector<std::pair<std::string, std::string>> match;
  std::vector<ActionItem> actions;
  std::string where;  // for messages: "tables[0].rules[3]" or the rule's name
  cfg::Loc loc;       // the rule
  std::vector<cfg::Loc> match_locs;   // per match item (may be empty)
  std::vector<cfg::Loc> action_locs;  // per action item (may be empty)
  // Where the rule comes from, compactly (the switch keeps this instead of strings for every installed rule).
  enum class Origin : uint8_t { kGenerated, kConfig, kExtra };
  Origin origin = Origin::kExtra;
  uint32_t origin_a = 0;  // generated: index; config: table index; extra: index
  uint32_t origin_b = 0;  // config: rule index in the table
};

// "table=1,priority=10,in_port=vm1,ipv4,tcp,tcp_dst=80 actions=count,output:vm2" -> RuleDef. For tests,
// trace and the CLI. table and priority default to 0.
bool parse_rule_text(std::string_view text, RuleDef& out, std::string& error);

// The tables, rules and meters a config declares, as compiler input (meter names become indexes).
void rules_from_config(const cfg::Config& config, std::vector<TableDef>& tables, std::vector<RuleDef>& rules,
                       std::vector<MeterProfile>& meters);

// The rules the foundation modes stand for, as ordinary rules in table 0 (so trace shows them):
//  l2: vport MAC -> that vport (a frame for the port it came from is dropped); broadcast/multicast -> every
//      other port (uplinks never to uplinks); other unicast from a vport -> the uplinks.
//  cross_connect: in_port=a -> output:b.
std::vector<RuleDef> generated_rules(const cfg::Config& config);

struct CompiledRule {
  RuleSpec spec;         // id unset; rewrite points into CompiledRuleSet::rewrites
  std::string identity;  // equal identity = the same rule (table, priority, match, actions)
  std::string where;
  RuleDef::Origin origin = RuleDef::Origin::kExtra;
  uint32_t origin_a = 0;
  uint32_t origin_b = 0;
  uint64_t source[2] = {0, 0};  // rule_source_hash of what was written
};

struct CompiledRuleSet {
  std::vector<unsigned> tables;    // every table the rules need (0 always)
  std::vector<CompiledRule> rules;
  std::deque<KeyRewrite> rewrites;  // stable addresses
  // What the Pipeline snapshot takes (Pipeline::miss_actions, Pipeline::meters): per table, what a miss does
  // (interned; null for tables that do not exist), and the meter profiles (meter:N is meters[N]).
  std::array<const ActionList*, kMaxTables> miss_actions{};
  std::vector<MeterProfile> meters;
};

struct RuleSetInput {
  const cfg::Config* config = nullptr;  // pipeline mode and vports for the generated rules
  const PortNames* ports = nullptr;     // names -> switch port indexes
  uint16_t nb_ports = 0;                // port indexes are < nb_ports
  std::vector<TableDef> tables;
  std::vector<RuleDef> rules;
  // rule_source_hash of rules[i] for i < size(), when the caller has hashed them already (the switch's apply plan
  // hashes every rule to find those it keeps): the compiler takes these instead of hashing again. May be empty.
  std::vector<std::array<uint64_t, 2>> source_hashes;
  std::vector<MeterProfile> meters;  // meter:N refers to meters[N]
  std::vector<unsigned> more_tables;  // tables that must exist for rules compiled earlier and kept as they are
};

// A hash pair of a rule's source (table, priority, match items, action items as written): equal source in an
// equal context (port indexes, meters) compiles to the same rule, so it need not be compiled again.
void rule_source_hash(const RuleDef& r, uint64_t out[2]);

// Compiles everything; on failure `errors` holds every problem found (located) and the result is unusable.
bool compile_rule_set(const RuleSetInput& in, ActionInterner& interner, CompiledRuleSet& out,
                      std::vector<cfg::Error>& errors);

// Whether rte_meter accepts the profile (rte_meter_*_profile_config's checks, without DPDK): srTCM needs cir > 0
// and cbs or ebs > 0; trTCM needs cir, pir, cbs, pbs > 0 and pir >= cir.
bool meter_profile_valid(const MeterProfile& p) noexcept;

// Offline validation of a config's rules (eswitchctl validate): ports are numbered as the switch would
// (uplinks, vports). Returns every error, located.
std::vector<cfg::Error> check_config(const cfg::Config& config);

// Port names in config order (uplinks, then vports).
std::vector<std::string> port_names(const cfg::Config& config);

}  // namespace esw::dp
