// The ISM server (dataplane/smc/ism_server.h) with real tenant processes using the tenant library
// (dataplane/smc/tenant/esw_smc.h): the test process runs the server's loop; tenants are forked children that
// talk to their vport's unix socket and report through their exit code. No threads (fork-safe).

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "dataplane/smc/ism_server.h"
#include "dataplane/smc/tenant/esw_smc.h"

namespace esw::smc::ism {
namespace {

constexpr uint32_t kA = 1, kB = 2, kC = 3;

double now_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Child-side check: prints and exits non-zero.
#define CHILD_CHECK(cond, ...)                                                                    \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      std::fprintf(stderr, "[child %d] %s:%d: %s: ", getpid(), __FILE__, __LINE__, #cond);        \
      std::fprintf(stderr, __VA_ARGS__);                                                          \
      std::fprintf(stderr, " (last error: %s)\n", esw_smc_last_error());                          \
      _exit(1);                                                                                   \
    }                                                                                             \
  } while (0)

class IsmServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = "/tmp/esw-ism-" + std::to_string(getpid()) + "-" + std::to_string(counter_++);
    ASSERT_EQ(mkdir(dir_.c_str(), 0755), 0);
    for (uint32_t v : {kA, kB, kC}) {
      EndpointConfig c;
      c.vport = v;
      c.path = path(v);
      c.mode = 0600;
      c.limits = Limits{8, 8 << 20};
      std::string err;
      ASSERT_TRUE(server_.add_endpoint(c, &err)) << err;
    }
  }
  void TearDown() override {
    for (pid_t p : pids_) {
      kill(p, SIGKILL);
      waitpid(p, nullptr, 0);
    }
    for (uint32_t v : {kA, kB, kC}) server_.remove_endpoint(v);
    rmdir(dir_.c_str());
  }
  std::string path(uint32_t v) const { return dir_ + "/vport" + std::to_string(v) + ".sock"; }

  pid_t spawn(const std::function<void()>& body) {
    std::fflush(nullptr);
    pid_t p = fork();
    if (p == 0) {
      body();
      _exit(0);
    }
    pids_.push_back(p);
    return p;
  }
  // Runs the server until every child exited (or the deadline: children are killed, the test fails).
  // Returns the exit statuses in spawn order; on_exit is called as each child ends.
  std::vector<int> serve(double timeout_s, const std::function<void(pid_t, int)>& on_exit = nullptr) {
    std::vector<int> status(pids_.size(), -1);
    size_t left = pids_.size();
    double end = now_s() + timeout_s;
    while (left > 0) {
      pollfd p{server_.fd(), POLLIN, 0};
      poll(&p, 1, 5);
      server_.service();
      for (size_t i = 0; i < pids_.size(); ++i) {
        if (status[i] != -1) continue;
        int st;
        if (waitpid(pids_[i], &st, WNOHANG) == pids_[i]) {
          status[i] = st;
          left--;
          server_.service();  // let the server see the socket close first
          if (on_exit) on_exit(pids_[i], st);
        }
      }
      if (now_s() > end) {
        ADD_FAILURE() << "children did not finish within " << timeout_s << " s";
        break;
      }
    }
    for (size_t i = 0; i < 50 && server_.client_count() > 0; ++i) {
      pollfd p{server_.fd(), POLLIN, 0};
      poll(&p, 1, 10);
      server_.service();
    }
    std::vector<pid_t> still;
    for (size_t i = 0; i < pids_.size(); ++i)
      if (status[i] == -1) still.push_back(pids_[i]);
    pids_ = still;
    return status;
  }

  static inline int counter_ = 0;
  std::string dir_;
  Service svc_{0xFF42};
  Server server_{svc_};
  std::vector<pid_t> pids_;
};

// Both tenants: open the endpoint, swap GIDs and tokens over `ch` (stands in for the CLC handshake), open a
// stream. dmb_size for both DMBs.
esw_smcd_stream* connect_pair(const std::string& ep, int ch, uint64_t dmb_size, esw_smc** out_s) {
  esw_smc* s = nullptr;
  CHILD_CHECK(esw_smc_open(ep.c_str(), &s) == 0, "open");
  uint64_t g[2], pg[2];
  uint16_t chid = 0;
  CHILD_CHECK(esw_smc_gid(s, &g[0], &g[1], &chid) == 0, "gid");
  CHILD_CHECK(chid == 0xFF42, "chid %x", chid);
  CHILD_CHECK(write(ch, g, sizeof g) == sizeof g, "send gid");
  CHILD_CHECK(read(ch, pg, sizeof pg) == sizeof pg, "recv gid");
  CHILD_CHECK(esw_smc_query_gid(s, pg[0], pg[1]) == 0, "peer gid is local");
  esw_smc_dmb* own = nullptr;
  CHILD_CHECK(esw_smc_register_dmb(s, dmb_size, pg[0], pg[1], &own) == 0, "register");
  uint64_t tok = esw_smc_dmb_token(own), ptok = 0;
  CHILD_CHECK(write(ch, &tok, sizeof tok) == sizeof tok, "send token");
  CHILD_CHECK(read(ch, &ptok, sizeof ptok) == sizeof ptok, "recv token");
  esw_smcd_stream* st = nullptr;
  CHILD_CHECK(esw_smcd_stream_open(s, own, ptok, &st) == 0, "stream open");
  *out_s = s;
  return st;
}

