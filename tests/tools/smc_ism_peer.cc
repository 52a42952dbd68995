// A tenant for the ISM e2e test (tests/e2e/smc_ism_switch.sh): runs in a tenant namespace, opens a TCP connection
// to the other tenant through eswitchd, negotiates SMC-Dv2 over it with real CLC messages (dataplane/smc/clc.h:
// Proposal with the SMC-Dv2 extension carrying the vport's emulated-ISM GID pair, Accept and Confirm with the DMB
// tokens, or a Decline with its reason) and then moves the workload over SMC-D (tenant library streams) or, after a
// Decline or without a Proposal, over the TCP connection itself.
//
//   smc_ism_peer hello ENDPOINT                               prints the vport's GID, CHID, ISM vport id
//   smc_ism_peer server ENDPOINT|- ADDR PORT [--limit-fail]   one connection; '-': not SMC-enabled
//   smc_ism_peer client ENDPOINT|- ADDR PORT --bytes N --msgs M [--hold S]
//   (both: [--spin N] polls of the SMC-D cursors before sleeping on the eventfd; [--fake-local IPV4] claims that
//   local address when binding the DMB to the TCP flow: eswitchd refuses, the side sends a Decline CNFERR)
// Workload (client side drives): N bytes of a seeded pattern client -> server (the server checks every byte),
// then M ping-pong messages of 1..256 bytes echoed back and checked, then an orderly close. --hold S: after the
// bytes, keep sending for S seconds (teardown tests) and report how the stream ended.
// Output (one line each side): "transport=smcd|tcp decline=0x... bytes=N gbit_s=X msgs=M rtt_p50_us=Y result=ok|ERR".
// Exit status 0 only when the workload completed and verified.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "dataplane/smc/tenant/esw_smc.h"
#include "dataplane/smc/tenant/fd_io.h"

namespace {

// fake_local: claim this local IPv4 address instead of the socket's when binding the DMB to the flow (tests: an
// address not bound to the vport; eswitchd refuses, the side Declines with CNFERR).
uint32_t g_fake_local = 0;

double now_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

[[noreturn]] void die(const std::string& what) {
  std::printf("result=ERR %s\n", what.c_str());
  std::fflush(stdout);
  _exit(1);
}

using esw::smc::tenant::read_all;
using esw::smc::tenant::write_all;

// The data path: SMC-D stream or the TCP socket.
struct Transport {
  esw_smcd_stream* st = nullptr;
  int fd = -1;
  ssize_t send(const void* b, size_t n) {
    if (st) return esw_smcd_send(st, b, n);
    return write_all(fd, b, n) ? static_cast<ssize_t>(n) : -errno;
  }
  // exactly n bytes: n, 0 at end of stream, or -errno
  ssize_t recv_exact(void* b, size_t n) {
    if (!st) {
      if (read_all(fd, b, n)) return static_cast<ssize_t>(n);
      return errno ? -errno : 0;
    }
    size_t got = 0;
    while (got < n) {
      ssize_t k = esw_smcd_recv(st, static_cast<uint8_t*>(b) + got, n - got);
      if (k <= 0) return k;
      got += static_cast<size_t>(k);
    }
    return static_cast<ssize_t>(n);
  }
};

uint64_t xorshift(uint64_t& s) {
  s ^= s << 13, s ^= s >> 7, s ^= s << 17;
  return s;
}
void pattern(uint64_t offset, uint8_t* b, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    uint64_t x = (offset + i) * 0x9E3779B97F4A7C15ull;
    b[i] = static_cast<uint8_t>(x >> 56 ^ x >> 13);
  }
}

struct Args {
  std::string mode, endpoint, addr;
  int port = 0;
  uint64_t bytes = 0;
  uint64_t msgs = 0;
  double hold = 0;
  int spin = -1;  // polls of the cursors before sleeping (-1: the library's default)
};

struct Session {
  esw_smc* ism = nullptr;
  uint64_t gid = 0, gid_ext = 0;
  uint16_t chid = 0;
  uint32_t decline = 0;
  Transport t;
};

void open_ism(const Args& a, Session& s) {
  if (a.endpoint == "-") return;
  if (esw_smc_open(a.endpoint.c_str(), &s.ism) != 0) die(std::string("open endpoint: ") + esw_smc_last_error());
  if (g_fake_local) esw_smc_set_claimed_local(s.ism, g_fake_local);
  if (esw_smc_gid(s.ism, &s.gid, &s.gid_ext, &s.chid) != 0) die(std::string("hello: ") + esw_smc_last_error());
}

