// In-process integration test: hostile vhost-user front-ends against a vhost-user vport (vdpa/vhost_port.h), with
// a real EAL, the real Switch and its worker lcore, and rte_vhost serving the vport's socket. The front-end here
// is written by hand (what a compromised VMM could send): it shares a memfd as guest memory and lays out split
// vrings in it itself, so it can hand the engine descriptors no real driver would.
//
//  - A front-end that negotiates features the vport never offered: rte_vhost refuses SET_FEATURES and closes the
//    session; the vport counts it (sessions_unready) and a well-behaved front-end is served afterwards.
//  - Descriptors the engine cannot use (outside guest memory, crossing the end of it, a chain leaving the table,
//    a chain that loops): that guest's TX vring stalls, the stall is counted (vring_stalls) and logged, nothing
//    outside the guest's memory is read, the switch keeps forwarding between its other ports, and every mbuf is
//    back in the pool at the end.
//  - Inflight-area messages that rte_vhost 22.11 would trust (GET_INFLIGHT_FD for more vrings than the vport has,
//    SET_INFLIGHT_FD with an area smaller than its vrings need or beyond its file's end, either while the device
//    runs): refused by the vport's message hook before rte_vhost sees them, the session closed, the fd they carried
//    closed, counted (inflight_refused); the switch keeps forwarding.
// Each case first sends one well-formed frame through the same front-end and checks it arrives byte for byte, so
// a stall is the engine refusing the bad descriptor, not a front-end that never worked.

#include <gtest/gtest.h>
#include <rte_mbuf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "common/pkt_builder.h"
#include "common/ring_harness.h"
#include "common/vhost_env.h"
#include "common/vhost_frontend.h"
#include "dataplane/daemon/eal.h"
#include "dataplane/daemon/switch.h"
#include "vdpa/vhost_port.h"

namespace {

using namespace std::chrono_literals;
using esw::test::RingPort;
using esw::vdpa::VhostUserPort;
using esw::test::peer_counter;
using esw::test::serve_until;
using esw::test::vhost_port;

const std::string& socket_dir() {
  static const std::string d = "/tmp/esw-vhost-hostile-" + std::to_string(getpid());
  return d;
}

esw::cfg::Config base_config() { return esw::test::ring_test_config("vhosthostile"); }

std::vector<uint8_t> frame(uint32_t seq) {
  using namespace esw::test;
  Bytes payload(64);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i * 13 + seq);
  return PacketBuilder()
      .eth({.dst = mac("02:00:c6:12:00:02"), .src = mac("02:00:c6:12:00:01")})
      .ipv4({.src = ip4("198.18.0.1"), .dst = ip4("198.18.0.2")})
      .udp({.sport = static_cast<uint16_t>(4000 + seq), .dport = 5000})
      .payload(payload)
      .build();
}

// The hand-written front-end (tests/common/vhost_frontend.h).
using HostileFrontEnd = esw::test::vu::FrontEnd;
using esw::test::vu::kDescNext;
using esw::test::vu::kGetFeatures;
using esw::test::vu::kGuestBase;
using esw::test::vu::kMemSize;
using esw::test::vu::kNetHdr;
using esw::test::vu::kSetFeatures;
using esw::test::vu::kSetOwner;
using esw::test::vu::kVersion1;
namespace vu = esw::test::vu;

// A switch with the vhost-user vport `vm` (its frames go to ring a) and two ring ports a <-> b cross-connected:
// the "other ports" that must keep forwarding while the guest misbehaves.
struct Bench : esw::test::VhostBench {
  explicit Bench(const std::string& tag)
      : VhostBench(tag, socket_dir(), base_config(), {{"a", "b"}, {"b", "a"}, {"vm", "a"}}) {}