uint64_t mix(uint64_t h, const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

void fill(std::vector<uint8_t>& b, uint64_t seed) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& c : b) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    c = static_cast<uint8_t>(x);
  }
}

TEST_F(IsmServerTest, OneGibStreamAndSmallMessages) {
  int ch[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, ch), 0);
  constexpr uint64_t kTotal = 1ull << 30;
  constexpr int kMessages = 200000;
  // Sender (vport A): 1 GiB in chunks of varying sizes (so ring wraps land everywhere), a checksum at the end
  // over the side channel; then small length-prefixed messages; then a ping-pong; then shutdown + close.
  spawn([&] {
    close(ch[1]);
    esw_smc* s;
    esw_smcd_stream* st = connect_pair(path(kA), ch[0], 1 << 20, &s);
    std::vector<uint8_t> buf(3 << 20);
    fill(buf, 1);
    uint64_t h = 0xcbf29ce484222325ull, sent = 0, i = 0;
    double t0 = now_s();
    while (sent < kTotal) {
      size_t n = std::min<uint64_t>(kTotal - sent, 1 + (i * 7919 + 13) % (1 << 20));
      size_t off = (i * 104729) % (buf.size() - n);
      h = mix(h, buf.data() + off, std::min<size_t>(n, 64));  // sampled: the full compare is on the receiver
      CHILD_CHECK(esw_smcd_send(st, buf.data() + off, n) == static_cast<ssize_t>(n), "send %zu", n);
      sent += n, i++;
    }
    double t1 = now_s();
    std::fprintf(stderr, "1 GiB sent in %.2f s (%.2f GB/s)\n", t1 - t0, kTotal / (t1 - t0) / 1e9);
    CHILD_CHECK(write(ch[0], &i, sizeof i) == sizeof i, "send count");
    for (int m = 0; m < kMessages; ++m) {
      uint8_t msg[260];
      uint16_t len = static_cast<uint16_t>(1 + (m * 31) % 255);
      std::memcpy(msg, &len, 2);
      for (int k = 0; k < len; ++k) msg[2 + k] = static_cast<uint8_t>(m + k);
      CHILD_CHECK(esw_smcd_send(st, msg, 2u + len) == 2 + len, "msg %d", m);
    }
    // Ping-pong: 8-byte messages echoed.
    uint64_t v = 0;
    double p0 = now_s();
    constexpr int kPings = 20000;
    for (int m = 0; m < kPings; ++m) {
      v = m;
      CHILD_CHECK(esw_smcd_send(st, &v, 8) == 8, "ping");
      size_t got = 0;
      uint64_t back = 0;
      while (got < 8) {
        ssize_t r = esw_smcd_recv(st, reinterpret_cast<uint8_t*>(&back) + got, 8 - got);
        CHILD_CHECK(r > 0, "pong %zd", r);
        got += r;
      }
      CHILD_CHECK(back == static_cast<uint64_t>(m) + 1, "pong value");
    }
    std::fprintf(stderr, "ping-pong: %.2f us round trip\n", (now_s() - p0) / kPings * 1e6);
    CHILD_CHECK(esw_smcd_shutdown(st) == 0, "shutdown");
    uint8_t x = 0;
    CHILD_CHECK(esw_smcd_recv(st, &x, 1) == 1 && x == 0x7A, "the byte the peer sent after our shutdown");
    CHILD_CHECK(esw_smcd_recv(st, &x, 1) == 0, "EOF after the peer closed");
    CHILD_CHECK(esw_smcd_close(st) == 0, "close");
    esw_smc_close(s);
  });
  spawn([&] {
    close(ch[0]);
    esw_smc* s;
    esw_smcd_stream* st = connect_pair(path(kB), ch[1], 1 << 20, &s);
    std::vector<uint8_t> ref(3 << 20);
    fill(ref, 1);
    std::vector<uint8_t> in(1 << 20);
    uint64_t recvd = 0, i = 0, chunk_left = 0, chunk_off = 0, mismatches = 0;
    // Regenerate the sender's chunk sequence and compare every byte.
    auto next_chunk = [&] {
      chunk_left = std::min<uint64_t>(kTotal - recvd, 1 + (i * 7919 + 13) % (1 << 20));
      chunk_off = (i * 104729) % (ref.size() - chunk_left);
      i++;
    };
    next_chunk();
    while (recvd < kTotal) {
      ssize_t r = esw_smcd_recv(st, in.data(), std::min<uint64_t>(in.size(), kTotal - recvd));
      CHILD_CHECK(r > 0, "recv %zd at %llu", r, static_cast<unsigned long long>(recvd));
      size_t p = 0;
      while (p < static_cast<size_t>(r)) {
        size_t n = std::min<uint64_t>(chunk_left, r - p);
        if (std::memcmp(in.data() + p, ref.data() + chunk_off, n) != 0) mismatches++;
        p += n, chunk_left -= n, chunk_off += n, recvd += n;
        if (chunk_left == 0 && recvd < kTotal) next_chunk();
      }
    }
    uint64_t chunks = 0;
    CHILD_CHECK(read(ch[1], &chunks, sizeof chunks) == sizeof chunks, "recv count");
    CHILD_CHECK(mismatches == 0, "%llu chunks differ", static_cast<unsigned long long>(mismatches));
    CHILD_CHECK(chunks == i, "chunk count %llu vs %llu", static_cast<unsigned long long>(chunks),
                static_cast<unsigned long long>(i));
    auto recv_all = [&](void* b, size_t n) {
      size_t got = 0;
      while (got < n) {
        ssize_t r = esw_smcd_recv(st, static_cast<uint8_t*>(b) + got, n - got);
        CHILD_CHECK(r > 0, "recv_all %zd", r);
        got += r;
      }
    };
    for (int m = 0; m < kMessages; ++m) {
      uint16_t len;
      uint8_t body[256];
      recv_all(&len, 2);
      CHILD_CHECK(len == 1 + (m * 31) % 255, "message %d length %u", m, len);
      recv_all(body, len);
      for (int k = 0; k < len; ++k) CHILD_CHECK(body[k] == static_cast<uint8_t>(m + k), "message %d byte %d", m, k);
    }
    for (int m = 0; m < 20000; ++m) {
      uint64_t v;
      recv_all(&v, 8);
      v++;
      CHILD_CHECK(esw_smcd_send(st, &v, 8) == 8, "pong");
    }
    uint8_t x = 0x7A;
    CHILD_CHECK(esw_smcd_recv(st, &x, 1) == 0, "EOF after the peer's shutdown");
    x = 0x7A;
    CHILD_CHECK(esw_smcd_send(st, &x, 1) == 1, "still writable after the peer's shutdown (half close)");
    CHILD_CHECK(esw_smcd_close(st) == 0, "close");
    esw_smc_close(s);
  });
  close(ch[0]);
  close(ch[1]);
  auto st = serve(300);
  ASSERT_EQ(st.size(), 2u);
  for (int s : st) EXPECT_TRUE(WIFEXITED(s) && WEXITSTATUS(s) == 0) << "child status " << s;
  EXPECT_EQ(svc_.dmb_count(), 0u) << "every DMB released";
  EXPECT_EQ(svc_.counters().dmbs_unregistered, 2u);
  EXPECT_EQ(server_.client_count(), 0u);
}

