// vdpa/migration.h: the VFIO v2 arc table, what each state lets the workers do, and the device-state stream
// (round trip; every truncation, every corrupted byte and fields out of bounds behind a valid checksum refused
// with a located error).
#include "dataplane/fastpath/checksum.h"
#include "vdpa/migration.h"

#include <gtest/gtest.h>

#include <set>

#include <fmt/format.h>

namespace esw::vdpa {
namespace {

constexpr MigState kAll[] = {MigState::kRunning,  MigState::kRunningP2P, MigState::kStop,      MigState::kStopCopy,
                             MigState::kResuming, MigState::kPreCopy,    MigState::kPreCopyP2P};

TEST(MigrationArcs, ExactlyTheUapiArcs) {
  // include/uapi/linux/vfio.h, the arcs listed above enum vfio_device_mig_state.
  const std::set<std::pair<std::string, std::string>> want = {
      {"RUNNING_P2P", "STOP"},        {"STOP_COPY", "STOP"},          {"RESUMING", "STOP"},
      {"RUNNING_P2P", "RUNNING"},     {"RUNNING", "RUNNING_P2P"},     {"STOP", "RUNNING_P2P"},
      {"RUNNING", "PRE_COPY"},        {"RUNNING_P2P", "PRE_COPY_P2P"}, {"STOP", "STOP_COPY"},
      {"PRE_COPY", "RUNNING"},        {"PRE_COPY_P2P", "RUNNING_P2P"}, {"PRE_COPY", "PRE_COPY_P2P"},
      {"PRE_COPY_P2P", "PRE_COPY"},   {"PRE_COPY_P2P", "STOP_COPY"},   {"STOP", "RESUMING"}};
  size_t legal = 0;
  for (MigState a : kAll) {
    for (MigState b : kAll) {
      const bool expect = want.count({mig_state_name(a), mig_state_name(b)}) == 1;
      EXPECT_EQ(mig_arc_legal(a, b), expect) << mig_state_name(a) << " -> " << mig_state_name(b);
      const std::string e = mig_arc_error(a, b);
      EXPECT_EQ(e.empty(), expect);
      if (!expect) {
        EXPECT_NE(e.find(std::string(mig_state_name(a)) + " -> " + mig_state_name(b)), std::string::npos) << e;
      }
      legal += expect ? 1 : 0;
    }
  }
  EXPECT_EQ(legal, want.size());
  // Combination transitions are not taken implicitly.
  EXPECT_FALSE(mig_arc_legal(MigState::kRunning, MigState::kStop));
  EXPECT_FALSE(mig_arc_legal(MigState::kStopCopy, MigState::kPreCopy));
  EXPECT_EQ(mig_arc_error(MigState::kRunning, MigState::kStopCopy),
            "illegal migration arc RUNNING -> STOP_COPY (legal from RUNNING: RUNNING_P2P, PRE_COPY)");
}

TEST(MigrationArcs, NamesAndPolling) {
  for (MigState s : kAll) EXPECT_EQ(parse_mig_state(mig_state_name(s)), s);
  EXPECT_EQ(parse_mig_state("stop-copy"), MigState::kStopCopy);
  EXPECT_EQ(parse_mig_state("ERROR"), std::nullopt);
  EXPECT_EQ(parse_mig_state(""), std::nullopt);
  // Frames from the guest only while RUNNING / PRE_COPY; to the guest also in the P2P states; nothing stopped.
  EXPECT_TRUE(mig_rx_allowed(MigState::kRunning) && mig_rx_allowed(MigState::kPreCopy));
  EXPECT_FALSE(mig_rx_allowed(MigState::kRunningP2P) || mig_rx_allowed(MigState::kPreCopyP2P));
  EXPECT_TRUE(mig_tx_allowed(MigState::kRunningP2P) && mig_tx_allowed(MigState::kPreCopyP2P));
  for (MigState s : {MigState::kStop, MigState::kStopCopy, MigState::kResuming}) {
    EXPECT_FALSE(mig_rx_allowed(s) || mig_tx_allowed(s)) << mig_state_name(s);
  }
}

MigStream sample() {
  MigStream s;
  s.vport = "vm1";
  s.features = 0x150208000ULL;
  s.queue_pairs = 2;
  for (uint16_t i = 0; i < 4; ++i) {
    MigVring v;
    v.last_avail = static_cast<uint16_t>(100 + i);
    v.last_used = static_cast<uint16_t>(90 + i);
    v.inflight = i;
    v.enabled = i != 3;
    s.vrings.push_back(v);
  }
  s.hw_addr = "02:00:c6:12:00:01";
  s.ipv4 = {"198.18.0.1", "198.18.1.0/24"};
  s.ipv6 = {"2001:db8::1"};
  s.counters.rx_packets = 12345;
  s.counters.tx_bytes = 1ULL << 40;
  s.counters.dropped = {1, 2, 3};
  s.counters.engine_rx = 7;
  s.rules = {"name=r1,priority=10,in_port=vm1,ipv4 actions=drop"};
  return s;
}

void reseal(std::vector<uint8_t>& b) {
  const uint32_t c = esw::dp::crc32_ieee(b.data(), b.size() - 4);
  for (int i = 0; i < 4; ++i) b[b.size() - 4 + i] = static_cast<uint8_t>(c >> (8 * i));
}

TEST(MigrationStream, RoundTrip) {
  const MigStream s = sample();
  const std::vector<uint8_t> b = encode_mig_stream(s);
  MigStream d;
  std::string err;
  ASSERT_TRUE(decode_mig_stream(b.data(), b.size(), d, err)) << err;
  EXPECT_EQ(d.vport, s.vport);
  EXPECT_EQ(d.features, s.features);
  EXPECT_EQ(d.queue_pairs, 2);
  ASSERT_EQ(d.vrings.size(), 4u);
  EXPECT_EQ(d.vrings[2].last_avail, 102);
  EXPECT_EQ(d.vrings[2].last_used, 92);
  EXPECT_EQ(d.vrings[2].inflight, 2);
  EXPECT_FALSE(d.vrings[3].enabled);
  EXPECT_EQ(d.hw_addr, s.hw_addr);
  EXPECT_EQ(d.ipv4, s.ipv4);
  EXPECT_EQ(d.ipv6, s.ipv6);
  EXPECT_EQ(d.counters.rx_packets, 12345u);
  EXPECT_EQ(d.counters.tx_bytes, 1ULL << 40);
  EXPECT_EQ(d.counters.dropped, s.counters.dropped);
  EXPECT_EQ(d.counters.engine_rx, 7u);
  EXPECT_EQ(d.rules, s.rules);
}

// A packed ring: RING_PACKED negotiated, each vring at a descriptor slot with its own avail / used wrap counters.
MigStream packed_sample() {
  MigStream s = sample();
  s.features |= 1ULL << 34;
  s.packed = true;
  // rte_vhost_get_vring_base's form: index | wrap << 15.
  s.vrings[0] = MigVring::from_vhost_base(0x8000 | 255, 0x8000 | 250, true);  // both counters 1
  s.vrings[1] = MigVring::from_vhost_base(3, 0x8000 | 254, true);             // avail wrapped, used not yet
  s.vrings[2] = MigVring::from_vhost_base(0, 0, true);                        // second lap, slot 0
  s.vrings[3] = MigVring::from_vhost_base(0x7fff, 0xffff, true);              // the largest slot
  s.vrings[1].inflight = 7;
  s.vrings[0].enabled = s.vrings[1].enabled = true;
  return s;
}

TEST(MigrationStream, PackedRingRoundTrip) {
  const MigStream s = packed_sample();
  EXPECT_EQ(s.vrings[1].last_avail, 3);
  EXPECT_FALSE(s.vrings[1].avail_wrap);
  EXPECT_EQ(s.vrings[1].last_used, 254);
  EXPECT_TRUE(s.vrings[1].used_wrap);
  const std::vector<uint8_t> b = encode_mig_stream(s);
  MigStream d;
  std::string err;
  ASSERT_TRUE(decode_mig_stream(b.data(), b.size(), d, err)) << err;
  EXPECT_TRUE(d.packed);
  ASSERT_EQ(d.vrings.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_TRUE(d.vrings[i].same_position(s.vrings[i])) << i;
    // Back to rte_vhost_set_vring_base's form unchanged.
    EXPECT_EQ(d.vrings[i].vhost_avail(), s.vrings[i].vhost_avail()) << i;
    EXPECT_EQ(d.vrings[i].vhost_used(), s.vrings[i].vhost_used()) << i;
    EXPECT_EQ(d.vrings[i].enabled, s.vrings[i].enabled) << i;
  }
  EXPECT_EQ(d.vrings[0].vhost_avail(), 0x8000 | 255);
  EXPECT_EQ(d.vrings[1].vhost_avail(), 3);
  EXPECT_EQ(d.vrings[1].vhost_used(), 0x8000 | 254);
  EXPECT_EQ(d.vrings[3].vhost_used(), 0xffff);
  EXPECT_EQ(d.vrings[1].inflight, 7);
  // A split ring's indices are free-running 16-bit counters: bit 15 is part of the index, not a wrap counter.
  const MigVring split = MigVring::from_vhost_base(0x8001, 0xfffe, false);
  EXPECT_EQ(split.last_avail, 0x8001);
  EXPECT_EQ(split.last_used, 0xfffe);
  EXPECT_FALSE(split.avail_wrap || split.used_wrap);
  MigStream sp = sample();
  sp.vrings[0] = split;
  const std::vector<uint8_t> b2 = encode_mig_stream(sp);
  ASSERT_TRUE(decode_mig_stream(b2.data(), b2.size(), d, err)) << err;
  EXPECT_FALSE(d.packed);
  EXPECT_EQ(d.vrings[0].last_avail, 0x8001);
  EXPECT_EQ(d.vrings[0].vhost_used(), 0xfffe);
}

TEST(MigrationStream, EveryTruncationAndEveryCorruptByteRefused) {
  for (const MigStream& s : {sample(), packed_sample()}) {
  const std::vector<uint8_t> b = encode_mig_stream(s);
  for (size_t n = 0; n < b.size(); ++n) {
    MigStream d;
    std::string err;
    EXPECT_FALSE(decode_mig_stream(b.data(), n, d, err)) << "truncated to " << n;
    EXPECT_NE(err.find("migration stream"), std::string::npos) << err;
  }
  for (size_t i = 0; i < b.size(); ++i) {
    for (uint8_t x : {0x01, 0x80, 0xff}) {
      std::vector<uint8_t> c = b;
      c[i] ^= x;
      MigStream d;
      std::string err;
      EXPECT_FALSE(decode_mig_stream(c.data(), c.size(), d, err)) << "byte " << i << " ^ " << int(x);
      EXPECT_NE(err.find("byte "), std::string::npos) << err;
    }
  }
  }
}

// Fields out of bounds behind a valid checksum (a hostile writer, not line noise): each refused, naming the field.
TEST(MigrationStream, BoundsBehindAValidChecksum) {
  struct Case {
    const char* what;
    void (*mutate)(MigStream&);
    const char* expect;
  };
  const Case cases[] = {
      {"queue pairs 0", [](MigStream& s) { s.queue_pairs = 0; s.vrings.clear(); }, "queue pairs: 0 is not in 1..8"},
      {"queue pairs 9", [](MigStream& s) { s.queue_pairs = 9; s.vrings.resize(18); }, "queue pairs: 9"},
      {"vring count", [](MigStream& s) { s.vrings.pop_back(); }, "vring count: 3 is not twice"},
      {"inflight", [](MigStream& s) { s.vrings[1].inflight = 40000; }, "vring 1 inflight: 40000"},
      {"hw_addr text", [](MigStream& s) { s.hw_addr = std::string("02:00\x01", 6); }, "hw_addr: byte 0x01"},
      {"hw_addr long", [](MigStream& s) { s.hw_addr = std::string(18, 'a'); }, "hw_addr: length 18 is above"},
      {"ipv4 count", [](MigStream& s) { s.ipv4.assign(65, "198.18.0.1"); }, "ipv4 count: 65 is above the limit 64"},
      {"rule length", [](MigStream& s) { s.rules = {std::string(4097, 'x')}; }, "rule 0: length 4097"},
      {"rule count", [](MigStream& s) { s.rules.assign(1025, "x"); }, "rule count: 1025"},
      {"drop reasons", [](MigStream& s) { s.counters.dropped.assign(65, 0); }, "drop reason count: 65"},
      // Ring layout and positions.
      {"packed without RING_PACKED", [](MigStream& s) { s.features &= ~(1ULL << 34); },
       "ring layout: packed but the features 0x"},
      {"split with RING_PACKED",
       [](MigStream& s) {
         s.packed = false;
         for (auto& v : s.vrings) v.avail_wrap = v.used_wrap = false;
       },
       "ring layout: split but the features 0x"},
      {"packed slot", [](MigStream& s) { s.vrings[2].last_used = 0x8000; }, "vring 2 last_used: 32768 is not a packed ring slot"},
      {"split wrap", [](MigStream& s) {
         s.features &= ~(1ULL << 34);
         s.packed = false;
         for (auto& v : s.vrings) v.avail_wrap = v.used_wrap = false;
         s.vrings[1].avail_wrap = true;
       },
       "vring 1 avail_wrap: 1 on a split ring"},
  };
  for (const Case& c : cases) {
    MigStream s = packed_sample();
    c.mutate(s);
    const std::vector<uint8_t> b = encode_mig_stream(s);
    MigStream d;
    std::string err;
    EXPECT_FALSE(decode_mig_stream(b.data(), b.size(), d, err)) << c.what;
    EXPECT_NE(err.find(c.expect), std::string::npos) << c.what << ": " << err;
    EXPECT_NE(err.find("migration stream byte "), std::string::npos) << c.what << ": " << err;
  }
  // Bytes after the last field, with the body length and checksum made consistent.
  std::vector<uint8_t> b = encode_mig_stream(sample());
  b.insert(b.end() - 4, {0, 0});
  const uint32_t body = static_cast<uint32_t>(b.size() - 16 - 4);
  for (int i = 0; i < 4; ++i) b[12 + i] = static_cast<uint8_t>(body >> (8 * i));
  reseal(b);
  MigStream d;
  std::string err;
  EXPECT_FALSE(decode_mig_stream(b.data(), b.size(), d, err));
  EXPECT_NE(err.find("2 byte(s) left after the last field"), std::string::npos) << err;
  // Another version, resealed: refused at byte 8. Version 1 (no ring layout, packed positions in rte_vhost's
  // 16-bit form) is not read.
  for (uint8_t v : {1, 3}) {
    b = encode_mig_stream(sample());
    b[8] = v;
    reseal(b);
    EXPECT_FALSE(decode_mig_stream(b.data(), b.size(), d, err));
    EXPECT_NE(err.find(fmt::format("byte 8: version: {} is not 2", v)), std::string::npos) << err;
  }
  // A wrap counter byte other than 0/1 on a packed ring, resealed: refused naming the vring and field.
  const MigStream ps = packed_sample();
  b = encode_mig_stream(ps);
  // Find vring 0's avail_wrap byte: header 16, name (2 + 3), features 8, layout 1, queue pairs 2, vring count 2,
  // then vring 0: last_avail 2, avail_wrap 1.
  const size_t wrap_at = 16 + 2 + ps.vport.size() + 8 + 1 + 2 + 2 + 2;
  ASSERT_EQ(b[wrap_at], 1);
  b[wrap_at] = 2;
  reseal(b);
  EXPECT_FALSE(decode_mig_stream(b.data(), b.size(), d, err));
  EXPECT_NE(err.find(fmt::format("byte {}: vring 0 avail_wrap: 2 is not 0 or 1", wrap_at)), std::string::npos) << err;
}

}  // namespace
}  // namespace esw::vdpa