  // The other ports forward: a frame into b comes out of a, unchanged.
  bool others_forward(uint32_t seq) {
    const auto f = frame(1000 + seq);
    b.inject(sw.pool(), f);
    std::vector<std::vector<uint8_t>> got;
    serve_until(sw, [&] {
      auto more = a.take_bytes(1, 0ms);
      got.insert(got.end(), more.begin(), more.end());
      return !got.empty();
    }, 2000ms);
    return got.size() == 1 && got[0] == f;
  }
  // What reaches ring a from the guest within `wait`.
  std::vector<std::vector<uint8_t>> from_guest(size_t want, std::chrono::milliseconds wait) {
    std::vector<std::vector<uint8_t>> got;
    serve_until(sw, [&] {
      auto more = a.take_bytes(want, 0ms);
      got.insert(got.end(), more.begin(), more.end());
      return got.size() >= want;
    }, wait);
    return got;
  }
};

TEST(VhostHostile, FeaturesNeverOfferedCloseTheSessionAndAreCounted) {
  Bench t("feat");
  {
    HostileFrontEnd fe(t.sock);
    const auto offered = fe.get_u64(kGetFeatures);
    ASSERT_TRUE(offered.has_value());
    ASSERT_TRUE(*offered & kVersion1);
    // Every bit, including ones the vport never offered (and reserved ones): refused, the session is closed.
    ASSERT_TRUE(fe.send(kSetOwner, nullptr, 0));
    ASSERT_TRUE(fe.send_u64(kSetFeatures, ~0ULL));
    EXPECT_TRUE(fe.closed_by_backend()) << "rte_vhost kept a session whose features it never offered";
    ASSERT_TRUE(serve_until(t.sw, [&] { return peer_counter(*t.vp, "sessions_unready") == 1; }))
        << "sessions_unready: " << peer_counter(*t.vp, "sessions_unready");
    EXPECT_FALSE(t.vp->device_ready());
    EXPECT_TRUE(t.others_forward(1));
  }
  {
    // A front-end that negotiates what was offered is served: its frame crosses the switch.
    HostileFrontEnd fe(t.sock);
    const auto offered = fe.get_u64(kGetFeatures);
    ASSERT_TRUE(offered.has_value());
    ASSERT_TRUE(fe.setup(kVersion1));
    ASSERT_TRUE(serve_until(t.sw, [&] { return t.vp->device_ready() && t.vp->enabled_queue_pairs() == 1; }));
    fe.post_frame(0, frame(1));
    const auto got = t.from_guest(1, 3000ms);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_TRUE(got[0] == frame(1));
    EXPECT_EQ(peer_counter(*t.vp, "sessions"), 2u);
    EXPECT_EQ(peer_counter(*t.vp, "sessions_unready"), 1u);
  }
  serve_until(t.sw, [&] { return !t.vp->device_ready(); });
  t.sw.close();
  EXPECT_EQ(t.sw.mempool_report().in_use, 0u);
}

// The inflight-area messages (INFLIGHT_SHMFD) carry sizes rte_vhost 22.11 trusts: the vport checks them first.
struct InflightPayload {
  uint64_t mmap_size, mmap_offset;
  uint16_t num_queues, queue_size;
};
static_assert(sizeof(InflightPayload) == 24);  // 20 on the wire: sent with size 20

// How many of this process's fds are the memfd named `name` (eswitchd's rte_vhost runs in this process).
int fds_of_memfd(const std::string& name) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const auto target = std::filesystem::read_symlink(e.path(), ec).string();
    if (!ec && target.find("memfd:" + name) != std::string::npos) ++n;
  }
  return n;
}

// A packed front-end's session up to the point where a VMM asks for the inflight area.
void negotiate_packed_inflight(HostileFrontEnd& fe) {
  ASSERT_TRUE(fe.get_u64(kGetFeatures).has_value());
  ASSERT_TRUE(fe.send(kSetOwner, nullptr, 0));
  ASSERT_TRUE(fe.send_u64(kSetFeatures, kVersion1 | vu::kProtocolFeatures | vu::kRingPacked));
  const auto proto = fe.get_u64(vu::kGetProtocolFeatures);
  ASSERT_TRUE(proto && (*proto & vu::kProtoInflight)) << "the vport does not offer INFLIGHT_SHMFD";
  ASSERT_TRUE(fe.send_u64(vu::kSetProtocolFeatures, vu::kProtoInflight));
}