// A peer that writes wild cursors into our DMB's CDC header: every recv/send either works within the ring or
// fails with -EPROTO; nothing is read or written outside the buffers (the sanitize build checks accesses).
TEST_F(IsmServerTest, WildCursorsFromPeer) {
  spawn([&] {
    esw_smc *sa, *sb;
    CHILD_CHECK(esw_smc_open(path(kA).c_str(), &sa) == 0, "open A");
    CHILD_CHECK(esw_smc_open(path(kB).c_str(), &sb) == 0, "open B");
    uint64_t ga[2], gb[2];
    CHILD_CHECK(esw_smc_gid(sa, &ga[0], &ga[1], nullptr) == 0 && esw_smc_gid(sb, &gb[0], &gb[1], nullptr) == 0, "gid");
    constexpr uint64_t kSize = 16 * 1024, kRing = kSize - 32;
    struct Case {
      uint64_t prod, cons;
      int expect_recv;  // 1: data (<= ring), 0: no data (would block: use timeout), -EPROTO
      int expect_send;  // 1: ok, -EPROTO
    };
    auto cur = [](uint64_t wrap, uint64_t count, uint8_t pf, uint8_t sf) {
      return wrap | (count << 16) | (uint64_t{pf} << 48) | (uint64_t{sf} << 56);
    };
    std::vector<Case> cases = {
        {cur(0, kRing, 0, 0), 0, -EPROTO, 1},          // producer count == ring size
        {cur(0, 0xFFFFFFFF, 0, 0), 0, -EPROTO, 1},     // count way past the ring
        {cur(1, 1, 0, 0), 0, -EPROTO, 1},              // a wrap and a byte ahead: more than a ring
        {cur(0xFFFF, kRing - 1, 0, 0), 0, -EPROTO, 1}, // "behind" us: wraps to more than a ring ahead
        {cur(1, 0, 0, 0), 0, 1, 1},                    // exactly a ring ahead: valid, reads the ring
        {cur(0, 100, 0, 0), 0, 1, 1},
        {0, cur(0, kRing, 0, 0), 0, -EPROTO},          // consumer count == ring size
        {0, cur(0, 5, 0, 0), 0, -EPROTO},              // consumer ahead of what we sent
        {0, cur(0xFFFF, 0, 0, 0), 0, -EPROTO},         // consumer a whole ring + behind
    };
    std::vector<uint8_t> buf(64 * 1024);
    for (size_t k = 0; k < cases.size() + 300; ++k) {
      Case c;
      if (k < cases.size()) {
        c = cases[k];
      } else {  // random words: only "no crash, bounded result" is asserted
        uint64_t x = 0x12345 + k * 0x9E3779B97F4A7C15ull;
        x ^= x >> 29;
        c = Case{x * 0xBF58476D1CE4E5B9ull, (x ^ 0x5555) * 0x94D049BB133111EBull, 2, 2};
        c.cons &= ~(uint64_t{0x60} << 56);  // keep the abort/closed bits out: they are tested elsewhere
      }
      esw_smc_dmb *own_a, *own_b;
      CHILD_CHECK(esw_smc_register_dmb(sa, kSize, gb[0], gb[1], &own_a) == 0, "reg A");
      CHILD_CHECK(esw_smc_register_dmb(sb, kSize, ga[0], ga[1], &own_b) == 0, "reg B");
      // The attacker (vport B) maps A's DMB raw and writes the header after the stream is up.
      esw_smc_dmb* raw = nullptr;
      CHILD_CHECK(esw_smc_attach_dmb(sb, esw_smc_dmb_token(own_a), &raw) == 0, "attacker attach");
      esw_smcd_stream* st = nullptr;
      CHILD_CHECK(esw_smcd_stream_open(sa, own_a, esw_smc_dmb_token(own_b), &st) == 0, "victim stream");
      esw_smcd_set_timeout_ms(st, 20);
      auto* hdr = static_cast<uint8_t*>(esw_smc_dmb_data(raw));
      std::memcpy(hdr + 8, &c.prod, 8);
      std::memcpy(hdr + 16, &c.cons, 8);
      std::memset(hdr + 32, 0xEE, kRing);
      ssize_t r = esw_smcd_recv(st, buf.data(), buf.size());
      if (c.expect_recv == 1) CHILD_CHECK(r > 0 && static_cast<uint64_t>(r) <= kRing, "case %zu recv %zd", k, r);
      if (c.expect_recv == 0) CHILD_CHECK(r == -ETIMEDOUT, "case %zu recv %zd", k, r);
      if (c.expect_recv < 0) CHILD_CHECK(r == c.expect_recv, "case %zu recv %zd", k, r);
      if (c.expect_recv == 2) CHILD_CHECK(r == -EPROTO || r == -ETIMEDOUT || (r > 0 && r <= static_cast<ssize_t>(kRing)),
                                          "random case %zu recv %zd", k, r);
      if (c.expect_recv == 1)
        for (ssize_t i = 0; i < r; ++i) CHILD_CHECK(buf[i] == 0xEE, "case %zu byte %zd", k, i);
      if (r != -EPROTO && c.expect_send != 2) {
        ssize_t w = esw_smcd_send(st, buf.data(), 100);
        CHILD_CHECK(w == (c.expect_send == 1 ? 100 : c.expect_send), "case %zu send %zd", k, w);
      }
      if (c.expect_send == 2 && r != -EPROTO) {
        ssize_t w = esw_smcd_send(st, buf.data(), 100);
        CHILD_CHECK(w == 100 || w == -EPROTO || w == -ETIMEDOUT, "random case %zu send %zd", k, w);
      }
      esw_smcd_abort(st);
      esw_smc_release_dmb(sb, raw);
      esw_smc_release_dmb(sb, own_b);
    }
    esw_smc_close(sa);
    esw_smc_close(sb);
  });
  auto st = serve(120);
  for (int s : st) EXPECT_TRUE(WIFEXITED(s) && WEXITSTATUS(s) == 0) << "child status " << s;
  EXPECT_EQ(svc_.dmb_count(), 0u);
}