// The CLC handshake is the tenant library's (esw_smcd_accept_fd / esw_smcd_connect_fd): an SMC-D stream, or a
// fallback to the TCP connection with the Decline code (0: the client sent no Proposal).
void server_handshake(int fd, Session& s) {
  const int r = esw_smcd_accept_fd(s.ism, fd, &s.t.st, &s.decline);
  if (r < 0) die(std::string("CLC handshake (server): ") + esw_smc_last_error());
  if (s.decline) std::fprintf(stderr, "smc_ism_peer: fallback to TCP: %s\n", esw_smc_last_error());
}

void client_handshake(int fd, Session& s) {
  if (!s.ism) return;  // not SMC-enabled: plain TCP, no Proposal
  const int r = esw_smcd_connect_fd(s.ism, fd, &s.t.st, &s.decline);
  if (r < 0) die(std::string("CLC handshake (client): ") + esw_smc_last_error());
  if (s.decline) std::fprintf(stderr, "smc_ism_peer: fallback to TCP: %s\n", esw_smc_last_error());
}

void report(const Session& s, uint64_t bytes, double secs, uint64_t msgs, std::vector<double>& rtts, const char* res) {
  std::sort(rtts.begin(), rtts.end());
  std::printf("transport=%s decline=0x%08x bytes=%llu gbit_s=%.2f msgs=%llu rtt_p50_us=%.1f result=%s\n",
              s.t.st ? "smcd" : "tcp", s.decline, static_cast<unsigned long long>(bytes),
              secs > 0 ? static_cast<double>(bytes) * 8 / secs / 1e9 : 0.0, static_cast<unsigned long long>(msgs),
              rtts.empty() ? 0.0 : rtts[rtts.size() / 2] * 1e6, res);
  std::fflush(stdout);
}

// --addr:--port, where the server listens and the client connects.
sockaddr_in ipv4_endpoint(const Args& a) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(a.port));
  if (inet_pton(AF_INET, a.addr.c_str(), &sa.sin_addr) != 1) die("--addr " + a.addr + ": not an IPv4 address");
  return sa;
}

