// The XDP offload tier's decisions (dataplane/offload/xdp_tier.h): which table-0 drop rules an af_xdp vport's
// program may take and what it gets (XdpDropRule, the layout of guard.bpf.c's esw_rule), and the refusals with
// their reasons. The program's matching itself is tested end to end (tests/e2e/xdp_offload.sh).
#include "dataplane/offload/xdp_tier.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>

namespace esw::dp::offload {
namespace {

RuleSpec rule(uint16_t priority = 100) {
  RuleSpec r;
  r.id = 1;
  r.priority = priority;
  return r;
}
ActionList drop_list() {
  ActionList a;
  a.actions.push_back(Action{ActionType::kDrop});
  a.has_fate = true;
  return a;
}
void ipv6(RuleSpec& r) {
  r.value.eth_type = htons(0x86dd);
  r.mask.eth_type = 0xffff;
}
void set6(uint8_t* v, uint8_t* m, const char* addr, int len) {
  ASSERT_EQ(inet_pton(AF_INET6, addr, v), 1);
  std::memset(m, 0, 16);
  for (int i = 0; i < len; ++i) m[i / 8] |= static_cast<uint8_t>(0x80 >> (i % 8));
}

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
    EXPECT_EQ(xdp_express(r, a, kPort, x), "actions are not just drop");
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
  ASSERT_EQ(plan.size(), 2u);  // the output rule is not a candidate
  EXPECT_EQ(plan[0].index, 1u);
  EXPECT_NE(plan[0].reason.find("could match the same frames"), std::string::npos) << plan[0].reason;
  EXPECT_EQ(plan[1].index, 2u);
  EXPECT_EQ(plan[1].reason, "");
}

}  // namespace
}  // namespace esw::dp::offload
