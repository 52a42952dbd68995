#include "dataplane/daemon/rule_book.h"

#include <algorithm>
#include <unordered_set>

#include <fmt/format.h>

namespace esw::dp {

const RuleBook::Installed* RuleBook::find(uint32_t id) const {
  auto it = std::find_if(rules_.begin(), rules_.end(), [&](const Installed& r) { return r.id == id; });
  return it == rules_.end() ? nullptr : &*it;
}

std::vector<uint32_t> RuleBook::take_ids(size_t n) {
  std::vector<uint32_t> ids;
  ids.reserve(n);
  for (size_t k = 0; k < n; ++k) {
    if (!free_ids_.empty()) {
      ids.push_back(free_ids_.back());
      free_ids_.pop_back();
    } else {
      ids.push_back(next_id_++);
    }
  }
  return ids;
}

void RuleBook::give_back(const std::vector<uint32_t>& ids) { free_ids_.insert(free_ids_.end(), ids.begin(), ids.end()); }

void RuleBook::remove(const std::vector<uint32_t>& removed) {
  const std::unordered_set<uint32_t> gone(removed.begin(), removed.end());
  std::erase_if(rules_, [&](const Installed& r) { return gone.count(r.id) != 0; });
  give_back(removed);
}

void RuleBook::relocate(const std::vector<Moved>& kept) {
  std::unordered_map<uint32_t, const Moved*> by_id;
  by_id.reserve(kept.size());
  for (const Moved& k : kept) by_id[k.id] = &k;
  for (Installed& r : rules_) {
    auto it = by_id.find(r.id);
    if (it == by_id.end()) continue;
    r.origin = it->second->origin;
    r.origin_a = it->second->a;
    r.origin_b = it->second->b;
  }
}

void RuleBook::add(const Installed& r, RuleCounter baseline) {
  if (baseline_.size() < next_id_) baseline_.resize(next_id_);
  baseline_[r.id] = baseline;
  rules_.push_back(r);
}

std::string RuleBook::where_of(const Installed& r, const std::vector<RuleDef>& runtime_rules) const {
  switch (r.origin) {
    case RuleDef::Origin::kGenerated:
      return r.origin_a < generated_where_.size() ? generated_where_[r.origin_a] : "generated";
    case RuleDef::Origin::kConfig: {
      std::string w = fmt::format("tables[{}].rules[{}]", r.origin_a, r.origin_b);
      auto it = rule_names_.find(config_key(r.origin_a, r.origin_b));
      if (it != rule_names_.end()) w += fmt::format(" ({})", it->second);
      return w;
    }
    case RuleDef::Origin::kExtra:
      return r.origin_a < runtime_rules.size() && !runtime_rules[r.origin_a].where.empty()
                 ? runtime_rules[r.origin_a].where
                 : fmt::format("rules[{}]", r.origin_a);
  }
  return "?";
}

}  // namespace esw::dp
