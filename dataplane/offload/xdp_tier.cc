#include "dataplane/offload/xdp_tier.h"

#include <arpa/inet.h>

#include <cstring>

#include <fmt/format.h>

#include "dataplane/fastpath/bytes.h"
#include "dataplane/offload/rte_flow_rule.h"

namespace esw::dp::offload {
namespace {

// The first key field the mask uses that the program cannot match, or "".
const char* unsupported_field(const FlowKey& m) {
  if (m.vlan_tci[0] != 0 || m.vlan_tci[1] != 0) return "the VLAN tag";
  if (m.ip_tos != 0) return "the TOS/DSCP";
  if (m.ip_ttl != 0) return "the TTL";
  if (m.ip_frag != 0) return "fragment bits";
  if (m.tp_src != 0) return "the L4 source port";
  if (m.tcp_flags != 0) return "TCP flags";
  if (m.smc_option != 0) return "the SMC option";
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

// Why a steer rule to `t` cannot be done by a redirect, or "" (the rule's common checks are done).
std::string steer_refusal(const RuleSpec& r, const XdpPortTraits& port, int out, const XdpSteerTarget*& target) {
  const FlowKey& m = r.mask;
  const FlowKey& v = r.value;
  target = nullptr;
  if (out == port.in_port) return "output to the ingress port";
  if (port.targets != nullptr) {
    for (const XdpSteerTarget& t : *port.targets) {
      if (t.port == static_cast<uint16_t>(out)) target = &t;
    }
  }
  if (target == nullptr) return fmt::format("port {} is not an af_xdp port with eswitch's XDP program", out);
  const XdpSteerTarget& t = *target;
  if (!t.refused.empty()) return t.refused;
  if (t.vport && !t.active) return fmt::format("{} is inactive (the worker drops what goes there)", t.name);
  if (t.vport && t.spoofchk) {
    bool exact = true;
    for (int i = 0; i < 6; ++i) exact = exact && m.eth_dst[i] == 0xff;
    if (!exact || (t.has_mac && std::memcmp(v.eth_dst, t.mac, 6) != 0) || (!t.has_mac && (v.eth_dst[0] & 1))) {
      return fmt::format("the rule does not pin eth_dst to {}'s {}MAC (its egress filter would judge each frame)",
                         t.name, t.has_mac ? "" : "unicast ");
    }
  }
  // Frames the program may steer: IPv4 UDP / ICMP, IPv6 UDP (guard.bpf.c). A rule that can match none of them
  // would never steer.
  const bool v4 = (m.eth_type & (v.eth_type ^ htons(0x0800))) == 0;
  const bool v6 = (m.eth_type & (v.eth_type ^ htons(0x86dd))) == 0;
  if (!v4 && !v6) return "matches no IPv4/IPv6 frame (only UDP and ICMPv4 are steered in XDP)";
  if (m.ip_proto != 0) {
    const uint8_t p = v.ip_proto;
    if (p == 6) return "matches TCP (the SMC stage follows TCP segments by its own state: they stay in the worker)";
    if (p != 17 && !(p == 1 && v4)) return fmt::format("matches IP protocol {} (only UDP and ICMPv4 are steered in XDP)", p);
  }
  return "";
}

}  // namespace

int xdp_steer_port(const ActionList& al) {
  if (al.modifies || al.has_mirror || al.has_meter) return -1;
  int out = -1;
  for (const Action& a : al.actions) {
    if (a.type == ActionType::kOutput && out < 0) {
      out = a.port;
    } else if (a.type != ActionType::kCount) {
      return -1;
    }
  }
  return out;
}

std::string xdp_express(const RuleSpec& r, const ActionList& al, const XdpPortTraits& port, XdpDropRule& out) {
  out = XdpDropRule{};
  if (r.table != 0 || r.goto_table != kNoTable) return "not in table 0 or jumps (goto)";
  if (r.rewrite != nullptr) return "rewrites the key";
  const int steer_out = drop_only(al) ? -1 : xdp_steer_port(al);
  if (!drop_only(al) && steer_out < 0) return "actions are not just drop, or output to one port";
  const FlowKey& m = r.mask;
  const FlowKey& v = r.value;
  if (m.in_port != 0 && (m.in_port != 0xffff || v.in_port != port.in_port)) return "matches other ports";
  if (port.rate_limited) return "the vport has a rate limit (XDP drops would not spend its budget)";
  if (const char* f = unsupported_field(m); *f != '\0') return fmt::format("matches {}, which XDP here cannot", f);
  const bool is4 = m.eth_type == 0xffff && v.eth_type == htons(0x0800);
  const bool is6 = m.eth_type == 0xffff && v.eth_type == htons(0x86dd);
  if ((m.ipv4_src != 0 || m.ipv4_dst != 0) && !is4) return "matches IPv4 addresses without eth_type IPv4 exactly";
  if ((!all_zero(m.ipv6_src, 16) || !all_zero(m.ipv6_dst, 16)) && !is6) {
    return "matches IPv6 addresses without eth_type IPv6 exactly";
  }
  if (m.ip_proto != 0 && !is4 && !is6) return "matches the IP protocol without eth_type IPv4 or IPv6 exactly";
  if (m.ip_proto != 0 && m.ip_proto != 0xff) return "matches part of the IP protocol";
  if (m.tp_dst != 0 && (m.ip_proto != 0xff || (v.ip_proto != 6 && v.ip_proto != 17))) {
    return "matches an L4 port without protocol tcp or udp";
  }
  // Could a TCP segment match? (Not when the rule pins a non-IP ethertype or another protocol.)
  const bool ip_possible = (m.eth_type & (v.eth_type ^ htons(0x0800))) == 0 ||
                           (m.eth_type & (v.eth_type ^ htons(0x86dd))) == 0;
  if (steer_out >= 0) {
    const XdpSteerTarget* t = nullptr;
    if (std::string why = steer_refusal(r, port, steer_out, t); !why.empty()) return why;
    out.action = XdpDropRule::kActRedirect;
  } else if (port.roce_strict && ip_possible && (m.ip_proto == 0 || v.ip_proto == 6)) {
    return "can match TCP on a roce_strict vport (its SMC exchanges must reach the worker)";
  }
  std::memcpy(out.dmac_mask, m.eth_dst, 6);
  std::memcpy(out.smac_mask, m.eth_src, 6);
  for (int i = 0; i < 6; ++i) {
    out.dmac[i] = static_cast<uint8_t>(v.eth_dst[i] & m.eth_dst[i]);
    out.smac[i] = static_cast<uint8_t>(v.eth_src[i] & m.eth_src[i]);
  }
  out.eth_type_mask = m.eth_type;
  out.eth_type = static_cast<uint16_t>(v.eth_type & m.eth_type);
  out.src_mask = m.ipv4_src;
  out.src = v.ipv4_src & m.ipv4_src;
  out.dst_mask = m.ipv4_dst;
  out.dst = v.ipv4_dst & m.ipv4_dst;
  std::memcpy(out.src6_mask, m.ipv6_src, 16);
  std::memcpy(out.dst6_mask, m.ipv6_dst, 16);
  std::memcpy(out.src6, v.ipv6_src, 16);
  std::memcpy(out.dst6, v.ipv6_dst, 16);
  for (int w = 0; w < 4; ++w) {
    out.src6[w] &= out.src6_mask[w];
    out.dst6[w] &= out.dst6_mask[w];
  }
  out.proto_mask = m.ip_proto;
  out.proto = static_cast<uint8_t>(v.ip_proto & m.ip_proto);
  out.dport_mask = m.tp_dst;
  out.dport = static_cast<uint16_t>(v.tp_dst & m.tp_dst);
  // The program skips the MAC and IPv6 compares of rules that do not use them (most rules use one or neither).
  if (!all_zero(m.eth_dst, 6) || !all_zero(m.eth_src, 6)) out.fields |= XdpDropRule::kFieldMacs;
  if (!all_zero(m.ipv6_src, 16) || !all_zero(m.ipv6_dst, 16)) out.fields |= XdpDropRule::kFieldIpv6;
  return "";
}

std::vector<XdpDecision> plan_xdp_port(const std::vector<XdpRuleView>& rules, const XdpPortTraits& port) {
  std::vector<XdpDecision> out;
  auto sees_port = [&](const RuleSpec& s) { return (s.mask.in_port & (s.value.in_port ^ port.in_port)) == 0; };
  for (size_t i = 0; i < rules.size(); ++i) {
    const RuleSpec& r = *rules[i].spec;
    const int steer_out = drop_only(*rules[i].actions) ? -1 : xdp_steer_port(*rules[i].actions);
    if (r.table != 0 || !sees_port(r) || (!drop_only(*rules[i].actions) && steer_out < 0)) continue;
    XdpDecision d;
    d.index = i;
    d.reason = xdp_express(r, *rules[i].actions, port, d.rule);
    if (steer_out >= 0) {
      d.steer = true;
      d.out_port = static_cast<uint16_t>(steer_out);
      if (port.targets != nullptr) {
        for (const XdpSteerTarget& t : *port.targets) {
          if (t.port == d.out_port) d.out_ifindex = t.ifindex;
        }
      }
    }
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
    if (d.steer && !d.reason.empty()) d.reason = "steer: " + d.reason;
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace esw::dp::offload
