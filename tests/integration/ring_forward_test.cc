// In-process integration test: a real EAL (--no-huge), real ethdevs (net_ring ports over rings this test owns),
// the real Switch with its worker lcore. Packets injected on one port must come out of the configured output
// port byte-for-byte unchanged, counters must match, and after shutdown every mbuf is back in the pool.

#include <gtest/gtest.h>
#include <rte_eth_ring.h>
#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <chrono>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "dataplane/daemon/eal.h"
#include "dataplane/error.h"
#include "dataplane/daemon/switch.h"
#include "common/pkt_builder.h"
#include "common/ring_harness.h"

namespace {

using esw::dp::DropReason;

using esw::test::RingPort;

esw::cfg::Config base_config() { return esw::test::ring_test_config("ringtest"); }

// A real UDP/IPv4 frame (the switch parses every packet) of exactly `len` bytes whose payload carries `seq`.
std::vector<uint8_t> make_frame(const rte_ether_addr& dst, const rte_ether_addr& src, size_t len, uint32_t seq) {
  using namespace esw::test;
  Mac d, s;
  std::memcpy(d.data(), dst.addr_bytes, 6);
  std::memcpy(s.data(), src.addr_bytes, 6);
  const size_t headers = 14 + 20 + 8;
  Bytes payload(len > headers ? len - headers : 0);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>((i * 31 + seq) & 0xff);
  if (payload.size() >= 4) std::memcpy(payload.data(), &seq, 4);
  return PacketBuilder()
      .eth({.dst = d, .src = s})
      .ipv4({.src = ip4("198.18.0.1"), .dst = ip4("198.18.0.2")})
      .udp({.sport = 4000, .dport = 5000})
      .payload(payload)
      .build();
}

rte_mbuf* to_mbuf(rte_mempool* pool, const std::vector<uint8_t>& f) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (m == nullptr) return nullptr;
  char* p = rte_pktmbuf_append(m, static_cast<uint16_t>(f.size()));
  std::memcpy(p, f.data(), f.size());
  return m;
}

bool same_bytes(const rte_mbuf* m, const std::vector<uint8_t>& f) {
  return m->pkt_len == f.size() && m->nb_segs == 1 && std::memcmp(rte_pktmbuf_mtod(m, const void*), f.data(), f.size()) == 0;
}

const rte_ether_addr kMac1{{0x02, 0x00, 0xc6, 0x12, 0x00, 0x01}};
const rte_ether_addr kMac2{{0x02, 0x00, 0xc6, 0x12, 0x00, 0x02}};
const rte_ether_addr kMacOther{{0x02, 0x00, 0xc6, 0x12, 0x00, 0x99}};
const rte_ether_addr kBroadcast{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};

TEST(RingForward, CrossConnectDeliversUnchangedAndCounts) {
  RingPort a("xa"), b("xb");
  esw::cfg::Config c = base_config();
  c.uplinks.push_back(esw::test::uplink("a", a.devname));
  c.vports.push_back(esw::test::vport("b", b.devname));
  c.pipeline.mode = esw::cfg::PipelineMode::kCrossConnect;
  c.pipeline.cross_connect = {{"a", "b"}};

  esw::dp::Switch sw(c);
  // The pool starts empty; PMDs hold mbufs in their rx rings while ports are open, none after close.
  const unsigned in_use_at_start = 0;
  sw.start();

  constexpr uint32_t kPackets = 3000;
  std::mt19937 rng(7);
  std::vector<std::vector<uint8_t>> sent;
  uint64_t bytes = 0;
  for (uint32_t i = 0; i < kPackets; ++i) {
    sent.push_back(make_frame(kMac2, kMac1, 60 + rng() % 1455, i));
    bytes += sent.back().size();
    rte_mbuf* m = to_mbuf(sw.pool(), sent.back());
    ASSERT_NE(m, nullptr);
    while (rte_ring_enqueue(a.to_switch, m) != 0) std::this_thread::yield();
  }
  std::vector<rte_mbuf*> got = b.take(kPackets);
  ASSERT_EQ(got.size(), kPackets);
  for (uint32_t i = 0; i < kPackets; ++i) EXPECT_TRUE(same_bytes(got[i], sent[i])) << "packet " << i;
  rte_pktmbuf_free_bulk(got.data(), static_cast<unsigned>(got.size()));
  EXPECT_EQ(a.take(1, std::chrono::milliseconds(50)).size(), 0u) << "nothing may come back on the input";

  sw.close();
  const auto stats = sw.port_stats();
  EXPECT_EQ(stats[0].counters.rx_packets, kPackets);
  EXPECT_EQ(stats[0].counters.rx_bytes, bytes);
  EXPECT_EQ(stats[0].rx_queues.at(0).packets, kPackets);
  EXPECT_EQ(stats[1].counters.tx_packets, kPackets);
  EXPECT_EQ(stats[1].counters.tx_bytes, bytes);
  EXPECT_EQ(stats[1].counters.tx_dropped, 0u);
  EXPECT_EQ(stats[0].counters.dropped_total(), 0u);
  EXPECT_EQ(sw.mempool_report().in_use, in_use_at_start);
}