TEST(VhostHostile, InflightMessagesRteVhostWouldTrustAreRefused) {
  Bench t("inflight");
  uint64_t refused = 0;
  const auto expect_refused = [&](HostileFrontEnd& fe, const char* what) {
    EXPECT_TRUE(fe.closed_by_backend()) << what << ": the session stayed open";
    ++refused;
    EXPECT_TRUE(serve_until(t.sw, [&] { return peer_counter(*t.vp, "inflight_refused") == refused; }))
        << what << ": inflight_refused " << peer_counter(*t.vp, "inflight_refused") << ", want " << refused;
    EXPECT_TRUE(t.others_forward(static_cast<uint32_t>(refused))) << what;
  };
  {
    // GET_INFLIGHT_FD for 3 vrings on a vport with one queue pair (rte_vhost would allocate and zero whatever
    // num_queues x queue_size asks for).
    HostileFrontEnd fe(t.sock);
    ASSERT_NO_FATAL_FAILURE(negotiate_packed_inflight(fe));
    const InflightPayload get{0, 0, 3, 256};
    ASSERT_TRUE(fe.send(vu::kGetInflightFd, &get, 20));
    expect_refused(fe, "GET_INFLIGHT_FD for 3 vrings");
  }
  const auto small_area = [](const char* name, size_t bytes) {
    const int f = memfd_create(name, MFD_CLOEXEC);
    EXPECT_GE(f, 0);
    EXPECT_EQ(ftruncate(f, static_cast<off_t>(bytes)), 0);
    return f;
  };
  {
    // SET_INFLIGHT_FD whose mapping is smaller than two packed vrings of 256 need (rte_vhost would write the
    // second vring's header 16 KiB into a 4 KiB mapping).
    HostileFrontEnd fe(t.sock);
    ASSERT_NO_FATAL_FAILURE(negotiate_packed_inflight(fe));
    const int area = small_area("esw-infl-small", 4096);
    const InflightPayload set{4096, 0, 2, 256};
    ASSERT_TRUE(fe.send(vu::kSetInflightFd, &set, 20, {area}));
    expect_refused(fe, "SET_INFLIGHT_FD smaller than its vrings");
    ::close(area);
    EXPECT_EQ(fds_of_memfd("esw-infl-small"), 0) << "the refused message's fd was kept open";
  }
  {
    // SET_INFLIGHT_FD whose mapping is large enough on paper but beyond the end of its file (a SIGBUS on touch).
    HostileFrontEnd fe(t.sock);
    ASSERT_NO_FATAL_FAILURE(negotiate_packed_inflight(fe));
    const int area = small_area("esw-infl-short", 4096);
    const InflightPayload set{1u << 20, 0, 2, 256};
    ASSERT_TRUE(fe.send(vu::kSetInflightFd, &set, 20, {area}));
    expect_refused(fe, "SET_INFLIGHT_FD beyond its file");
    ::close(area);
    EXPECT_EQ(fds_of_memfd("esw-infl-short"), 0) << "the refused message's fd was kept open";
  }
  {
    // A VMM that set up the area properly is served; GET_INFLIGHT_FD while its device runs (rte_vhost would unmap
    // the area the workers record ring positions in) is refused.
    HostileFrontEnd fe(t.sock);
    ASSERT_TRUE(fe.get_u64(kGetFeatures).has_value());
    ASSERT_TRUE(fe.setup(kVersion1 | vu::kProtocolFeatures | vu::kRingPacked, vu::kProtoInflight));
    ASSERT_TRUE(serve_until(t.sw, [&] { return t.vp->device_ready(); })) << "the well-formed packed session";
    EXPECT_EQ(peer_counter(*t.vp, "inflight_refused"), refused);
    const InflightPayload get{0, 0, 2, 256};
    ASSERT_TRUE(fe.send(vu::kGetInflightFd, &get, 20));
    expect_refused(fe, "GET_INFLIGHT_FD while the device runs");
  }
  ASSERT_TRUE(serve_until(t.sw, [&] { return !t.vp->device_ready(); }));
  t.sw.close();
  EXPECT_EQ(t.sw.mempool_report().in_use, 0u);
}

