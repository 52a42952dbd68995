// Parser tests: every packet kind with the whole key and all offsets asserted, every prefix of every packet
// (exact-size heap copies, so the ASan build catches any overread), and inconsistent headers.

#include "dataplane/fastpath/parser.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "common/pkt_builder.h"

namespace esw::dp {
namespace {

using namespace esw::test;  // NOLINT: test code, builder vocabulary

constexpr uint16_t kPort = 7;
constexpr uint16_t kNone = HeaderOffsets::kNone;
constexpr uint16_t kL2Flags = kFlagVlan | kFlagQinQ;

// ---- helpers ------------------------------------------------------------------------------------------------

struct Parsed {
  bool ok = false;
  FlowKey key;
  HeaderOffsets off;
};

// Parses the first len bytes of pkt from a heap block of exactly len bytes, into a key and offsets filled with
// garbage first (the parser must overwrite all of it).
Parsed parse(const Bytes& pkt, size_t len, uint16_t port = kPort, uint8_t garbage = 0xa5) {
  std::unique_ptr<uint8_t[]> buf(new uint8_t[len]);
  if (len != 0) std::memcpy(buf.get(), pkt.data(), len);
  Parsed r;
  std::memset(&r.key, garbage, sizeof r.key);
  std::memset(static_cast<void*>(&r.off), garbage, sizeof r.off);
  r.ok = parse_packet(buf.get(), static_cast<uint32_t>(len), port, r.key, r.off);
  return r;
}
Parsed parse(const Bytes& pkt) { return parse(pkt, pkt.size()); }

uint16_t be16(uint16_t host) { return htons(host); }
uint32_t addr4(const Ip4& a) {
  uint32_t v;
  std::memcpy(&v, a.data(), 4);
  return v;
}
// What the parser stores for a tag: TCI in network order with the present bit.
uint16_t tci(uint16_t vid, uint8_t pcp = 0) { return be16(static_cast<uint16_t>(pcp << 13 | kVlanPresentHost | vid)); }

FlowKey l2_key(const EthSpec& e, uint16_t eth_type) {
  FlowKey k;
  std::memset(&k, 0, sizeof k);
  k.in_port = kPort;
  std::memcpy(k.eth_dst, e.dst.data(), 6);
  std::memcpy(k.eth_src, e.src.data(), 6);
  k.eth_type = be16(eth_type);
  return k;
}
void set_ipv4(FlowKey& k, const Ipv4Spec& ip, uint8_t proto) {
  k.ip_proto = proto;
  k.ip_tos = ip.tos;
  k.ip_ttl = ip.ttl;
  k.ipv4_src = addr4(ip.src);
  k.ipv4_dst = addr4(ip.dst);
}
void set_ipv6(FlowKey& k, const Ipv6Spec& ip, uint8_t proto) {
  k.ip_proto = proto;
  k.ip_tos = ip.tclass;
  k.ip_ttl = ip.hop_limit;
  std::memcpy(k.ipv6_src, ip.src.data(), 16);
  std::memcpy(k.ipv6_dst, ip.dst.data(), 16);
}
void set_ports(FlowKey& k, uint16_t sport, uint16_t dport) {
  k.tp_src = be16(sport);
  k.tp_dst = be16(dport);
}

template <size_t N>
std::vector<int> arr(const uint8_t (&a)[N]) {
  return std::vector<int>(a, a + N);
}

// Field by field so a failure names the field; then bytewise so padding is covered too.
void expect_key_eq(const FlowKey& want, const FlowKey& got) {
  EXPECT_EQ(want.in_port, got.in_port) << "in_port";
  EXPECT_EQ(ntohs(want.eth_type), ntohs(got.eth_type)) << "eth_type";
  EXPECT_EQ(ntohs(want.vlan_tci[0]), ntohs(got.vlan_tci[0])) << "vlan_tci[0]";
  EXPECT_EQ(ntohs(want.vlan_tci[1]), ntohs(got.vlan_tci[1])) << "vlan_tci[1]";
  EXPECT_EQ(arr(want.eth_dst), arr(got.eth_dst)) << "eth_dst";
  EXPECT_EQ(arr(want.eth_src), arr(got.eth_src)) << "eth_src";
  EXPECT_EQ(want.ip_proto, got.ip_proto) << "ip_proto";
  EXPECT_EQ(want.ip_tos, got.ip_tos) << "ip_tos";
  EXPECT_EQ(want.ip_ttl, got.ip_ttl) << "ip_ttl";
  EXPECT_EQ(want.ip_frag, got.ip_frag) << "ip_frag";
  EXPECT_EQ(ntohl(want.ipv4_src), ntohl(got.ipv4_src)) << "ipv4_src";
  EXPECT_EQ(ntohl(want.ipv4_dst), ntohl(got.ipv4_dst)) << "ipv4_dst";
  EXPECT_EQ(ntohs(want.tp_src), ntohs(got.tp_src)) << "tp_src";
  EXPECT_EQ(ntohs(want.tp_dst), ntohs(got.tp_dst)) << "tp_dst";
  EXPECT_EQ(ntohs(want.tcp_flags), ntohs(got.tcp_flags)) << "tcp_flags";
  EXPECT_EQ(want.smc_option, got.smc_option) << "smc_option";
  EXPECT_EQ(arr(want.ipv6_src), arr(got.ipv6_src)) << "ipv6_src";
  EXPECT_EQ(arr(want.ipv6_dst), arr(got.ipv6_dst)) << "ipv6_dst";
  EXPECT_EQ(arr(want.nd_target), arr(got.nd_target)) << "nd_target";
  EXPECT_EQ(arr(want.arp_sha), arr(got.arp_sha)) << "arp_sha";
  EXPECT_EQ(arr(want.arp_tha), arr(got.arp_tha)) << "arp_tha";
  EXPECT_EQ(want.tun_id, got.tun_id) << "tun_id";
  EXPECT_EQ(want.roce_dqp, got.roce_dqp) << "roce_dqp";
  EXPECT_EQ(want.flags, got.flags) << "flags";
  EXPECT_EQ(0, std::memcmp(&want, &got, sizeof want)) << "key bytes (padding, regs)";
}

void expect_off_eq(const HeaderOffsets& want, const HeaderOffsets& got) {
  EXPECT_EQ(want.l2, got.l2) << "off.l2";
  EXPECT_EQ(want.vlan, got.vlan) << "off.vlan";
  EXPECT_EQ(want.l3, got.l3) << "off.l3";
  EXPECT_EQ(want.l4, got.l4) << "off.l4";
  EXPECT_EQ(want.tun, got.tun) << "off.tun";
  EXPECT_EQ(want.inner_l2, got.inner_l2) << "off.inner_l2";
  EXPECT_EQ(want.l3_len, got.l3_len) << "off.l3_len";
  EXPECT_EQ(want.pad, got.pad) << "off.pad";
}

// Offsets that are set point at whole headers inside the len bytes, in header order.
void expect_offsets_sane(const Parsed& r, size_t len) {
  const HeaderOffsets& o = r.off;
  EXPECT_EQ(o.l2, 0);
  size_t prev = 0;
  const auto check = [&](uint16_t v, size_t min_hdr, const char* name) {
    if (v == kNone) return;
    EXPECT_LE(v + min_hdr, len) << name;
    EXPECT_GE(v, prev) << name << " out of order";
    prev = v;
  };
  if (len >= 14) {
    check(o.vlan, 4, "vlan");
  } else {
    EXPECT_EQ(o.vlan, kNone);
  }
  check(o.l3, 20, "l3");  // shortest of ARP 28 / IPv4 20 / IPv6 40
  if (o.l3 != kNone && r.key.eth_type != be16(kEthTypeArp)) {
    EXPECT_LE(o.l3 + o.l3_len, len) << "l3_len";
  } else {
    EXPECT_EQ(o.l3_len, 0) << "l3_len without an IP header";
  }
  check(o.l4, 4, "l4");
  check(o.tun, 8, "tun");
  check(o.inner_l2, 14, "inner_l2");
}

// ---- the cases ----------------------------------------------------------------------------------------------

struct Case {
  std::string name;
  Bytes pkt;
  FlowKey want;
  HeaderOffsets want_off;
  bool ok = true;
  size_t valid_from = 0;  // shortest valid prefix (0 = the whole packet); shorter ones must be malformed
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

const EthSpec kEth{.dst = mac("52:54:00:12:34:56"), .src = mac("52:54:00:ab:cd:ef")};

std::vector<Case> valid_cases() {
  std::vector<Case> v;
  const auto add = [&](std::string name, Bytes pkt, FlowKey want, HeaderOffsets off, size_t valid_from = 0) {
    v.push_back(Case{std::move(name), std::move(pkt), want, off, true, valid_from});
  };

  {  // Ethernet with an ethertype we do not parse
    FlowKey k = l2_key(kEth, 0x88cc);
    add("eth_lldp", PacketBuilder().eth({.dst = kEth.dst, .src = kEth.src, .type = 0x88cc}).payload(46).build(), k,
        {}, 14);
  }
  {
    const Ipv4Spec ip{.src = ip4("192.0.2.1"), .dst = ip4("198.51.100.7"), .tos = 0xb9, .ttl = 17, .id = 77};
    FlowKey k = l2_key(kEth, kEthTypeIpv4);
    set_ipv4(k, ip, kIpProtoTcp);
    set_ports(k, 1234, 80);
    k.tcp_flags = be16(kTcpSyn | kTcpAck);
    add("ipv4_tcp",
        PacketBuilder().eth(kEth).ipv4(ip).tcp({.sport = 1234, .dport = 80, .flags = kTcpSyn | kTcpAck})
            .payload(10).build(),
        k, {.l3 = 14, .l4 = 34, .l3_len = 20});
  }
  {  // IPv4 options; TCP SYN with the SMC option as Linux sends it, among the usual SYN options
    const Ipv4Spec ip{.src = ip4("10.1.0.1"), .dst = ip4("10.1.0.2"), .ttl = 64, .df = true,
                      .options = ipv4_opt_router_alert()};
    const Bytes opts = concat({tcp_opt_mss(1460), tcp_opt_sack_permitted(), tcp_opt_timestamp(1, 0),
                               tcp_opt_nop(), tcp_opt_wscale(7), tcp_opt_smc()});
    FlowKey k = l2_key(kEth, kEthTypeIpv4);
    set_ipv4(k, ip, kIpProtoTcp);
    set_ports(k, 40000, 443);
    k.tcp_flags = be16(kTcpSyn);
    k.smc_option = 1;
    k.flags = kFlagSmc;  // a SYN offering SMC: the SMC stage looks at it
    add("ipv4_opts_tcp_smc_linux",
        PacketBuilder().eth(kEth).ipv4(ip).tcp({.sport = 40000, .dport = 443, .flags = kTcpSyn, .options = opts})
            .build(),
        k, {.l3 = 14, .l4 = 38, .l3_len = 24});
  }
  {  // SMC option first, NOPs after (eBPF sock_ops layout), IPv6
    const Ipv6Spec ip{.src = ip6("fd00::1"), .dst = ip6("fd00::2"), .hop_limit = 63};
    const Bytes opts = concat({tcp_opt_experimental(kSmcExId), tcp_opt_nop(), tcp_opt_nop(), tcp_opt_mss(8940)});
    FlowKey k = l2_key(kEth, kEthTypeIpv6);
    set_ipv6(k, ip, kIpProtoTcp);
    set_ports(k, 40001, 12345);
    k.tcp_flags = be16(kTcpSyn | kTcpAck);
    k.smc_option = 1;
    k.flags = kFlagSmc;
    add("ipv6_tcp_smc_bpf",
        PacketBuilder().eth(kEth).ipv6(ip)
            .tcp({.sport = 40001, .dport = 12345, .flags = kTcpSyn | kTcpAck, .options = opts}).build(),
        k, {.l3 = 14, .l4 = 54, .l3_len = 40});
  }
  {  // all 12 flag bits; an experimental option with a 16-bit ExID and one with another 32-bit ExID: no SMC
    const Bytes opts = concat({Bytes{254, 4, 0x12, 0x34}, tcp_opt_experimental(0xE2D4C3D8)});
    FlowKey k = l2_key(kEth, kEthTypeIpv4);
    set_ipv4(k, Ipv4Spec{}, kIpProtoTcp);
    set_ports(k, 1, 2);
    k.tcp_flags = be16(0x0fff);
    k.flags = kFlagSmc;  // FIN and RST are among the 12
    add("tcp_all_flags_other_exp_options",
        PacketBuilder().eth(kEth).ipv4().tcp({.sport = 1, .dport = 2, .flags = 0x0fff, .options = opts}).build(),
        k, {.l3 = 14, .l4 = 34, .l3_len = 20});
  }
  {  // a 2-byte experimental option at the end of the header, the SMC ExID right after it in the payload
    FlowKey k = l2_key(kEth, kEthTypeIpv4);
    set_ipv4(k, Ipv4Spec{}, kIpProtoTcp);
    set_ports(k, 3, 4);
    k.tcp_flags = be16(kTcpSyn);
    k.flags = kFlagSmc;  // not an option, but the payload starts like a CLC message
    add("tcp_exp_option_len_2_then_exid_in_payload",
        PacketBuilder().eth(kEth).ipv4().tcp({.sport = 3, .dport = 4, .flags = kTcpSyn, .options = {1, 1, 254, 2}})
            .payload(Bytes{0xe2, 0xd4, 0xc3, 0xd9, 0x01, 0x01}).build(),
        k, {.l3 = 14, .l4 = 34, .l3_len = 20});
  }
  {  // options after End-of-Option-List are not options
    const Bytes opts = concat({tcp_opt_mss(1400), tcp_opt_eol(), Bytes{0, 0, 0}, Bytes{0xfe, 0x00, 0xff, 0xff},
                               tcp_opt_experimental(kSmcExId)});
    FlowKey k = l2_key(kEth, kEthTypeIpv4);
    set_ipv4(k, Ipv4Spec{}, kIpProtoTcp);
    set_ports(k, 5, 6);
    k.tcp_flags = be16(kTcpSyn);
    add("tcp_garbage_after_eol",
        PacketBuilder().eth(kEth).ipv4().tcp({.sport = 5, .dport = 6, .flags = kTcpSyn, .options = opts}).build(),
        k, {.l3 = 14, .l4 = 34, .l3_len = 20});
  }
  {
    const Ipv4Spec ip{.src = ip4("198.18.0.1"), .dst = ip4("198.18.0.53"), .tos = 4, .ttl = 1};
    FlowKey k = l2_key(kEth, kEthTypeIpv4);
    k.vlan_tci[0] = tci(100, 3);
    k.flags = kFlagVlan;
    set_ipv4(k, ip, kIpProtoUdp);
    set_ports(k, 5000, 53);
    add("vlan_ipv4_udp",
        PacketBuilder().eth(kEth).vlan({.vid = 100, .pcp = 3}).ipv4(ip).udp({.sport = 5000, .dport = 53})
            .payload(20).build(),
        k, {.vlan = 12, .l3 = 18, .l4 = 38, .l3_len = 20});
  }
  {  // VID 0, DEI set: still "present"; ARP inside
    const ArpSpec a{.op = kArpRequest, .sha = kEth.src, .spa = ip4("10.9.9.1"), .tpa = ip4("10.9.9.2")};
    FlowKey k = l2_key({.dst = mac("ff:ff:ff:ff:ff:ff"), .src = kEth.src}, kEthTypeArp);
    k.vlan_tci[0] = tci(0);
    k.flags = kFlagVlan;
    k.ip_proto = kArpRequest;
    k.ipv4_src = addr4(a.spa);
    k.ipv4_dst = addr4(a.tpa);
    std::memcpy(k.arp_sha, a.sha.data(), 6);
    add("vlan0_dei_arp",
        PacketBuilder().eth({.dst = mac("ff:ff:ff:ff:ff:ff"), .src = kEth.src}).vlan({.vid = 0, .dei = true})
            .arp(a).build(),
        k, {.vlan = 12, .l3 = 18});
  }
  {  // 802.1ad S-tag + C-tag, IPv6 with traffic class and flow label
    const Ipv6Spec ip{.src = ip6("2001:db8:1::10"), .dst = ip6("2001:db8:2::20"), .tclass = 0xa3,
                      .flow_label = 0xbeef5, .hop_limit = 9};
    FlowKey k = l2_key(kEth, kEthTypeIpv6);
    k.vlan_tci[0] = tci(10);
    k.vlan_tci[1] = tci(4095, 5);
    k.flags = kFlagVlan | kFlagQinQ;
    set_ipv6(k, ip, kIpProtoTcp);
    set_ports(k, 22, 60000);
    k.tcp_flags = be16(kTcpAck | kTcpPsh);
    add("qinq_88a8_ipv6_tcp",
        PacketBuilder().eth(kEth).vlan({.vid = 10, .tpid = kEthTypeQinQ}).vlan({.vid = 4095, .pcp = 5}).ipv6(ip)
            .tcp({.sport = 22, .dport = 60000, .flags = kTcpAck | kTcpPsh}).payload(100).build(),
        k, {.vlan = 12, .l3 = 22, .l4 = 62, .l3_len = 40});
  }
  {  // two 802.1Q tags; ICMP echo
    FlowKey k = l2_key(kEth, kEthTypeIpv4);
    k.vlan_tci[0] = tci(7, 1);
    k.vlan_tci[1] = tci(8, 2);
    k.flags = kFlagVlan | kFlagQinQ;
    set_ipv4(k, Ipv4Spec{}, kIpProtoIcmp);
    set_ports(k, kIcmpEchoRequest, 0);
    add("double_8100_ipv4_icmp",
        PacketBuilder().eth(kEth).vlan({.vid = 7, .pcp = 1}).vlan({.vid = 8, .pcp = 2}).ipv4().icmp().payload(56)
            .build(),
        k, {.vlan = 12, .l3 = 22, .l4 = 42, .l3_len = 20});
  }
  {  // ARP reply padded to the minimum frame: valid from the end of the ARP body
    const ArpSpec a{.op = kArpReply, .sha = mac("02:aa:bb:cc:dd:ee"), .spa = ip4("198.18.1.1"),
                    .tha = mac("02:11:22:33:44:55"), .tpa = ip4("198.18.1.2")};
    FlowKey k = l2_key(kEth, kEthTypeArp);
    k.ip_proto = kArpReply;
    k.ipv4_src = addr4(a.spa);
    k.ipv4_dst = addr4(a.tpa);
    std::memcpy(k.arp_sha, a.sha.data(), 6);
    std::memcpy(k.arp_tha, a.tha.data(), 6);
    add("arp_reply_padded", PacketBuilder().eth(kEth).arp(a).pad_to(60).build(), k, {.l3 = 14}, 42);
  }
  {  // IPv4 / UDP padded: the padding is not part of anything
    FlowKey k = l2_key(kEth, kEthTypeIpv4);
    set_ipv4(k, Ipv4Spec{}, kIpProtoUdp);
    set_ports(k, 68, 67);
    add("ipv4_udp_padded",
        PacketBuilder().eth(kEth).ipv4().udp({.sport = 68, .dport = 67}).payload(2).pad_to(60).build(), k,
        {.l3 = 14, .l4 = 34, .l3_len = 20}, 44);
  }
  {  // UDP length shorter than the IP payload is fine (trailing bytes)
    FlowKey k = l2_key(kEth, kEthTypeIpv4);
    set_ipv4(k, Ipv4Spec{}, kIpProtoUdp);
    set_ports(k, 1000, 2000);
    add("udp_length_short_of_ip_payload",
        PacketBuilder().eth(kEth).ipv4().udp({.sport = 1000, .dport = 2000, .length = 10}).payload(20).build(), k,
        {.l3 = 14, .l4 = 34, .l3_len = 20});
  }
  {  // first fragment: L4 parsed, UDP length (whole datagram) not checked, no tunnel even on port 4789
    const Ipv4Spec ip{.id = 9, .mf = true};
    FlowKey k = l2_key(kEth, kEthTypeIpv4);
    set_ipv4(k, ip, kIpProtoUdp);
    k.ip_frag = kFragAny;
    set_ports(k, 3333, kUdpPortVxlan);
    add("ipv4_first_fragment_udp",
        PacketBuilder().eth(kEth).ipv4(ip).udp({.sport = 3333, .length = 3000}).vxlan({.vni = 5}).eth().payload(40)
            .build(),
        k, {.l3 = 14, .l4 = 34, .l3_len = 20});
  }
  {  // later fragment: no L4 even though the bytes are too short for TCP
    const Ipv4Spec ip{.id = 9, .frag_offset = 185, .proto = kIpProtoTcp};
    FlowKey k = l2_key(kEth, kEthTypeIpv4);
    set_ipv4(k, ip, kIpProtoTcp);
    k.ip_frag = kFragAny | kFragLater;
    add("ipv4_later_fragment", PacketBuilder().eth(kEth).ipv4(ip).payload(3).build(), k, {.l3 = 14, .l3_len = 20});
  }
  {  // a protocol without L4 parsing
    const Ipv4Spec ip{.proto = 47};
    FlowKey k = l2_key(kEth, kEthTypeIpv4);
    set_ipv4(k, ip, 47);
    add("ipv4_gre_not_parsed", PacketBuilder().eth(kEth).ipv4(ip).payload(2).build(), k, {.l3 = 14, .l3_len = 20});
  }
  {  // hop-by-hop, routing, destination options, AH, then TCP
    const Ipv6Spec ip{.hop_limit = 255};
    Bytes routing = {0, 1};  // routing type 0, segments left 1
    routing.resize(22, 0);    // reserved + one address: 24 bytes
    Bytes ah(22, 0);          // reserved, SPI, sequence, 12-byte ICV: 24 bytes
    ah[5] = 0x42;
    FlowKey k = l2_key(kEth, kEthTypeIpv6);
    set_ipv6(k, ip, kIpProtoTcp);
    set_ports(k, 80, 8080);
    k.tcp_flags = be16(kTcpFin | kTcpAck);
    k.flags = kFlagSmc;  // a FIN: the SMC stage checks it against the session flows
    add("ipv6_ext_chain_tcp",
        PacketBuilder().eth(kEth).ipv6(ip).ipv6_ext({.type = kIpProtoHopByHop, .data = Bytes{5, 2, 0, 0}})
            .ipv6_ext({.type = kIpProtoRouting, .data = routing}).ipv6_ext({.type = kIpProtoDestOpts})
            .ipv6_ext({.type = kIpProtoAh, .data = ah})
            .tcp({.sport = 80, .dport = 8080, .flags = kTcpFin | kTcpAck}).build(),
        k, {.l3 = 14, .l4 = 14 + 104, .l3_len = 104});
  }
  {  // exactly the maximum number of extension headers
    PacketBuilder b;
    b.eth(kEth).ipv6();
    for (int i = 0; i < 8; ++i) b.ipv6_ext({.type = kIpProtoDestOpts, .data = Bytes(14, 0)});
    b.udp({.sport = 9, .dport = 10});
    FlowKey k = l2_key(kEth, kEthTypeIpv6);
    set_ipv6(k, Ipv6Spec{}, kIpProtoUdp);
    set_ports(k, 9, 10);
    add("ipv6_8_ext_headers_udp", b.build(), k, {.l3 = 14, .l4 = 14 + 40 + 128, .l3_len = 40 + 128});
  }
  {
    FlowKey k = l2_key(kEth, kEthTypeIpv6);
    set_ipv6(k, Ipv6Spec{}, kIpProtoUdp);
    k.ip_frag = kFragAny;
    set_ports(k, 7000, 7001);
    add("ipv6_first_fragment_udp",
        PacketBuilder().eth(kEth).ipv6().ipv6_frag({.offset = 0, .more = true})
            .udp({.sport = 7000, .dport = 7001, .length = 4000}).payload(64).build(),
        k, {.l3 = 14, .l4 = 62, .l3_len = 48});
  }
  {  // later fragment: ip_proto is the fragment header's next header, nothing after it
    FlowKey k = l2_key(kEth, kEthTypeIpv6);
    set_ipv6(k, Ipv6Spec{}, kIpProtoUdp);
    k.ip_frag = kFragAny | kFragLater;
    add("ipv6_later_fragment",
        PacketBuilder().eth(kEth).ipv6().ipv6_ext({.type = kIpProtoDestOpts})
            .ipv6_frag({.offset = 100, .next_header = kIpProtoUdp}).payload(5).build(),
        k, {.l3 = 14, .l3_len = 56});
  }
  {  // atomic fragment (offset 0, no more fragments): still a fragment, L4 parsed
    FlowKey k = l2_key(kEth, kEthTypeIpv6);
    set_ipv6(k, Ipv6Spec{}, kIpProtoTcp);
    k.ip_frag = kFragAny;
    set_ports(k, 1, 2);
    k.tcp_flags = be16(kTcpRst);
    k.flags = kFlagSmc;
    add("ipv6_atomic_fragment_tcp",
        PacketBuilder().eth(kEth).ipv6().ipv6_frag().tcp({.sport = 1, .dport = 2, .flags = kTcpRst}).build(), k,
        {.l3 = 14, .l4 = 62, .l3_len = 48});
  }
  {
    FlowKey k = l2_key(kEth, kEthTypeIpv6);
    set_ipv6(k, Ipv6Spec{}, kIpProtoNone);
    add("ipv6_no_next_header", PacketBuilder().eth(kEth).ipv6().payload(4).build(), k, {.l3 = 14, .l3_len = 40});
  }
  {  // ICMP in IPv6 is not ICMPv6: no L4
    const Ipv6Spec ip{.next_header = kIpProtoIcmp};
    FlowKey k = l2_key(kEth, kEthTypeIpv6);
    set_ipv6(k, ip, kIpProtoIcmp);
    add("ipv6_icmpv4_not_parsed", PacketBuilder().eth(kEth).ipv6(ip).icmp().build(), k, {.l3 = 14, .l3_len = 40});
  }
  {
    FlowKey k = l2_key(kEth, kEthTypeIpv4);
    set_ipv4(k, Ipv4Spec{}, kIpProtoIcmp);
    set_ports(k, kIcmpDestUnreach, 4);
    add("icmp_dest_unreach",
        PacketBuilder().eth(kEth).ipv4().icmp({.type = kIcmpDestUnreach, .code = 4, .rest = 1400}).payload(28)
            .build(),
        k, {.l3 = 14, .l4 = 34, .l3_len = 20});
  }
  {
    FlowKey k = l2_key(kEth, kEthTypeIpv6);
    set_ipv6(k, Ipv6Spec{}, kIpProtoIcmpv6);
    set_ports(k, kIcmpv6EchoReply, 0);
    add("icmpv6_echo_reply",
        PacketBuilder().eth(kEth).ipv6().icmpv6({.type = kIcmpv6EchoReply}).payload(32).build(), k,
        {.l3 = 14, .l4 = 54, .l3_len = 40});
  }
  const Mac host = mac("02:00:00:00:00:aa");
  const Mac router = mac("02:00:00:00:00:bb");
  const Ip6 target = ip6("fe80::aa");
  {
    const Ipv6Spec ip{.src = ip6("fe80::bb"), .dst = ip6("ff02::1:ff00:aa"), .hop_limit = 255};
    FlowKey k = l2_key(kEth, kEthTypeIpv6);
    set_ipv6(k, ip, kIpProtoIcmpv6);
    set_ports(k, kNdNeighborSolicit, 0);
    std::memcpy(k.nd_target, target.data(), 16);
    std::memcpy(k.arp_sha, router.data(), 6);
    add("nd_ns_sll", PacketBuilder().eth(kEth).ipv6(ip).icmpv6(nd_ns(target, router)).build(), k,
        {.l3 = 14, .l4 = 54, .l3_len = 40});
  }
  {  // DAD probe: no options
    const Ipv6Spec ip{.src = ip6("::"), .dst = ip6("ff02::1:ff00:aa"), .hop_limit = 255};
    FlowKey k = l2_key(kEth, kEthTypeIpv6);
    set_ipv6(k, ip, kIpProtoIcmpv6);
    set_ports(k, kNdNeighborSolicit, 0);
    std::memcpy(k.nd_target, target.data(), 16);
    add("nd_ns_dad", PacketBuilder().eth(kEth).ipv6(ip).icmpv6(nd_ns(target)).build(), k,
        {.l3 = 14, .l4 = 54, .l3_len = 40});
  }
  {  // two SLL options: the first wins; an unknown option in between is skipped
    const Ipv6Spec ip{.hop_limit = 255};
    FlowKey k = l2_key(kEth, kEthTypeIpv6);
    set_ipv6(k, ip, kIpProtoIcmpv6);
    set_ports(k, kNdNeighborSolicit, 0);
    std::memcpy(k.nd_target, target.data(), 16);
    std::memcpy(k.arp_sha, router.data(), 6);
    const Bytes extra = concat({nd_opt_mtu(1500), nd_opt_lladdr(kNdOptSourceLl, host)});
    add("nd_ns_two_sll", PacketBuilder().eth(kEth).ipv6(ip).icmpv6(nd_ns(target, router, extra)).build(), k,
        {.l3 = 14, .l4 = 54, .l3_len = 40});
  }
  {
    const Ipv6Spec ip{.src = target, .dst = ip6("fe80::bb"), .hop_limit = 255};
    FlowKey k = l2_key(kEth, kEthTypeIpv6);
    set_ipv6(k, ip, kIpProtoIcmpv6);
    set_ports(k, kNdNeighborAdvert, 0);
    std::memcpy(k.nd_target, target.data(), 16);
    std::memcpy(k.arp_tha, host.data(), 6);
    add("nd_na_tll", PacketBuilder().eth(kEth).ipv6(ip).icmpv6(nd_na(target, host)).build(), k,
        {.l3 = 14, .l4 = 54, .l3_len = 40});
  }
  {
    const Ipv6Spec ip{.src = ip6("fe80::aa"), .dst = ip6("ff02::2"), .hop_limit = 255};
    FlowKey k = l2_key(kEth, kEthTypeIpv6);
    set_ipv6(k, ip, kIpProtoIcmpv6);
    set_ports(k, kNdRouterSolicit, 0);
    std::memcpy(k.arp_sha, host.data(), 6);
    add("nd_rs_sll", PacketBuilder().eth(kEth).ipv6(ip).icmpv6(nd_rs(host)).build(), k,
        {.l3 = 14, .l4 = 54, .l3_len = 40});
  }
  {
    const Ipv6Spec ip{.src = ip6("fe80::bb"), .dst = ip6("ff02::1"), .hop_limit = 255};
    FlowKey k = l2_key(kEth, kEthTypeIpv6);
    set_ipv6(k, ip, kIpProtoIcmpv6);
    set_ports(k, kNdRouterAdvert, 0);
    std::memcpy(k.arp_sha, router.data(), 6);
    const Bytes extra = concat({nd_opt_mtu(9000), nd_opt_prefix_info(ip6("2001:db8:5::"), 64)});
    add("nd_ra_sll_mtu_prefix", PacketBuilder().eth(kEth).ipv6(ip).icmpv6(nd_ra(router, extra)).build(), k,
        {.l3 = 14, .l4 = 54, .l3_len = 40});
  }
  {  // ND type with code != 0 is not ND: only type/code
    Icmpv6Spec ns = nd_ns(target, router);
    ns.code = 1;
    const Ipv6Spec ip{.hop_limit = 255};
    FlowKey k = l2_key(kEth, kEthTypeIpv6);
    set_ipv6(k, ip, kIpProtoIcmpv6);
    set_ports(k, kNdNeighborSolicit, 1);
    add("nd_ns_code1_not_nd", PacketBuilder().eth(kEth).ipv6(ip).icmpv6(ns).build(), k,
        {.l3 = 14, .l4 = 54, .l3_len = 40});
  }
  {  // VXLAN: outer fields stay, tunnel id and offsets set
    const Ipv4Spec ip{.src = ip4("198.18.2.1"), .dst = ip4("198.18.2.2"), .ttl = 32, .df = true};
    FlowKey k = l2_key(kEth, kEthTypeIpv4);
    set_ipv4(k, ip, kIpProtoUdp);
    set_ports(k, 49152, kUdpPortVxlan);
    k.tun_id = 0x123456;
    k.flags = kFlagTunnel;
    add("vxlan_ipv4",
        PacketBuilder().eth(kEth).ipv4(ip).udp({.sport = 49152}).vxlan({.vni = 0x123456})
            .eth({.dst = mac("02:00:00:00:01:01"), .src = mac("02:00:00:00:01:02")})
            .ipv4({.src = ip4("198.18.0.1"), .dst = ip4("198.18.0.2")}).tcp({.sport = 1, .dport = 2}).build(),
        k, {.l3 = 14, .l4 = 34, .tun = 42, .inner_l2 = 50, .l3_len = 20});
  }
  {
    const Ipv6Spec ip{.src = ip6("2001:db8::a"), .dst = ip6("2001:db8::b"), .hop_limit = 20};
    FlowKey k = l2_key(kEth, kEthTypeIpv6);
    k.vlan_tci[0] = tci(300);
    k.flags = kFlagVlan | kFlagTunnel;
    set_ipv6(k, ip, kIpProtoUdp);
    set_ports(k, 50000, kUdpPortVxlan);
    k.tun_id = 0xffffff;
    add("vlan_ipv6_vxlan_arp",
        PacketBuilder().eth(kEth).vlan({.vid = 300}).ipv6(ip).udp({.sport = 50000}).vxlan({.vni = 0xffffff})
            .eth().arp().build(),
        k, {.vlan = 12, .l3 = 18, .l4 = 58, .tun = 66, .inner_l2 = 74, .l3_len = 40});
  }
  {  // I flag clear: plain UDP
    FlowKey k = l2_key(kEth, kEthTypeIpv4);
    set_ipv4(k, Ipv4Spec{}, kIpProtoUdp);
    set_ports(k, 1, kUdpPortVxlan);
    add("vxlan_without_i_flag",
        PacketBuilder().eth(kEth).ipv4().udp({.sport = 1}).vxlan({.vni = 7, .flags = 0}).eth().build(), k,
        {.l3 = 14, .l4 = 34, .l3_len = 20});
  }
  {  // Geneve with an option, inner Ethernet
    const Bytes opt = {0x01, 0x02, 0x80, 0x01, 0xde, 0xad, 0xbe, 0xef};  // class, type, len 1 word, data
    FlowKey k = l2_key(kEth, kEthTypeIpv4);
    set_ipv4(k, Ipv4Spec{}, kIpProtoUdp);
    set_ports(k, 2222, kUdpPortGeneve);
    k.tun_id = 0xabcdef;
    k.flags = kFlagTunnel;
    add("geneve_eth_option",
        PacketBuilder().eth(kEth).ipv4().udp({.sport = 2222}).geneve({.vni = 0xabcdef, .options = opt}).eth()
            .ipv6().build(),
        k, {.l3 = 14, .l4 = 34, .tun = 42, .inner_l2 = 58, .l3_len = 20});
  }
  {  // Geneve carrying IPv4 directly: tunnel recognised, no inner Ethernet
    FlowKey k = l2_key(kEth, kEthTypeIpv4);
    set_ipv4(k, Ipv4Spec{}, kIpProtoUdp);
    set_ports(k, 2223, kUdpPortGeneve);
    k.tun_id = 1;
    k.flags = kFlagTunnel;
    add("geneve_ipv4_payload",
        PacketBuilder().eth(kEth).ipv4().udp({.sport = 2223}).geneve({.vni = 1}).ipv4().udp().build(), k,
        {.l3 = 14, .l4 = 34, .tun = 42, .l3_len = 20});
  }
  {  // RoCEv2: BTH + payload + ICRC
    const Ipv4Spec ip{.tos = 0x6a, .df = true};
    FlowKey k = l2_key(kEth, kEthTypeIpv4);
    set_ipv4(k, ip, kIpProtoUdp);
    set_ports(k, 61000, kUdpPortRoce);
    k.roce_dqp = 0xabcd12;
    k.flags = kFlagRoce | kFlagRoceReth;  // WRITE ONLY with its 16-byte RETH in the 36 payload bytes
    add("roce_v2_ipv4",
        PacketBuilder().eth(kEth).ipv4(ip).udp({.sport = 61000, .checksum = 0})
            .bth({.dest_qp = 0xabcd12, .opcode = kBthOpRcRdmaWriteOnly, .psn = 0x10203, .ack_req = true})
            .payload(36).build(),
        k, {.l3 = 14, .l4 = 34, .l3_len = 20});
  }
  {
    FlowKey k = l2_key(kEth, kEthTypeIpv6);
    k.vlan_tci[0] = tci(5, 3);
    k.flags = kFlagVlan | kFlagRoce;
    set_ipv6(k, Ipv6Spec{}, kIpProtoUdp);
    set_ports(k, 61001, kUdpPortRoce);
    k.roce_dqp = 1;
    add("roce_v2_vlan_ipv6",
        PacketBuilder().eth(kEth).vlan({.vid = 5, .pcp = 3}).ipv6().udp({.sport = 61001}).bth({.dest_qp = 1})
            .payload(4).build(),
        k, {.vlan = 12, .l3 = 18, .l4 = 58, .l3_len = 40});
  }
  return v;
}

// Inconsistent or truncated headers: malformed, with the outer layers that were good still filled.
std::vector<Case> malformed_cases() {
  std::vector<Case> v;
  const auto add = [&](std::string name, Bytes pkt, FlowKey want, HeaderOffsets off) {
    want.flags |= kFlagMalformed;
    v.push_back(Case{std::move(name), std::move(pkt), want, off, false, 0});
  };
  const auto l2_only = [](uint16_t eth_type) { return l2_key(kEth, eth_type); };
  const auto ipv4_key = [](uint8_t proto) {
    FlowKey k = l2_key(kEth, kEthTypeIpv4);
    set_ipv4(k, Ipv4Spec{}, proto);
    return k;
  };
  const auto ipv6_key = [](uint8_t proto) {
    FlowKey k = l2_key(kEth, kEthTypeIpv6);
    set_ipv6(k, Ipv6Spec{}, proto);
    return k;
  };
  const HeaderOffsets ipv4_off{.l3 = 14, .l3_len = 20};

  {
    FlowKey k{};
    std::memset(&k, 0, sizeof k);
    k.in_port = kPort;
    add("runt_13_bytes", Bytes(13, 0x11), k, {});
  }
  {  // three tags: the two we take are filled, the ethertype is not
    FlowKey k = l2_only(0);
    k.vlan_tci[0] = tci(1);
    k.vlan_tci[1] = tci(2);
    k.flags = kFlagVlan | kFlagQinQ;
    add("three_vlan_tags",
        PacketBuilder().eth(kEth).vlan({.vid = 1, .tpid = kEthTypeQinQ}).vlan({.vid = 2}).vlan({.vid = 3}).ipv4()
            .udp().build(),
        k, {.vlan = 12});
  }
  {
    FlowKey k = l2_only(0);
    k.vlan_tci[0] = tci(1);
    k.flags = kFlagVlan;
    add("stag_inside_ctag",
        PacketBuilder().eth(kEth).vlan({.vid = 1}).vlan({.vid = 2, .tpid = kEthTypeQinQ}).ipv4().udp().build(), k,
        {.vlan = 12});
  }
  {
    FlowKey k = l2_only(0);
    add("vlan_tag_cut", PacketBuilder().eth({.dst = kEth.dst, .src = kEth.src, .type = kEthTypeVlan}).payload(3)
                            .build(), k, {});
  }
  add("arp_htype_6", PacketBuilder().eth(kEth).arp({.htype = 6}).build(), l2_only(kEthTypeArp), {});
  add("arp_ptype_ipv6", PacketBuilder().eth(kEth).arp({.ptype = kEthTypeIpv6}).build(), l2_only(kEthTypeArp), {});
  add("arp_hlen_8", PacketBuilder().eth(kEth).arp({.hlen = 8}).build(), l2_only(kEthTypeArp), {});
  add("arp_plen_16", PacketBuilder().eth(kEth).arp({.plen = 16}).build(), l2_only(kEthTypeArp), {});
  add("ipv4_version_6", PacketBuilder().eth(kEth).ipv4({.version = 6}).udp().build(), l2_only(kEthTypeIpv4), {});
  add("ipv4_ihl_4", PacketBuilder().eth(kEth).ipv4({.ihl = 4}).udp().build(), l2_only(kEthTypeIpv4), {});
  add("ipv4_ihl_beyond_total_length", PacketBuilder().eth(kEth).ipv4({.ihl = 15}).udp().build(),
      l2_only(kEthTypeIpv4), {});
  add("ipv4_total_length_below_ihl",
      PacketBuilder().eth(kEth).ipv4({.options = ipv4_opt_router_alert(), .total_length = 22}).udp().build(),
      l2_only(kEthTypeIpv4), {});
  add("ipv4_total_length_past_end", PacketBuilder().eth(kEth).ipv4({.total_length = 20 + 8 + 11}).udp().payload(10)
                                        .build(), l2_only(kEthTypeIpv4), {});
  add("tcp_data_offset_4", PacketBuilder().eth(kEth).ipv4().tcp({.data_offset = 4}).payload(20).build(),
      ipv4_key(kIpProtoTcp), ipv4_off);
  add("tcp_data_offset_past_ip_end", PacketBuilder().eth(kEth).ipv4().tcp({.data_offset = 15}).payload(30).build(),
      ipv4_key(kIpProtoTcp), ipv4_off);
  add("tcp_cut_by_ip_total_length",
      PacketBuilder().eth(kEth).ipv4({.total_length = 20 + 19}).tcp().payload(10).build(), ipv4_key(kIpProtoTcp),
      ipv4_off);
  add("tcp_option_len_0", PacketBuilder().eth(kEth).ipv4().tcp({.options = {2, 0, 5, 0}}).build(),
      ipv4_key(kIpProtoTcp), ipv4_off);
  add("tcp_option_len_1", PacketBuilder().eth(kEth).ipv4().tcp({.options = {1, 1, 8, 1}}).build(),
      ipv4_key(kIpProtoTcp), ipv4_off);
  add("tcp_option_past_header", PacketBuilder().eth(kEth).ipv4().tcp({.options = {2, 8, 5, 0}}).payload(8).build(),
      ipv4_key(kIpProtoTcp), ipv4_off);
  add("tcp_option_kind_without_len", PacketBuilder().eth(kEth).ipv4().tcp({.options = {1, 1, 1, 3}}).build(),
      ipv4_key(kIpProtoTcp), ipv4_off);
  add("tcp_smc_option_cut", PacketBuilder().eth(kEth).ipv4().tcp({.options = {254, 6, 0xe2, 0xd4}}).payload(4)
                                .build(), ipv4_key(kIpProtoTcp), ipv4_off);
  add("udp_length_7", PacketBuilder().eth(kEth).ipv4().udp({.length = 7}).payload(4).build(),
      ipv4_key(kIpProtoUdp), ipv4_off);
  add("udp_length_past_ip_end", PacketBuilder().eth(kEth).ipv4().udp({.length = 8 + 5}).payload(4).build(),
      ipv4_key(kIpProtoUdp), ipv4_off);
  add("icmp_3_bytes", PacketBuilder().eth(kEth).ipv4({.total_length = 23}).icmp().build(), ipv4_key(kIpProtoIcmp),
      ipv4_off);
  add("ipv6_version_4", PacketBuilder().eth(kEth).ipv6({.version = 4}).udp().build(), l2_only(kEthTypeIpv6), {});
  add("ipv6_payload_length_past_end",
      PacketBuilder().eth(kEth).ipv6({.payload_length = 8 + 1}).udp().build(), l2_only(kEthTypeIpv6), {});
  add("ipv6_ext_len_past_end",
      PacketBuilder().eth(kEth).ipv6().ipv6_ext({.type = kIpProtoDestOpts, .hdr_ext_len = 2}).udp().build(),
      ipv6_key(0), {.l3 = 14});
  add("ipv6_ah_len_past_end",
      PacketBuilder().eth(kEth).ipv6().ipv6_ext({.type = kIpProtoAh, .data = Bytes(14, 0), .hdr_ext_len = 5})
          .udp().build(),
      ipv6_key(0), {.l3 = 14});
  add("ipv6_fragment_header_cut",
      PacketBuilder().eth(kEth).ipv6({.next_header = kIpProtoFragment}).payload(Bytes{17, 0, 0, 1}).build(),
      ipv6_key(0), {.l3 = 14});
  {
    PacketBuilder b;
    b.eth(kEth).ipv6();
    for (int i = 0; i < 9; ++i) b.ipv6_ext({.type = i % 2 ? kIpProtoDestOpts : kIpProtoRouting});
    add("ipv6_9_ext_headers", b.udp().build(), ipv6_key(0), {.l3 = 14});
  }
  {
    const Ipv6Spec ip{.hop_limit = 255};
    FlowKey k = l2_key(kEth, kEthTypeIpv6);
    set_ipv6(k, ip, kIpProtoIcmpv6);
    const HeaderOffsets off{.l3 = 14, .l3_len = 40};
    const Ip6 t = ip6("fe80::1");
    add("nd_ns_option_len_0",
        PacketBuilder().eth(kEth).ipv6(ip).icmpv6(nd_ns(t, std::nullopt, Bytes{1, 0, 1, 2, 3, 4, 5, 6})).build(), k,
        off);
    add("nd_na_option_past_end",
        PacketBuilder().eth(kEth).ipv6(ip).icmpv6(nd_na(t, std::nullopt, 0, Bytes{2, 2, 1, 2, 3, 4, 5, 6}))
            .build(),
        k, off);
    add("nd_ra_option_odd_trailing_byte",
        PacketBuilder().eth(kEth).ipv6(ip).icmpv6(nd_ra(std::nullopt, Bytes{5})).build(), k, off);
    Icmpv6Spec short_ns{.type = kNdNeighborSolicit, .body = Bytes(12, 0)};
    add("nd_ns_target_cut", PacketBuilder().eth(kEth).ipv6(ip).icmpv6(short_ns).build(), k, off);
  }
  {
    const HeaderOffsets udp_off{.l3 = 14, .l4 = 34, .l3_len = 20};
    const auto udp_key = [&](uint16_t dport) {
      FlowKey k = ipv4_key(kIpProtoUdp);
      set_ports(k, 10000, dport);
      return k;
    };
    add("vxlan_header_cut", PacketBuilder().eth(kEth).ipv4().udp({.dport = kUdpPortVxlan}).payload(7).build(),
        udp_key(kUdpPortVxlan), udp_off);
    add("vxlan_inner_eth_cut", PacketBuilder().eth(kEth).ipv4().udp().vxlan({.vni = 3}).payload(13).build(),
        udp_key(kUdpPortVxlan), udp_off);
    add("vxlan_cut_by_udp_length",
        PacketBuilder().eth(kEth).ipv4().udp({.length = 8 + 8 + 10}).vxlan({.vni = 3}).eth().build(),
        udp_key(kUdpPortVxlan), udp_off);
    add("geneve_version_1", PacketBuilder().eth(kEth).ipv4().udp().geneve({.version = 1}).eth().build(),
        udp_key(kUdpPortGeneve), udp_off);
    add("geneve_options_past_end",
        PacketBuilder().eth(kEth).ipv4().udp().geneve({.options = Bytes(8, 0), .protocol = 0x0800, .opt_len = 10})
            .payload(4).build(),
        udp_key(kUdpPortGeneve), udp_off);
    add("geneve_inner_eth_cut", PacketBuilder().eth(kEth).ipv4().udp().geneve({.protocol = kEthTypeTeb})
                                    .payload(6).build(), udp_key(kUdpPortGeneve), udp_off);
    add("roce_bth_cut", PacketBuilder().eth(kEth).ipv4().udp({.dport = kUdpPortRoce}).payload(11).build(),
        udp_key(kUdpPortRoce), udp_off);
  }
  return v;
}

std::string case_name(const testing::TestParamInfo<Case>& info) { return info.param.name; }

// ---- parameterised: every kind --------------------------------------------------------------------------------

class ParserCase : public testing::TestWithParam<Case> {};

TEST_P(ParserCase, KeyAndOffsets) {
  const Case& c = GetParam();
  const Parsed r = parse(c.pkt);
  EXPECT_EQ(c.ok, r.ok);
  EXPECT_EQ(r.ok, (r.key.flags & kFlagMalformed) == 0);
  expect_key_eq(c.want, r.key);
  expect_off_eq(c.want_off, r.off);
  expect_offsets_sane(r, c.pkt.size());
}

// The result must not depend on what was in key / off before, and in_port is just copied.
TEST_P(ParserCase, OverwritesEverything) {
  const Case& c = GetParam();
  const Parsed a = parse(c.pkt, c.pkt.size(), 0xffff, 0x00);
  const Parsed b = parse(c.pkt, c.pkt.size(), 0xffff, 0xff);
  EXPECT_EQ(a.key.in_port, 0xffff);
  EXPECT_EQ(0, std::memcmp(&a.key, &b.key, sizeof a.key));
  EXPECT_EQ(0, std::memcmp(&a.off, &b.off, sizeof a.off));
  FlowKey want = c.want;
  want.in_port = 0xffff;
  EXPECT_EQ(0, std::memcmp(&want, &a.key, sizeof want));
}

// Every prefix: no overread (exact heap copies), sane offsets, in_port kept; for valid packets every prefix
// shorter than the valid length is malformed, keeps the L2 fields once L2 is complete, and only ever holds
// values the full parse also found.
TEST_P(ParserCase, EveryPrefix) {
  const Case& c = GetParam();
  const Parsed full = parse(c.pkt);
  const size_t valid_from = c.valid_from ? c.valid_from : c.pkt.size();
  const size_t l2_end = full.off.l3 != kNone ? full.off.l3 : 14;
  const auto* full_bytes = reinterpret_cast<const uint8_t*>(&full.key);
  for (size_t n = 0; n < c.pkt.size(); ++n) {
    SCOPED_TRACE("prefix length " + std::to_string(n));
    const Parsed r = parse(c.pkt, n);
    EXPECT_EQ(r.key.in_port, kPort);
    EXPECT_EQ(r.ok, (r.key.flags & kFlagMalformed) == 0);
    expect_offsets_sane(r, n);
    EXPECT_EQ(r.key.flags & ~(kFlagVlan | kFlagQinQ | kFlagTunnel | kFlagRoce | kFlagMalformed), 0);
    if (!c.ok) continue;
    if (n < valid_from) {
      EXPECT_FALSE(r.ok);
    } else {
      EXPECT_TRUE(r.ok);
      EXPECT_EQ(0, std::memcmp(&r.key, &full.key, sizeof r.key));
    }
    const auto* bytes = reinterpret_cast<const uint8_t*>(&r.key);
    for (size_t i = 0; i < sizeof(FlowKey); ++i) {
      if (i == offsetof(FlowKey, flags) || i == offsetof(FlowKey, flags) + 1) continue;
      if (bytes[i] != 0 && bytes[i] != full_bytes[i]) {
        ADD_FAILURE() << "key byte " << i << " = " << int(bytes[i]) << ", full parse has " << int(full_bytes[i]);
        break;
      }
    }
    if (n >= l2_end) {
      EXPECT_EQ(arr(r.key.eth_dst), arr(full.key.eth_dst));
      EXPECT_EQ(arr(r.key.eth_src), arr(full.key.eth_src));
      EXPECT_EQ(r.key.eth_type, full.key.eth_type);
      EXPECT_EQ(r.key.vlan_tci[0], full.key.vlan_tci[0]);
      EXPECT_EQ(r.key.vlan_tci[1], full.key.vlan_tci[1]);
      EXPECT_EQ(r.key.flags & kL2Flags, full.key.flags & kL2Flags);
      EXPECT_EQ(r.off.vlan, full.off.vlan);
    } else if (n < 14) {
      EXPECT_EQ(r.key.eth_type, 0);
      EXPECT_EQ(r.off.vlan, kNone);
      EXPECT_EQ(r.off.l3, kNone);
    }
  }
}

// Where the headers the full parse validated end (a test oracle, reading the packet independently): a cut
// before that must be malformed even when the length fields agree with the cut.
size_t parsed_end(const Bytes& p, const Parsed& f) {
  const HeaderOffsets& o = f.off;
  if (o.inner_l2 != kNone) return o.inner_l2 + 14u;
  if (o.tun != kNone) return o.tun + 8u + (p[o.tun] & 0x3fu) * 4;  // Geneve without inner Ethernet
  if (f.key.flags & kFlagRoce) return o.l4 + 8u + 12;
  if (o.l4 != kNone) {
    switch (f.key.ip_proto) {
      case kIpProtoTcp:
        return o.l4 + (p[o.l4 + 12] >> 4) * 4u;
      case kIpProtoUdp:  // a VXLAN header is length-checked before its I flag
        return o.l4 + 8u + (f.key.ip_frag == 0 && f.key.tp_dst == be16(kUdpPortVxlan) ? 8 : 0);
      case kIpProtoIcmpv6: {
        if (p[o.l4 + 1] != 0 || f.key.ip_frag != 0) return o.l4 + 4u;
        switch (p[o.l4]) {
          case kNdRouterSolicit:
            return o.l4 + 8u;
          case kNdRouterAdvert:
            return o.l4 + 16u;
          case kNdNeighborSolicit:
          case kNdNeighborAdvert:
            return o.l4 + 24u;
          default:
            return o.l4 + 4u;
        }
      }
      default:
        return o.l4 + 4u;
    }
  }
  if (o.l3 != kNone) return o.l3 + (f.key.eth_type == be16(kEthTypeArp) ? 28u : o.l3_len);
  return 14u + (f.key.flags & kFlagQinQ ? 8 : f.key.flags & kFlagVlan ? 4 : 0);
}

// The first n bytes with the IPv4 total length, IPv6 payload length and UDP length rewritten to end there, so
// the cut reaches the deeper layers' own bounds checks.
Bytes cut_consistently(const Bytes& pkt, size_t n, const Parsed& full) {
  Bytes c(pkt.begin(), pkt.begin() + static_cast<std::ptrdiff_t>(n));
  const HeaderOffsets& o = full.off;
  if (o.l3 != kNone && full.key.eth_type == be16(kEthTypeIpv4) && n >= o.l3 + 4u)
    put16(c, o.l3 + 2, static_cast<uint16_t>(n - o.l3));
  if (o.l3 != kNone && full.key.eth_type == be16(kEthTypeIpv6) && n >= o.l3 + 40u)
    put16(c, o.l3 + 4, static_cast<uint16_t>(n - o.l3 - 40));
  if (o.l4 != kNone && full.key.ip_proto == kIpProtoUdp && n >= o.l4 + 6u)
    put16(c, o.l4 + 4, static_cast<uint16_t>(n - o.l4));
  return c;
}

class ValidParserCase : public ParserCase {};

TEST_P(ValidParserCase, EveryPrefixWithConsistentLengths) {
  const Case& c = GetParam();
  ASSERT_TRUE(c.ok);
  const Parsed full = parse(c.pkt);
  const size_t hdr_end = parsed_end(c.pkt, full);
  ASSERT_LE(hdr_end, c.pkt.size());
  const auto* full_bytes = reinterpret_cast<const uint8_t*>(&full.key);
  for (size_t n = 0; n <= c.pkt.size(); ++n) {
    SCOPED_TRACE("prefix length " + std::to_string(n));
    const Bytes cut = cut_consistently(c.pkt, n, full);
    const Parsed r = parse(cut);
    EXPECT_EQ(r.key.in_port, kPort);
    EXPECT_EQ(r.ok, (r.key.flags & kFlagMalformed) == 0);
    expect_offsets_sane(r, n);
    if (n < hdr_end) {
      EXPECT_FALSE(r.ok) << "cut inside a header must be malformed";
    }
    const auto* bytes = reinterpret_cast<const uint8_t*>(&r.key);
    for (size_t i = 0; i < sizeof(FlowKey); ++i) {
      if (i == offsetof(FlowKey, flags) || i == offsetof(FlowKey, flags) + 1) continue;
      if (bytes[i] != 0 && bytes[i] != full_bytes[i]) {
        ADD_FAILURE() << "key byte " << i << " = " << int(bytes[i]) << ", full parse has " << int(full_bytes[i]);
        break;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Valid, ParserCase, testing::ValuesIn(valid_cases()), case_name);
INSTANTIATE_TEST_SUITE_P(Malformed, ParserCase, testing::ValuesIn(malformed_cases()), case_name);
INSTANTIATE_TEST_SUITE_P(Valid, ValidParserCase, testing::ValuesIn(valid_cases()), case_name);

// ---- individual properties ----------------------------------------------------------------------------------

TEST(Parser, NullAndEmpty) {
  FlowKey k;
  HeaderOffsets o;
  std::memset(&k, 0x5a, sizeof k);
  std::memset(static_cast<void*>(&o), 0x5a, sizeof o);
  EXPECT_FALSE(parse_packet(nullptr, 0, 3, k, o));
  EXPECT_EQ(k.in_port, 3);
  EXPECT_EQ(k.flags, kFlagMalformed);
  EXPECT_EQ(o.l3, kNone);
  EXPECT_EQ(o.l3_len, 0);
}

// Reads are bounded by len, not by what the headers claim: a valid packet followed by bytes the parser must
// not look at parses the same as without them, and a len that cuts it is malformed.
TEST(Parser, LenIsTheOnlyBound) {
  Bytes pkt = PacketBuilder().eth(kEth).ipv4().tcp({.options = tcp_opt_smc()}).build();
  const size_t n = pkt.size();
  Bytes longer = pkt;
  longer.resize(n + 64, 0xee);
  const Parsed a = parse(pkt);
  const Parsed b = parse(longer, n);
  ASSERT_TRUE(a.ok);
  EXPECT_EQ(a.key.smc_option, 1);
  EXPECT_EQ(0, std::memcmp(&a.key, &b.key, sizeof a.key));
  EXPECT_FALSE(parse(longer, n - 1).ok);
}

TEST(Parser, VlanTciIsNetworkOrderWithPresentBit) {
  const Bytes pkt = PacketBuilder().eth(kEth).vlan({.vid = 0x123, .pcp = 6}).ipv4().udp().build();
  const Parsed r = parse(pkt);
  ASSERT_TRUE(r.ok);
  const auto* b = reinterpret_cast<const uint8_t*>(&r.key.vlan_tci[0]);
  EXPECT_EQ(b[0], 0xc0 | 0x10 | 0x01);  // PCP 6, present bit, VID high nibble
  EXPECT_EQ(b[1], 0x23);
  EXPECT_EQ(r.key.vlan_tci[1], 0);
}

TEST(Parser, IcmpTypeCodeLowByte) {
  const Bytes pkt = PacketBuilder().eth(kEth).ipv4().icmp({.type = 11, .code = 1}).build();
  const Parsed r = parse(pkt);
  ASSERT_TRUE(r.ok);
  const auto* s = reinterpret_cast<const uint8_t*>(&r.key.tp_src);
  const auto* d = reinterpret_cast<const uint8_t*>(&r.key.tp_dst);
  EXPECT_EQ(s[0], 0);
  EXPECT_EQ(s[1], 11);
  EXPECT_EQ(d[0], 0);
  EXPECT_EQ(d[1], 1);
}

// Corrupting any single byte of a header must never make the parser read out of bounds or report offsets
// outside the packet; the parse of each variant must be deterministic.
TEST(Parser, SingleByteCorruptionIsSafe) {
  for (const Case& c : valid_cases()) {
    SCOPED_TRACE(c.name);
    const size_t limit = std::min<size_t>(c.pkt.size(), 160);
    for (size_t i = 0; i < limit; ++i) {
      for (const uint8_t v : {uint8_t{0x00}, uint8_t{0xff}, uint8_t(c.pkt[i] ^ 0x80), uint8_t(c.pkt[i] + 1)}) {
        Bytes p = c.pkt;
        p[i] = v;
        const Parsed a = parse(p, p.size(), kPort, 0x00);
        const Parsed b = parse(p, p.size(), kPort, 0xff);
        ASSERT_EQ(0, std::memcmp(&a.key, &b.key, sizeof a.key)) << "byte " << i;
        ASSERT_EQ(a.ok, (a.key.flags & kFlagMalformed) == 0);
        expect_offsets_sane(a, p.size());
        if (HasFailure()) return;
      }
    }
  }
}

// ---- the builder's checksums (other tests rely on them) -----------------------------------------------------

// Independent reference: sum 16-bit words of an explicit byte string.
uint16_t ref_checksum(const Bytes& b) {
  uint64_t sum = 0;
  for (size_t i = 0; i < b.size(); i += 2) sum += (uint64_t{b[i]} << 8) + (i + 1 < b.size() ? b[i + 1] : 0);
  while (sum > 0xffff) sum = (sum >> 16) + (sum & 0xffff);
  return static_cast<uint16_t>(~sum & 0xffff);
}

TEST(PktBuilder, Ipv4HeaderChecksumKnownVector) {
  // The classic worked example (4500 0073 0000 4000 4011 .... <src> <dst>, checksum b861 with 192.168.0.1 ->
  // .199) moved to 198.19.0.1 -> 198.19.0.199; checksum recomputed by hand (ones' complement sum): ad8b.
  const Bytes pkt = PacketBuilder().eth()
                        .ipv4({.src = ip4("198.19.0.1"), .dst = ip4("198.19.0.199"), .ttl = 64, .df = true,
                               .proto = kIpProtoUdp})
                        .payload(0x73 - 20).build();
  const Bytes want = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                      0xad, 0x8b, 0xc6, 0x13, 0x00, 0x01, 0xc6, 0x13, 0x00, 0xc7};
  EXPECT_EQ(Bytes(pkt.begin() + 14, pkt.begin() + 34), want);
  EXPECT_TRUE(ipv4_checksum_ok(pkt, 14));
}

// Pseudo-header + segment, built by hand from the packet bytes.
Bytes pseudo_and_segment(const Bytes& pkt, size_t l3, size_t l4, uint8_t proto, bool v4) {
  Bytes b;
  const size_t end = pkt.size();
  const size_t len = end - l4;
  if (v4) {
    b.insert(b.end(), pkt.begin() + l3 + 12, pkt.begin() + l3 + 20);
    b.insert(b.end(), {0, proto, uint8_t(len >> 8), uint8_t(len)});
  } else {
    b.insert(b.end(), pkt.begin() + l3 + 8, pkt.begin() + l3 + 40);
    b.insert(b.end(), {0, 0, uint8_t(len >> 8), uint8_t(len), 0, 0, 0, proto});
  }
  b.insert(b.end(), pkt.begin() + l4, pkt.end());
  return b;
}

TEST(PktBuilder, L4ChecksumsVerifyIndependently) {
  struct P {
    const char* name;
    Bytes pkt;
    size_t l3, l4;
    uint8_t proto;
    bool v4;
  };
  const std::vector<P> ps = {
      {"tcp4", PacketBuilder().eth().ipv4().tcp({.options = tcp_opt_smc()}).payload(33).build(), 14, 34,
       kIpProtoTcp, true},
      {"udp4", PacketBuilder().eth().vlan({.vid = 3}).ipv4().udp().payload(17).build(), 18, 38, kIpProtoUdp, true},
      {"tcp6_ext", PacketBuilder().eth().ipv6().ipv6_ext({.type = kIpProtoHopByHop}).tcp().payload(5).build(), 14,
       62, kIpProtoTcp, false},
      {"udp6", PacketBuilder().eth().ipv6().udp().payload(9).build(), 14, 54, kIpProtoUdp, false},
      {"icmpv6_ns", PacketBuilder().eth().ipv6().icmpv6(nd_ns(ip6("fe80::1"), mac("02:00:00:00:00:01"))).build(), 14,
       54, kIpProtoIcmpv6, false},
      {"vxlan_outer_udp", PacketBuilder().eth().ipv4().udp().vxlan({.vni = 9}).eth().ipv4().tcp().build(), 14, 34,
       kIpProtoUdp, true},
  };
  for (const P& p : ps) {
    SCOPED_TRACE(p.name);
    EXPECT_EQ(ref_checksum(pseudo_and_segment(p.pkt, p.l3, p.l4, p.proto, p.v4)), 0);
    EXPECT_TRUE(l4_checksum_ok(p.pkt, p.l3, p.l4, p.proto));
    Bytes bad = p.pkt;
    bad.back() ^= 0x01;
    EXPECT_FALSE(l4_checksum_ok(bad, p.l3, p.l4, p.proto));
  }
  // ICMP (no pseudo-header) and the inner headers of a tunnel
  const Bytes icmp = PacketBuilder().eth().ipv4().icmp().payload(11).build();
  EXPECT_EQ(ref_checksum(Bytes(icmp.begin() + 34, icmp.end())), 0);
  PacketBuilder tb;
  tb.eth().ipv4().udp().vxlan({.vni = 9}).eth().ipv4({.src = ip4("1.2.3.4")}).tcp().payload(3);
  const Bytes t = tb.build();
  const size_t inner_l3 = tb.offset_of(Kind::kIpv4, 1);
  EXPECT_TRUE(ipv4_checksum_ok(t, inner_l3));
  EXPECT_TRUE(l4_checksum_ok(t, inner_l3, tb.offset_of(Kind::kTcp), kIpProtoTcp));
}

TEST(PktBuilder, LengthsAndOffsets) {
  PacketBuilder b;
  b.eth().vlan({.vid = 1}).ipv6().ipv6_frag({.more = true}).udp().payload(10).pad_to(128);
  const Bytes p = b.build();
  EXPECT_EQ(p.size(), 128u);
  EXPECT_EQ(b.size(), 18u + 40 + 8 + 8 + 10);
  EXPECT_EQ(b.offset_of(Kind::kIpv6), 18u);
  EXPECT_EQ(b.offset_of(Kind::kUdp), 66u);
  EXPECT_EQ(get16(p, 12), kEthTypeVlan);
  EXPECT_EQ(get16(p, 16), kEthTypeIpv6);
  EXPECT_EQ(get16(p, 18 + 4), 8 + 8 + 10);  // IPv6 payload length excludes the padding
  EXPECT_EQ(p[18 + 6], kIpProtoFragment);
  EXPECT_EQ(p[58], kIpProtoUdp);
  EXPECT_EQ(get16(p, 66 + 4), 18);  // UDP length
  EXPECT_EQ(get16(p, 58 + 2) & 1, 1);
  EXPECT_THROW(b.offset_of(Kind::kTcp), std::invalid_argument);
  EXPECT_THROW(ip4("198.18.0.256"), std::invalid_argument);
  EXPECT_THROW(mac("02:00:00:00:00"), std::invalid_argument);
}

}  // namespace
}  // namespace esw::dp
