// Packet tests through the real pipeline: real EAL, real net_ring ethdevs, the real Switch with its worker.
// Each test installs rules (the same text/compiler the config uses), injects crafted packets and checks the
// exact bytes that come out, where they come out, and the counters - one test per action, plus misses,
// malformed packets, rejected rule sets and trace.

// rte_ipv4_udptcp_cksum_verify is still marked experimental in 22.11.
#define ALLOW_EXPERIMENTAL_API 1
#include <gtest/gtest.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include <atomic>
#include <string>
#include <vector>

#include "common/pkt_builder.h"
#include "common/ring_harness.h"
#include "dataplane/error.h"
#include "dataplane/daemon/switch.h"
#include "dataplane/rules/ruleset.h"

namespace {

using esw::dp::DropReason;
using esw::test::Bytes;
using esw::test::PacketBuilder;
using esw::test::RingPort;
using namespace esw::test;

std::atomic<int> g_seq{0};

// uplink0 = index 0, vm1 = 1, vm2 = 2, mon = 3. No generated rules (cross-connect mode with no pairs): the
// tables hold exactly what each test installs.
class ActionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string s = std::to_string(g_seq++);
    up_ = std::make_unique<RingPort>("au" + s);
    v1_ = std::make_unique<RingPort>("a1" + s);
    v2_ = std::make_unique<RingPort>("a2" + s);
    mon_ = std::make_unique<RingPort>("am" + s);
    esw::cfg::Config c = esw::test::ring_test_config("actions");
    c.uplinks.push_back(esw::test::uplink("uplink0", up_->devname));
    c.vports.push_back(esw::test::vport("vm1", v1_->devname, "02:00:c6:12:00:01"));
    c.vports.push_back(esw::test::vport("vm2", v2_->devname, "02:00:c6:12:00:02"));
    c.vports.push_back(esw::test::vport("mon", mon_->devname));
    c.pipeline.mode = esw::cfg::PipelineMode::kCrossConnect;
    sw_ = std::make_unique<esw::dp::Switch>(c);
    in_use_at_start_ = 0;  // the pool starts empty; after close every mbuf must be back
    sw_->start();
  }
  void TearDown() override {
    if (HasFailure()) {
      for (const auto& p : sw_->port_stats()) {
        std::string drops;
        for (size_t i = 0; i < p.counters.dropped.size(); ++i) {
          if (p.counters.dropped[i] != 0) {
            drops += std::string(" ") + esw::dp::drop_reason_name(static_cast<DropReason>(i)) + "=" +
                     std::to_string(p.counters.dropped[i]);
          }
        }
        printf("  port %s: rx %lu tx %lu tx_dropped %lu%s\n", p.name.c_str(), p.counters.rx_packets,
               p.counters.tx_packets, p.counters.tx_dropped, drops.c_str());
      }
    }
    sw_->close();
    up_->drain();
    v1_->drain();
    v2_->drain();
    mon_->drain();
    EXPECT_EQ(sw_->mempool_report().in_use, in_use_at_start_) << "every mbuf must be back in the pool";
    sw_.reset();
  }

  void rules(const std::vector<std::string>& texts, const std::vector<esw::dp::TableDef>& tables = {},
             const std::vector<esw::dp::MeterProfile>& meters = {}) {
    std::vector<esw::dp::RuleDef> defs;
    for (const auto& t : texts) {
      esw::dp::RuleDef d;
      std::string err;
      ASSERT_TRUE(esw::dp::parse_rule_text(t, d, err)) << t << ": " << err;
      defs.push_back(std::move(d));
    }
    std::string err;
    ASSERT_TRUE(sw_->set_rules(tables, defs, meters, err)) << err;
  }

  uint64_t dropped(uint16_t port, DropReason r) {
    return sw_->port_stats()[port].counters.dropped[static_cast<size_t>(r)];
  }
  // Packets are processed asynchronously by the worker: wait for a counter to settle.
  uint64_t wait_dropped(uint16_t port, DropReason r, uint64_t want) {
    for (int i = 0; i < 2000 && dropped(port, r) < want; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return dropped(port, r);
  }

  static Bytes udp4(const char* src, const char* dst, uint16_t dport, uint8_t ttl = 64, size_t payload = 32) {
    return PacketBuilder()
        .eth({.dst = mac("02:00:c6:12:00:02"), .src = mac("02:00:c6:12:00:01")})
        .ipv4({.src = ip4(src), .dst = ip4(dst), .ttl = ttl})
        .udp({.sport = 5000, .dport = dport})
        .payload(payload)
        .build();
  }
  static Bytes tcp4(uint16_t dport) {
    return PacketBuilder()
        .eth({.dst = mac("02:00:c6:12:00:02"), .src = mac("02:00:c6:12:00:01")})
        .ipv4({.src = ip4("198.18.0.1"), .dst = ip4("198.18.0.2")})
        .tcp({.sport = 40000, .dport = dport, .flags = kTcpSyn})
        .payload(20)
        .build();
  }

  // Checks IPv4 header and L4 checksums of an Ethernet frame (no VLAN) with DPDK's own routines.
  static void expect_valid_checksums(const Bytes& f) {
    ASSERT_GE(f.size(), 34u);
    const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(f.data() + 14);
    EXPECT_EQ(rte_ipv4_cksum(ip), 0) << "IPv4 header checksum";
    EXPECT_EQ(rte_ipv4_udptcp_cksum_verify(ip, f.data() + 14 + rte_ipv4_hdr_len(ip)), 0) << "L4 checksum";
  }

  std::unique_ptr<RingPort> up_, v1_, v2_, mon_;
  std::unique_ptr<esw::dp::Switch> sw_;
  unsigned in_use_at_start_ = 0;
};

