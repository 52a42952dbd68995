#pragma once
// The rte_flow tier (issue 14): a classifier rule (fastpath/classifier.h RuleSpec + its ActionList) translated
// into an rte_flow pattern and action list for DPDK 22.11, validated by the PMD before it is created. Software
// stays the source of truth: a rule is only offered when the hardware's answer cannot differ from the worker's
// (what cannot be expressed exactly is refused here, with the reason), and a refused or lost rule keeps running
// in software.
//
// What a rule becomes:
//  - actions {drop}                          -> DROP + COUNT
//  - actions {output: P} on an embedded switch's proxy port (transfer), P with an ethdev
//                                            -> REPRESENTED_PORT(P) + COUNT, attr.transfer (in_port, when the rule
//                                               names it, becomes a REPRESENTED_PORT item)
//  - any other rule the pattern can express  -> MARK(rule id) + QUEUE/RSS + COUNT: partial offload as Open
//                                               vSwitch does it; the worker takes the marked packet's rule by id
//                                               instead of classifying it
// Pattern: ETH (dst, src, ethertype; untagged unless the rule matches the outer VLAN) [/ VLAN (tci, inner type)]
// [/ IPV4 (src, dst, proto) | IPV6 (src, dst, next header)] [/ TCP | UDP (ports)]. Refused: any other key field
// (TOS, TTL, fragments, TCP flags, ND/ARP fields, tunnel id, RoCE, metadata registers, parser flags), rules in
// tables other than 0 or with goto, rules that rewrite the key or modify, mirror or meter packets, L4 ports
// without an exact TCP/UDP protocol, ARP addresses.
//
// NOTE: no hardware with rte_flow was available where this was written: the translation is unit-tested
// (tests/unit/rte_flow_rule_test.cc) and the refusal path of the virtual PMDs was exercised; creation of a rule
// on a real NIC never ran.
//
// rte_flow.h hides its default masks (rte_flow_item_*_mask) from C++: the masks here are explicit, per field.
//
// Threading: main lcore only.

#include <rte_flow.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/fastpath/action_types.h"
#include "dataplane/fastpath/classifier.h"

namespace esw::dp::offload {

enum class FlowFate : uint8_t { kDrop, kMark, kTransfer };
const char* flow_fate_name(FlowFate f);

struct FlowOptions {
  uint16_t nb_rx_queues = 1;   // MARK: the packet is spread over these queues (RSS) or queue 0
  bool transfer = false;       // the port is an embedded switch's proxy: output rules become transfer rules
  // Switch port index -> ethdev port id (UINT16_MAX: not an ethdev); for transfer rules.
  std::vector<uint16_t> ethdev_of;
};

class RteFlowRule {
 public:
  RteFlowRule() = default;
  // Points into itself: neither copied nor moved.
  RteFlowRule(const RteFlowRule&) = delete;
  RteFlowRule& operator=(const RteFlowRule&) = delete;

  // Returns "" (then attr/pattern/actions are ready) or why the rule cannot be offloaded exactly.
  std::string translate(const RuleSpec& rule, const ActionList& actions, const FlowOptions& opt);

  FlowFate fate() const { return fate_; }
  const rte_flow_attr& attr() const { return attr_; }
  const std::vector<rte_flow_item>& pattern() const { return pattern_; }   // ends with RTE_FLOW_ITEM_TYPE_END
  const std::vector<rte_flow_action>& actions() const { return actions_; }  // ends with RTE_FLOW_ACTION_TYPE_END

 private:
  rte_flow_attr attr_{};
  std::vector<rte_flow_item> pattern_;
  std::vector<rte_flow_action> actions_;
  FlowFate fate_ = FlowFate::kDrop;
  rte_flow_item_ethdev in_port_{}, in_port_mask_{};
  rte_flow_item_eth eth_{}, eth_mask_{};
  rte_flow_item_vlan vlan_{}, vlan_mask_{};
  rte_flow_item_ipv4 ip4_{}, ip4_mask_{};
  rte_flow_item_ipv6 ip6_{}, ip6_mask_{};
  rte_flow_item_tcp tcp_{}, tcp_mask_{};
  rte_flow_item_udp udp_{}, udp_mask_{};
  rte_flow_action_mark mark_{};
  rte_flow_action_queue queue_{};
  rte_flow_action_rss rss_{};
  std::vector<uint16_t> rss_queues_;
  rte_flow_action_ethdev out_port_{};
  rte_flow_action_count count_{};
};

// Could one packet match both rules (same table, and every bit both masks care about agrees)? The XDP and
// rte_flow tiers offload a rule only when no higher-ranked rule overlaps it (else the software answer could
// differ from the offloaded one).
bool rules_overlap(const RuleSpec& a, const RuleSpec& b);

// An installed rte_flow rule and its port.
struct InstalledFlow {
  uint16_t port_id = UINT16_MAX;
  rte_flow* flow = nullptr;
};

// rte_flow_validate, then rte_flow_create on `port_id`. Returns "" or the PMD's reason (its rte_flow_error
// message, or the errno text).
std::string offer_flow(uint16_t port_id, const RteFlowRule& rule, InstalledFlow& out);
// rte_flow_query COUNT: false when the PMD cannot tell.
bool query_flow_count(const InstalledFlow& f, uint64_t& hits, uint64_t& bytes);
void destroy_flow(InstalledFlow& f) noexcept;

}  // namespace esw::dp::offload