struct BadDescriptor {
  const char* what;
  std::function<void(HostileFrontEnd&, uint16_t head)> write;  // fills the TX descriptor table at `head`
};

class VhostHostileDescriptors : public ::testing::TestWithParam<BadDescriptor> {};

TEST_P(VhostHostileDescriptors, StallOnlyThatVringAndAreCounted) {
  const BadDescriptor& bad = GetParam();
  static int instance = 0;
  Bench t("desc" + std::to_string(++instance));
  {
    HostileFrontEnd fe(t.sock);
    ASSERT_TRUE(fe.get_u64(kGetFeatures).has_value());
    ASSERT_TRUE(fe.setup(kVersion1));
    ASSERT_TRUE(serve_until(t.sw, [&] { return t.vp->device_ready() && t.vp->enabled_queue_pairs() == 1; }));
    // The front-end works: a well-formed frame crosses, and the engine marks its descriptor used.
    fe.post_frame(0, frame(1));
    auto got = t.from_guest(1, 3000ms);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_TRUE(got[0] == frame(1));
    ASSERT_TRUE(serve_until(t.sw, [&] { return fe.tx_used() == 1; }));
    // The bad descriptor, then a good frame behind it.
    bad.write(fe, 1);
    fe.post(1);
    fe.post_frame(2, frame(2));
    ASSERT_TRUE(serve_until(t.sw, [&] { return peer_counter(*t.vp, "vring_stalls") == 1; }, 6000ms))
        << bad.what << ": no stall counted";
    EXPECT_EQ(fe.tx_used(), 1) << bad.what << ": the engine consumed a descriptor it cannot have read";
    EXPECT_TRUE(t.from_guest(1, 300ms).empty()) << bad.what << ": a frame left a stalled vring";
    EXPECT_EQ(t.vp->driver_counters().ipackets, 1u);
    // The switch is not disturbed: its other ports forward, and the stall is counted once, not per poll.
    EXPECT_TRUE(t.others_forward(2));
    EXPECT_TRUE(t.others_forward(3));
    serve_until(t.sw, [] { return false; }, 1200ms);
    EXPECT_EQ(peer_counter(*t.vp, "vring_stalls"), 1u);
  }
  // The front-end goes away: the device is destroyed; every mbuf is back.
  ASSERT_TRUE(serve_until(t.sw, [&] { return !t.vp->device_ready(); }));
  EXPECT_TRUE(t.others_forward(4));
  t.sw.close();
  EXPECT_EQ(t.sw.mempool_report().in_use, 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Bad, VhostHostileDescriptors,
    ::testing::Values(
        BadDescriptor{"outside guest memory",
                      [](HostileFrontEnd& fe, uint16_t h) { fe.tx_desc()[h] = {0x7fff00000000ULL, 128, 0, 0}; }},
        BadDescriptor{"crossing the end of guest memory",
                      [](HostileFrontEnd& fe, uint16_t h) {
                        fe.tx_desc()[h] = {fe.gpa(kMemSize - 64), 4096, 0, 0};
                      }},
        BadDescriptor{"below guest memory",
                      [](HostileFrontEnd& fe, uint16_t h) { fe.tx_desc()[h] = {kGuestBase - 4096, 128, 0, 0}; }},
        BadDescriptor{"a chain leaving the descriptor table",
                      [](HostileFrontEnd& fe, uint16_t h) {
                        fe.tx_desc()[h] = {fe.gpa(HostileFrontEnd::kBuffers), kNetHdr, kDescNext, 60000};
                      }},
        BadDescriptor{"a chain that loops",
                      [](HostileFrontEnd& fe, uint16_t h) {
                        fe.tx_desc()[h] = {fe.gpa(HostileFrontEnd::kBuffers), 64, kDescNext, h};
                      }}),
    [](const ::testing::TestParamInfo<BadDescriptor>& i) { return "case" + std::to_string(i.index); });

}  // namespace

int main(int argc, char** argv) {
  return esw::test::run_vhost_tests(argc, argv, socket_dir(), base_config());
}