TEST_F(ActionsTest, OutputAndCount) {
  rules({"priority=10,in_port=vm1,ipv4,ipv4_dst=198.18.0.2 actions=count,output:vm2"});
  const Bytes f = udp4("198.18.0.1", "198.18.0.2", 7000);
  for (int i = 0; i < 10; ++i) v1_->inject(sw_->pool(), f);
  auto got = v2_->take_bytes(10);
  ASSERT_EQ(got.size(), 10u);
  for (const auto& g : got) EXPECT_EQ(g, f);
  EXPECT_TRUE(up_->take_bytes(1, std::chrono::milliseconds(20)).empty());
  const auto rs = sw_->rule_stats();
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_EQ(rs[0].packets, 10u);
  EXPECT_EQ(rs[0].bytes, 10u * f.size());
  EXPECT_EQ(sw_->port_stats()[2].counters.tx_packets, 10u);
}

TEST_F(ActionsTest, DropWinsAndIsCounted) {
  rules({"priority=20,in_port=vm1,ipv4,udp,udp_dst=53 actions=drop",
         "priority=10,in_port=vm1 actions=output:vm2"});
  v1_->inject(sw_->pool(), udp4("198.18.0.1", "198.18.0.2", 53));
  v1_->inject(sw_->pool(), udp4("198.18.0.1", "198.18.0.2", 54));
  auto got = v2_->take_bytes(2, std::chrono::milliseconds(300));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0][14 + 20 + 3], 54);  // the UDP destination port's low byte
  EXPECT_EQ(wait_dropped(1, DropReason::kRule, 1), 1u);
}

TEST_F(ActionsTest, GotoAndRegisters) {
  rules({"table=0,priority=1,in_port=vm1 actions=set_register:reg0=7,goto_table:1",
         "table=1,priority=5,reg0=7,ipv4,ipv4_dst=198.18.0.2 actions=output:vm2",
         "table=1,priority=1 actions=output:uplink0"});
  const Bytes a = udp4("198.18.0.1", "198.18.0.2", 9);
  const Bytes b = udp4("198.18.0.1", "198.18.0.3", 9);
  v1_->inject(sw_->pool(), a);
  v1_->inject(sw_->pool(), b);
  auto at2 = v2_->take_bytes(1);
  auto atup = up_->take_bytes(1);
  ASSERT_EQ(at2.size(), 1u);
  ASSERT_EQ(atup.size(), 1u);
  EXPECT_EQ(at2[0], a);
  EXPECT_EQ(atup[0], b);
}