// One tenant is SIGKILLed mid-transfer: the other's blocked send returns -ECONNRESET promptly, and the dead
// tenant's DMBs are unregistered and zeroed.
TEST_F(IsmServerTest, KilledPeerGivesCleanErrorAndFreesGrants) {
  int ch[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, ch), 0);
  int done[2];
  ASSERT_EQ(pipe(done), 0);
  pid_t sender = spawn([&] {
    close(ch[1]);
    esw_smc* s;
    esw_smcd_stream* st = connect_pair(path(kA), ch[0], 64 * 1024, &s);
    std::vector<uint8_t> buf(1 << 20, 0x42);
    ssize_t r = 0;
    uint64_t sent = 0;
    while ((r = esw_smcd_send(st, buf.data(), buf.size())) > 0) sent += r;
    double t_err = now_s();
    CHILD_CHECK(r == -ECONNRESET, "send after the peer died gave %zd", r);
    CHILD_CHECK(esw_smcd_recv(st, buf.data(), 1) == -ECONNRESET, "recv after reset");
    double t_kill = 0;
    CHILD_CHECK(read(done[0], &t_kill, sizeof t_kill) == sizeof t_kill, "kill time");
    std::fprintf(stderr, "sender: -ECONNRESET %.1f ms after the peer's SIGKILL (%llu bytes sent)\n",
                 (t_err - t_kill) * 1e3, static_cast<unsigned long long>(sent));
    CHILD_CHECK(t_err - t_kill < 2.0, "took %.3f s", t_err - t_kill);
    CHILD_CHECK(esw_smcd_close(st) == 0, "close: %s", esw_smc_last_error());
    esw_smc_close(s);
  });
  pid_t receiver = spawn([&] {
    close(ch[0]);
    esw_smc* s;
    esw_smcd_stream* st = connect_pair(path(kB), ch[1], 64 * 1024, &s);
    std::vector<uint8_t> buf(1 << 16);
    uint64_t got = 0;
    while (got < (32u << 20)) {
      ssize_t r = esw_smcd_recv(st, buf.data(), buf.size());
      CHILD_CHECK(r > 0, "recv");
      got += r;
    }
    double t = now_s();
    CHILD_CHECK(write(done[1], &t, sizeof t) == sizeof t, "kill time");
    raise(SIGKILL);  // mid-transfer: the sender is still sending
  });
  close(ch[0]);
  close(ch[1]);
  size_t b_dmbs_after_kill = 99;
  auto st = serve(120, [&](pid_t p, int) {
    if (p == receiver) b_dmbs_after_kill = svc_.dmb_count(kB);
  });
  (void)sender;
  ASSERT_EQ(st.size(), 2u);
  EXPECT_TRUE(WIFEXITED(st[0]) && WEXITSTATUS(st[0]) == 0) << "sender status " << st[0];
  EXPECT_TRUE(WIFSIGNALED(st[1]) && WTERMSIG(st[1]) == SIGKILL) << "receiver status " << st[1];
  EXPECT_EQ(b_dmbs_after_kill, 0u) << "the killed tenant's DMB is released as soon as its socket closes";
  EXPECT_EQ(svc_.dmb_count(), 0u);
  EXPECT_GE(svc_.counters().dmbs_revoked, 2u);
}

