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
// Each case first sends one well-formed frame through the same front-end and checks it arrives byte for byte, so
// a stall is the engine refusing the bad descriptor, not a front-end that never worked.

#include <gtest/gtest.h>
#include <rte_mbuf.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/pkt_builder.h"
#include "common/ring_harness.h"
#include "common/vhost_env.h"
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

// vhost-user requests (the vhost-user protocol specification) and virtio bits used here.
enum : uint32_t {
  kGetFeatures = 1, kSetFeatures = 2, kSetOwner = 3, kSetMemTable = 5, kSetVringNum = 8, kSetVringAddr = 9,
  kSetVringBase = 10, kSetVringKick = 12, kSetVringCall = 13,
};
constexpr uint64_t kVersion1 = 1ULL << 32;
constexpr uint16_t kDescNext = 1;
constexpr uint32_t kRingSize = 256;
constexpr size_t kMemSize = 2u << 20;
constexpr uint64_t kGuestBase = 0x40000000;  // guest-physical address of the shared memory
constexpr size_t kNetHdr = 12;               // virtio_net_hdr with VERSION_1 (num_buffers included)

struct Desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};

// The front-end: one session on the vport's socket, guest memory = a memfd it maps too.
struct HostileFrontEnd {
  int fd = -1;
  int mem_fd = -1;
  uint8_t* mem = nullptr;
  int kick[2] = {-1, -1}, call[2] = {-1, -1};
  uint16_t tx_avail = 0;  // next avail index of the guest's TX vring (vring 1)

  // Offsets in guest memory: vring 0 (the guest's RX) at 0, vring 1 (its TX) at 0x4000, buffers from 0x10000.
  static constexpr size_t kRing[2] = {0x0000, 0x4000};
  static constexpr size_t kBuffers = 0x10000;

