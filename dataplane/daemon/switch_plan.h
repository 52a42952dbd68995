#pragma once
// What one apply does, computed before anything changes (reconcile.cc). Internal to the switch.

#include <array>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "dataplane/daemon/switch.h"

namespace esw::dp {

// What one apply will do, computed before anything changes.
struct Switch::Plan {
  cfg::Config desired;  // without rule bodies (plan() compiles them from the caller's config)
  std::unordered_map<uint64_t, std::string> rule_names;  // RuleBook::config_key -> name of each named rule
  struct Slot {
    std::string name;
    PortRole role = PortRole::kVport;
    std::string kind = "ethdev";  // port backend
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
  using Keep = RuleBook::Moved;
  std::vector<Keep> keep;                          // installed rules that stay, with their (new) origin
  std::vector<uint32_t> keep_by_source;            // installed ids reused without compiling (subset of keep)
  uint64_t context[2] = {0, 0};
  std::vector<size_t> add;                         // compiled rules that need an id
  std::vector<std::array<uint64_t, 2>> identity;   // identity_hash of each compiled rule (parallel to compiled)
  std::vector<uint32_t> remove_ids;
  std::vector<unsigned> add_tables, remove_tables;
};

// An apply planned by prepare_apply, executed by finish_apply.
struct Switch::PreparedApply {
  const cfg::Config* desired = nullptr;
  bool dry_run = false;
  uint64_t state_version = 0;  // Switch::state_version_ when planned
  bool planned = false;        // plan() succeeded
  std::string failure;         // what plan() threw, if it did
  Plan plan;
  ApplyResult result;
};

}  // namespace esw::dp
