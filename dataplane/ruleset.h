#pragma once
// Compiles the user's view of the switch (tables, rules with field matches and action items, plus the rules
// the foundation modes generate) into what the fast path runs: a classifier Batch and a Pipeline snapshot.
// Control path only (main lcore). Every error names the rule it comes from; nothing of a failed set is kept.

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "dataplane/actions.h"
#include "dataplane/classifier.h"
#include "dataplane/fields.h"
#include "dataplane/pipeline.h"

namespace esw::dp {

struct TableDef {
  uint8_t id = 0;
  std::vector<ActionItem> miss;  // empty: to_representor (the ingress port's representor)
  std::string where;             // for messages: "tables[1]"
};

struct RuleDef {
  uint8_t table = 0;
  uint32_t priority = 0;
  // field=value pairs and keywords (value empty), in the order written: {"in_port","vm1"}, {"tcp",""}, ...
  std::vector<std::pair<std::string, std::string>> match;
  std::vector<ActionItem> actions;
  std::string where;  // for messages: "tables[0].rules[3]"
};

// "table=1,priority=10,in_port=vm1,ipv4,tcp,tcp_dst=80 actions=count,output:vm2" -> RuleDef. For tests,
// trace and the CLI. table and priority default to 0.
bool parse_rule_text(std::string_view text, RuleDef& out, std::string& error);

struct CompiledRuleSet {
  std::vector<unsigned> tables;               // every table the rules need (0 always)
  std::vector<RuleSpec> specs;                // rule i has id i; specs[i].rewrite points into `rewrites`
  std::deque<KeyRewrite> rewrites;            // stable addresses
  std::unique_ptr<Pipeline> pipeline;         // port map, miss actions
  std::vector<std::string> rule_where;        // by rule id
  std::vector<MaskedKey> rule_matches;        // by rule id, for show/trace
};

struct RuleSetInput {
  const cfg::Config* config = nullptr;  // ports (names = switch port indexes, uplinks first), pipeline mode
  std::vector<TableDef> tables;
  std::vector<RuleDef> rules;
  std::vector<MeterProfile> meters;  // meter:N refers to meters[N]
  uint32_t max_rules = 0;
};

// Builds everything; false + error naming the offending table/rule on failure.
bool compile_rule_set(const RuleSetInput& in, ActionInterner& interner, CompiledRuleSet& out, std::string& error);

// The rules the foundation modes stand for, as ordinary rules in table 0 (so trace shows them):
//  l2: vport MAC -> that vport (a frame for the port it came from is dropped); broadcast/multicast -> every
//      other port (uplinks never to uplinks); other unicast from a vport -> the uplinks.
//  cross_connect: in_port=a -> output:b.
std::vector<RuleDef> generated_rules(const cfg::Config& config);

// Port names in switch index order (uplinks, then vports).
std::vector<std::string> port_names(const cfg::Config& config);

}  // namespace esw::dp
