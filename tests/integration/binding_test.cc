// Vport binding (anti-spoofing) through the real pipeline: real EAL, net_ring vports, tap representors, the
// real Switch. One vport sends >100,000 generated frames covering every spoof kind, truncated and garbage frames,
// interleaved with legitimate traffic (including a RARP announce from the bound MAC): nothing illegitimate may leave the switch anywhere, every drop must be
// counted under its reason, and every legitimate frame must arrive. Also: vports added and removed at run time
// while traffic flows between other vports lose nothing.

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <random>
#include <thread>

#include "common/pkt_builder.h"
#include "common/ring_harness.h"
#include "dataplane/daemon/switch.h"
#include "dataplane/fastpath/proto.h"

namespace {

using esw::dp::DropReason;
using esw::test::Bytes;
using esw::test::PacketBuilder;
using esw::test::RingPort;
using namespace esw::test;

const Mac kMac1 = mac("02:00:c6:12:01:01");
const Mac kMac2 = mac("02:00:c6:12:01:02");
const Ip6 kLl1 = ip6("fe80::c6:12ff:fe01:101");  // EUI-64 of kMac1

esw::cfg::VportConfig bound_vport(const std::string& name, const std::string& devargs, const char* m,
                                  std::vector<std::string> v4, std::vector<std::string> v6) {
  esw::cfg::VportConfig v = esw::test::vport(name, devargs, m);
  v.spoofchk = true;
  v.ipv4 = std::move(v4);
  v.ipv6 = std::move(v6);
  return v;
}

uint64_t drops(const esw::dp::Switch& sw, const std::string& vport, DropReason r) {
  for (const auto& v : sw.vport_stats()) {
    if (v.name != vport) continue;
    for (const auto& [name, n] : v.drops) {
      if (name == esw::dp::drop_reason_name(r)) return n;
    }
  }
  return ~uint64_t(0);
}

TEST(Binding, AdversarialVportCannotSpoofAndLegitTrafficFlows) {
  RingPort up("bu"), v1("b1"), v2("b2");
  esw::cfg::Config c = esw::test::ring_test_config("binding");
  c.dataplane.mbufs = 16384;
  c.representors.kind = esw::cfg::RepresentorKind::kTap;
  c.uplinks.push_back(esw::test::uplink("uplink0", up.devname));
  c.vports.push_back(bound_vport("bvm1", v1.devname, "02:00:c6:12:01:01", {"198.18.0.1", "198.18.5.0/24"},
                                 {"2001:db8::1"}));
  c.vports.push_back(bound_vport("bvm2", v2.devname, "02:00:c6:12:01:02", {"198.18.0.2"}, {"2001:db8::2"}));
  esw::dp::Switch sw(c);
  sw.start();

  std::mt19937_64 rng(20261121);
  auto rnd_mac = [&] {
    Mac m;
    for (auto& b : m) b = static_cast<uint8_t>(rng());
    m[0] = static_cast<uint8_t>((m[0] & 0xfe) | 0x02);
    if (m == kMac1) m[5] ^= 1;
    return m;
  };
  auto v4_from = [&](Ip4 src, uint16_t sport, uint16_t dport) {
    return PacketBuilder().eth({.dst = kMac2, .src = kMac1}).ipv4({.src = src, .dst = ip4("198.18.0.2")})
        .udp({.sport = sport, .dport = dport}).payload(18).build();
  };
  auto v6_from = [&](Ip6 src, uint16_t sport, uint16_t dport) {
    return PacketBuilder().eth({.dst = kMac2, .src = kMac1}).ipv6({.src = src, .dst = ip6("2001:db8::2")})
        .udp({.sport = sport, .dport = dport}).payload(18).build();
  };

  // Each kind: a generator and the reason its frames must be dropped for (kCount = legitimate: must arrive).
  struct Kind {
    const char* name;
    DropReason reason;
    std::function<Bytes()> make;
  };
  const std::vector<Kind> kinds = {
      {"legit_v4", DropReason::kCount, [&] { return v4_from(ip4("198.18.0.1"), 1000 + rng() % 1000, 7); }},
      {"legit_v4_prefix", DropReason::kCount,
       [&] { return v4_from(Ip4{198, 18, 5, static_cast<uint8_t>(rng())}, 2000, 7); }},
      {"legit_v6", DropReason::kCount, [&] { return v6_from(ip6("2001:db8::1"), 3000, 7); }},
      {"spoofed_mac", DropReason::kSpoofedMac,
       [&] {
         return PacketBuilder().eth({.dst = kMac2, .src = rnd_mac()}).ipv4({.src = ip4("198.18.0.1"), .dst = ip4("198.18.0.2")})
             .udp({.dport = 7}).build();
       }},
      {"spoofed_ip4", DropReason::kSpoofedIp,
       [&] { return v4_from(Ip4{198, 19, static_cast<uint8_t>(rng()), static_cast<uint8_t>(rng())}, 1, 7); }},
      {"spoofed_ip4_zero", DropReason::kSpoofedIp, [&] { return v4_from(Ip4{0, 0, 0, 0}, 1, 7); }},
      {"spoofed_ip6", DropReason::kSpoofedIp,
       [&] {
         Ip6 a = ip6("2001:db8:ffff::1");
         a[15] = static_cast<uint8_t>(rng());
         return v6_from(a, 1, 7);
       }},
      {"arp_bad_sha", DropReason::kArpSpoof,
       [&] {
         return PacketBuilder().eth({.dst = mac("ff:ff:ff:ff:ff:ff"), .src = kMac1})
             .arp({.sha = rnd_mac(), .spa = ip4("198.18.0.1"), .tpa = ip4("198.18.0.2")}).build();
       }},
      {"arp_bad_spa", DropReason::kArpSpoof,
       [&] {
         return PacketBuilder().eth({.dst = mac("ff:ff:ff:ff:ff:ff"), .src = kMac1})
             .arp({.op = kArpReply, .sha = kMac1, .spa = ip4("198.18.0.2"), .tpa = ip4("198.18.0.2")}).build();
       }},
      {"nd_na_bad_target", DropReason::kNdSpoof,
       [&] {
         return PacketBuilder().eth({.dst = kMac2, .src = kMac1}).ipv6({.src = kLl1, .dst = ip6("2001:db8::2"), .hop_limit = 255})
             .icmpv6(nd_na(ip6("2001:db8::2"), kMac1)).build();
       }},
      {"nd_ns_bad_sll", DropReason::kNdSpoof,
       [&] {
         return PacketBuilder().eth({.dst = kMac2, .src = kMac1}).ipv6({.src = ip6("2001:db8::1"), .dst = ip6("2001:db8::2"), .hop_limit = 255})
             .icmpv6(nd_ns(ip6("2001:db8::2"), rnd_mac())).build();
       }},
      {"ra", DropReason::kRaGuard,
       [&] {
         return PacketBuilder().eth({.dst = mac("33:33:00:00:00:01"), .src = kMac1})
             .ipv6({.src = kLl1, .dst = ip6("ff02::1"), .hop_limit = 255}).icmpv6(nd_ra(kMac1)).build();
       }},
      {"dhcp_server", DropReason::kDhcpGuard, [&] { return v4_from(ip4("198.18.0.1"), 67, 68); }},
      {"dhcp_discover", DropReason::kDhcpGuard, [&] { return v4_from(Ip4{0, 0, 0, 0}, 68, 67); }},
      {"dhcpv6_server", DropReason::kDhcpGuard, [&] { return v6_from(ip6("2001:db8::1"), 547, 546); }},
      {"vlan", DropReason::kVlanViolation,
       [&] {
         return PacketBuilder().eth({.dst = kMac2, .src = kMac1}).vlan({.vid = static_cast<uint16_t>(1 + rng() % 4094)})
             .ipv4({.src = ip4("198.18.0.1"), .dst = ip4("198.18.0.2")}).udp({.dport = 7}).build();
       }},
      {"qinq", DropReason::kVlanViolation,
       [&] {
         return PacketBuilder().eth({.dst = kMac2, .src = kMac1}).vlan({.vid = 100, .tpid = kEthTypeQinQ}).vlan({.vid = 200})
             .ipv4({.src = ip4("198.18.0.1"), .dst = ip4("198.18.0.2")}).udp({.dport = 7}).build();
       }},
      {"roce", DropReason::kRoceDisabled,
       [&] {
         return PacketBuilder().eth({.dst = kMac2, .src = kMac1}).ipv4({.src = ip4("198.18.0.1"), .dst = ip4("198.18.0.2")})
             .udp({.sport = 49152}).bth({.dest_qp = static_cast<uint32_t>(rng() & 0xffffff)}).payload(16).build();
       }},
      // RARP from the bound MAC (a migrated guest's announce; unicast here so it reaches bvm2 only) passes; from
      // another MAC it is spoofed like anything else.
      {"rarp_announce", DropReason::kCount,
       [&] { return PacketBuilder().eth({.dst = kMac2, .src = kMac1, .type = esw::dp::kEthTypeRarp}).payload(28).build(); }},
      {"rarp_spoofed_mac", DropReason::kSpoofedMac,
       [&] { return PacketBuilder().eth({.dst = kMac2, .src = rnd_mac(), .type = esw::dp::kEthTypeRarp}).payload(28).build(); }},
      {"lldp", DropReason::kEthertype,
       [&] {
         Bytes f = PacketBuilder().eth({.dst = mac("01:80:c2:00:00:0e"), .src = kMac1, .type = 0x88cc}).payload(46).build();
         return f;
       }},
      {"truncated", DropReason::kMalformed,
       [&] {
         Bytes f = v4_from(ip4("198.18.0.1"), 1, 7);
         f.resize(15 + rng() % (20 + 8 - 1));  // cut inside the IPv4 or UDP header
         return f;
       }},
      {"garbage", DropReason::kMalformed,
       [&] {
         // Our MAC, IPv4 ethertype, then random bytes whose first byte is not a valid version/IHL.
         Bytes f = PacketBuilder().eth({.dst = kMac2, .src = kMac1, .type = 0x0800}).build();
         const size_t n = 1 + rng() % 200;
         for (size_t i = 0; i < n; ++i) f.push_back(static_cast<uint8_t>(rng()));
         f[14] = static_cast<uint8_t>(rng() % 0x45);  // version != 4 or IHL < 5
         return f;
       }},
      {"runt", DropReason::kMalformed, [&] { return Bytes(1 + rng() % 13, static_cast<uint8_t>(rng())); }},
  };

  constexpr size_t kFrames = 110000;
  static_assert(kFrames >= 100000, "the issue asks for at least 100,000 adversarial frames");
  std::map<std::string, size_t> sent;
  std::map<DropReason, uint64_t> expect;
  std::vector<Bytes> legit_sent;
  size_t legit_received = 0;
  size_t legit_mismatch = 0;
  for (size_t i = 0; i < kFrames; ++i) {
    const Kind& k = kinds[rng() % kinds.size()];
    Bytes f = k.make();
    sent[k.name]++;
    if (k.reason == DropReason::kCount) legit_sent.push_back(f);
    else expect[k.reason]++;
    v1.inject(sw.pool(), f);
    if (i % 512 == 511) {
      for (const Bytes& g : v2.take_bytes(4096, std::chrono::milliseconds(0))) {
        if (legit_received < legit_sent.size() && g != legit_sent[legit_received]) ++legit_mismatch;
        ++legit_received;
      }
    }
  }
  // Collect the rest: every legitimate frame, in order, byte for byte.
  for (const Bytes& g : v2.take_bytes(legit_sent.size() - legit_received, std::chrono::milliseconds(5000))) {
    if (legit_received < legit_sent.size() && g != legit_sent[legit_received]) ++legit_mismatch;
    ++legit_received;
  }
  EXPECT_EQ(legit_received, legit_sent.size()) << "legitimate frames lost";
  EXPECT_EQ(legit_mismatch, 0u);
  EXPECT_TRUE(v2.take_bytes(1, std::chrono::milliseconds(50)).empty()) << "an illegitimate frame reached bvm2";
  EXPECT_TRUE(up.take_bytes(1, std::chrono::milliseconds(10)).empty()) << "a frame reached the uplink";

  // Counters settle once the worker has seen everything.
  for (int i = 0; i < 3000; ++i) {
    uint64_t total = 0;
    for (const auto& [r, n] : expect) total += drops(sw, "bvm1", r);
    if (total >= kFrames - legit_sent.size()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (const auto& [r, n] : expect) {
    EXPECT_EQ(drops(sw, "bvm1", r), n) << esw::dp::drop_reason_name(r);
  }
  for (const auto& p : sw.port_stats()) {
    if (p.name == "bvm2") {
      EXPECT_EQ(p.counters.tx_packets, legit_sent.size());
    } else if (p.name != "bvm1") {
      EXPECT_EQ(p.counters.tx_packets, 0u) << p.name << " (the uplink and the representors, i.e. the host)";
    }
  }
  if (::testing::Test::HasFailure()) sw.print_summary(stdout);
  EXPECT_EQ(sent.size(), kinds.size()) << "every kind was generated";
  sw.close();
  EXPECT_EQ(sw.mempool_report().in_use, 0u);
}

TEST(Binding, RateLimitDropsWhatExceedsTxMax) {
  RingPort up("lu"), v1("l1"), v2("l2");
  esw::cfg::Config c = esw::test::ring_test_config("binding");
  c.uplinks.push_back(esw::test::uplink("uplink0", up.devname));
  c.vports.push_back(bound_vport("lvm1", v1.devname, "02:00:c6:12:01:01", {"198.18.0.1"}, {}));
  c.vports.push_back(bound_vport("lvm2", v2.devname, "02:00:c6:12:01:02", {"198.18.0.2"}, {}));
  // 800 kbit/s = 100 kB/s with a 3,000-byte bucket: of 100 back-to-back 100-byte frames about 30 pass.
  c.vports[0].rate.tx_max_bps = 800000;
  c.vports[0].rate.tx_burst_bytes = 3000;
  esw::dp::Switch sw(c);
  sw.start();
  const Bytes f = PacketBuilder().eth({.dst = kMac2, .src = kMac1}).ipv4({.src = ip4("198.18.0.1"), .dst = ip4("198.18.0.2")})
                      .udp({.dport = 7}).payload(100 - 42).build();
  ASSERT_EQ(f.size(), 100u);
  for (int i = 0; i < 100; ++i) v1.inject(sw.pool(), f);
  const size_t got = v2.take_bytes(100, std::chrono::milliseconds(500)).size();
  EXPECT_GE(got, 25u);
  EXPECT_LE(got, 35u);
  for (int i = 0; i < 1000 && drops(sw, "lvm1", DropReason::kRateLimit) < 100 - got; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(drops(sw, "lvm1", DropReason::kRateLimit), 100 - got);
  // The other direction is not limited.
  const Bytes back = PacketBuilder().eth({.dst = kMac1, .src = kMac2}).ipv4({.src = ip4("198.18.0.2"), .dst = ip4("198.18.0.1")})
                         .udp({.dport = 7}).payload(58).build();
  for (int i = 0; i < 100; ++i) v2.inject(sw.pool(), back);
  EXPECT_EQ(v1.take_bytes(100).size(), 100u);
  sw.close();
}

TEST(Binding, RuntimeAddRemoveVportsLosesNothingElsewhere) {
  // rvm2's sink holds every frame of the run: if a frame is missing, the switch lost it, not a slow test thread.
  RingPort up("ru"), v1("r1"), v2("r2", 32768);
  esw::cfg::Config c = esw::test::ring_test_config("binding");
  c.dataplane.mbufs = 16384;
  c.uplinks.push_back(esw::test::uplink("uplink0", up.devname));
  c.vports.push_back(bound_vport("rvm1", v1.devname, "02:00:c6:12:01:01", {"198.18.0.1"}, {}));
  c.vports.push_back(bound_vport("rvm2", v2.devname, "02:00:c6:12:01:02", {"198.18.0.2"}, {}));
  esw::dp::Switch sw(c);
  sw.start();

  constexpr size_t kPackets = 20000;
  static_assert(kPackets < 32768);
  const Bytes f = PacketBuilder().eth({.dst = kMac2, .src = kMac1}).ipv4({.src = ip4("198.18.0.1"), .dst = ip4("198.18.0.2")})
                      .udp({.dport = 7}).payload(26).build();
  std::atomic<bool> done{false};
  size_t received = 0;
  std::thread rx([&] {
    while (!done.load() || received < kPackets) {
      const size_t n = v2.take_bytes(4096, std::chrono::milliseconds(1)).size();
      received += n;
      if (done.load() && n == 0) break;
    }
  });
  std::thread tx([&] {
    for (size_t i = 0; i < kPackets; ++i) {
      v1.inject(sw.pool(), f);
      if (i % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  });
  // Meanwhile: add a vport (with its own binding), remove it, five times.
  for (int round = 0; round < 5; ++round) {
    RingPort extra("rx" + std::to_string(round));
    esw::cfg::Config with = c;
    with.vports.push_back(bound_vport("rvm3", extra.devname, "02:00:c6:12:01:03", {"198.18.0.3"}, {}));
    esw::dp::ApplyResult r = sw.apply(with);
    ASSERT_TRUE(r.ok) << (r.errors.empty() ? "" : r.errors[0].to_string());
    EXPECT_GE(sw.port_index("rvm3"), 0);
    r = sw.apply(c);
    ASSERT_TRUE(r.ok) << (r.errors.empty() ? "" : r.errors[0].to_string());
    EXPECT_EQ(sw.port_index("rvm3"), -1);
  }
  tx.join();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  done.store(true);
  rx.join();
  EXPECT_EQ(received, kPackets) << "traffic between rvm1 and rvm2 must not lose a packet while others come and go";
  if (::testing::Test::HasFailure()) sw.print_summary(stdout);
  sw.close();
  EXPECT_EQ(sw.mempool_report().in_use, 0u);
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new esw::test::EalEnv("binding"));
  return RUN_ALL_TESTS();
}