TEST_F(ActionsTest, SetFieldsRewriteBytesAndKeepChecksums) {
  rules({"in_port=vm1,ipv4,tcp actions=set_field:eth_src=02:00:c6:12:00:aa,set_field:eth_dst=02:00:c6:12:00:bb,"
         "set_field:ipv4_src=198.18.1.1,set_field:ipv4_dst=198.18.1.2,set_field:tcp_dst=8080,"
         "set_field:tcp_src=4242,set_field:dscp=46,set_field:ttl=9,output:vm2",
         "in_port=vm1,ipv4,udp actions=set_field:ipv4_dst=198.19.0.9,set_field:udp_src=1111,output:vm2"});
  v1_->inject(sw_->pool(), tcp4(80));
  auto got = v2_->take_bytes(1);
  ASSERT_EQ(got.size(), 1u);
  const Bytes& f = got[0];
  EXPECT_EQ(Bytes(f.begin(), f.begin() + 12), Bytes({2, 0, 0xc6, 0x12, 0, 0xbb, 2, 0, 0xc6, 0x12, 0, 0xaa}));
  EXPECT_EQ(Bytes(f.begin() + 26, f.begin() + 34), Bytes({198, 18, 1, 1, 198, 18, 1, 2}));
  EXPECT_EQ(f[14 + 1], 46 << 2);          // DSCP 46 (EF), ECN 0
  EXPECT_EQ(f[14 + 8], 9);                // TTL
  EXPECT_EQ(f[34] << 8 | f[35], 4242);    // TCP source port
  EXPECT_EQ(f[36] << 8 | f[37], 8080);    // TCP destination port
  expect_valid_checksums(f);

  v1_->inject(sw_->pool(), udp4("198.18.0.1", "198.18.0.2", 7));
  got = v2_->take_bytes(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(Bytes(got[0].begin() + 30, got[0].begin() + 34), Bytes({198, 19, 0, 9}));
  EXPECT_EQ(got[0][34] << 8 | got[0][35], 1111);
  expect_valid_checksums(got[0]);
}

TEST_F(ActionsTest, SetFieldOnVlanIpv6AndEcn) {
  rules({"in_port=vm1,vlan_vid=100 actions=set_field:vlan_vid=200,set_field:vlan_pcp=5,output:vm2",
         "in_port=vm1,ipv6 actions=set_field:ipv6_src=2001:db8::aa,set_field:ipv6_dst=2001:db8::bb,"
         "set_field:udp_dst=9999,set_field:ecn=3,set_field:ttl=7,output:vm2"});
  const Bytes tagged = PacketBuilder()
                           .eth({.dst = mac("02:00:c6:12:00:02"), .src = mac("02:00:c6:12:00:01")})
                           .vlan({.vid = 100, .pcp = 1})
                           .ipv4({.src = ip4("198.18.0.1"), .dst = ip4("198.18.0.2")})
                           .udp({.dport = 7})
                           .build();
  v1_->inject(sw_->pool(), tagged);
  auto got = v2_->take_bytes(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0][14] << 8 | got[0][15], 5 << 13 | 200);  // PCP 5, DEI 0, VID 200
  EXPECT_EQ(Bytes(got[0].begin() + 16, got[0].end()), Bytes(tagged.begin() + 16, tagged.end()));

  const Bytes v6 = PacketBuilder()
                       .eth({.dst = mac("02:00:c6:12:00:02"), .src = mac("02:00:c6:12:00:01")})
                       .ipv6({.src = ip6("2001:db8::1"), .dst = ip6("2001:db8::2"), .tclass = 0xb8})
                       .udp({.sport = 5000, .dport = 7})
                       .payload(20)
                       .build();
  v1_->inject(sw_->pool(), v6);
  got = v2_->take_bytes(1);
  ASSERT_EQ(got.size(), 1u);
  const Bytes& f = got[0];
  EXPECT_EQ(Bytes(f.begin() + 22, f.begin() + 38), bytes_of(ip6("2001:db8::aa")));
  EXPECT_EQ(Bytes(f.begin() + 38, f.begin() + 54), bytes_of(ip6("2001:db8::bb")));
  EXPECT_EQ(f[54 + 2] << 8 | f[54 + 3], 9999);
  const uint8_t tclass = static_cast<uint8_t>((f[14] & 0x0f) << 4 | f[15] >> 4);
  EXPECT_EQ(tclass, 0xbb) << "DSCP 46 kept, ECN set to 3";
  EXPECT_EQ(f[14 + 7], 7) << "hop limit";
  // The UDP checksum over the IPv6 pseudo-header must still be right (DPDK's own routine).
  const auto* ip = reinterpret_cast<const rte_ipv6_hdr*>(f.data() + 14);
  EXPECT_EQ(rte_ipv6_udptcp_cksum_verify(ip, f.data() + 54), 0);
}

