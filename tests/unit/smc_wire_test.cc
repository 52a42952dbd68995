// SMC fast-path helpers without EAL: the SMC option strip and its incremental TCP checksum (checked against a
// full recomputation), the parser's SMC/RoCE flags, the flow hash and the grant key sets.
#include "dataplane/fastpath/smc_wire.h"
#include "dataplane/fastpath/smc_identity.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "common/pkt_builder.h"
#include "dataplane/fastpath/parser.h"
#include "dataplane/fastpath/proto.h"

namespace esw::dp {
namespace {

using namespace esw::test;

struct Case {
  const char* name;
  bool v6;
  Bytes options;
  unsigned smc_count;  // SMC options in `options`
};

std::vector<Case> cases() {
  return {
      {"linux_nop_nop_smc", false,
       concat({tcp_opt_mss(1460), tcp_opt_sack_permitted(), tcp_opt_timestamp(1, 0), tcp_opt_nop(),
               tcp_opt_wscale(7), tcp_opt_smc()}),
       1},
      {"bpf_smc_first", false, concat({tcp_opt_experimental(esw::test::kSmcExId), tcp_opt_nop(), tcp_opt_nop(), tcp_opt_mss(8940)}), 1},
      {"odd_offset", false, concat({tcp_opt_nop(), tcp_opt_experimental(esw::test::kSmcExId), tcp_opt_wscale(7)}), 1},
      {"odd_offset_v6", true, concat({tcp_opt_wscale(7), tcp_opt_experimental(esw::test::kSmcExId), tcp_opt_mss(1440)}), 1},
      {"two_options", true, concat({tcp_opt_experimental(esw::test::kSmcExId), tcp_opt_nop(), tcp_opt_experimental(esw::test::kSmcExId)}), 2},
      {"other_exid_kept", false, concat({tcp_opt_experimental(0xE2D4C3C4), tcp_opt_mss(1460)}), 0},
      {"after_eol_ignored", false, concat({tcp_opt_mss(1460), tcp_opt_eol(), tcp_opt_nop(), tcp_opt_nop(),
                                           tcp_opt_experimental(esw::test::kSmcExId)}), 0},
  };
}

Bytes syn(const Case& c, uint16_t flags = kTcpSyn, size_t payload = 0) {
  PacketBuilder b;
  b.eth();
  if (c.v6) b.ipv6({.src = ip6("2001:db8::1"), .dst = ip6("2001:db8::2")});
  else b.ipv4();
  b.tcp({.sport = 40000, .dport = 5000, .flags = flags, .seq = 0x12345678, .options = c.options});
  if (payload != 0) b.payload(payload, 7);
  return b.build();
}

TEST(SmcStrip, ReplacesTheOptionWithNopsAndKeepsTheChecksumValid) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    for (size_t payload : {size_t{0}, size_t{1}, size_t{33}}) {
      Bytes pkt = syn(c, kTcpSyn | kTcpAck, payload);
      FlowKey key;
      HeaderOffsets off;
      ASSERT_TRUE(parse_packet(pkt.data(), static_cast<uint32_t>(pkt.size()), 1, key, off));
      ASSERT_TRUE(l4_checksum_ok(pkt, off.l3, off.l4, kIpProtoTcp));
      EXPECT_EQ(key.smc_option, c.smc_count != 0 ? 1 : 0);
      const Bytes before = pkt;
      const uint32_t hdr_len = (pkt[off.l4 + 12] >> 4) * 4u;
      EXPECT_EQ(strip_smc_option(pkt.data() + off.l4, hdr_len), c.smc_count);
      // The incremental update gives the checksum a full recomputation gives.
      EXPECT_TRUE(l4_checksum_ok(pkt, off.l3, off.l4, kIpProtoTcp));
      // Only option bytes changed, and each changed byte is now a NOP.
      size_t changed = 0;
      for (size_t i = 0; i < pkt.size(); ++i) {
        if (pkt[i] == before[i] || (i >= off.l4 + 16u && i < off.l4 + 18u)) continue;
        EXPECT_GE(i, off.l4 + 20u) << "byte " << i;
        EXPECT_LT(i, off.l4 + hdr_len) << "byte " << i;
        EXPECT_EQ(pkt[i], kTcpOptNop) << "byte " << i;
        ++changed;
      }
      EXPECT_LE(changed, c.smc_count * 6u);
      EXPECT_EQ(c.smc_count != 0, changed != 0);
      // The parser no longer sees the option; the other options still parse.
      FlowKey key2;
      HeaderOffsets off2;
      ASSERT_TRUE(parse_packet(pkt.data(), static_cast<uint32_t>(pkt.size()), 1, key2, off2));
      EXPECT_EQ(key2.smc_option, 0);
      // Stripping twice changes nothing.
      const Bytes once = pkt;
      EXPECT_EQ(strip_smc_option(pkt.data() + off.l4, hdr_len), 0u);
      EXPECT_EQ(pkt, once);
    }
  }
}