// The control plane revokes one DMB of an open connection while both tenants keep their endpoints (eswitchd does
// this when a rule change drops the connection's TCP flow, ism_service.cc). The abort flag it sets in the DMB
// is sticky: the writer's next cursor update must not wipe it (a plain store of the consumer word did, so the
// owner never learnt of the revoke and the writer went on writing), and the writer learns of it from that DMB.
// One process holds both ends, so the order is fixed: A writes B's DMB after the revoke, then B reads.
TEST_F(IsmServerTest, RevokedDmbAbortIsStickyAgainstTheWriter) {
  int go[2], ack[2];
  ASSERT_EQ(pipe(go), 0);
  ASSERT_EQ(pipe(ack), 0);
  spawn([&] {
    esw_smc *sa, *sb;
    CHILD_CHECK(esw_smc_open(path(kA).c_str(), &sa) == 0 && esw_smc_open(path(kB).c_str(), &sb) == 0, "open");
    uint64_t ga[2], gb[2];
    CHILD_CHECK(esw_smc_gid(sa, &ga[0], &ga[1], nullptr) == 0 && esw_smc_gid(sb, &gb[0], &gb[1], nullptr) == 0, "gid");
    esw_smc_dmb *own_a, *own_b;
    CHILD_CHECK(esw_smc_register_dmb(sa, 64 * 1024, gb[0], gb[1], &own_a) == 0, "reg A");
    CHILD_CHECK(esw_smc_register_dmb(sb, 64 * 1024, ga[0], ga[1], &own_b) == 0, "reg B");
    esw_smcd_stream *a, *b;
    CHILD_CHECK(esw_smcd_stream_open(sa, own_a, esw_smc_dmb_token(own_b), &a) == 0, "stream A");
    CHILD_CHECK(esw_smcd_stream_open(sb, own_b, esw_smc_dmb_token(own_a), &b) == 0, "stream B");
    esw_smcd_set_timeout_ms(a, 300);
    esw_smcd_set_timeout_ms(b, 300);
    std::vector<uint8_t> buf(1000, 0x5A), in(1000);
    CHILD_CHECK(esw_smcd_send(a, buf.data(), 1000) == 1000, "send before");
    CHILD_CHECK(esw_smcd_recv(b, in.data(), 1000) == 1000 && in == buf, "recv before");
    CHILD_CHECK(esw_smcd_send(b, buf.data(), 10) == 10, "send back before");
    const uint64_t tok = esw_smc_dmb_token(own_b);
    CHILD_CHECK(write(go[1], &tok, sizeof tok) == sizeof tok, "ask for the revoke");
    char x;
    CHILD_CHECK(read(ack[0], &x, 1) == 1, "revoked");
    // A is the writer of the revoked DMB: its send must fail, and must not clear the flag for B.
    ssize_t w = esw_smcd_send(a, buf.data(), 100);
    CHILD_CHECK(w == -ECONNRESET, "writer's send after its peer's DMB was revoked: %zd", w);
    ssize_t r = esw_smcd_recv(b, in.data(), 100);
    CHILD_CHECK(r == -ECONNRESET, "owner's recv after its DMB was revoked (and the writer sent): %zd", r);
    CHILD_CHECK(esw_smcd_send(b, buf.data(), 10) == -ECONNRESET, "owner's send after the revoke");
    // A's receiving side: the 10 bytes B sent before the revoke are in A's (not revoked) DMB; the connection is
    // reset all the same (sticky since the failed send).
    CHILD_CHECK(esw_smcd_recv(a, in.data(), 100) == -ECONNRESET, "writer's recv after the reset");
    esw_smcd_abort(a);
    esw_smcd_abort(b);
    esw_smc_close(sa);
    esw_smc_close(sb);
  });
  close(go[1]);
  close(ack[0]);
  bool revoked = false;
  const double end = now_s() + 30;
  while (!revoked && now_s() < end) {
    pollfd p[2] = {{server_.fd(), POLLIN, 0}, {go[0], POLLIN, 0}};
    poll(p, 2, 5);
    server_.service();
    if (p[1].revents & POLLIN) {
      uint64_t tok = 0;
      ASSERT_EQ(read(go[0], &tok, sizeof tok), static_cast<ssize_t>(sizeof tok));
      EXPECT_TRUE(svc_.revoke_dmb(tok));
      revoked = true;
      ASSERT_EQ(write(ack[1], "r", 1), 1);
    }
  }
  EXPECT_TRUE(revoked) << "the child never asked for the revoke";
  auto st = serve(30);
  for (int s : st) EXPECT_TRUE(WIFEXITED(s) && WEXITSTATUS(s) == 0) << "child status " << s;
  close(go[0]);
  close(ack[1]);
  EXPECT_EQ(svc_.dmb_count(), 0u);
}

