// SMC-D over the emulated ISM (dataplane/smc/ism_server.h + the tenant library) vs TCP: ping-pong round trip and
// one-way stream throughput, the same loops for both.
//   smc_ism_perf smc [--size B] [--iters N] [--mib M] [--spin S]      server + two forked tenants, in-process
//   smc_ism_perf tcp-server ADDR PORT [same options]                  (the other side of `tcp-client`)
//   smc_ism_perf tcp-client ADDR PORT [same options]
// Prints one line per measurement: "<kind> pingpong <size>B rtt_us mean=.. p50=.. p99=.." and
// "<kind> stream <mib>MiB gbit_s=..". bench/smc_ism_veth.sh runs TCP over a veth pair between two namespaces.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "dataplane/smc/ism_server.h"
#include "dataplane/smc/tenant/esw_smc.h"

namespace {

struct Opts {
  size_t size = 64;
  int iters = 20000;
  uint64_t mib = 1024;
  int spin = 200;
};

double now_s() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "smc_ism_perf: %s (%s)\n", what, esw_smc_last_error());
  _exit(1);
}

// Transport-neutral: send all / receive exactly.
struct Io {
  std::function<ssize_t(const void*, size_t)> send;
  std::function<ssize_t(void*, size_t)> recv;
};

void send_all(Io& io, const void* b, size_t n) {
  if (io.send(b, n) != static_cast<ssize_t>(n)) die("send");
}
void recv_all(Io& io, void* b, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = io.recv(static_cast<char*>(b) + got, n - got);
    if (r <= 0) die("recv");
    got += static_cast<size_t>(r);
  }
}

// Client side: ping-pong, then a stream (the server counts and acks with one byte).
void client(Io& io, const Opts& o, const char* kind) {
  std::vector<char> msg(o.size, 'p');
  std::vector<double> rtt;
  rtt.reserve(o.iters);
  for (int i = 0; i < 200; ++i) send_all(io, msg.data(), o.size), recv_all(io, msg.data(), o.size);  // warm-up
  for (int i = 0; i < o.iters; ++i) {
    double t0 = now_s();
    send_all(io, msg.data(), o.size);
    recv_all(io, msg.data(), o.size);
    rtt.push_back((now_s() - t0) * 1e6);
  }
  double sum = 0;
  for (double v : rtt) sum += v;
  std::sort(rtt.begin(), rtt.end());
  std::printf("%s pingpong %zuB rtt_us mean=%.2f p50=%.2f p99=%.2f\n", kind, o.size, sum / o.iters,
              rtt[rtt.size() / 2], rtt[rtt.size() * 99 / 100]);
  std::vector<char> big(1 << 20, 's');
  double t0 = now_s();
  for (uint64_t i = 0; i < o.mib; ++i) send_all(io, big.data(), big.size());
  char ack;
  recv_all(io, &ack, 1);
  double t = now_s() - t0;
  std::printf("%s stream %lluMiB gbit_s=%.2f\n", kind, static_cast<unsigned long long>(o.mib),
              static_cast<double>(o.mib << 20) * 8 / t / 1e9);
  std::fflush(stdout);
}

void server(Io& io, const Opts& o) {
  std::vector<char> msg(o.size);
  for (int i = 0; i < 200 + o.iters; ++i) recv_all(io, msg.data(), o.size), send_all(io, msg.data(), o.size);
  std::vector<char> big(1 << 20);
  uint64_t left = o.mib << 20;
  while (left > 0) {
    ssize_t r = io.recv(big.data(), std::min<uint64_t>(big.size(), left));
    if (r <= 0) die("stream recv");
    left -= static_cast<uint64_t>(r);
  }
  send_all(io, "k", 1);
}