TEST(SmcStrip, RandomChecksumsStayValid) {
  // Any starting checksum value (random payloads) and option positions: the update must equal a recomputation.
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    Bytes opts;
    const int nops = static_cast<int>(rng() % 4);
    for (int n = 0; n < nops; ++n) opts = concat({opts, tcp_opt_nop()});
    opts = concat({opts, tcp_opt_experimental(esw::test::kSmcExId)});
    if (rng() & 1) opts = concat({opts, tcp_opt_mss(static_cast<uint16_t>(rng()))});
    const Case c{"random", (rng() & 1) != 0, opts, 1};
    Bytes pkt = syn(c, kTcpSyn, rng() % 64);
    FlowKey key;
    HeaderOffsets off;
    ASSERT_TRUE(parse_packet(pkt.data(), static_cast<uint32_t>(pkt.size()), 1, key, off));
    const uint32_t hdr_len = (pkt[off.l4 + 12] >> 4) * 4u;
    ASSERT_EQ(strip_smc_option(pkt.data() + off.l4, hdr_len), 1u);
    ASSERT_TRUE(l4_checksum_ok(pkt, off.l3, off.l4, kIpProtoTcp)) << "iteration " << i;
  }
}

TEST(SmcParser, FlagsOnlyTheSegmentsTheSmcStageNeeds) {
  const Case smc{"smc", false, tcp_opt_smc(), 1};
  const Case plain{"plain", false, tcp_opt_mss(1460), 0};
  auto flags = [](const Bytes& pkt) {
    FlowKey k;
    HeaderOffsets o;
    EXPECT_TRUE(parse_packet(pkt.data(), static_cast<uint32_t>(pkt.size()), 1, k, o));
    return k.flags;
  };
  EXPECT_TRUE(flags(syn(smc, kTcpSyn)) & kFlagSmc);
  EXPECT_TRUE(flags(syn(smc, kTcpSyn | kTcpAck)) & kFlagSmc);
  EXPECT_FALSE(flags(syn(plain, kTcpSyn)) & kFlagSmc);
  EXPECT_FALSE(flags(syn(plain, kTcpAck, 100)) & kFlagSmc);
  EXPECT_FALSE(flags(syn(smc, kTcpAck)) & kFlagSmc) << "the option on a non-SYN is not a handshake";
  EXPECT_TRUE(flags(syn(plain, kTcpFin | kTcpAck)) & kFlagSmc);
  EXPECT_TRUE(flags(syn(plain, kTcpRst)) & kFlagSmc);
  // A payload starting with a CLC eyecatcher (SMC-R and SMC-D), and one that only contains it later.
  for (uint32_t eye : {0xE2D4C3D9u, 0xE2D4C3C4u}) {
    Bytes clc(12, 0);
    put32(clc, 0, eye);
    const Bytes pkt = PacketBuilder().eth().ipv4().tcp({.flags = kTcpAck | 0x008}).payload(clc).build();
    EXPECT_TRUE(flags(pkt) & kFlagSmc);
    Bytes later(12, 0);
    put32(later, 4, eye);
    EXPECT_FALSE(flags(PacketBuilder().eth().ipv4().tcp({.flags = kTcpAck}).payload(later).build()) & kFlagSmc);
  }
  // 1-3 payload bytes that begin an eyecatcher: a CLC header cut early (identity enforcement follows it).
  for (size_t n = 1; n <= 3; ++n) {
    Bytes p = {0xE2, 0xD4, 0xC3};
    p.resize(n);
    EXPECT_TRUE(flags(PacketBuilder().eth().ipv4().tcp({.flags = kTcpAck}).payload(p).pad_to(60).build()) & kFlagSmc)
        << n << " bytes";
  }
  EXPECT_FALSE(flags(PacketBuilder().eth().ipv4().tcp({.flags = kTcpAck}).payload(Bytes{0x00, 0xE2, 0xD4}).build()) &
               kFlagSmc);
  // Ethernet padding after a segment is not payload: a pure ACK whose padding spells an eyecatcher must not match.
  const Bytes padded = PacketBuilder().eth().ipv4().tcp({.flags = kTcpAck}).pad_to(60).build();
  Bytes tampered = padded;
  const uint8_t eye[4] = {0xE2, 0xD4, 0xC3, 0xD9};
  std::memcpy(&tampered[14 + 20 + 20], eye, 4);
  EXPECT_FALSE(flags(tampered) & kFlagSmc);
}