TEST_F(ActionsTest, DecTtlDecrementsOrDrops) {
  rules({"in_port=vm1 actions=dec_ttl,output:vm2"});
  v1_->inject(sw_->pool(), udp4("198.18.0.1", "198.18.0.2", 7, 64));
  v1_->inject(sw_->pool(), udp4("198.18.0.1", "198.18.0.2", 7, 1));
  auto got = v2_->take_bytes(2, std::chrono::milliseconds(300));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0][14 + 8], 63);
  expect_valid_checksums(got[0]);
  EXPECT_EQ(wait_dropped(1, DropReason::kTtlExceeded, 1), 1u);
}

TEST_F(ActionsTest, PushAndPopVlan) {
  rules({"in_port=vm1 actions=push_vlan:100/3,output:vm2", "in_port=vm2 actions=pop_vlan,output:vm1"});
  const Bytes plain = udp4("198.18.0.1", "198.18.0.2", 7);
  v1_->inject(sw_->pool(), plain);
  auto tagged = v2_->take_bytes(1);
  ASSERT_EQ(tagged.size(), 1u);
  ASSERT_EQ(tagged[0].size(), plain.size() + 4);
  EXPECT_EQ(Bytes(tagged[0].begin(), tagged[0].begin() + 12), Bytes(plain.begin(), plain.begin() + 12));
  EXPECT_EQ(Bytes(tagged[0].begin() + 12, tagged[0].begin() + 16), Bytes({0x81, 0x00, 0x60, 0x64}));
  EXPECT_EQ(Bytes(tagged[0].begin() + 16, tagged[0].end()), Bytes(plain.begin() + 12, plain.end()));

  v2_->inject(sw_->pool(), tagged[0]);
  auto untagged = v1_->take_bytes(1);
  ASSERT_EQ(untagged.size(), 1u);
  EXPECT_EQ(untagged[0], plain);
}

TEST_F(ActionsTest, MirrorSendsTheOriginal) {
  rules({"in_port=vm1 actions=mirror:mon,set_field:eth_dst=02:00:c6:12:00:99,output:vm2"});
  const Bytes f = udp4("198.18.0.1", "198.18.0.2", 7);
  v1_->inject(sw_->pool(), f);
  auto at_mon = mon_->take_bytes(1);
  auto at_vm2 = v2_->take_bytes(1);
  ASSERT_EQ(at_mon.size(), 1u);
  ASSERT_EQ(at_vm2.size(), 1u);
  EXPECT_EQ(at_mon[0], f);
  EXPECT_EQ(at_vm2[0][5], 0x99);
  EXPECT_EQ(Bytes(at_vm2[0].begin() + 6, at_vm2[0].end()), Bytes(f.begin() + 6, f.end()));
}

TEST_F(ActionsTest, MeterDropsWhatExceedsTheRate) {
  // srTCM: 1000 B/s committed, 2000 B committed burst, 1000 B excess burst: of 60 back-to-back 100-byte frames,
  // about 30 fit the buckets (green + yellow pass), the rest are red and dropped.
  esw::dp::MeterProfile m;
  m.cir = 1000;
  m.cbs = 2000;
  m.ebs_or_pbs = 1000;
  rules({"in_port=vm1 actions=meter:0,output:vm2"}, {}, {m});
  const Bytes f = udp4("198.18.0.1", "198.18.0.2", 7, 64, 100 - 42);
  ASSERT_EQ(f.size(), 100u);
  for (int i = 0; i < 60; ++i) v1_->inject(sw_->pool(), f);
  auto got = v2_->take_bytes(60, std::chrono::milliseconds(500));
  EXPECT_GE(got.size(), 25u);
  EXPECT_LE(got.size(), 35u);
  EXPECT_EQ(wait_dropped(1, DropReason::kMeter, 60 - got.size()), 60 - got.size());
}