  explicit HostileFrontEnd(const std::string& path) {
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) throw std::runtime_error("connect");
    timeval tv{3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    mem_fd = memfd_create("esw-hostile-guest", MFD_CLOEXEC);
    if (mem_fd < 0 || ftruncate(mem_fd, kMemSize) != 0) throw std::runtime_error("memfd");
    void* p = mmap(nullptr, kMemSize, PROT_READ | PROT_WRITE, MAP_SHARED, mem_fd, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap");
    mem = static_cast<uint8_t*>(p);
    std::memset(mem, 0, kMemSize);
  }
  ~HostileFrontEnd() {
    ::close(fd);
    for (int f : {mem_fd, kick[0], kick[1], call[0], call[1]}) {
      if (f >= 0) ::close(f);
    }
    if (mem != nullptr) munmap(mem, kMemSize);
  }

  // One message: header {u32 request, u32 flags (version 1), u32 size}, payload, optional fds (SCM_RIGHTS).
  bool send(uint32_t request, const void* payload, uint32_t size, const std::vector<int>& fds = {}) {
    std::vector<uint8_t> b(12 + size);
    const uint32_t flags = 1;
    std::memcpy(b.data(), &request, 4);
    std::memcpy(b.data() + 4, &flags, 4);
    std::memcpy(b.data() + 8, &size, 4);
    if (size != 0) std::memcpy(b.data() + 12, payload, size);
    iovec iov{b.data(), b.size()};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 8)] = {};
    if (!fds.empty()) {
      m.msg_control = control;
      m.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* c = CMSG_FIRSTHDR(&m);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    return sendmsg(fd, &m, MSG_NOSIGNAL) == static_cast<ssize_t>(b.size());
  }
  bool send_u64(uint32_t request, uint64_t v, const std::vector<int>& fds = {}) { return send(request, &v, 8, fds); }
  bool send_state(uint32_t request, uint32_t index, uint32_t num) {
    const uint32_t s[2] = {index, num};
    return send(request, s, sizeof(s));
  }
  // A reply's u64 (GET_FEATURES), or nothing when the back-end closed the session or timed out.
  std::optional<uint64_t> get_u64(uint32_t request) {
    if (!send(request, nullptr, 0)) return std::nullopt;
    uint8_t b[20];
    size_t got = 0;
    while (got < sizeof(b)) {
      const ssize_t n = ::recv(fd, b + got, sizeof(b) - got, 0);
      if (n <= 0) return std::nullopt;
      got += static_cast<size_t>(n);
    }
    uint64_t v = 0;
    std::memcpy(&v, b + 12, 8);
    return v;
  }
  // True once the back-end has closed the session (recv sees the end of the stream).
  bool closed_by_backend() {
    char c;
    const ssize_t n = ::recv(fd, &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

  uint64_t gpa(size_t off) const { return kGuestBase + off; }
  uint64_t uva(size_t off) const { return reinterpret_cast<uint64_t>(mem + off); }

  // The set-up a virtio-net driver's VMM does: owner, features, memory table, both vrings of queue pair 0.
  bool setup(uint64_t features) {
    if (!send(kSetOwner, nullptr, 0) || !send_u64(kSetFeatures, features)) return false;
    struct {
      uint32_t nregions, padding;
      struct {
        uint64_t gpa, size, uva, mmap_offset;
      } regions[8];
    } table{};
    table.nregions = 1;
    table.regions[0] = {kGuestBase, kMemSize, uva(0), 0};
    if (!send(kSetMemTable, &table, sizeof(table), {mem_fd})) return false;
    for (uint32_t v = 0; v < 2; ++v) {
      if (!send_state(kSetVringNum, v, kRingSize) || !send_state(kSetVringBase, v, 0)) return false;
      struct {
        uint32_t index, flags;
        uint64_t desc, used, avail, log;
      } addr{v, 0, uva(kRing[v]), uva(kRing[v] + 0x2000), uva(kRing[v] + 0x1000), 0};
      if (!send(kSetVringAddr, &addr, sizeof(addr))) return false;
      kick[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      call[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      if (!send_u64(kSetVringCall, v, {call[v]}) || !send_u64(kSetVringKick, v, {kick[v]})) return false;
    }
    return true;
  }

  Desc* tx_desc() { return reinterpret_cast<Desc*>(mem + kRing[1]); }
  // Makes descriptor `head` available on the guest's TX vring (avail ring at +0x1000: flags, idx, ring[]).
  void post(uint16_t head) {
    auto* avail = reinterpret_cast<uint16_t*>(mem + kRing[1] + 0x1000);
    avail[2 + (tx_avail % kRingSize)] = head;
    __atomic_store_n(&avail[1], static_cast<uint16_t>(++tx_avail), __ATOMIC_RELEASE);
    const uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(kick[1], &one, sizeof(one));
  }
  uint16_t tx_used() const {
    return __atomic_load_n(reinterpret_cast<const uint16_t*>(mem + kRing[1] + 0x2000) + 1, __ATOMIC_ACQUIRE);
  }
  // A well-formed frame in descriptor `head`: the virtio-net header, then the frame, in one buffer.
  void post_frame(uint16_t head, const std::vector<uint8_t>& f) {
    const size_t off = kBuffers + head * 2048u;
    std::memset(mem + off, 0, kNetHdr);
    std::memcpy(mem + off + kNetHdr, f.data(), f.size());
    tx_desc()[head] = {gpa(off), static_cast<uint32_t>(kNetHdr + f.size()), 0, 0};
    post(head);
  }
};

// A switch with the vhost-user vport `vm` (its frames go to ring a) and two ring ports a <-> b cross-connected:
// the "other ports" that must keep forwarding while the guest misbehaves.
struct Bench {
  RingPort a, b;
  std::string sock;
  esw::dp::Switch sw;
  VhostUserPort* vp = nullptr;

  static esw::cfg::Config config(const RingPort& a, const RingPort& b, const std::string& sock) {
    esw::cfg::Config c = base_config();
    c.uplinks.push_back(esw::test::uplink("a", a.devname));
    c.uplinks.push_back(esw::test::uplink("b", b.devname));
    esw::cfg::VportConfig v;
    v.name = "vm";
    v.attach.vhost_user = esw::cfg::VhostUserAttachment{sock, false, 1};
    v.spoofchk = false;
    c.vports.push_back(v);
    c.pipeline.mode = esw::cfg::PipelineMode::kCrossConnect;
    c.pipeline.cross_connect = {{"a", "b"}, {"b", "a"}, {"vm", "a"}};
    return c;
  }
  explicit Bench(const std::string& tag)
      : a(tag + "a"), b(tag + "b"), sock(socket_dir() + "/" + tag + ".sock"), sw(config(a, b, sock)) {
    sw.start();
    vp = vhost_port(sw, "vm");
    if (vp == nullptr) throw std::runtime_error("no vhost-user vport");
  }

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
