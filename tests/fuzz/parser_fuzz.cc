// libFuzzer target for esw::dp::parse_packet. Built and run by run_fuzz.sh (clang, -fsanitize=fuzzer,address,
// undefined). ASan catches any read outside the input (libFuzzer passes an exactly sized heap copy); the checks
// below catch results that are inconsistent with the parser's documented guarantees.
//
// With ESW_PARSER_FUZZ_SEEDS=<dir> in the environment, LLVMFuzzerInitialize first writes crafted packets of every
// kind there (pass the same dir as a corpus directory), so the fuzzer starts deep in each protocol.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/pkt_builder.h"
#include "dataplane/fastpath/parser.h"

namespace {

using esw::dp::FlowKey;
using esw::dp::HeaderOffsets;

constexpr uint16_t kNone = HeaderOffsets::kNone;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "parser invariant violated: %s\n", what);
    std::abort();
  }
}

uint16_t be16(uint16_t host) {
  const uint8_t b[2] = {static_cast<uint8_t>(host >> 8), static_cast<uint8_t>(host)};
  uint16_t v;
  std::memcpy(&v, b, 2);
  return v;
}

void check_invariants(const uint8_t* data, uint32_t len, uint16_t port, bool ok, const FlowKey& k,
                      const HeaderOffsets& o) {
  using namespace esw::dp;
  check(k.in_port == port, "in_port preserved");
  check(ok == ((k.flags & kFlagMalformed) == 0), "return value matches kFlagMalformed");
  check((k.flags & ~(kFlagVlan | kFlagQinQ | kFlagTunnel | kFlagRoce | kFlagRoceReth | kFlagSmc | kFlagMalformed)) == 0, "known flags only");
  check(k.regs[0] == 0 && k.regs[1] == 0 && k.regs[2] == 0 && k.regs[3] == 0, "regs zero");
  check(k.pad0 == 0 && k.pad1 == 0 && o.pad == 0 && o.l2 == 0, "padding zero, l2 at 0");
  check(len >= 14 || (!ok && o.l3 == kNone && k.eth_type == 0), "runt is malformed");

  // VLAN
  const bool vlan = k.flags & kFlagVlan;
  const bool qinq = k.flags & kFlagQinQ;
  check(!qinq || vlan, "QinQ implies VLAN");
  check(vlan == (o.vlan != kNone), "VLAN flag iff vlan offset");
  check(!vlan || o.vlan == 12, "vlan offset");
  check(vlan == (k.vlan_tci[0] != 0) && qinq == (k.vlan_tci[1] != 0), "tags present iff flags");
  check(!vlan || (k.vlan_tci[0] & be16(kVlanPresentHost)), "present bit, outer");
  check(!qinq || (k.vlan_tci[1] & be16(kVlanPresentHost)), "present bit, inner");
  const uint32_t l2_len = 14u + (qinq ? 8 : vlan ? 4 : 0);
  check(!vlan || len >= 12u + 4 * (qinq ? 2 : 1) + 2, "tags inside the packet");

  // L3
  const bool ipv4 = k.eth_type == be16(0x0800);
  const bool ipv6 = k.eth_type == be16(0x86dd);
  const bool arp = k.eth_type == be16(0x0806);
  if (o.l3 != kNone) {
    check(ipv4 || ipv6 || arp, "l3 only for IPv4/IPv6/ARP");
    check(o.l3 == l2_len, "l3 right after L2");
    if (arp) check(o.l3 + 28u <= len && o.l3_len == 0, "ARP inside the packet");
    if (ipv4) check(o.l3_len >= 20 && o.l3_len <= 60 && o.l3_len % 4 == 0, "IPv4 header length");
    // A bad extension chain keeps the good fixed header (l3) but leaves the chain length unknown (0).
    if (ipv6) check((o.l3_len >= 40 && o.l3_len % 4 == 0) || (!ok && o.l3_len == 0), "IPv6 header length");
    check(o.l3 + uint32_t{o.l3_len} <= len, "L3 header inside the packet");
  } else {
    check(o.l3_len == 0 && k.ip_proto == 0 && k.ip_ttl == 0 && k.ip_tos == 0 && k.ip_frag == 0 &&
              k.ipv4_src == 0 && k.ipv4_dst == 0,
          "no L3 fields without an L3 header");
  }
  check(!(k.ip_frag & esw::dp::kFragLater) || (k.ip_frag & esw::dp::kFragAny), "later fragment is a fragment");

  // L4
  if (o.l4 != kNone) {
    check(o.l3 != kNone && (ipv4 || ipv6), "l4 needs IP");
    check(o.l4 == o.l3 + o.l3_len, "l4 right after L3");
    check(o.l4 + 4u <= len, "L4 header inside the packet");
    check(!(k.ip_frag & esw::dp::kFragLater), "no L4 in later fragments");
    const uint8_t p = k.ip_proto;
    check(p == 6 || p == 17 || (p == 1 && ipv4) || (p == 58 && ipv6), "L4 only for TCP/UDP/ICMP/ICMPv6");
    if (p == 6) {
      check(o.l4 + 20u <= len, "TCP header inside");
      check((k.tcp_flags & be16(0xf000)) == 0, "12 flag bits");
    }
    if (p == 17) check(o.l4 + 8u <= len, "UDP header inside");
    if (p == 1 || p == 58) check((k.tp_src & be16(0xff00)) == 0 && (k.tp_dst & be16(0xff00)) == 0, "ICMP low byte");
  } else {
    check(k.tp_src == 0 && k.tp_dst == 0 && k.tcp_flags == 0, "no ports without L4");
  }
  check(k.smc_option == 0 || (k.smc_option == 1 && o.l4 != kNone && k.ip_proto == 6), "SMC only on TCP");
  for (uint8_t b : k.nd_target)
    if (b != 0) check(o.l4 != kNone && k.ip_proto == 58, "nd_target only on ICMPv6");

  // Tunnels and RoCE
  const bool tunnel = k.flags & kFlagTunnel;
  check(tunnel == (o.tun != kNone), "tunnel flag iff tun offset");
  if (tunnel) {
    check(o.l4 != kNone && k.ip_proto == 17 && k.ip_frag == 0, "tunnels over unfragmented UDP");
    check(o.tun == o.l4 + 8u && o.tun + 8u <= len, "tunnel header inside, after UDP");
    check(k.tun_id <= 0xffffff, "24-bit VNI");
  } else {
    check(k.tun_id == 0 && o.inner_l2 == kNone, "no tunnel fields without a tunnel");
  }
  if (o.inner_l2 != kNone) check(o.inner_l2 >= o.tun + 8u && o.inner_l2 + 14u <= len, "inner Ethernet inside");
  if (k.flags & kFlagRoce) {
    check(!tunnel && o.l4 != kNone && k.ip_proto == 17 && o.l4 + 20u <= len, "BTH inside, after UDP");
    check(k.roce_dqp <= 0xffffff, "24-bit QP");
  } else {
    check(k.roce_dqp == 0, "no QP without RoCE");
  }
  (void)data;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto len = static_cast<uint32_t>(size);
  const auto port = static_cast<uint16_t>(size * 2654435761u >> 7);
  FlowKey a;
  FlowKey b;
  HeaderOffsets oa;
  HeaderOffsets ob;
  // Different garbage in the outputs: results must not depend on it.
  std::memset(&a, 0x00, sizeof a);
  std::memset(&b, 0xff, sizeof b);
  std::memset(static_cast<void*>(&oa), 0x00, sizeof oa);
  std::memset(static_cast<void*>(&ob), 0xff, sizeof ob);
  const bool ok_a = esw::dp::parse_packet(data, len, port, a, oa);
  const bool ok_b = esw::dp::parse_packet(data, len, port, b, ob);
  check(ok_a == ok_b && std::memcmp(&a, &b, sizeof a) == 0 && std::memcmp(&oa, &ob, sizeof oa) == 0,
        "deterministic and independent of the previous key/offsets contents");
  check_invariants(data, len, port, ok_a, a, oa);
  return 0;
}

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  const char* dir = std::getenv("ESW_PARSER_FUZZ_SEEDS");
  if (dir == nullptr) return 0;
  using namespace esw::test;
  const Mac m = mac("02:00:00:00:00:bb");
  const Bytes seeds[] = {
      PacketBuilder().eth().ipv4({.options = ipv4_opt_router_alert()})
          .tcp({.flags = kTcpSyn, .options = concat({tcp_opt_mss(1460), tcp_opt_sack_permitted(), tcp_opt_smc()})})
          .build(),
      PacketBuilder().eth().vlan({.vid = 10, .tpid = kEthTypeQinQ}).vlan({.vid = 20}).ipv6().udp({.dport = 53})
          .payload(8).build(),
      PacketBuilder().eth().vlan({.vid = 1}).arp().build(),
      PacketBuilder().eth().ipv4({.mf = true}).udp().payload(16).build(),
      PacketBuilder().eth().ipv4({.frag_offset = 10, .proto = kIpProtoTcp}).payload(16).build(),
      PacketBuilder().eth().ipv6().ipv6_ext({.type = kIpProtoHopByHop}).ipv6_ext({.type = kIpProtoRouting})
          .ipv6_ext({.type = kIpProtoAh, .data = Bytes(14, 0)}).ipv6_frag({.more = true}).tcp().build(),
      PacketBuilder().eth().ipv4().icmp().payload(8).build(),
      PacketBuilder().eth().ipv6({.hop_limit = 255}).icmpv6(nd_ns(ip6("fe80::1"), m)).build(),
      PacketBuilder().eth().ipv6({.hop_limit = 255}).icmpv6(nd_na(ip6("fe80::1"), m)).build(),
      PacketBuilder().eth().ipv6({.hop_limit = 255}).icmpv6(nd_ra(m, nd_opt_mtu(1500))).build(),
      PacketBuilder().eth().ipv4().udp().vxlan({.vni = 5}).eth().ipv4().tcp().build(),
      PacketBuilder().eth().ipv6().udp().geneve({.vni = 6, .options = Bytes(8, 1)}).eth().arp().build(),
      PacketBuilder().eth().ipv4().udp().bth({.dest_qp = 7}).payload(4).build(),
  };
  int i = 0;
  for (const Bytes& s : seeds) {
    const std::string path = std::string(dir) + "/seed_" + std::to_string(i++);
    if (FILE* f = std::fopen(path.c_str(), "wb")) {
      std::fwrite(s.data(), 1, s.size(), f);
      std::fclose(f);
    }
  }
  return 0;
}