int run_server(const Args& a) {
  Session s;
  open_ism(a, s);
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const sockaddr_in sa = ipv4_endpoint(a);
  if (bind(ls, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0 || listen(ls, 1) != 0) die("bind/listen");
  std::printf("listening\n");
  std::fflush(stdout);
  int fd = accept(ls, nullptr, nullptr);
  if (fd < 0) die("accept");
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  server_handshake(fd, s);
  s.t.fd = fd;
  if (s.t.st && a.spin >= 0) esw_smcd_set_spin(s.t.st, a.spin);
  // Header: u64 bytes, u64 msgs, u64 hold flag
  uint64_t hdr[3];
  if (s.t.recv_exact(hdr, sizeof hdr) != sizeof hdr) die("no workload header");
  std::vector<uint8_t> buf(1 << 16), want(1 << 16);
  uint64_t got = 0;
  const double t0 = now_s();
  while (hdr[2] ? true : got < hdr[0]) {
    size_t n = hdr[2] ? buf.size() : static_cast<size_t>(std::min<uint64_t>(buf.size(), hdr[0] - got));
    ssize_t k;
    if (s.t.st) {
      k = esw_smcd_recv(s.t.st, buf.data(), n);
    } else {
      k = ::recv(fd, buf.data(), n, 0);
      if (k < 0) k = -errno;
    }
    if (k <= 0) {
      if (hdr[2]) {  // hold mode: the stream ends when the test tears it down; report how
        std::vector<double> none;
        report(s, got, now_s() - t0, 0, none, k == 0 ? "eof" : std::strerror(static_cast<int>(-k)));
        return 3;
      }
      die("stream ended after " + std::to_string(got) + " bytes: " + (k == 0 ? "eof" : std::strerror(static_cast<int>(-k))));
    }
    pattern(got, want.data(), static_cast<size_t>(k));
    if (std::memcmp(buf.data(), want.data(), static_cast<size_t>(k)) != 0) die("data mismatch at " + std::to_string(got));
    got += static_cast<uint64_t>(k);
  }
  const double secs = now_s() - t0;
  std::vector<double> rtts;
  for (uint64_t i = 0; i < hdr[1]; ++i) {
    uint16_t len = 0;
    if (s.t.recv_exact(&len, 2) != 2 || len == 0 || len > 256) die("bad message length");
    uint8_t m[258];
    std::memcpy(m, &len, 2);
    if (s.t.recv_exact(m + 2, len) != len) die("short message");
    if (s.t.send(m, len + 2u) != len + 2) die("echo failed");
  }
  if (s.t.st) {
    uint8_t x;
    if (esw_smcd_recv(s.t.st, &x, 1) != 0) die("no orderly end of stream");
    esw_smcd_close(s.t.st);
  }
  report(s, got, secs, hdr[1], rtts, "ok");
  if (s.ism) esw_smc_close(s.ism);
  close(fd);
  return 0;
}

int run_client(const Args& a) {
  Session s;
  open_ism(a, s);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const sockaddr_in sa = ipv4_endpoint(a);
  bool ok = false;
  for (int i = 0; i < 100 && !ok; ++i) {
    ok = connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0;
    if (!ok) {
      close(fd);
      fd = socket(AF_INET, SOCK_STREAM, 0);
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      usleep(100000);
    }
  }
  if (!ok) die("connect");
  client_handshake(fd, s);
  s.t.fd = fd;
  if (s.t.st) esw_smcd_set_timeout_ms(s.t.st, 20000);
  if (s.t.st && a.spin >= 0) esw_smcd_set_spin(s.t.st, a.spin);
  uint64_t hdr[3] = {a.bytes, a.msgs, a.hold > 0 ? 1u : 0u};
  if (s.t.send(hdr, sizeof hdr) != sizeof hdr) die("send header");
  std::vector<uint8_t> buf(1 << 16);
  uint64_t sent = 0;
  const double t0 = now_s();
  const double until = t0 + a.hold;
  while (a.hold > 0 ? now_s() < until : sent < a.bytes) {
    size_t n = a.hold > 0 ? buf.size() : static_cast<size_t>(std::min<uint64_t>(buf.size(), a.bytes - sent));
    pattern(sent, buf.data(), n);
    ssize_t k = s.t.send(buf.data(), n);
    if (k != static_cast<ssize_t>(n)) {
      std::vector<double> none;
      report(s, sent, now_s() - t0, 0, none, k < 0 ? std::strerror(static_cast<int>(-k)) : "short");
      return 3;
    }
    sent += n;
  }
  if (a.hold > 0) {
    std::vector<double> none;
    report(s, sent, now_s() - t0, 0, none, "not-torn-down");
    return 4;
  }
  const double secs = now_s() - t0;
  std::vector<double> rtts;
  uint64_t seed = 0x1234567 + a.msgs;
  for (uint64_t i = 0; i < a.msgs; ++i) {
    uint8_t m[258], back[258];
    uint16_t len = static_cast<uint16_t>(1 + xorshift(seed) % 256);
    std::memcpy(m, &len, 2);
    for (int j = 0; j < len; ++j) m[2 + j] = static_cast<uint8_t>(xorshift(seed));
    const double t1 = now_s();
    if (s.t.send(m, len + 2u) != len + 2) die("message send");
    if (s.t.recv_exact(back, len + 2u) != len + 2) die("message echo");
    rtts.push_back(now_s() - t1);
    if (std::memcmp(m, back, len + 2u) != 0) die("echo mismatch at message " + std::to_string(i));
  }
  if (s.t.st) esw_smcd_close(s.t.st);
  report(s, sent, secs, a.msgs, rtts, "ok");
  if (s.ism) esw_smc_close(s.ism);
  close(fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s hello ENDPOINT | server ENDPOINT|- ADDR PORT | client ENDPOINT|- ADDR PORT "
                         "--bytes N --msgs M [--hold S]\n", argv[0]);
    return 2;
  }
  Args a;
  a.mode = argv[1];
  a.endpoint = argv[2];
  if (a.mode == "hello") {
    Session s;
    open_ism(a, s);
    std::printf("gid=%016llx%016llx chid=0x%04x\n", static_cast<unsigned long long>(s.gid),
                static_cast<unsigned long long>(s.gid_ext), s.chid);
    return 0;
  }
  if (argc < 5) return 2;
  a.addr = argv[3];
  a.port = std::atoi(argv[4]);
  for (int i = 5; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--bytes") a.bytes = std::strtoull(argv[i + 1], nullptr, 0);
    else if (k == "--msgs") a.msgs = std::strtoull(argv[i + 1], nullptr, 0);
    else if (k == "--hold") a.hold = std::atof(argv[i + 1]);
    else if (k == "--spin") a.spin = std::atoi(argv[i + 1]);
    else if (k == "--fake-local") {
      in_addr x{};
      if (inet_pton(AF_INET, argv[i + 1], &x) != 1) return std::fprintf(stderr, "bad --fake-local\n"), 2;
      g_fake_local = ntohl(x.s_addr);
    }
    else return std::fprintf(stderr, "unknown option %s\n", argv[i]), 2;
  }
  return a.mode == "server" ? run_server(a) : a.mode == "client" ? run_client(a) : 2;
}
