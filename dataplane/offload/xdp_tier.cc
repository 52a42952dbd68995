#include "dataplane/offload/xdp_tier.h"

#include <arpa/inet.h>

#include <cstring>

#include <fmt/format.h>

#include "dataplane/offload/rte_flow_rule.h"

namespace esw::dp::offload {
namespace {

bool all_zero(const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i) {
    if (b[i] != 0) return false;
  }
  return true;
}

// The first key field the mask uses that the program cannot match, or "".
const char* unsupported_field(const FlowKey& m) {
  if (m.vlan_tci[0] != 0 || m.vlan_tci[1] != 0) return "the VLAN tag";
  if (!all_zero(m.eth_dst, 6)) return "eth_dst";
  if (!all_zero(m.eth_src, 6)) return "eth_src";
  if (m.ip_tos != 0) return "the TOS/DSCP";
  if (m.ip_ttl != 0) return "the TTL";
  if (m.ip_frag != 0) return "fragment bits";
  if (m.tp_src != 0) return "the L4 source port";
  if (m.tcp_flags != 0) return "TCP flags";
  if (m.smc_option != 0) return "the SMC option";
  if (!all_zero(m.ipv6_src, 16) || !all_zero(m.ipv6_dst, 16)) return "IPv6 addresses";
  if (!all_zero(m.nd_target, 16)) return "the ND target";
  if (!all_zero(m.arp_sha, 6) || !all_zero(m.arp_tha, 6)) return "ARP/ND link-layer addresses";
  if (m.tun_id != 0) return "the tunnel id";
  if (m.roce_dqp != 0) return "the RoCE QP";
  if (m.flags != 0) return "parser flags";
  for (uint32_t r : m.regs) {
    if (r != 0) return "metadata registers";
  }
  return "";
}

bool drop_only(const ActionList& al) {
  return al.actions.size() == 1 && al.actions[0].type == ActionType::kDrop && !al.modifies && !al.has_mirror &&
         !al.has_meter && !al.has_count;
}

}  // namespace

std::string xdp_express(const RuleSpec& r, const ActionList& al, const XdpPortTraits& port, XdpDropRule& out) {
  out = XdpDropRule{};
  if (r.table != 0 || r.goto_table != kNoTable) return "not in table 0 or jumps (goto)";
  if (r.rewrite != nullptr) return "rewrites the key";
  if (!drop_only(al)) return "actions are not just drop";
  const FlowKey& m = r.mask;
  const FlowKey& v = r.value;
  if (m.in_port != 0 && (m.in_port != 0xffff || v.in_port != port.in_port)) return "matches other ports";
  if (port.rate_limited) return "the vport has a rate limit (XDP drops would not spend its budget)";
  if (const char* f = unsupported_field(m); *f != '\0') return fmt::format("matches {}, which XDP here cannot", f);
  if (m.eth_type != 0xffff || v.eth_type != htons(0x0800)) return "does not match IPv4 exactly (eth_type)";
  if (m.ip_proto != 0 && m.ip_proto != 0xff) return "matches part of the IP protocol";
  if (m.tp_dst != 0 && (m.ip_proto != 0xff || (v.ip_proto != 6 && v.ip_proto != 17))) {
    return "matches an L4 port without protocol tcp or udp";
  }
  if (port.roce_strict && (m.ip_proto == 0 || v.ip_proto == 6)) {
    return "can match TCP on a roce_strict vport (its SMC exchanges must reach the worker)";
  }
  out.src = v.ipv4_src;
  out.src_mask = m.ipv4_src;
  out.dst = v.ipv4_dst;
  out.dst_mask = m.ipv4_dst;
  out.proto = v.ip_proto;
  out.proto_mask = m.ip_proto;
  out.dport = v.tp_dst;
  out.dport_mask = m.tp_dst;
  return "";
}

std::vector<XdpDecision> plan_xdp_port(const std::vector<XdpRuleView>& rules, const XdpPortTraits& port) {
  std::vector<XdpDecision> out;
  auto sees_port = [&](const RuleSpec& s) { return (s.mask.in_port & (s.value.in_port ^ port.in_port)) == 0; };
  for (size_t i = 0; i < rules.size(); ++i) {
    const RuleSpec& r = *rules[i].spec;
    if (r.table != 0 || !sees_port(r) || !drop_only(*rules[i].actions)) continue;
    XdpDecision d;
    d.index = i;
    d.reason = xdp_express(r, *rules[i].actions, port, d.rule);
    if (d.reason.empty()) {
      // Only on this port's frames: a rule for other ports cannot win here.
      RuleSpec here = r;
      here.mask.in_port = 0xffff;
      here.value.in_port = port.in_port;
      for (size_t j = 0; j < rules.size() && d.reason.empty(); ++j) {
        const RuleSpec& s = *rules[j].spec;
        if (j == i || s.table != 0 || s.priority < r.priority) continue;
        if (rules_overlap(here, s)) {
          d.reason = fmt::format("a rule of priority {} {} could match the same frames", s.priority,
                                 s.priority == r.priority ? "(the same)" : "(higher)");
        }
      }
    }
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace esw::dp::offload
