// The XDP offload tier's decisions (dataplane/offload/xdp_tier.h): which table-0 drop rules an af_xdp vport's
// program may take and what it gets (XdpDropRule, the layout of guard.bpf.c's esw_rule), and the refusals with
// their reasons. The program's matching itself is tested end to end (tests/e2e/xdp_offload.sh).
#include "dataplane/offload/xdp_tier.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>

#include "common/offload_rules.h"

namespace esw::dp::offload {
namespace {

using test::drop_list;
using test::output_list;
RuleSpec rule(uint16_t priority = 100) { return test::rule_spec(1, priority); }
void ipv6(RuleSpec& r) { test::match_ipv6(r); }
void set6(uint8_t* v, uint8_t* m, const char* addr, int len) { test::set_prefix6(v, m, addr, len); }

const XdpPortTraits kPort{3, false, false};

TEST(XdpTier, Ipv6PrefixesProtocolAndPortAreExpressed) {
  RuleSpec r = rule();
  ipv6(r);
  set6(r.value.ipv6_src, r.mask.ipv6_src, "2001:db8:1::40", 122);
  set6(r.value.ipv6_dst, r.mask.ipv6_dst, "2001:db8:2::", 64);
  r.value.ip_proto = 6;
  r.mask.ip_proto = 0xff;
  r.value.tp_dst = htons(80);
  r.mask.tp_dst = 0xffff;
  XdpDropRule x;
  ASSERT_EQ(xdp_express(r, drop_list(), kPort, x), "");
  EXPECT_EQ(x.eth_type, htons(0x86dd));
  EXPECT_EQ(x.eth_type_mask, 0xffff);
  EXPECT_EQ(x.src6_mask[3], htonl(0xffffffc0));
  EXPECT_EQ(x.src6[3], htonl(0x40));
  EXPECT_EQ(x.src6[0], htonl(0x20010db8));
  EXPECT_EQ(x.dst6_mask[1], 0xffffffffu);
  EXPECT_EQ(x.dst6_mask[2], 0u);
  EXPECT_EQ(x.proto, 6);
  EXPECT_EQ(x.dport, htons(80));
  EXPECT_EQ(x.src_mask, 0u);
  EXPECT_EQ(x.fields, XdpDropRule::kFieldIpv6);  // no MAC compare in the program
}

TEST(XdpTier, MacsWithMasksAndEthertypeAreExpressedPremasked) {
  RuleSpec r = rule();
  const uint8_t dst[6] = {0x02, 0, 0xc6, 0x12, 0, 0x0d}, dmask[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xfe};
  const uint8_t src[6] = {0x02, 0, 0xc6, 0x12, 0, 0x01};
  std::memcpy(r.value.eth_dst, dst, 6);
  std::memcpy(r.mask.eth_dst, dmask, 6);
  std::memcpy(r.value.eth_src, src, 6);
  std::memset(r.mask.eth_src, 0xff, 6);
  r.value.eth_type = htons(0x0806);
  r.mask.eth_type = 0xffff;
  XdpDropRule x;
  ASSERT_EQ(xdp_express(r, drop_list(), kPort, x), "");
  EXPECT_EQ(x.dmac[5], 0x0c);  // value & mask
  EXPECT_EQ(x.dmac_mask[5], 0xfe);
  EXPECT_EQ(std::memcmp(x.smac, src, 6), 0);
  EXPECT_EQ(x.eth_type, htons(0x0806));
  EXPECT_EQ(x.fields, XdpDropRule::kFieldMacs);  // no IPv6 compare in the program
  // An ARP rule cannot match TCP: a roce_strict vport takes it.
  XdpPortTraits strict = kPort;
  strict.roce_strict = true;
  EXPECT_EQ(xdp_express(r, drop_list(), strict, x), "");
  // A rule on MACs alone can match TCP: not there.
  r.mask.eth_type = 0;
  r.value.eth_type = 0;
  EXPECT_NE(xdp_express(r, drop_list(), strict, x), "");
  EXPECT_EQ(xdp_express(r, drop_list(), kPort, x), "");
}

TEST(XdpTier, Refusals) {
  XdpDropRule x;
  {
    RuleSpec r = rule();  // IPv6 addresses with eth_type left open
    set6(r.value.ipv6_dst, r.mask.ipv6_dst, "2001:db8:2::", 64);
    EXPECT_EQ(xdp_express(r, drop_list(), kPort, x), "matches IPv6 addresses without eth_type IPv6 exactly");
  }
  {
    RuleSpec r = rule();  // IPv4 addresses under the IPv6 ethertype
    ipv6(r);
    r.value.ipv4_dst = htonl(0xc6120001);
    r.mask.ipv4_dst = 0xffffffff;
    EXPECT_EQ(xdp_express(r, drop_list(), kPort, x), "matches IPv4 addresses without eth_type IPv4 exactly");
  }
  {
    RuleSpec r = rule();  // ARP opcode (ip_proto under eth_type ARP)
    r.value.eth_type = htons(0x0806);
    r.mask.eth_type = 0xffff;
    r.value.ip_proto = 2;
    r.mask.ip_proto = 0xff;
    EXPECT_EQ(xdp_express(r, drop_list(), kPort, x), "matches the IP protocol without eth_type IPv4 or IPv6 exactly");
  }
  {
    RuleSpec r = rule();  // L4 source port
    ipv6(r);
    r.value.ip_proto = 17;
    r.mask.ip_proto = 0xff;
    r.value.tp_src = htons(99);
    r.mask.tp_src = 0xffff;
    EXPECT_EQ(xdp_express(r, drop_list(), kPort, x), "matches the L4 source port, which XDP here cannot");
  }
  {
    RuleSpec r = rule();  // not just drop
    ActionList a = drop_list();
    a.has_count = true;
    EXPECT_EQ(xdp_express(r, a, kPort, x), "actions are not just drop, or output to one port");
  }
}

TEST(XdpTier, AHigherRuleOnTheSameMacsKeepsALowerIpv6RuleInSoftware) {
  RuleSpec high = rule(500);
  const uint8_t dst[6] = {0x02, 0, 0xc6, 0x12, 0, 0x02};
  std::memcpy(high.value.eth_dst, dst, 6);
  std::memset(high.mask.eth_dst, 0xff, 6);
  ActionList out;
  Action o{ActionType::kOutput};
  o.port = 4;
  out.actions.push_back(o);
  out.has_fate = true;
  RuleSpec low = rule(200);
  ipv6(low);
  set6(low.value.ipv6_dst, low.mask.ipv6_dst, "2001:db8:2::", 64);
  RuleSpec other = rule(300);  // disjoint from `high`: another destination MAC
  std::memcpy(other.value.eth_dst, dst, 6);
  other.value.eth_dst[5] = 0x0d;
  std::memset(other.mask.eth_dst, 0xff, 6);
  const ActionList d = drop_list();
  const std::vector<XdpRuleView> views{{&high, &out}, {&low, &d}, {&other, &d}};
  const std::vector<XdpDecision> plan = plan_xdp_port(views, kPort);
  ASSERT_EQ(plan.size(), 3u);  // the output rule is a steer candidate, with no port to steer to here
  EXPECT_TRUE(plan[0].steer);
  EXPECT_EQ(plan[0].reason, "steer: port 4 is not an af_xdp port with eswitch's XDP program");
  EXPECT_EQ(plan[1].index, 1u);
  EXPECT_NE(plan[1].reason.find("could match the same frames"), std::string::npos) << plan[1].reason;
  EXPECT_EQ(plan[2].index, 2u);
  EXPECT_EQ(plan[2].reason, "");
}

// ---- Steer rules (output to one port): offered only where every output-side step is a no-op.

const uint8_t kMac3[6] = {0x02, 0, 0xc6, 0x12, 0, 0x03};

std::vector<XdpSteerTarget> targets() {
  std::vector<XdpSteerTarget> t(4);
  t[0].port = 4;  // vm3: af_xdp, eswitch's program, takes redirects, egress filter on its MAC
  t[0].name = "vm3";
  t[0].ifindex = 77;
  t[0].vport = t[0].spoofchk = t[0].has_mac = true;
  std::memcpy(t[0].mac, kMac3, 6);
  t[1] = t[0];  // vm4: a veth whose peer has neither XDP nor GRO
  t[1].port = 5;
  t[1].name = "vm4";
  t[1].refused = "esw1t4p (veth) does not take XDP redirects: its peer runs no XDP program and has GRO off "
                 "(the kernel would drop the frames)";
  t[2] = t[0];  // vm5: inactive
  t[2].port = 6;
  t[2].name = "vm5";
  t[2].active = false;
  t[3] = t[0];  // vm6: spoofchk off, no MAC: its egress filter takes everything
  t[3].port = 7;
  t[3].name = "vm6";
  t[3].ifindex = 78;
  t[3].spoofchk = t[3].has_mac = false;
  return t;
}

// IPv4 UDP to vm3's MAC: what a steer rule must look like to be offloaded towards vm3.
RuleSpec udp_to_vm3(uint16_t priority = 100) {
  RuleSpec r = rule(priority);
  r.value.eth_type = htons(0x0800);
  r.mask.eth_type = 0xffff;
  r.value.ip_proto = 17;
  r.mask.ip_proto = 0xff;
  std::memcpy(r.value.eth_dst, kMac3, 6);
  std::memset(r.mask.eth_dst, 0xff, 6);
  return r;
}

TEST(XdpTierSteer, OutputToATakingAfXdpPortIsOffloadedAsARedirect) {
  const std::vector<XdpSteerTarget> t = targets();
  const XdpPortTraits port{3, false, false, &t};
  RuleSpec r = udp_to_vm3();
  r.value.ipv4_dst = htonl(0xc6120200);
  r.mask.ipv4_dst = htonl(0xffffff00);
  const ActionList out = output_list(4, true);  // with count: still a steer rule
  EXPECT_EQ(xdp_steer_port(out), 4);
  const std::vector<XdpRuleView> views{{&r, &out}};
  const std::vector<XdpDecision> plan = plan_xdp_port(views, port);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].reason, "");
  EXPECT_TRUE(plan[0].steer);
  EXPECT_EQ(plan[0].out_port, 4);
  EXPECT_EQ(plan[0].out_ifindex, 77u);
  EXPECT_EQ(plan[0].rule.action, XdpDropRule::kActRedirect);
  EXPECT_EQ(plan[0].rule.dst, htonl(0xc6120200));
  // A roce_strict ingress does not matter for steering (RoCEv2 and TCP always go to the worker).
  const XdpPortTraits strict{3, false, true, &t};
  XdpDropRule x;
  EXPECT_EQ(xdp_express(r, out, strict, x), "");
  // Towards a vport whose egress filter is off, eth_dst need not be pinned; ICMPv4 is steerable too.
  RuleSpec any = rule();
  any.value.eth_type = htons(0x0800);
  any.mask.eth_type = 0xffff;
  EXPECT_EQ(xdp_express(any, output_list(7), port, x), "");
  any.value.ip_proto = 1;
  any.mask.ip_proto = 0xff;
  EXPECT_EQ(xdp_express(any, output_list(7), port, x), "");
  EXPECT_EQ(x.action, XdpDropRule::kActRedirect);
}