int run_smc(const Opts& o) {
  using namespace esw::smc::ism;
  std::string dir = "/tmp/esw-ism-perf-" + std::to_string(getpid());
  mkdir(dir.c_str(), 0700);
  Service svc(0xFF01);
  Server srv(svc);
  std::string err;
  for (uint32_t v : {1u, 2u}) {
    EndpointConfig c;
    c.vport = v;
    c.path = dir + "/v" + std::to_string(v);
    if (!srv.add_endpoint(c, &err)) die(err.c_str());
  }
  int ch[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, ch);
  std::fflush(nullptr);
  pid_t pids[2];
  for (int side = 0; side < 2; ++side) {
    pids[side] = fork();
    if (pids[side] != 0) continue;
    int me = ch[side];
    esw_smc* s;
    if (esw_smc_open((dir + "/v" + std::to_string(side + 1)).c_str(), &s)) die("open");
    uint64_t g[2], pg[2], tok, ptok;
    if (esw_smc_gid(s, &g[0], &g[1], nullptr)) die("gid");
    if (write(me, g, sizeof g) != sizeof g || read(me, pg, sizeof pg) != sizeof pg) die("gid exchange");
    esw_smc_dmb* own;
    if (esw_smc_register_dmb(s, 1 << 20, pg[0], pg[1], &own)) die("register");
    tok = esw_smc_dmb_token(own);
    if (write(me, &tok, 8) != 8 || read(me, &ptok, 8) != 8) die("token exchange");
    esw_smcd_stream* st;
    if (esw_smcd_stream_open(s, own, ptok, &st)) die("stream");
    esw_smcd_set_spin(st, o.spin);
    Io io{[&](const void* b, size_t n) { return esw_smcd_send(st, b, n); },
          [&](void* b, size_t n) { return esw_smcd_recv(st, b, n); }};
    if (side == 0) client(io, o, "smc");
    else server(io, o);
    esw_smcd_close(st);
    esw_smc_close(s);
    _exit(0);
  }
  int left = 2, rc = 0;
  while (left > 0) {
    pollfd p{srv.fd(), POLLIN, 0};
    poll(&p, 1, 5);
    srv.service();
    int st;
    pid_t w = waitpid(-1, &st, WNOHANG);
    if (w > 0) {
      left--;
      if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) rc = 1;
    }
  }
  for (uint32_t v : {1u, 2u}) srv.remove_endpoint(v);
  rmdir(dir.c_str());
  return rc;
}

int run_tcp(bool is_server, const char* addr, int port, const Opts& o) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) die("address");
  int fd;
  if (is_server) {
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l, reinterpret_cast<sockaddr*>(&sa), sizeof sa) || listen(l, 1)) die("bind/listen");
    fd = accept(l, nullptr, nullptr);
    close(l);
  } else {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    for (int i = 0; connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0; ++i) {
      if (i > 100) die("connect");
      usleep(50000);
      close(fd);
      fd = socket(AF_INET, SOCK_STREAM, 0);
    }
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  Io io{[&](const void* b, size_t n) {
          size_t done = 0;
          while (done < n) {
            ssize_t r = ::send(fd, static_cast<const char*>(b) + done, n - done, MSG_NOSIGNAL);
            if (r <= 0) return r;
            done += static_cast<size_t>(r);
          }
          return static_cast<ssize_t>(n);
        },
        [&](void* b, size_t n) { return ::recv(fd, b, n, 0); }};
  if (is_server) server(io, o);
  else client(io, o, "tcp");
  close(fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s smc|tcp-server ADDR PORT|tcp-client ADDR PORT [--size B] [--iters N] "
                         "[--mib M] [--spin S]\n", argv[0]);
    return 2;
  }
  std::string mode = argv[1];
  int i = 2;
  const char* addr = nullptr;
  int port = 0;
  if (mode != "smc") {
    if (argc < 4) return 2;
    addr = argv[2], port = std::atoi(argv[3]), i = 4;
  }
  Opts o;
  for (; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--size") o.size = std::strtoul(argv[i + 1], nullptr, 0);
    else if (k == "--iters") o.iters = std::atoi(argv[i + 1]);
    else if (k == "--mib") o.mib = std::strtoull(argv[i + 1], nullptr, 0);
    else if (k == "--spin") o.spin = std::atoi(argv[i + 1]);
    else return std::fprintf(stderr, "unknown option %s\n", argv[i]), 2;
  }
  if (o.size == 0 || o.iters <= 0) return 2;
  if (mode == "smc") return run_smc(o);
  if (mode == "tcp-server") return run_tcp(true, addr, port, o);
  if (mode == "tcp-client") return run_tcp(false, addr, port, o);
  return 2;
}
