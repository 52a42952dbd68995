// The rte_flow tier's translation (dataplane/offload/rte_flow_rule.h): classifier rules -> rte_flow items (type,
// spec, mask), attributes and actions for DPDK 22.11, and the refusals. No EAL, no hardware: what a PMD would
// do with the result is not tested here.
#include "dataplane/offload/rte_flow_rule.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>

#include "common/offload_rules.h"

namespace esw::dp::offload {
namespace {

using test::drop_list;
using test::output_list;
RuleSpec base_rule(uint32_t id = 7) { return test::rule_spec(id, 100); }
std::vector<rte_flow_item_type> item_types(const RteFlowRule& f) {
  std::vector<rte_flow_item_type> t;
  for (const auto& i : f.pattern()) t.push_back(i.type);
  return t;
}
std::vector<rte_flow_action_type> action_types(const RteFlowRule& f) {
  std::vector<rte_flow_action_type> t;
  for (const auto& a : f.actions()) t.push_back(a.type);
  return t;
}

TEST(RteFlowRule, Ipv4UdpDropBecomesEthIpv4UdpDropCount) {
  RuleSpec r = base_rule();
  r.value.eth_type = htons(0x0800);
  r.mask.eth_type = 0xffff;
  r.value.ipv4_src = htonl(0xc6120000);  // 198.18.0.0/16
  r.mask.ipv4_src = htonl(0xffff0000);
  r.value.ip_proto = 17;
  r.mask.ip_proto = 0xff;
  r.value.tp_dst = htons(53);
  r.mask.tp_dst = 0xffff;
  const ActionList a = drop_list();
  RteFlowRule f;
  ASSERT_EQ(f.translate(r, a, {}), "");
  EXPECT_EQ(f.fate(), FlowFate::kDrop);
  EXPECT_EQ(f.attr().ingress, 1u);
  EXPECT_EQ(f.attr().transfer, 0u);
  EXPECT_EQ(item_types(f), (std::vector<rte_flow_item_type>{RTE_FLOW_ITEM_TYPE_ETH, RTE_FLOW_ITEM_TYPE_IPV4,
                                                            RTE_FLOW_ITEM_TYPE_UDP, RTE_FLOW_ITEM_TYPE_END}));
  EXPECT_EQ(action_types(f), (std::vector<rte_flow_action_type>{RTE_FLOW_ACTION_TYPE_COUNT, RTE_FLOW_ACTION_TYPE_DROP,
                                                                RTE_FLOW_ACTION_TYPE_END}));
  // ETH: ethertype 0x0800 exactly, untagged (has_vlan 0 under a set mask), MACs wildcarded.
  const auto* eth = static_cast<const rte_flow_item_eth*>(f.pattern()[0].spec);
  const auto* ethm = static_cast<const rte_flow_item_eth*>(f.pattern()[0].mask);
  EXPECT_EQ(eth->hdr.ether_type, htons(0x0800));
  EXPECT_EQ(ethm->hdr.ether_type, 0xffff);
  EXPECT_EQ(eth->has_vlan, 0u);
  EXPECT_EQ(ethm->has_vlan, 1u);
  const uint8_t zero6[6] = {};
  EXPECT_EQ(std::memcmp(ethm->hdr.dst_addr.addr_bytes, zero6, 6), 0);
  EXPECT_EQ(std::memcmp(ethm->hdr.src_addr.addr_bytes, zero6, 6), 0);
  // IPV4: the prefix as spec/mask, destination wildcarded, protocol exact.
  const auto* ip = static_cast<const rte_flow_item_ipv4*>(f.pattern()[1].spec);
  const auto* ipm = static_cast<const rte_flow_item_ipv4*>(f.pattern()[1].mask);
  EXPECT_EQ(ip->hdr.src_addr, htonl(0xc6120000));
  EXPECT_EQ(ipm->hdr.src_addr, htonl(0xffff0000));
  EXPECT_EQ(ipm->hdr.dst_addr, 0u);
  EXPECT_EQ(ip->hdr.next_proto_id, 17);
  EXPECT_EQ(ipm->hdr.next_proto_id, 0xff);
  EXPECT_EQ(f.pattern()[1].last, nullptr);
  // UDP: destination port only.
  const auto* udp = static_cast<const rte_flow_item_udp*>(f.pattern()[2].spec);
  const auto* udpm = static_cast<const rte_flow_item_udp*>(f.pattern()[2].mask);
  EXPECT_EQ(udp->hdr.dst_port, htons(53));
  EXPECT_EQ(udpm->hdr.dst_port, 0xffff);
  EXPECT_EQ(udpm->hdr.src_port, 0);
}

TEST(RteFlowRule, MacRuleToVportIsPartialOffloadWithMarkOfRuleId) {
  RuleSpec r = base_rule(4242);
  const uint8_t mac[6] = {0x02, 0, 0xc6, 0x12, 0, 1};
  std::memcpy(r.value.eth_dst, mac, 6);
  std::memset(r.mask.eth_dst, 0xff, 6);
  const ActionList a = output_list(3);
  RteFlowRule f;
  ASSERT_EQ(f.translate(r, a, {.nb_rx_queues = 1}), "");
  EXPECT_EQ(f.fate(), FlowFate::kMark);
  EXPECT_EQ(item_types(f), (std::vector<rte_flow_item_type>{RTE_FLOW_ITEM_TYPE_ETH, RTE_FLOW_ITEM_TYPE_END}));
  EXPECT_EQ(action_types(f), (std::vector<rte_flow_action_type>{RTE_FLOW_ACTION_TYPE_COUNT, RTE_FLOW_ACTION_TYPE_MARK,
                                                                RTE_FLOW_ACTION_TYPE_QUEUE, RTE_FLOW_ACTION_TYPE_END}));
  EXPECT_EQ(static_cast<const rte_flow_action_mark*>(f.actions()[1].conf)->id, 4242u);
  EXPECT_EQ(static_cast<const rte_flow_action_queue*>(f.actions()[2].conf)->index, 0);
  const auto* eth = static_cast<const rte_flow_item_eth*>(f.pattern()[0].spec);
  EXPECT_EQ(std::memcmp(eth->hdr.dst_addr.addr_bytes, mac, 6), 0);
  // No ethertype in the rule: the ETH item leaves it open.
  EXPECT_EQ(static_cast<const rte_flow_item_eth*>(f.pattern()[0].mask)->hdr.ether_type, 0);

  // Several rx queues: RSS over all of them.
  RteFlowRule g;
  ASSERT_EQ(g.translate(r, a, {.nb_rx_queues = 4}), "");
  ASSERT_EQ(g.actions()[2].type, RTE_FLOW_ACTION_TYPE_RSS);
  const auto* rss = static_cast<const rte_flow_action_rss*>(g.actions()[2].conf);
  ASSERT_EQ(rss->queue_num, 4u);
  for (uint16_t q = 0; q < 4; ++q) EXPECT_EQ(rss->queue[q], q);
}

TEST(RteFlowRule, TransferRuleUsesRepresentedPorts) {
  RuleSpec r = base_rule();
  r.value.in_port = 2;
  r.mask.in_port = 0xffff;
  r.value.eth_type = htons(0x86dd);
  r.mask.eth_type = 0xffff;
  r.value.ipv6_dst[0] = 0x20;
  r.value.ipv6_dst[1] = 0x01;
  r.value.ipv6_dst[2] = 0x0d;
  r.value.ipv6_dst[3] = 0xb8;
  std::memset(r.mask.ipv6_dst, 0xff, 4);  // 2001:db8::/32
  const ActionList a = output_list(5);
  FlowOptions opt;
  opt.transfer = true;
  opt.ethdev_of = {UINT16_MAX, UINT16_MAX, 11, UINT16_MAX, UINT16_MAX, 12};
  RteFlowRule f;
  ASSERT_EQ(f.translate(r, a, opt), "");
  EXPECT_EQ(f.fate(), FlowFate::kTransfer);
  EXPECT_EQ(f.attr().transfer, 1u);
  EXPECT_EQ(f.attr().ingress, 0u);
  EXPECT_EQ(item_types(f), (std::vector<rte_flow_item_type>{RTE_FLOW_ITEM_TYPE_REPRESENTED_PORT, RTE_FLOW_ITEM_TYPE_ETH,
                                                            RTE_FLOW_ITEM_TYPE_IPV6, RTE_FLOW_ITEM_TYPE_END}));
  EXPECT_EQ(static_cast<const rte_flow_item_ethdev*>(f.pattern()[0].spec)->port_id, 11);
  EXPECT_EQ(static_cast<const rte_flow_item_ethdev*>(f.pattern()[0].mask)->port_id, 0xffff);
  EXPECT_EQ(action_types(f), (std::vector<rte_flow_action_type>{RTE_FLOW_ACTION_TYPE_COUNT,
                                                                RTE_FLOW_ACTION_TYPE_REPRESENTED_PORT,
                                                                RTE_FLOW_ACTION_TYPE_END}));
  EXPECT_EQ(static_cast<const rte_flow_action_ethdev*>(f.actions()[1].conf)->port_id, 12);
  const auto* ip6m = static_cast<const rte_flow_item_ipv6*>(f.pattern()[2].mask);
  const uint8_t want_mask[16] = {0xff, 0xff, 0xff, 0xff};
  EXPECT_EQ(std::memcmp(ip6m->hdr.dst_addr, want_mask, 16), 0);
  // No protocol matched: extension headers are not constrained.
  EXPECT_EQ(ip6m->has_frag_ext, 0u);

  // An output port without an ethdev (a vhost-user or tap port) cannot be represented.
  opt.ethdev_of[5] = UINT16_MAX;
  RteFlowRule g;
  EXPECT_NE(g.translate(r, a, opt).find("no ethdev"), std::string::npos);
}

TEST(RteFlowRule, VlanRuleMatchesTheTagAndTheInnerType) {
  RuleSpec r = base_rule();
  r.value.vlan_tci[0] = htons(kVlanPresentHost | 100);
  r.mask.vlan_tci[0] = htons(kVlanPresentHost | 0x0fff);
  r.value.eth_type = htons(0x0800);
  r.mask.eth_type = 0xffff;
  const ActionList a = drop_list();
  RteFlowRule f;
  ASSERT_EQ(f.translate(r, a, {}), "");
  EXPECT_EQ(item_types(f), (std::vector<rte_flow_item_type>{RTE_FLOW_ITEM_TYPE_ETH, RTE_FLOW_ITEM_TYPE_VLAN,
                                                            RTE_FLOW_ITEM_TYPE_IPV4, RTE_FLOW_ITEM_TYPE_END}));
  const auto* eth = static_cast<const rte_flow_item_eth*>(f.pattern()[0].spec);
  const auto* ethm = static_cast<const rte_flow_item_eth*>(f.pattern()[0].mask);
  EXPECT_EQ(eth->has_vlan, 1u);
  EXPECT_EQ(ethm->hdr.ether_type, 0);  // the outer type is the TPID, not the rule's ethertype
  const auto* vl = static_cast<const rte_flow_item_vlan*>(f.pattern()[1].spec);
  const auto* vlm = static_cast<const rte_flow_item_vlan*>(f.pattern()[1].mask);
  EXPECT_EQ(vl->hdr.vlan_tci, htons(100));  // the key's "present" bit is not a wire bit
  EXPECT_EQ(vlm->hdr.vlan_tci, htons(0x0fff));
  EXPECT_EQ(vl->hdr.eth_proto, htons(0x0800));
  EXPECT_EQ(vlm->hdr.eth_proto, 0xffff);
  EXPECT_EQ(vlm->has_more_vlan, 1u);  // single-tagged only: QinQ stays with software
}

TEST(RteFlowRule, Ipv6ProtocolRequiresNoExtensionHeaders) {
  RuleSpec r = base_rule();
  r.value.eth_type = htons(0x86dd);
  r.mask.eth_type = 0xffff;
  r.value.ip_proto = 6;
  r.mask.ip_proto = 0xff;
  r.value.tp_src = htons(179);
  r.mask.tp_src = 0xffff;
  const ActionList a = drop_list();
  RteFlowRule f;
  ASSERT_EQ(f.translate(r, a, {}), "");
  EXPECT_EQ(item_types(f), (std::vector<rte_flow_item_type>{RTE_FLOW_ITEM_TYPE_ETH, RTE_FLOW_ITEM_TYPE_IPV6,
                                                            RTE_FLOW_ITEM_TYPE_TCP, RTE_FLOW_ITEM_TYPE_END}));
  const auto* ip6 = static_cast<const rte_flow_item_ipv6*>(f.pattern()[1].spec);
  const auto* ip6m = static_cast<const rte_flow_item_ipv6*>(f.pattern()[1].mask);
  EXPECT_EQ(ip6->hdr.proto, 6);
  EXPECT_EQ(ip6m->has_frag_ext, 1u);
  EXPECT_EQ(ip6->has_frag_ext, 0u);
  EXPECT_EQ(ip6m->has_hop_ext, 1u);
  const auto* tcp = static_cast<const rte_flow_item_tcp*>(f.pattern()[2].spec);
  EXPECT_EQ(tcp->hdr.src_port, htons(179));
}

TEST(RteFlowRule, RefusesWhatItCannotExpressExactly) {
  const ActionList drop = drop_list();
  auto refused = [&](const RuleSpec& r, const ActionList& a, const char* why) {
    RteFlowRule f;
    const std::string e = f.translate(r, a, {});
    EXPECT_NE(e.find(why), std::string::npos) << "got: '" << e << "', want: " << why;
  };
  RuleSpec ttl = base_rule();
  ttl.mask.ip_ttl = 0xff;
  refused(ttl, drop, "ip_ttl");
  RuleSpec frag = base_rule();
  frag.mask.ip_frag = kFragAny;
  refused(frag, drop, "ip_frag");
  RuleSpec reg = base_rule();
  reg.mask.regs[1] = 1;
  refused(reg, drop, "registers");
  RuleSpec table1 = base_rule();
  table1.table = 1;
  refused(table1, drop, "table");
  // L4 ports without an exact TCP/UDP protocol (ICMP type lives in tp_src).
  RuleSpec icmp = base_rule();
  icmp.value.eth_type = htons(0x0800);
  icmp.mask.eth_type = 0xffff;
  icmp.value.ip_proto = 1;
  icmp.mask.ip_proto = 0xff;
  icmp.mask.tp_src = 0xffff;
  refused(icmp, drop, "TCP or UDP");
  // IP addresses without an exact IP ethertype; ARP's SPA/TPA.
  RuleSpec noet = base_rule();
  noet.mask.ipv4_dst = 0xffffffff;
  refused(noet, drop, "without an exact IPv4/IPv6 ethertype");
  RuleSpec arp = base_rule();
  arp.value.eth_type = htons(0x0806);
  arp.mask.eth_type = 0xffff;
  arp.mask.ipv4_dst = 0xffffffff;
  refused(arp, drop, "ARP");
  // Actions: modification, mirror, flood (two outputs), no fate.
  ActionList mod = output_list(1);
  mod.modifies = true;
  refused(base_rule(), mod, "modify");
  ActionList flood = output_list(1);
  flood.actions.push_back(flood.actions[0]);
  refused(base_rule(), flood, "more than one fate");
  ActionList none;
  refused(base_rule(), none, "no fate");
}

TEST(RteFlowRule, OverlapIsDecidedOnTheBitsBothRulesCareAbout) {
  RuleSpec a = base_rule(1), b = base_rule(2);
  a.value.eth_type = htons(0x0800);
  a.mask.eth_type = 0xffff;
  a.value.ipv4_dst = htonl(0xc6120001);
  a.mask.ipv4_dst = 0xffffffff;
  b.value.ip_proto = 17;
  b.mask.ip_proto = 0xff;
  EXPECT_TRUE(rules_overlap(a, b));  // a UDP packet to 198.18.0.1 matches both
  b.value.eth_type = htons(0x86dd);
  b.mask.eth_type = 0xffff;
  EXPECT_FALSE(rules_overlap(a, b));  // IPv4 vs IPv6
  b.value.eth_type = htons(0x0800);
  b.value.ipv4_dst = htonl(0xc6120000);
  b.mask.ipv4_dst = htonl(0xffffff00);
  EXPECT_TRUE(rules_overlap(a, b));  // the /24 contains the /32
  b.value.ipv4_dst = htonl(0xc6120100);
  EXPECT_FALSE(rules_overlap(a, b));  // another /24
  b.table = 1;
  b.value.ipv4_dst = htonl(0xc6120000);
  EXPECT_FALSE(rules_overlap(a, b));  // other table
}

}  // namespace
}  // namespace esw::dp::offload