// Both DMBs of a connection revoked while it streams flat out (what eswitchd does when a rule now drops the TCP
// flow: both directions are checked, both DMBs go). Sender and receiver, without timeouts, must both end with
// -ECONNRESET, promptly; before the abort flag was sticky, one of them usually waited forever. Five rounds.
TEST_F(IsmServerTest, RevokeWhileStreamingResetsBothEnds) {
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    int ch[2], t[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, ch), 0);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, t), 0);  // the revoke time, to each child
    auto end_side = [&](bool sender, int chan, int tfd) {
      esw_smc* s;
      esw_smcd_stream* st = connect_pair(path(sender ? kA : kB), chan, 1 << 20, &s);
      std::vector<uint8_t> buf(1 << 16, 0x33);
      ssize_t r;
      uint64_t moved = 0;
      while ((r = sender ? esw_smcd_send(st, buf.data(), buf.size()) : esw_smcd_recv(st, buf.data(), buf.size())) > 0)
        moved += static_cast<uint64_t>(r);
      const double t_err = now_s();
      CHILD_CHECK(r == -ECONNRESET, "%s ended with %zd after %llu bytes", sender ? "send" : "recv", r,
                  static_cast<unsigned long long>(moved));
      double t_rev = 0;
      CHILD_CHECK(read(tfd, &t_rev, sizeof t_rev) == sizeof t_rev, "revoke time");
      std::fprintf(stderr, "%s: -ECONNRESET %.1f ms after the revoke (%llu bytes moved)\n",
                   sender ? "sender" : "receiver", (t_err - t_rev) * 1e3, static_cast<unsigned long long>(moved));
      CHILD_CHECK(t_err - t_rev < 2.0, "took %.3f s", t_err - t_rev);
      esw_smcd_abort(st);
      esw_smc_close(s);
    };
    spawn([&] {
      close(ch[1]);
      end_side(true, ch[0], t[1]);
    });
    spawn([&] {
      close(ch[0]);
      end_side(false, ch[1], t[1]);
    });
    close(ch[0]);
    close(ch[1]);
    const double until = now_s() + 0.3 + 0.05 * round;
    while (now_s() < until) {
      pollfd p{server_.fd(), POLLIN, 0};
      poll(&p, 1, 5);
      server_.service();
    }
    ASSERT_EQ(svc_.dmb_count(), 2u);
    const double t_rev = now_s();
    for (const DmbInfo& d : svc_.dmbs()) EXPECT_TRUE(svc_.revoke_dmb(d.token));
    for (int i = 0; i < 2; ++i) ASSERT_EQ(write(t[0], &t_rev, sizeof t_rev), static_cast<ssize_t>(sizeof t_rev));
    auto st = serve(20);
    for (int s : st) EXPECT_TRUE(WIFEXITED(s) && WEXITSTATUS(s) == 0) << "child status " << s;
    close(t[0]);
    close(t[1]);
    EXPECT_EQ(svc_.dmb_count(), 0u);
    if (HasFailure()) break;
  }
}