TEST(SmcParser, RocePacketsWithARethAreMarked) {
  auto parsed = [](uint8_t opcode, size_t after_bth) {
    FlowKey k;
    HeaderOffsets o;
    const Bytes pkt = PacketBuilder().eth().ipv4().udp().bth({.dest_qp = 0x123456, .opcode = opcode})
                          .payload(after_bth).build();
    EXPECT_TRUE(parse_packet(pkt.data(), static_cast<uint32_t>(pkt.size()), 1, k, o));
    EXPECT_TRUE(k.flags & kFlagRoce);
    EXPECT_EQ(k.roce_dqp, 0x123456u);
    return k.flags;
  };
  for (uint8_t op : {0x06, 0x0a, 0x0b, 0x0c, 0x26, 0x2a, 0x2b}) {
    EXPECT_TRUE(parsed(op, 16 + 4) & kFlagRoceReth) << int(op);
    EXPECT_FALSE(parsed(op, 15) & kFlagRoceReth) << "truncated RETH, opcode " << int(op);
  }
  for (uint8_t op : {0x04, 0x07, 0x08, 0x10, 0x11, 0x64}) EXPECT_FALSE(parsed(op, 32) & kFlagRoceReth) << int(op);
}

TEST(SmcFlowHash, BothDirectionsAgreeAndKeyAndEventFormsMatch) {
  const Bytes a = PacketBuilder().eth().ipv4().tcp({.sport = 40000, .dport = 5000, .flags = kTcpFin}).build();
  const Bytes b = PacketBuilder().eth().ipv4({.src = {198, 18, 0, 2}, .dst = {198, 18, 0, 1}})
                      .tcp({.sport = 5000, .dport = 40000, .flags = kTcpFin}).build();
  const Bytes c = PacketBuilder().eth().ipv4().tcp({.sport = 40001, .dport = 5000, .flags = kTcpFin}).build();
  FlowKey ka, kb, kc;
  HeaderOffsets o;
  ASSERT_TRUE(parse_packet(a.data(), static_cast<uint32_t>(a.size()), 1, ka, o));
  ASSERT_TRUE(parse_packet(b.data(), static_cast<uint32_t>(b.size()), 2, kb, o));
  ASSERT_TRUE(parse_packet(c.data(), static_cast<uint32_t>(c.size()), 1, kc, o));
  EXPECT_EQ(smc_flow_hash(ka), smc_flow_hash(kb));
  EXPECT_NE(smc_flow_hash(ka), smc_flow_hash(kc));
  // The main lcore hashes the event's 16-byte address fields (IPv4 in the first 4 bytes).
  uint8_t src[16] = {198, 18, 0, 1}, dst[16] = {198, 18, 0, 2};
  EXPECT_EQ(smc_flow_hash(src, ka.tp_src, dst, ka.tp_dst, 4), smc_flow_hash(ka));
}

