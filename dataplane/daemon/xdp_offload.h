#pragma once
// The daemon's side of the XDP offload tier (dataplane/offload/xdp_tier.h): on every apply, which drop rules each
// `offload: auto | required` vport's XDP program takes (decided before anything changes, so `required` can
// refuse the apply with the rule and the reason), then writing them into the programs once the new rule set is
// live, and per rule where it runs and what the programs dropped for it (`show rules`).
//
// Threading: main lcore only.

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/fastpath/action_types.h"
#include "dataplane/offload/xdp_tier.h"
#include "dataplane/ports/port.h"

namespace esw::dp {

class XdpOffload {
 public:
  // One port's plan: rule keys (an installed id, or kNewBase + index into the apply's added rules) with what the
  // program gets for each, in slot order.
  static constexpr uint64_t kNewBase = 1ull << 32;
  struct PortPlan {
    uint16_t port = 0;
    std::string name;
    std::vector<uint64_t> keys;
    std::vector<offload::XdpDropRule> rules;
    std::vector<uint16_t> out;          // per rule: a steer rule's destination port index, or kNoOut
    std::vector<uint32_t> tx_ifindex;   // devmap slot -> interface (steer rules' tx_slot)
    std::vector<std::pair<uint64_t, std::string>> refused;  // rule key -> why it stays in software here
  };
  static constexpr uint16_t kNoOut = 0xffff;

  // What one apply will do (filled by Switch::execute_plan before anything changes).
  std::vector<PortPlan> planned;

  // Before the apply's rules go live: programs whose rules change stop using them (those frames go to the
  // worker, which has every rule), so no frame sees a removed or now-overlapped rule in XDP. A program that is
  // no longer on its interface (detached or replaced from outside) counts as changed: install rewrites its rules
  // into eswitch's program found again, or leaves them in software with a warning naming the port.
  void suspend_changed(const std::array<std::unique_ptr<Port>, kMaxPorts>& slots);
  // After the apply's rules are live: maps added rules' keys to their ids, writes each planned port's rules
  // (ports no longer planned are emptied). A rule the program has no room for stays in software (logged once
  // per port and apply where that changes).
  // Requires suspend_changed to have run in the same apply (it empties every program whose rules change).
  void install(const std::vector<uint32_t>& new_ids, const std::array<std::unique_ptr<Port>, kMaxPorts>& slots);
  // Rules that went away: their XDP counts are forgotten (ids are reused).
  void forget(const std::vector<uint32_t>& removed_ids);

  struct RuleReport {
    std::vector<std::string> ports;  // where the rule runs in XDP (empty: software only)
    uint64_t xdp_drops = 0;
    uint64_t xdp_steered = 0, xdp_steered_bytes = 0;  // frames a steer rule redirected in XDP
    std::string refused;             // why it is not in an offload port's program ("" when it is, or not asked)
  };
  std::map<uint32_t, RuleReport> report(const std::array<std::unique_ptr<Port>, kMaxPorts>& slots) const;
  // Adds what steer rules redirected in XDP to port `idx` (named `name`) to its tx counters, so they read as
  // if the worker had sent those frames.
  void add_steered_tx(uint16_t idx, const std::string& name, uint64_t& tx_packets, uint64_t& tx_bytes,
                      const std::array<std::unique_ptr<Port>, kMaxPorts>& slots) const;

 private:
  struct Live {
    std::string name;
    std::vector<uint32_t> ids;              // slot -> rule id
    std::vector<offload::XdpDropRule> rules;  // what was asked (ids.size() of them got in)
    std::vector<uint16_t> out;              // slot -> a steer rule's destination (kNoOut: a drop rule)
    std::vector<std::string> out_name;      // its name then
    std::vector<uint32_t> tx_ifindex;
  };
  // Counts of slots being rewritten: kept per rule id and per destination port name.
  void carry(const Live& l, const std::vector<offload::XdpSlotCount>& old);
  std::map<uint16_t, Live> live_;          // port index -> its program's rules
  struct Carried {
    uint64_t drops = 0, steered = 0, steered_bytes = 0;
  };
  std::map<uint32_t, Carried> carried_;    // rule id -> XDP drops / steers of earlier rewrites
  std::map<std::string, offload::XdpSlotCount> carried_tx_;  // port name -> steered to it by earlier rewrites
  std::map<uint32_t, std::string> refused_;  // rule id -> why an offload port's program does not have it
};

}  // namespace esw::dp