// Protocol checks at the socket: wrong length, wrong version, fds from the tenant, unknown op; another vport's
// token; limits through the library; a tenant without permission on the socket cannot connect.
TEST_F(IsmServerTest, EndpointRejectsBadRequestsAndForeignVports) {
  spawn([&] {
    esw_smc *sa, *sc;
    CHILD_CHECK(esw_smc_open(path(kA).c_str(), &sa) == 0, "open A");
    CHILD_CHECK(esw_smc_open(path(kC).c_str(), &sc) == 0, "open C");
    uint64_t gb[2];
    esw_smc* sb;
    CHILD_CHECK(esw_smc_open(path(kB).c_str(), &sb) == 0, "open B");
    CHILD_CHECK(esw_smc_gid(sb, &gb[0], &gb[1], nullptr) == 0, "gid B");
    esw_smc_dmb* d = nullptr;
    CHILD_CHECK(esw_smc_register_dmb(sa, 16 * 1024, gb[0], gb[1], &d) == 0, "register");
    esw_smc_dmb* x = nullptr;
    CHILD_CHECK(esw_smc_attach_dmb(sc, esw_smc_dmb_token(d), &x) == -EACCES, "C attaches A's DMB for B");
    CHILD_CHECK(std::strstr(esw_smc_last_error(), "not granted") != nullptr, "reason: %s", esw_smc_last_error());
    CHILD_CHECK(esw_smc_attach_dmb(sc, esw_smc_dmb_token(d) ^ 1, &x) == -ENOENT, "unknown token");
    CHILD_CHECK(esw_smc_register_dmb(sa, 12345, gb[0], gb[1], &x) == -EINVAL, "bad size");
    CHILD_CHECK(esw_smc_register_dmb(sa, 16 * 1024, 1, 2, &x) == -ENODEV, "unknown writer GID");
    CHILD_CHECK(esw_smc_query_gid(sa, 1, 2) == -ENODEV, "query unknown");
    // Limits: 8 DMBs per vport (one is registered already).
    std::vector<esw_smc_dmb*> many;
    for (int i = 0; i < 7; ++i) {
      CHILD_CHECK(esw_smc_register_dmb(sa, 16 * 1024, gb[0], gb[1], &x) == 0, "register %d", i);
      many.push_back(x);
    }
    CHILD_CHECK(esw_smc_register_dmb(sa, 16 * 1024, gb[0], gb[1], &x) == -ENOSPC, "limit");
    CHILD_CHECK(std::strstr(esw_smc_last_error(), "count limit") != nullptr, "reason: %s", esw_smc_last_error());
    for (auto* m : many) CHILD_CHECK(esw_smc_release_dmb(sa, m) == 0, "release");
    CHILD_CHECK(esw_smc_release_dmb(sa, d) == 0, "release");

    // Raw socket: malformed requests get -EPROTO replies; the connection stays usable.
    int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    sockaddr_un sa_un{};
    sa_un.sun_family = AF_UNIX;
    std::strcpy(sa_un.sun_path, path(kA).c_str());
    CHILD_CHECK(connect(fd, reinterpret_cast<sockaddr*>(&sa_un), sizeof sa_un) == 0, "raw connect");
    auto ask = [&](const void* m, size_t n, bool with_fd) {
      iovec iov{const_cast<void*>(m), n};
      msghdr mh{};
      mh.msg_iov = &iov;
      mh.msg_iovlen = 1;
      alignas(cmsghdr) char cb[CMSG_SPACE(sizeof(int))];
      if (with_fd) {
        mh.msg_control = cb;
        mh.msg_controllen = sizeof cb;
        cmsghdr* c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET, c->cmsg_type = SCM_RIGHTS, c->cmsg_len = CMSG_LEN(sizeof(int));
        int one = 0;
        std::memcpy(CMSG_DATA(c), &one, sizeof one);
      }
      CHILD_CHECK(sendmsg(fd, &mh, 0) == static_cast<ssize_t>(n), "raw send");
      proto::Reply rp{};
      CHILD_CHECK(recv(fd, &rp, sizeof rp, 0) == sizeof rp, "raw reply");
      return rp;
    };
    proto::Request rq{proto::kVersion, proto::kHello, 7, 0, 0, 0};
    proto::Reply rp = ask(&rq, sizeof rq - 1, false);
    CHILD_CHECK(rp.status == -EPROTO && std::strstr(rp.reason, "length"), "short: %d %s", rp.status, rp.reason);
    uint8_t big[200] = {};
    std::memcpy(big, &rq, sizeof rq);
    rp = ask(big, sizeof big, false);
    CHILD_CHECK(rp.status == -EPROTO, "long: %d", rp.status);
    proto::Request v2 = rq;
    v2.version = 2;
    rp = ask(&v2, sizeof v2, false);
    CHILD_CHECK(rp.status == -EPROTO && std::strstr(rp.reason, "version"), "version: %s", rp.reason);
    rp = ask(&rq, sizeof rq, true);
    CHILD_CHECK(rp.status == -EPROTO && std::strstr(rp.reason, "file descriptors"), "fds: %s", rp.reason);
    proto::Request bad_op = rq;
    bad_op.op = 99;
    rp = ask(&bad_op, sizeof bad_op, false);
    CHILD_CHECK(rp.status == -EPROTO && std::strstr(rp.reason, "unknown op"), "op: %s", rp.reason);
    rp = ask(&rq, sizeof rq, false);
    CHILD_CHECK(rp.status == 0 && rp.id == 7 && (rp.c >> 32) == kA, "hello after errors: %d", rp.status);
    close(fd);

    // Another uid cannot connect to a 0600 root-owned endpoint (only meaningful as root).
    if (geteuid() == 0) {
      pid_t p = fork();
      if (p == 0) {
        if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0) _exit(3);
        esw_smc* y;
        _exit(esw_smc_open(path(kB).c_str(), &y) == -EACCES ? 0 : 4);
      }
      int ws;
      waitpid(p, &ws, 0);
      CHILD_CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "unprivileged connect: status %d", ws);
    }
    esw_smc_close(sa);
    esw_smc_close(sb);
    esw_smc_close(sc);
  });
  auto st = serve(60);
  for (int s : st) EXPECT_TRUE(WIFEXITED(s) && WEXITSTATUS(s) == 0) << "child status " << s;
  EXPECT_EQ(server_.counters().bad_requests, 5u);
  EXPECT_EQ(svc_.dmb_count(), 0u);
}