// The rule compiler checks meter profiles without DPDK (meter_profile_valid); the workers build them with
// rte_meter (init_meter). Both must accept the same profiles.
TEST(MeterProfile, CompilerCheckAgreesWithRteMeter) {
  const uint64_t values[] = {0, 1, 1000, 125000, 1250000};
  int checked = 0;
  for (bool tr : {false, true}) {
    for (uint64_t cir : values) {
      for (uint64_t pir : values) {
        for (uint64_t cbs : values) {
          for (uint64_t ebs : values) {
            esw::dp::MeterProfile p;
            p.tr_tcm = tr;
            p.cir = cir;
            p.pir = tr ? pir : 0;
            p.cbs = cbs;
            p.ebs_or_pbs = ebs;
            esw::dp::MeterRuntime rt;
            EXPECT_EQ(esw::dp::meter_profile_valid(p), esw::dp::init_meter(p, rt))
                << "tr_tcm=" << tr << " cir=" << cir << " pir=" << p.pir << " cbs=" << cbs << " ebs/pbs=" << ebs;
            ++checked;
          }
        }
      }
    }
  }
  EXPECT_EQ(checked, 2 * 5 * 5 * 5 * 5);
}

TEST_F(ActionsTest, TableMissActions) {
  esw::dp::TableDef t0;
  t0.id = 0;
  t0.miss = {{"output", "uplink0"}};
  rules({"in_port=vm1,ipv4,ipv4_dst=198.18.0.2 actions=output:vm2"}, {t0});
  v1_->inject(sw_->pool(), udp4("198.18.0.1", "198.18.0.77", 7));
  EXPECT_EQ(up_->take_bytes(1).size(), 1u);

  // Default miss: the ingress port's representor; there is none yet, so the packet is dropped and counted.
  rules({"in_port=vm1,ipv4,ipv4_dst=198.18.0.2 actions=output:vm2"});
  v1_->inject(sw_->pool(), udp4("198.18.0.1", "198.18.0.77", 7));
  EXPECT_EQ(wait_dropped(1, DropReason::kNoRepresentor, 1), 1u);
  EXPECT_TRUE(up_->take_bytes(1, std::chrono::milliseconds(20)).empty());
}

TEST_F(ActionsTest, ToRepresentorWithoutRepresentorDrops) {
  rules({"in_port=vm1 actions=to_representor"});
  v1_->inject(sw_->pool(), udp4("198.18.0.1", "198.18.0.2", 7));
  EXPECT_EQ(wait_dropped(1, DropReason::kNoRepresentor, 1), 1u);
}

TEST_F(ActionsTest, MalformedPacketsAreDroppedAndCounted) {
  rules({"actions=output:vm2"});
  Bytes f = udp4("198.18.0.1", "198.18.0.2", 7);
  f.resize(14 + 12);  // IPv4 header cut short
  v1_->inject(sw_->pool(), f);
  v1_->inject(sw_->pool(), Bytes{1, 2, 3});  // not even an Ethernet header
  EXPECT_EQ(wait_dropped(1, DropReason::kMalformed, 2), 2u);
  EXPECT_TRUE(v2_->take_bytes(1, std::chrono::milliseconds(20)).empty());
}