TEST(XdpTierSteer, EachRefusalHasItsReason) {
  const std::vector<XdpSteerTarget> t = targets();
  const XdpPortTraits port{3, false, false, &t};
  XdpDropRule x;
  auto plan_one = [&](const RuleSpec& r, const ActionList& a, const XdpPortTraits& p) {
    const std::vector<XdpRuleView> views{{&r, &a}};
    const std::vector<XdpDecision> d = plan_xdp_port(views, p);
    return d.size() == 1 ? d[0].reason : std::string("(not a candidate)");
  };
  EXPECT_EQ(plan_one(udp_to_vm3(), output_list(3), port), "steer: output to the ingress port");
  EXPECT_EQ(plan_one(udp_to_vm3(), output_list(9), port),
            "steer: port 9 is not an af_xdp port with eswitch's XDP program");
  EXPECT_EQ(plan_one(udp_to_vm3(), output_list(5), port), "steer: " + t[1].refused);
  EXPECT_EQ(plan_one(udp_to_vm3(), output_list(6), port), "steer: vm5 is inactive (the worker drops what goes there)");
  {
    RuleSpec r = udp_to_vm3();  // the egress filter: eth_dst must be vm3's MAC exactly
    r.mask.eth_dst[5] = 0xfe;
    EXPECT_EQ(plan_one(r, output_list(4), port),
              "steer: the rule does not pin eth_dst to vm3's MAC (its egress filter would judge each frame)");
    r = udp_to_vm3();
    r.value.eth_dst[5] = 0x09;
    EXPECT_NE(plan_one(r, output_list(4), port).find("does not pin eth_dst"), std::string::npos);
  }
  {
    RuleSpec r = udp_to_vm3();  // TCP: the SMC stage's
    r.value.ip_proto = 6;
    EXPECT_EQ(plan_one(r, output_list(4), port),
              "steer: matches TCP (the SMC stage follows TCP segments by its own state: they stay in the worker)");
    r.value.eth_type = htons(0x86dd);  // ICMPv6: RA guard, ND checks
    r.value.ip_proto = 58;
    EXPECT_EQ(plan_one(r, output_list(4), port), "steer: matches IP protocol 58 (only UDP and ICMPv4 are steered in XDP)");
    r.value.eth_type = htons(0x0806);
    r.mask.ip_proto = 0;
    r.value.ip_proto = 0;
    EXPECT_EQ(plan_one(r, output_list(4), port),
              "steer: matches no IPv4/IPv6 frame (only UDP and ICMPv4 are steered in XDP)");
  }
  {
    ActionList a = output_list(4);  // output and mirror: not a steer rule, nor a drop
    Action m{ActionType::kMirror};
    m.port = 6;
    a.actions.push_back(m);
    a.has_mirror = true;
    EXPECT_EQ(xdp_steer_port(a), -1);
    EXPECT_EQ(plan_one(udp_to_vm3(), a, port), "(not a candidate)");
    EXPECT_EQ(xdp_express(udp_to_vm3(), a, port, x), "actions are not just drop, or output to one port");
    ActionList two = output_list(4);  // two outputs
    Action o{ActionType::kOutput};
    o.port = 7;
    two.actions.push_back(o);
    EXPECT_EQ(xdp_steer_port(two), -1);
    ActionList mod = output_list(4);  // a rewrite before the output
    mod.modifies = true;
    EXPECT_EQ(xdp_steer_port(mod), -1);
  }
  {
    const XdpPortTraits limited{3, true, false, &t};  // the ingress vport's rate limit
    EXPECT_EQ(plan_one(udp_to_vm3(), output_list(4), limited),
              "steer: the vport has a rate limit (XDP drops would not spend its budget)");
  }
  {
    RuleSpec r = udp_to_vm3();  // a field XDP cannot match
    r.mask.ip_tos = 0xff;
    EXPECT_EQ(plan_one(r, output_list(4), port), "steer: matches the TOS/DSCP, which XDP here cannot");
  }
  {
    // A higher rule that could match the same frames keeps the steer rule in software.
    RuleSpec high = rule(500);
    high.value.ip_proto = 17;
    high.mask.ip_proto = 0xff;
    high.value.eth_type = htons(0x0800);
    high.mask.eth_type = 0xffff;
    const ActionList d = drop_list();
    const RuleSpec low = udp_to_vm3(200);
    const ActionList out = output_list(4);
    const std::vector<XdpRuleView> views{{&high, &d}, {&low, &out}};
    const std::vector<XdpDecision> plan = plan_xdp_port(views, port);
    ASSERT_EQ(plan.size(), 2u);
    EXPECT_EQ(plan[0].reason, "");
    EXPECT_EQ(plan[1].reason, "steer: a rule of priority 500 (higher) could match the same frames");
  }
}

}  // namespace
}  // namespace esw::dp::offload