TEST(SmcKeySet, ContainsExactlyItsKeys) {
  std::mt19937_64 rng(11);
  for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{100}, size_t{5000}}) {
    std::vector<uint64_t> keys;
    for (size_t i = 0; i < n; ++i) keys.push_back(roce_qp_grant(rng() % 1024, rng() % 1024, rng() & 0xffffff));
    const KeySet set(keys);
    for (uint64_t k : keys) EXPECT_TRUE(set.contains(k));
    size_t false_hits = 0;
    for (int i = 0; i < 10000; ++i) {
      const uint64_t k = roce_rkey_grant(rng() % 1024, rng() % 1024, static_cast<uint32_t>(rng()));
      false_hits += set.contains(k);
    }
    EXPECT_EQ(false_hits, 0u);
  }
  // Grant keys of different pairs or QPs differ.
  EXPECT_NE(roce_qp_grant(1, 2, 5), roce_qp_grant(2, 1, 5));
  EXPECT_NE(roce_qp_grant(1, 2, 5), roce_qp_grant(1, 2, 6));
  EXPECT_NE(roce_rkey_grant(1, 2, 5), roce_qp_grant(1, 2, 5));
}

}  // namespace
// smc_identity_verdict (smc_identity.h): what a vport may claim in a CLC message, field by field. The e2e test
// smc_switch covers the worker around it (drops, split messages, counters).
TEST(SmcIdentity, ClaimsMustBeTheVportsOwn) {
  Binding b;
  b.has_mac = true;
  b.mac = {0x02, 0x00, 0xc6, 0x12, 0x00, 0x01};
  b.link_local = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0xc6, 0xff, 0xfe, 0x12, 0x00, 0x01};
  b.ipv4 = {{htonl(0xc6120001), 0xffffffff}};                 // 198.18.0.1/32
  Prefix6 p6{};
  p6.addr = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
  p6.mask.fill(0xff);                                         // 2001:db8::1/128
  b.ipv6 = {p6};
  b.ipv6.push_back(Prefix6{{0x20, 0x01, 0x0d, 0xb8, 0, 0x10}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}});
  auto prop = [&] {
    smc::Message m;
    m.hdr.type = smc::MsgType::kProposal;
    m.hdr.typev1 = smc::Path::kR;
    std::memcpy(m.proposal.roce_mac, b.mac.data(), 6);
    const uint8_t gid[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 1};
    std::memcpy(m.proposal.smcr_gid, gid, 16);
    m.proposal.has_ip_area = true;
    m.proposal.ip.ipv4_subnet = 0xc6120000;
    m.proposal.ip.ipv4_prefix_len = 24;
    return m;
  };
  EXPECT_EQ(smc_identity_verdict(b, prop()), DropReason::kCount) << "own MAC, IPv4-mapped GID, a /24 around it";
  smc::Message m = prop();
  m.proposal.roce_mac[5] = 2;
  EXPECT_EQ(smc_identity_verdict(b, m), DropReason::kSmcForeignMac);
  m = prop();
  m.proposal.smcr_gid[15] = 2;  // ::ffff:198.18.0.2
  EXPECT_EQ(smc_identity_verdict(b, m), DropReason::kSmcForeignGid);
  m = prop();
  std::memcpy(m.proposal.smcr_gid, b.link_local.data(), 16);
  EXPECT_EQ(smc_identity_verdict(b, m), DropReason::kCount) << "the EUI-64 link-local GID";
  m.proposal.smcr_gid[15] = 9;
  EXPECT_EQ(smc_identity_verdict(b, m), DropReason::kSmcForeignGid) << "another link-local";
  m = prop();
  std::memcpy(m.proposal.smcr_gid, p6.addr.data(), 16);
  EXPECT_EQ(smc_identity_verdict(b, m), DropReason::kCount) << "a bound IPv6 address";
  m.proposal.smcr_gid[5] = 0x10;
  m.proposal.smcr_gid[15] = 0x77;
  EXPECT_EQ(smc_identity_verdict(b, m), DropReason::kCount) << "inside the bound 2001:db8:0:10::/64";
  m.proposal.smcr_gid[5] = 0x11;
  EXPECT_EQ(smc_identity_verdict(b, m), DropReason::kSmcForeignGid);
  // SMC-D only: no RoCE MAC/GID claimed, so none is checked; the IP area still is.
  m = prop();
  m.hdr.typev1 = smc::Path::kD;
  m.proposal.roce_mac[5] = 2;
  EXPECT_EQ(smc_identity_verdict(b, m), DropReason::kCount);
  m.proposal.ip.ipv4_subnet = 0xc6130000;
  EXPECT_EQ(smc_identity_verdict(b, m), DropReason::kSmcForeignPrefix);
  // Prefixes: within or around a bound one; "no IPv4" (0/0) is not checked; IPv6 prefixes each.
  m = prop();
  m.proposal.ip.ipv4_subnet = 0xc6120001;
  m.proposal.ip.ipv4_prefix_len = 32;
  EXPECT_EQ(smc_identity_verdict(b, m), DropReason::kCount);
  m.proposal.ip.ipv4_subnet = 0xc6120100;
  m.proposal.ip.ipv4_prefix_len = 24;
  EXPECT_EQ(smc_identity_verdict(b, m), DropReason::kSmcForeignPrefix);
  m.proposal.ip.ipv4_subnet = 0;
  m.proposal.ip.ipv4_prefix_len = 0;
  EXPECT_EQ(smc_identity_verdict(b, m), DropReason::kCount);
  m.proposal.ip.ipv6_count = 2;
  m.proposal.ip.ipv6[0] = {{0x20, 0x01, 0x0d, 0xb8}, 64};   // 2001:db8::/64 around 2001:db8::1
  m.proposal.ip.ipv6[1] = {{0x20, 0x01, 0x0d, 0xb8, 0, 0x10}, 64};
  EXPECT_EQ(smc_identity_verdict(b, m), DropReason::kCount);
  m.proposal.ip.ipv6[1] = {{0x20, 0x01, 0x0d, 0xb8, 0, 0x20}, 64};
  EXPECT_EQ(smc_identity_verdict(b, m), DropReason::kSmcForeignPrefix);
  // An SMC-R Accept/Confirm: MAC and GID; a v2 Confirm's GID list entry by entry.
  smc::Message a;
  a.hdr.type = smc::MsgType::kConfirm;
  a.hdr.version = 2;
  a.hdr.typev1 = smc::Path::kR;
  std::memcpy(a.accept_confirm.r.mac, b.mac.data(), 6);
  std::memcpy(a.accept_confirm.r.gid, p6.addr.data(), 16);
  a.accept_confirm.fce.present = true;
  a.accept_confirm.fce.gid_count = 2;
  std::memcpy(a.accept_confirm.fce.gids[0], p6.addr.data(), 16);
  std::memcpy(a.accept_confirm.fce.gids[1], b.link_local.data(), 16);
  EXPECT_EQ(smc_identity_verdict(b, a), DropReason::kCount);
  a.accept_confirm.fce.gids[1][15] = 0x42;
  EXPECT_EQ(smc_identity_verdict(b, a), DropReason::kSmcForeignGid);
  EXPECT_EQ(smc_refusal_of(DropReason::kSmcForeignGid), 2);
  EXPECT_EQ(smc_refusal_of(DropReason::kRule), 0);
}

}  // namespace esw::dp
