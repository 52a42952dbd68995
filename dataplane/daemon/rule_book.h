#pragma once
// The switch's rule book: what it remembers of every installed rule besides the classifier's copy (id, where it
// came from, identity hashes), the id space (ids are reused, so per-core counter arrays stay dense), counter
// baselines (a reused id's counters start from what the cores had counted when it was assigned) and the names
// that `show rules`/trace print for a rule. Match, actions, table and priority are read back from the
// classifier when needed, so a rule costs 56 bytes here.
//
// Threading: main lcore only (owned by Switch).

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "dataplane/fastpath/stats.h"
#include "dataplane/rules/ruleset.h"

namespace esw::dp {

class RuleBook {
 public:
  struct Installed {
    uint32_t id;
    RuleDef::Origin origin;
    uint32_t origin_a;
    uint32_t origin_b;
    uint64_t identity[2];  // two independent hashes of table|priority|match|actions (compiled, canonical)
    uint64_t source[2];    // hashes of the rule as written (rule_source_hash); 0 for generated rules
    uint8_t table;
  };

  const std::vector<Installed>& installed() const { return rules_; }
  size_t size() const { return rules_.size(); }
  const Installed* find(uint32_t id) const;

  // Ids for n new rules (freed ids first); give_back() returns ids that were not used after all.
  std::vector<uint32_t> take_ids(size_t n);
  void give_back(const std::vector<uint32_t>& ids);
  uint32_t id_limit() const { return next_id_; }  // every id ever handed out is below this

  // One apply's bookkeeping: `removed` leave (their ids are free again); kept rules may have moved in the file;
  // `added` come in with the counters the cores had for their id (`baseline`).
  void remove(const std::vector<uint32_t>& removed);
  struct Moved {
    uint32_t id;
    RuleDef::Origin origin;
    uint32_t a, b;
  };
  void relocate(const std::vector<Moved>& kept);
  void add(const Installed& r, RuleCounter baseline);
  void shrink() { rules_.shrink_to_fit(); }
  RuleCounter baseline(uint32_t id) const { return id < baseline_.size() ? baseline_[id] : RuleCounter{}; }

  // Names for where_of(): generated rules' descriptions, and the names of named config rules by (table index,
  // rule index).
  void set_generated_where(std::vector<std::string> where) { generated_where_ = std::move(where); }
  void set_config_names(std::unordered_map<uint64_t, std::string> names) { rule_names_ = std::move(names); }
  const std::unordered_map<uint64_t, std::string>& config_names() const { return rule_names_; }
  static uint64_t config_key(size_t table, size_t rule) { return uint64_t(table) << 32 | rule; }

  // "tables[0].rules[3] (web-http)", "l2: to vm1", the runtime rule's name, ...
  std::string where_of(const Installed& r, const std::vector<RuleDef>& runtime_rules) const;

 private:
  std::vector<Installed> rules_;  // any order
  std::vector<uint32_t> free_ids_;
  uint32_t next_id_ = 0;
  std::vector<RuleCounter> baseline_;  // by rule id
  std::vector<std::string> generated_where_;
  std::unordered_map<uint64_t, std::string> rule_names_;
};

}  // namespace esw::dp
