// Integration test: a packed ring survives an eswitchd SIGKILL + restart through the front-end's inflight area
// (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD, vdpa/inflight.h). Real eswitchd processes (started, SIGKILLed and
// restarted by the test, as tests/e2e do), real vhost-user sessions on its server-mode sockets, real frames; the
// front-ends are written by hand (tests/common/vhost_frontend.h) because QEMU's virtio-net and DPDK's virtio_user
// never use the inflight area: `vm` is a VMM that does (as QEMU's vhost-user-blk does): GET_INFLIGHT_FD at start,
// the fd kept, SET_INFLIGHT_FD with it at every session start; after the crash it reconnects, keeps its packed
// rings as they are (the guest is not reset) and can only send SET_VRING_BASE with what it last knew (the fresh
// ring's position: it never had a GET_VRING_BASE answer). Its peer `peer` is a split-ring front-end (a split ring
// restarts from its used index in guest memory); eswitchd cross-connects the two vports.
//
// Checked: frames flow both ways before the kill and after the restart, byte for byte and in order; the frames
// the guest posted while eswitchd was down are delivered once (none lost, none twice); eswitchd logs and counts
// (show ports: inflight_sessions, inflight_restored) the vrings it set from the area. A packed front-end without
// the inflight area keeps today's behaviour: it re-initialises its rings on reconnect and traffic flows again,
// nothing is taken from an area (inflight_sessions 0).
//
// usage: vhost_inflight_test PATH/TO/eswitchd PATH/TO/eswitchctl

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/vhost_frontend.h"

