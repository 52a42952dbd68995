#pragma once
// The XDP offload tier (issue 14): drop rules pushed into an af_xdp vport's own XDP program
// (dataplane/xdp/guard.bpf.c, `xdp: {program: builtin}` and `offload: auto | required` on the vport), so the
// frames they drop never reach a worker. Software stays the source of truth: the worker keeps the full rule
// set, and a rule is offered to a port only when the program's answer cannot differ from the worker's:
//  - table 0, no goto, no key rewrite, actions exactly `drop`;
//  - it matches only destination/source MAC, ethertype, IPv4 source/destination (with eth_type IPv4 exact),
//    IPv6 source/destination (with eth_type IPv6 exact), all with any mask, the IP protocol (exact, with eth_type
//    IPv4 or IPv6 exact) and the L4 destination port (any mask, with protocol TCP or UDP exact); in_port exact
//    or wildcard;
//  - no other rule of table 0 with a priority >= its own could match one of the same frames on that port
//    (rules_overlap, so the first matching offloaded rule is the software's winner too);
//  - the vport has no rate limit (frames dropped in XDP would not spend its meter's budget) and, for rules that
//    can match TCP, is not roce_strict (the SMC stage would not see a dropped CLC exchange's grants).
// What the program cannot decide (VLAN-tagged frames, fragments for port rules, IPv6 extension headers for
// protocol/port rules, short headers) it passes to the worker. On a spoof-checked vport only IPv4/IPv6 frames
// meet the rules in XDP (the binding stage decides ARP and drops other ethertypes before any table: those go to
// the worker, so they are counted under the binding's reason as in software); on an inactive vport none do.
// A rule the map has no room for stays in software only.
//
// Steer rules (actions exactly `output: P`, optionally with `count`) are offered under the same conditions, and
// only when every output-side step of the worker is a no-op for the frames the program steers
// (dataplane/xdp/README.md, "Steer rules"): P is another port, an af_xdp port with eswitch's program whose
// interface takes XDP redirects (XdpSteerTarget::refused ""), active, and when its egress filter is on the rule
// pins eth_dst to P's MAC; the rule can match a frame the program may steer (UDP or ICMPv4: TCP, ICMPv6,
// fragments, DHCP/RoCE/VXLAN/Geneve ports go to the worker, guard.bpf.c). Refusals say "steer: <why>".
//
// Threading: main lcore only.

#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/fastpath/action_types.h"
#include "dataplane/fastpath/classifier.h"
#include "dataplane/offload/xdp_drop_rule.h"

namespace esw::dp::offload {

// A port a steer rule may output to, as the tier sees it (filled by the daemon from the open ports).
struct XdpSteerTarget {
  uint16_t port = 0;
  std::string name;
  std::string refused;  // "": eswitch's program is on its af_xdp interface and the interface takes redirects
  uint32_t ifindex = 0;
  bool vport = false;   // has a binding: then active / spoofchk / mac below are its egress filter
  bool active = true;
  bool spoofchk = false;
  bool has_mac = false;
  uint8_t mac[6] = {0, 0, 0, 0, 0, 0};
};

// What a vport's binding means for the tier.
struct XdpPortTraits {
  uint16_t in_port = 0;
  bool rate_limited = false;
  bool roce_strict = false;
  const std::vector<XdpSteerTarget>* targets = nullptr;  // where steer rules may go (nullptr: nowhere)
};

// A rule as the tier sees it (table-0 rules of the whole set; others are ignored).
struct XdpRuleView {
  const RuleSpec* spec = nullptr;
  const ActionList* actions = nullptr;
};

struct XdpDecision {
  size_t index = 0;       // into the views given to plan_xdp_port
  std::string reason;     // "": offered to the program (then `rule` is what it gets)
  XdpDropRule rule{};
  bool steer = false;     // a steer rule (rule.action kActRedirect); out_port / out_ifindex: its destination
  uint16_t out_port = 0;
  uint32_t out_ifindex = 0;
};

// The port a steer rule outputs to (actions exactly `output: P`, optionally `count`), or -1.
int xdp_steer_port(const ActionList& al);

// For every drop-only or steer rule of table 0 that can see frames of `port`: whether the port's program may drop for
// it, in the order of `rules` (no order needed: a frame matches at most one rule offered).
std::vector<XdpDecision> plan_xdp_port(const std::vector<XdpRuleView>& rules, const XdpPortTraits& port);

// "" and `out` filled when one rule can be expressed for the program on `port` (ignoring overlaps), else why not.
std::string xdp_express(const RuleSpec& r, const ActionList& al, const XdpPortTraits& port, XdpDropRule& out);

}  // namespace esw::dp::offload