TEST(RingForward, L2ForwardsByMacFloodsBroadcastDropsHairpin) {
  RingPort up("lu"), v1("l1"), v2("l2");
  esw::cfg::Config c = base_config();
  c.uplinks.push_back(esw::test::uplink("uplink0", up.devname));
  c.vports.push_back(esw::test::vport("vm1", v1.devname, "02:00:c6:12:00:01"));
  c.vports.push_back(esw::test::vport("vm2", v2.devname, "02:00:c6:12:00:02"));
  c.pipeline.mode = esw::cfg::PipelineMode::kL2;

  esw::dp::Switch sw(c);
  // The pool starts empty; PMDs hold mbufs in their rx rings while ports are open, none after close.
  const unsigned in_use_at_start = 0;
  sw.start();

  auto inject = [&](RingPort& p, const std::vector<uint8_t>& f) {
    rte_mbuf* m = to_mbuf(sw.pool(), f);
    ASSERT_NE(m, nullptr);
    ASSERT_EQ(rte_ring_enqueue(p.to_switch, m), 0);
  };
  const auto to_vm2 = make_frame(kMac2, kMac1, 100, 1);
  const auto bcast = make_frame(kBroadcast, kMac1, 64, 2);
  const auto unknown = make_frame(kMacOther, kMac1, 80, 3);
  const auto hairpin = make_frame(kMac1, kMac1, 70, 4);
  const auto from_uplink = make_frame(kMac1, kMacOther, 90, 5);
  inject(v1, to_vm2);
  inject(v1, bcast);
  inject(v1, unknown);
  inject(v1, hairpin);
  inject(up, from_uplink);

  auto at_vm2 = v2.take(2);
  auto at_up = up.take(2);
  auto at_vm1 = v1.take(1);
  ASSERT_EQ(at_vm2.size(), 2u);
  ASSERT_EQ(at_up.size(), 2u);
  ASSERT_EQ(at_vm1.size(), 1u);
  EXPECT_TRUE(same_bytes(at_vm2[0], to_vm2));
  EXPECT_TRUE(same_bytes(at_vm2[1], bcast));
  EXPECT_TRUE(same_bytes(at_up[0], bcast));
  EXPECT_TRUE(same_bytes(at_up[1], unknown));
  EXPECT_TRUE(same_bytes(at_vm1[0], from_uplink));
  for (auto* m : at_vm2) rte_pktmbuf_free(m);
  for (auto* m : at_up) rte_pktmbuf_free(m);
  for (auto* m : at_vm1) rte_pktmbuf_free(m);
  // Nothing else may arrive anywhere (the hairpin frame is dropped).
  EXPECT_EQ(v2.take(1, std::chrono::milliseconds(50)).size(), 0u);
  EXPECT_EQ(up.take(1, std::chrono::milliseconds(10)).size(), 0u);
  EXPECT_EQ(v1.take(1, std::chrono::milliseconds(10)).size(), 0u);

  sw.close();
  const auto stats = sw.port_stats();
  EXPECT_EQ(stats[1].counters.rx_packets, 4u);
  EXPECT_EQ(stats[1].counters.dropped[static_cast<size_t>(DropReason::kRule)], 1u);  // generated hairpin rule
  EXPECT_EQ(stats[2].counters.tx_packets, 2u);
  EXPECT_EQ(stats[0].counters.tx_packets, 2u);
  EXPECT_EQ(stats[1].counters.tx_packets, 1u);
  EXPECT_EQ(sw.mempool_report().in_use, in_use_at_start);
}

TEST(RingForward, UnknownDeviceFailsWithPortName) {
  esw::cfg::Config c = base_config();
  c.vports.push_back(esw::test::vport("vmx", "net_nosuchdriver0,foo=1"));
  try {
    esw::dp::Switch sw(c);
    FAIL() << "opening an unknown device must fail";
  } catch (const esw::dp::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("port vmx"), std::string::npos) << msg;
    EXPECT_NE(msg.find("net_nosuchdriver0"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
  }
}

TEST(RingForward, BadDevargsFailsWithPortName) {
  esw::cfg::Config c = base_config();
  c.vports.push_back(esw::test::vport("vmy", "net_null7,no_such_arg=1"));
  try {
    esw::dp::Switch sw(c);
    FAIL() << "bad devargs must fail";
  } catch (const esw::dp::Error& e) {
    EXPECT_NE(std::string(e.what()).find("port vmy"), std::string::npos) << e.what();
  }
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new esw::test::EalEnv("ringtest"));
  return RUN_ALL_TESTS();
}