// esw-smc-run's capability announcements: a listener announced on one vport's endpoint (address or any), connect
// intents from another vport recorded only where a listener is, taken once by the accepting side; unlisten and the
// announcing client's disconnect withdraw its listeners; bad fields refused.
TEST_F(IsmServerTest, ListenIntentAndTake) {
  // The child reports how many intents its wait for the closed client's listener to go still had recorded
  // (the service handles that client's hang-up asynchronously).
  int late[2];
  ASSERT_EQ(pipe(late), 0);
  spawn([&] {
    close(late[0]);
    esw_smc *sa, *sb, *sb2;
    CHILD_CHECK(esw_smc_open(path(kA).c_str(), &sa) == 0 && esw_smc_open(path(kB).c_str(), &sb) == 0 &&
                    esw_smc_open(path(kB).c_str(), &sb2) == 0, "open");
    const uint32_t ip_b = 0xC6120002, ip_x = 0xC6120009;  // 198.18.0.2, 198.18.0.9
    CHILD_CHECK(esw_smc_connect_intent(sa, ip_b, 7000, 40000) == -ENOENT, "intent before any listener");
    CHILD_CHECK(std::strstr(esw_smc_last_error(), "no SMC-enabled listener") != nullptr, "reason: %s", esw_smc_last_error());
    CHILD_CHECK(esw_smc_listen(sb, ip_b, 7000, 1) == 0, "listen");
    CHILD_CHECK(esw_smc_connect_intent(sa, ip_b, 7000, 40000) == 0, "intent to the listener");
    CHILD_CHECK(esw_smc_connect_intent(sa, ip_x, 7000, 40001) == -ENOENT, "intent to another address");
    CHILD_CHECK(esw_smc_connect_intent(sa, ip_b, 7001, 40002) == -ENOENT, "intent to another port");
    CHILD_CHECK(esw_smc_take_intent(sb, ip_b, 7000, 40001) == -ENOENT, "take of an intent never made");
    CHILD_CHECK(esw_smc_take_intent(sb, ip_b, 7000, 40000) == 0, "take");
    CHILD_CHECK(esw_smc_take_intent(sb, ip_b, 7000, 40000) == -ENOENT, "taken twice");
    CHILD_CHECK(esw_smc_listen(sb, ip_b, 7000, 0) == 0, "unlisten");
    CHILD_CHECK(esw_smc_connect_intent(sa, ip_b, 7000, 40003) == -ENOENT, "intent after unlisten");
    CHILD_CHECK(esw_smc_listen(sb2, 0, 7002, 1) == 0, "listen on any address");
    CHILD_CHECK(esw_smc_connect_intent(sa, ip_x, 7002, 40004) == 0, "intent to a wildcard listener");
    esw_smc_close(sb2);  // its listener goes with it
    int r = 0;
    uint32_t recorded = 0;
    for (int i = 0; i < 200 && (r = esw_smc_connect_intent(sa, ip_x, 7002, static_cast<uint16_t>(40005 + i))) == 0;
         ++i) {
      ++recorded;
      usleep(10000);
    }
    CHILD_CHECK(r == -ENOENT, "listener of a closed client still announced (%d)", r);
    CHILD_CHECK(write(late[1], &recorded, sizeof(recorded)) == sizeof(recorded), "report");
    // an intent stays with its client: the server can still take 40004 (sa is alive)
    CHILD_CHECK(esw_smc_take_intent(sb, ip_x, 7002, 40004) == 0, "take after the listener's client left");
    esw_smc_close(sa);
    esw_smc_close(sb);
  });
  close(late[1]);
  auto st = serve(60);
  for (int s : st) EXPECT_TRUE(WIFEXITED(s) && WEXITSTATUS(s) == 0) << "child status " << s;
  uint32_t recorded = 0;
  EXPECT_EQ(read(late[0], &recorded, sizeof(recorded)), static_cast<ssize_t>(sizeof(recorded)));
  close(late[0]);
  EXPECT_EQ(server_.counters().intents, 2u + recorded);
  EXPECT_EQ(server_.counters().intents_taken, 2u);
  EXPECT_GE(server_.counters().intents_refused, 5u);
}

// Removing a vport mid-stream: its peer sees a reset; the removed vport's DMBs are zeroed and gone.
TEST_F(IsmServerTest, VportRemovalMidTransfer) {
  int ch[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, ch), 0);
  spawn([&] {
    close(ch[1]);
    esw_smc* s;
    esw_smcd_stream* st = connect_pair(path(kA), ch[0], 64 * 1024, &s);
    std::vector<uint8_t> buf(1 << 16, 1);
    ssize_t r;
    while ((r = esw_smcd_recv(st, buf.data(), buf.size())) > 0) {
    }
    CHILD_CHECK(r == -ECONNRESET, "recv after the peer's vport was removed: %zd", r);
    esw_smcd_close(st);
    esw_smc_close(s);
  });
  spawn([&] {
    close(ch[0]);
    esw_smc* s;
    esw_smcd_stream* st = connect_pair(path(kB), ch[1], 64 * 1024, &s);
    std::vector<uint8_t> buf(1 << 16, 2);
    ssize_t r;
    while ((r = esw_smcd_send(st, buf.data(), buf.size())) > 0) {
    }
    // Reset by the removal, or - when the peer saw its reset first and closed - the peer's close: a clean error
    // either way, never a hang or a send that succeeds.
    CHILD_CHECK(r == -ECONNRESET || r == -EPIPE, "send after our vport was removed: %zd", r);
    esw_smc_close(s);
  });
  close(ch[0]);
  close(ch[1]);
  // Let the transfer run, then remove vport B.
  double until = now_s() + 0.5;
  while (now_s() < until) {
    pollfd p{server_.fd(), POLLIN, 0};
    poll(&p, 1, 5);
    server_.service();
  }
  ASSERT_EQ(svc_.dmb_count(kB), 1u);
  ASSERT_TRUE(server_.remove_endpoint(kB));
  EXPECT_EQ(svc_.dmb_count(kB), 0u);
  auto st = serve(60);
  for (int s : st) EXPECT_TRUE(WIFEXITED(s) && WEXITSTATUS(s) == 0) << "child status " << s;
  EXPECT_EQ(svc_.dmb_count(), 0u);
  // Re-add for TearDown symmetry.
  EndpointConfig c;
  c.vport = kB;
  c.path = path(kB);
  std::string err;
  EXPECT_TRUE(server_.add_endpoint(c, &err)) << err;
}

}  // namespace
}  // namespace esw::smc::ism