TEST_F(ActionsTest, BadRuleSetIsRejectedWholeAndOldRulesKeepForwarding) {
  rules({"in_port=vm1 actions=output:vm2"});
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"in_port=vm1 actions=output:nosuch", "unknown port 'nosuch'"},
      {"in_port=vm1,ipv4_srcc=198.18.0.1 actions=drop", "ipv4_srcc"},
      {"in_port=vm1/0xff actions=drop", "in_port"},
      {"table=2,in_port=vm1 actions=goto_table:0", "must be higher"},
      {"in_port=vm1 actions=goto_table:9", "does not exist"},
      {"in_port=vm1 actions=frobnicate", "unknown action"},
      {"in_port=vm1,tcp_dst=80 actions=drop", "IP version"},
  };
  for (const auto& [text, fragment] : bad) {
    esw::dp::RuleDef good, broken;
    std::string err;
    ASSERT_TRUE(esw::dp::parse_rule_text("in_port=vm2 actions=output:vm1", good, err));
    ASSERT_TRUE(esw::dp::parse_rule_text(text, broken, err)) << text << ": " << err;
    good.where = "rules[0]";
    broken.where = "rules[1]";
    EXPECT_FALSE(sw_->set_rules({}, {good, broken}, {}, err)) << text;
    EXPECT_NE(err.find("rules[1]"), std::string::npos) << text << " -> " << err;
    EXPECT_NE(err.find(fragment), std::string::npos) << text << " -> " << err;
  }
  // The old rule still forwards; the rejected sets' good rule (vm2 -> vm1) was never installed.
  v1_->inject(sw_->pool(), udp4("198.18.0.1", "198.18.0.2", 7));
  EXPECT_EQ(v2_->take_bytes(1).size(), 1u);
  v2_->inject(sw_->pool(), udp4("198.18.0.2", "198.18.0.1", 7));
  EXPECT_TRUE(v1_->take_bytes(1, std::chrono::milliseconds(50)).empty());
  EXPECT_EQ(sw_->rule_stats().size(), 1u);
}

TEST_F(ActionsTest, TraceFollowsTheSamePathAsTraffic) {
  rules({"table=0,priority=5,in_port=vm1,ipv4 actions=count,goto_table:3",
         "table=3,priority=9,ipv4,tcp,tcp_dst=80 actions=set_field:tcp_dst=8080,output:vm2",
         "table=3,priority=1 actions=drop"});
  esw::dp::TraceResult tr;
  std::string err;
  ASSERT_TRUE(sw_->trace("in_port=vm1,eth_src=02:00:c6:12:00:01,ipv4,ipv4_src=198.18.0.1,tcp,tcp_dst=80", tr, err))
      << err;
  ASSERT_EQ(tr.lines.size(), 3u);
  EXPECT_EQ(tr.lines[0], "binding vm1: ok");
  EXPECT_NE(tr.lines[1].find("table 0: rule"), std::string::npos) << tr.lines[1];
  EXPECT_NE(tr.lines[1].find("goto_table:3"), std::string::npos) << tr.lines[1];
  EXPECT_NE(tr.lines[2].find("table 3: rule"), std::string::npos) << tr.lines[2];
  EXPECT_NE(tr.lines[2].find("set_field:tp_dst=8080"), std::string::npos) << tr.lines[2];
  EXPECT_EQ(tr.verdict, "output:vm2");
  ASSERT_GE(tr.record.final_packet.size(), 38u);
  EXPECT_EQ(tr.record.final_packet[36] << 8 | tr.record.final_packet[37], 8080);

  ASSERT_TRUE(sw_->trace("in_port=vm1,ipv4,udp,udp_dst=53", tr, err)) << err;
  EXPECT_EQ(tr.verdict, "drop (rule)");
  ASSERT_TRUE(sw_->trace("in_port=uplink0,ipv4", tr, err)) << err;
  EXPECT_NE(tr.lines.back().find("table 0: miss"), std::string::npos);
  EXPECT_EQ(tr.verdict, "drop (no_representor)");
  EXPECT_FALSE(sw_->trace("ipv4,tcp", tr, err));
  EXPECT_NE(err.find("in_port"), std::string::npos);

  // Real traffic does what trace said, and trace counted nothing.
  EXPECT_EQ(sw_->rule_stats()[0].packets, 0u);
  v1_->inject(sw_->pool(), tcp4(80));
  auto got = v2_->take_bytes(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0][36] << 8 | got[0][37], 8080);
  expect_valid_checksums(got[0]);
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new esw::test::EalEnv("actions"));
  return RUN_ALL_TESTS();
}