namespace {

using namespace std::chrono_literals;
namespace vu = esw::test::vu;
using json = nlohmann::json;

std::string g_eswitchd, g_eswitchctl;

std::string work_dir() {
  static const std::string d = "/tmp/esw-vhost-inflight-" + std::to_string(getpid());
  return d;
}

std::vector<uint8_t> frame(uint32_t seq, bool from_vm) {
  std::vector<uint8_t> f(14 + 20 + 8 + 40 + seq % 16, 0);
  const uint8_t vm[6] = {0x02, 0x00, 0xc6, 0x12, 0x00, 0x01}, peer[6] = {0x02, 0x00, 0xc6, 0x12, 0x00, 0x02};
  std::memcpy(f.data(), from_vm ? peer : vm, 6);
  std::memcpy(f.data() + 6, from_vm ? vm : peer, 6);
  f[12] = 0x88;  // a local experimental EtherType (0x88b5): the switch forwards it as is (cross-connect)
  f[13] = 0xb5;
  for (size_t i = 14; i < f.size(); ++i) f[i] = static_cast<uint8_t>(i * 31 + seq * 7 + (from_vm ? 1 : 0));
  std::memcpy(f.data() + 14, &seq, 4);
  return f;
}

// One eswitchd process: started on the config, waited for (ready file), SIGKILLed or stopped with SIGINT.
struct Daemon {
  pid_t pid = -1;
  std::string config, log;
  int starts = 0;
  void start() {
    const std::string ready = work_dir() + "/ready";
    std::filesystem::remove(ready);
    ++starts;
    const std::string out = log + "." + std::to_string(starts);
    pid = fork();
    if (pid == 0) {
      FILE* f = std::freopen(out.c_str(), "w", stdout);
      if (f == nullptr || dup2(fileno(stdout), 2) < 0) _exit(127);
      execl(g_eswitchd.c_str(), g_eswitchd.c_str(), "--config", config.c_str(), "--state-dir",
            (work_dir() + "/state").c_str(), "--ready-file", ready.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    ASSERT_GT(pid, 0);
    for (int i = 0; i < 600; ++i) {
      if (std::filesystem::exists(ready)) return;
      int st = 0;
      ASSERT_EQ(waitpid(pid, &st, WNOHANG), 0) << "eswitchd exited during start; its log: " << text(out);
      std::this_thread::sleep_for(100ms);
    }
    FAIL() << "eswitchd not ready after 60 s; its log: " << text(out);
  }
  void kill9() {
    if (pid <= 0) return;
    ::kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    pid = -1;
  }
  int stop() {
    if (pid <= 0) return -1;
    ::kill(pid, SIGINT);
    int st = 0;
    for (int i = 0; i < 300; ++i) {
      if (waitpid(pid, &st, WNOHANG) == pid) {
        pid = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      }
      std::this_thread::sleep_for(100ms);
    }
    kill9();
    return -1;
  }
  ~Daemon() { kill9(); }
  static std::string text(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::string current_log() const { return text(log + "." + std::to_string(starts)); }
};

// `eswitchctl --json show ports`: the vport's peer counters.
json peer_counters(const std::string& api, const std::string& port) {
  const std::string cmd = g_eswitchctl + " --socket " + api + " --no-progress --json show ports";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return json();
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  pclose(p);
  const json j = json::parse(out, nullptr, false);
  if (j.is_discarded()) return json();
  for (const json& x : j.at("ports")) {
    if (x.at("name") == port) return x.at("peer").at("counters");
  }
  return json();
}

// The split-ring peer: what it received so far (its RX used ring), in order.
std::vector<std::vector<uint8_t>> split_received(const vu::FrontEnd& fe, uint16_t from, uint16_t to) {
  std::vector<std::vector<uint8_t>> out;
  for (uint16_t i = from; i != to; ++i) out.push_back(fe.rx_frame(fe.used(0, i)));
  return out;
}

struct Session {
  vu::FrontEnd vm, peer;
  uint16_t vm_tx = 0, peer_tx = 0;  // buffer ids / TX heads used so far
  uint16_t vm_rx_posted = 0;        // RX buffer ids posted on the packed ring
  uint16_t peer_seen = 0;           // peer's RX used entries read
  Session(const std::string& a, const std::string& b) : vm(a), peer(b) {}
};

bool connect_retry(vu::FrontEnd& fe, const std::string& path) {
  for (int i = 0; i < 300; ++i) {
    if (fe.connect_to(path)) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

// Waits until eswitchd's current log has `text`. A vport's `guest connected` is logged once its device is
// published to the workers: a frame forwarded to a vport before that is dropped, so traffic waits for it.
bool wait_log(const Daemon& d, const std::string& text) {
  for (int i = 0; i < 10000; ++i) {
    if (d.current_log().find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

// Frames vm -> peer (seq from..) posted on vm's packed TX ring; peer -> vm posted on peer's split TX ring.
void post_vm(Session& s, uint32_t seq, unsigned n) {
  for (unsigned i = 0; i < n; ++i) s.vm.packed_post_frame(s.vm_tx++, frame(seq + i, true));
}
void post_peer(Session& s, uint32_t seq, unsigned n) {
  for (unsigned i = 0; i < n; ++i) s.peer.post_frame(static_cast<uint16_t>(s.peer_tx++ % vu::kRingSize), frame(seq + i, false));
}
// Waits until the peer has `n` more frames and vm `m` more; checks them against seq_vm.. / seq_peer.. in order,
// then that nothing more arrives for a moment.
void expect_delivered(Session& s, uint32_t seq_vm, unsigned n, uint32_t seq_peer, unsigned m) {
  std::vector<std::vector<uint8_t>> at_vm;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    while (auto e = s.vm.packed_take_used(0)) at_vm.push_back(s.vm.rx_frame(*e));
    while (auto e = s.vm.packed_take_used(1)) {}  // TX completions
    if (static_cast<uint16_t>(s.peer.used_idx(0) - s.peer_seen) >= n && at_vm.size() >= m) break;
    std::this_thread::sleep_for(2ms);
  }
  std::this_thread::sleep_for(300ms);  // anything beyond (a duplicate) would arrive now
  while (auto e = s.vm.packed_take_used(0)) at_vm.push_back(s.vm.rx_frame(*e));
  const uint16_t now = s.peer.used_idx(0);
  const auto at_peer = split_received(s.peer, s.peer_seen, now);
  s.peer_seen = now;
  ASSERT_EQ(at_peer.size(), n) << "frames vm -> peer";
  for (unsigned i = 0; i < n; ++i) EXPECT_TRUE(at_peer[i] == frame(seq_vm + i, true)) << "vm -> peer frame " << seq_vm + i;
  ASSERT_EQ(at_vm.size(), m) << "frames peer -> vm";
  for (unsigned i = 0; i < m; ++i) EXPECT_TRUE(at_vm[i] == frame(seq_peer + i, false)) << "peer -> vm frame " << seq_peer + i;
  // The RX buffers used come back to the ring: the guest driver refills.
  for (unsigned i = 0; i < m; ++i) s.vm.packed_post_rx_buffer(static_cast<uint16_t>(s.vm_rx_posted++ % vu::kRingSize));
  for (unsigned i = 0; i < n; ++i) s.peer.post_rx_buffer(static_cast<uint16_t>((s.peer_seen - n + i) % 64));
}

// Issue 10 item 3's goal is 100 ms; these bounds add a margin for a loaded 2-core machine (measured: see
// vdpa/README.md, "Packed rings across an eswitchd restart"). Without the wake both were ~900 ms.
constexpr double kFirstReplyBoundMs = 250, kResumeBoundMs = 400;

constexpr uint64_t kPackedFeatures = vu::kVersion1 | vu::kProtocolFeatures | vu::kRingPacked;

void run(bool inflight) {
  const std::string dir = work_dir() + (inflight ? "/a" : "/b");
  std::filesystem::create_directories(dir);
  std::filesystem::create_directories(work_dir() + "/state");
  const std::string vm_sock = dir + "/vm.sock", peer_sock = dir + "/peer.sock", api = dir + "/api.sock";
  Daemon d;
  d.config = dir + "/esw.yaml";
  d.log = dir + "/eswitchd.log";
  {
    std::ofstream y(d.config);
    y << "apiVersion: eswitch/v1\n"
      << "dataplane: { main_core: 0, worker_cores: [1], memory_mb: 256, mbufs: 4096, hugepages: off, "
         "idle_sleep_us: 50, file_prefix: esw-inflight-" << getpid() << (inflight ? "a" : "b")
      << ", api_socket: \"" << api << "\" }\n"
      << "representors: { kind: none }\n"
      << "vports:\n"
      << "  - { name: vm, spoofchk: false, attach: { vhost_user: { socket: \"" << vm_sock << "\" } } }\n"
      << "  - { name: peer, spoofchk: false, attach: { vhost_user: { socket: \"" << peer_sock << "\" } } }\n"
      << "pipeline:\n  mode: cross_connect\n  cross_connect:\n"
      << "    - { from: vm, to: peer }\n    - { from: peer, to: vm }\n";
  }
  ASSERT_NO_FATAL_FAILURE(d.start());
  Session s(vm_sock, peer_sock);
  const uint64_t proto = inflight ? vu::kProtoInflight : 0;
  const auto offered = s.vm.get_u64(vu::kGetFeatures);
  ASSERT_TRUE(offered && (*offered & vu::kRingPacked));
  ASSERT_TRUE(s.vm.setup(kPackedFeatures, proto)) << "packed front-end set-up (GET/SET_INFLIGHT_FD) refused";
  if (inflight) {
    ASSERT_GE(s.vm.inflight_fd, 0);
  }
  ASSERT_TRUE(s.peer.get_u64(vu::kGetFeatures).has_value());
  ASSERT_TRUE(s.peer.setup(vu::kVersion1));
  ASSERT_TRUE(wait_log(d, "vport vm: vhost-user guest connected")) << d.current_log();
  ASSERT_TRUE(wait_log(d, "vport peer: vhost-user guest connected")) << d.current_log();
  for (uint16_t i = 0; i < 64; ++i) {
    s.vm.packed_post_rx_buffer(s.vm_rx_posted++);
    s.peer.post_rx_buffer(i);
  }
  // Before the crash: 40 frames each way (the packed rings move well past their start).
  post_vm(s, 0, 40);
  post_peer(s, 1000, 40);
  ASSERT_NO_FATAL_FAILURE(expect_delivered(s, 0, 40, 1000, 40));

  d.kill9();
  if (inflight) {
    // The guest goes on while eswitchd is gone: frames posted now must arrive once after the restart. (The
    // peer's 5 are posted once both are up again: frames a vport sends before the other end's device is
    // published are dropped, and one of the two front-ends is always set up first.)
    post_vm(s, 40, 7);
  } else {
    // Today's behaviour without the area (virtio_user's): the front-end re-initialises its packed rings when it
    // reconnects (what was on them is dropped), so nothing is posted meanwhile.
    std::memset(s.vm.mem + vu::FrontEnd::kRing[0], 0, 0x8000);
    s.vm.ppos[0] = s.vm.ppos[1] = {};
  }
  ASSERT_NO_FATAL_FAILURE(d.start());
  const auto ready_seen = std::chrono::steady_clock::now();  // the test saw the ready file (polled every 100 ms)
  // The peer first: the frames the packed guest posted while eswitchd was down are forwarded as soon as its
  // device is up, so the peer's must be published by then (else they are dropped, as for any vport not ready).
  ASSERT_TRUE(connect_retry(s.peer, peer_sock));
  const auto connected = std::chrono::steady_clock::now();
  ASSERT_TRUE(s.peer.get_u64(vu::kGetFeatures).has_value());
  // rte_vhost 22.11 adds a server socket's listen fd to its event thread's poll set without waking it (poll()
  // with a 1 s timeout, lib/vhost/fd_man.c): without eswitchd's wake (vdpa/vhost_wake.h) the first connection
  // after a start waited for that timeout (865-955 ms). Goal under 100 ms (issue 10 item 3); the bounds leave
  // room for a loaded 2-core machine.
  const double first_reply_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - connected).count();
  std::printf("first reply (GET_FEATURES) %.1f ms after the front-end's connect to the restarted eswitchd\n",
              first_reply_ms);
  EXPECT_LT(first_reply_ms, kFirstReplyBoundMs) << "rte_vhost's event thread was not woken after the restart";
  ASSERT_TRUE(s.peer.setup(vu::kVersion1));
  ASSERT_TRUE(wait_log(d, "vport peer: vhost-user guest connected")) << d.current_log();
  ASSERT_TRUE(connect_retry(s.vm, vm_sock));
  ASSERT_TRUE(s.vm.get_u64(vu::kGetFeatures).has_value());
  // What a VMM whose back-end crashed knows: the position it started the rings with (slot 0, wrap counter 1).
  const uint16_t stale[2] = {1u << 15, 1u << 15};
  ASSERT_TRUE(s.vm.setup(kPackedFeatures, proto, false, stale));
  ASSERT_TRUE(wait_log(d, "vport vm: vhost-user guest connected")) << d.current_log();  // before anything is sent to it
  if (inflight) {
    post_peer(s, 1040, 5);
    while (s.peer.used_idx(0) == s.peer_seen && std::chrono::steady_clock::now() - ready_seen < 10s) {
      std::this_thread::sleep_for(100us);
    }
    const double resume_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - ready_seen).count();
    std::printf("resume: %.1f ms from the ready file of the restarted eswitchd to the first frame the packed guest "
                "posted while it was down reaching the peer (both front-ends reconnect and set up meanwhile)\n",
                resume_ms);
    EXPECT_LT(resume_ms, kResumeBoundMs);
    ASSERT_NO_FATAL_FAILURE(expect_delivered(s, 40, 7, 1040, 5));
  } else {
    for (uint16_t i = 0; i < 64; ++i) s.vm.packed_post_rx_buffer(static_cast<uint16_t>(s.vm_rx_posted++ % vu::kRingSize));
  }
  // After the restart: traffic both ways again.
  post_vm(s, 100, 30);
  post_peer(s, 1100, 30);
  ASSERT_NO_FATAL_FAILURE(expect_delivered(s, 100, 30, 1100, 30));

  const std::string log = d.current_log();
  // The two server sockets opened in one apply: one wake of rte_vhost's event thread for both.
  EXPECT_NE(log.find("rte_vhost's event thread woken for 2 new vhost-user server socket(s)"), std::string::npos)
      << log;
  EXPECT_EQ(log.find("event thread woken for 1 "), std::string::npos) << log;
  const json c = peer_counters(api, "vm");
  ASSERT_TRUE(c.is_object()) << "eswitchctl show ports gave nothing";
  if (inflight) {
    EXPECT_NE(log.find("vport vm: packed vrings with an inflight area (INFLIGHT_SHMFD): 2 set to the position "
                       "recorded there"), std::string::npos) << log;
    EXPECT_EQ(c.at("inflight_sessions"), 1);
    EXPECT_EQ(c.at("inflight_restored"), 2);
  } else {
    EXPECT_EQ(log.find("inflight area"), std::string::npos) << log;
    EXPECT_EQ(c.at("inflight_sessions"), 0);
    EXPECT_EQ(c.at("inflight_restored"), 0);
  }
  EXPECT_EQ(d.stop(), 0) << "eswitchd did not stop cleanly: " << d.current_log();
}

TEST(VhostInflight, PackedRingKeptAcrossAnEswitchdKillWithTheInflightArea) { run(true); }

TEST(VhostInflight, PackedFrontEndWithoutTheInflightAreaReinitialisesItsRings) { run(false); }

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  ::testing::InitGoogleTest(&argc, argv);
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s PATH/TO/eswitchd PATH/TO/eswitchctl\n", argv[0]);
    return 2;
  }
  g_eswitchd = argv[1];
  g_eswitchctl = argv[2];
  const int rc = RUN_ALL_TESTS();
  std::filesystem::remove_all(work_dir());
  return rc;
}
