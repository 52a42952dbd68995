// The fast-path cost of SMC awareness (issue 11, "Done when" item 3), through the real switch: a real EAL
// (--no-huge), eswitchd's Switch with one worker, net_ring vports, the real pipeline. Not a model.
//
// Scenarios (as bench/system names them, reduced to what one net_ring source can do):
//   a: port to port: vm1 -> vm3, one TCP flow (64-byte frames carrying 6 payload bytes), L2 pipeline,
//      spoofchk off.
//   b: the same with anti-spoofing: vports bound to MAC + IPv4 (spoofchk on), so the CLC identity check is live.
// Each with:
//   none:      no SMC session in the switch.
//   sessions:  4000 SMC sessions (SYN with the option vm1 -> vm2, distinct ports) in the table and in the view
//              the workers read, loaded before the measurement.
//   refused:   (b only) the same plus one connection whose CLC Proposal claimed a foreign MAC: while a refused
//              connection exists, every TCP data segment pays a lookup in the refused set.
// One interleaved run: the variants take turns, `rounds` times (Google Benchmark's iterations run the same
// variant back to back, which a shared, loaded machine turns into noise between variants); reports each
// variant's median cost in worker run time per frame (ns, from /proc schedstat of the lcore-worker thread while
// it forwards a 50,000-frame backlog: wall-clock rates on a shared 2-core machine measure the scheduler) and its
// ratio to "none".
//
//   build/bench/smc_switch_bench [--benchmark_filter=...]      (rounds: the benchmark argument, default 5)

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <rte_eth_ring.h>
#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "dataplane/daemon/eal.h"
#include "dataplane/daemon/switch.h"

namespace {

constexpr unsigned kRing = 65536;
constexpr unsigned kFrames = 50000;
constexpr unsigned kSessions = 4000;

esw::cfg::Config base_config() {
  esw::cfg::Config c;
  c.dataplane.worker_cores = {1};
  c.dataplane.memory_mb = 768;
  c.dataplane.hugepages = esw::cfg::HugepageMode::kOff;
  c.dataplane.mbufs = kFrames + kSessions + 8192;
  c.dataplane.mbuf_cache = 64;
  c.dataplane.file_prefix = fmt::format("esw-smcbench-{}", getpid());
  c.representors.kind = esw::cfg::RepresentorKind::kNone;
  c.pipeline.mode = esw::cfg::PipelineMode::kL2;
  c.dataplane.idle_sleep_us = 200;  // idle after the backlog: sleep, so the measured run time is the forwarding
  return c;
}

struct Env {
  Env() { esw::dp::Eal::init(base_config()); }
  ~Env() { esw::dp::Eal::cleanup(); }
};
Env& env() {
  static Env e;
  return e;
}

const char* kMac[3] = {"02:00:c6:12:00:01", "02:00:c6:12:00:02", "02:00:c6:12:00:03"};
const char* kIp[3] = {"198.18.0.1", "198.18.0.2", "198.18.0.3"};

uint16_t csum_fold(uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(~s);
}

// An IPv4/TCP frame from vport `from` to vport `to`; options and payload as given (checksums valid).
std::vector<uint8_t> tcp_frame(int from, int to, uint16_t sport, uint16_t dport, uint8_t flags,
                               const std::vector<uint8_t>& opts, const std::vector<uint8_t>& payload,
                               const char* mac_override = nullptr) {
  const size_t tcp_len = 20 + opts.size() + payload.size();
  std::vector<uint8_t> f(std::max<size_t>(60, 14 + 20 + tcp_len), 0);
  rte_ether_addr s{}, d{};
  rte_ether_unformat_addr(mac_override != nullptr ? mac_override : kMac[from], &s);
  rte_ether_unformat_addr(kMac[to], &d);
  std::memcpy(f.data(), d.addr_bytes, 6);
  std::memcpy(f.data() + 6, s.addr_bytes, 6);
  f[12] = 0x08;
  uint8_t* ip = f.data() + 14;
  ip[0] = 0x45;
  const uint16_t tot = static_cast<uint16_t>(20 + tcp_len);
  ip[2] = tot >> 8;
  ip[3] = tot & 0xff;
  ip[8] = 64;
  ip[9] = 6;
  in_addr a{}, b{};
  inet_pton(AF_INET, kIp[from], &a);
  inet_pton(AF_INET, kIp[to], &b);
  std::memcpy(ip + 12, &a, 4);
  std::memcpy(ip + 16, &b, 4);
  uint32_t sum = 0;
  for (int i = 0; i < 20; i += 2) sum += ip[i] << 8 | ip[i + 1];
  const uint16_t ipc = csum_fold(sum);
  ip[10] = ipc >> 8;
  ip[11] = ipc & 0xff;
  uint8_t* t = ip + 20;
  t[0] = sport >> 8;
  t[1] = sport & 0xff;
  t[2] = dport >> 8;
  t[3] = dport & 0xff;
  t[7] = 1;  // seq 1
  t[12] = static_cast<uint8_t>(((20 + opts.size()) / 4) << 4);
  t[13] = flags;
  t[14] = 0xff;
  std::memcpy(t + 20, opts.data(), opts.size());
  std::memcpy(t + 20 + opts.size(), payload.data(), payload.size());
  sum = 0;
  for (int i = 12; i < 20; i += 2) sum += ip[i] << 8 | ip[i + 1];
  sum += 6 + static_cast<uint32_t>(tcp_len);
  for (size_t i = 0; i < tcp_len; i += 2) sum += t[i] << 8 | (i + 1 < tcp_len ? t[i + 1] : 0);
  const uint16_t tc = csum_fold(sum);
  t[16] = tc >> 8;
  t[17] = tc & 0xff;
  return f;
}

// A 92-byte SMC-R v1 Proposal (layout: shared/design/SMC-NOTES.md) claiming `mac` as its RoCE MAC.
std::vector<uint8_t> proposal(const char* mac) {
  std::vector<uint8_t> m(92, 0);
  const uint8_t eye[4] = {0xe2, 0xd4, 0xc3, 0xd9};
  std::memcpy(m.data(), eye, 4);
  m[4] = 1;
  m[6] = 92;
  m[7] = 0x10;
  m[16 + 10] = 0xff;  // GID ::ffff:198.18.0.1
  m[16 + 11] = 0xff;
  inet_pton(AF_INET, kIp[0], m.data() + 28);
  rte_ether_addr a{};
  rte_ether_unformat_addr(mac, &a);
  std::memcpy(m.data() + 32, a.addr_bytes, 6);
  m[39] = 40;          // iparea offset
  inet_pton(AF_INET, "198.18.0.0", m.data() + 80);
  m[84] = 24;
  std::memcpy(m.data() + 88, eye, 4);
  return m;
}

// The DPDK worker thread (EAL names it lcore-worker-N) and its run time in ns (/proc schedstat, first field).
int worker_tid() {
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(e.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (name.rfind("lcore-worker", 0) == 0 || name.rfind("rte-worker", 0) == 0 || name.rfind("lcore-slave", 0) == 0) return std::stoi(e.path().filename().string());
  }
  return -1;
}
uint64_t run_ns(int tid) {
  std::ifstream f(fmt::format("/proc/self/task/{}/schedstat", tid));
  uint64_t ns = 0;
  f >> ns;
  return ns;
}

struct Variant {
  char scenario;  // 'a' | 'b'
  const char* smc;  // "none" | "sessions" | "refused"
  std::string name() const { return fmt::format("{}/{}", scenario, smc); }
};

// One measurement: the worker's run time per frame (ns) forwarding vm1 -> vm3 after the SMC state of the variant
// is loaded; <0 on failure.
double measure(const Variant& v, std::string& err) {
  static int seq = 0;
  const std::string tag = fmt::format("smcb{}", seq++);
  rte_ring* rings[6];
  for (int i = 0; i < 6; ++i) {
    rings[i] = rte_ring_create(fmt::format("{}_{}", tag, i).c_str(), kRing, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  }
  esw::cfg::Config c = base_config();
  for (int i = 0; i < 3; ++i) {
    const std::string name = fmt::format("{}v{}", tag, i);
    rte_eth_from_rings(name.c_str(), &rings[2 * i], 1, &rings[2 * i + 1], 1, SOCKET_ID_ANY);
    esw::cfg::VportConfig vc;
    vc.name = fmt::format("vm{}", i + 1);
    vc.attach.devargs = "net_ring_" + name;
    vc.hw_addr = kMac[i];
    vc.ipv4 = {kIp[i]};
    vc.spoofchk = v.scenario == 'b';
    c.vports.push_back(vc);
  }
  double rate = -1;
  {
    esw::dp::Switch sw(c);
    auto push = [&](rte_ring* r, const std::vector<uint8_t>& f) {
      rte_mbuf* m = rte_pktmbuf_alloc(sw.pool());
      std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(f.size())), f.data(), f.size());
      rte_ring_enqueue(r, m);
    };
    void* objs[256];
    auto drain = [&] {
      for (int i = 1; i < 6; i += 2) {
        unsigned n;
        while ((n = rte_ring_dequeue_burst(rings[i], objs, 256, nullptr)) != 0) {
          for (unsigned k = 0; k < n; ++k) rte_pktmbuf_free(static_cast<rte_mbuf*>(objs[k]));
        }
      }
    };
    sw.start();
    size_t want = 0;
    const std::vector<uint8_t> smc_opt = {1, 1, 254, 6, 0xe2, 0xd4, 0xc3, 0xd9};
    if (std::strcmp(v.smc, "none") != 0) {
      for (unsigned k = 0; k < kSessions; ++k) {
        push(rings[0], tcp_frame(0, 1, static_cast<uint16_t>(20000 + k), 5000, 0x02, smc_opt, {}));
      }
      want = kSessions;
    }
    if (std::strcmp(v.smc, "refused") == 0) {
      push(rings[0], tcp_frame(0, 1, 19999, 5000, 0x02, smc_opt, {}));
      push(rings[0], tcp_frame(0, 1, 19999, 5000, 0x18, {}, proposal("02:00:c6:12:00:99")));
      want += 1;
    }
    const auto t_load = std::chrono::steady_clock::now();
    for (;;) {
      sw.maintain();
      drain();
      const esw::dp::SmcReport r = sw.smc_report();
      const bool refused_ok = std::strcmp(v.smc, "refused") != 0 ||
                              std::any_of(r.sessions.begin(), r.sessions.end(),
                                          [](const esw::dp::SmcSessionInfo& s) { return s.state == "refused"; });
      if (r.sessions.size() == want && refused_ok) break;
      if (std::chrono::steady_clock::now() - t_load > std::chrono::seconds(30)) {
        err = fmt::format("{}: {} SMC sessions loaded, want {}", v.name(), r.sessions.size(), want);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (err.empty()) {
      sw.maintain();  // publish the final view
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      drain();
      // The measured traffic: one TCP flow vm1 -> vm3 with 6 payload bytes, enqueued in one bulk call (the
      // worker, not this thread, is the bottleneck).
      const std::vector<uint8_t> f = tcp_frame(0, 2, 33000, 80, 0x18, {}, {'a', 'b', 'c', 'd', 'e', 'f'});
      std::vector<rte_mbuf*> ms(kFrames);
      if (rte_pktmbuf_alloc_bulk(sw.pool(), ms.data(), kFrames) != 0) {
        err = "mbuf pool too small";
      } else {
        for (rte_mbuf* m : ms) std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(f.size())), f.data(), f.size());
        // The worker's own run time (schedstat, ns on a CPU) while it forwards the backlog: on a shared, loaded
        // machine wall-clock rates measure the scheduler; run time per packet measures the pipeline. Outputs
        // stay in the (large) tx ring until the end; the worker sleeps when idle, so little polling is counted
        // after the last frame.
        const int tid = worker_tid();
        if (tid < 0) {
          err = "no lcore-worker thread found in /proc/self/task:";
          for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
            std::ifstream comm(e.path() / "comm");
            std::string name;
            std::getline(comm, name);
            err += " " + name;
          }
          rte_pktmbuf_free_bulk(ms.data(), kFrames);
        } else {
          const uint64_t run0 = run_ns(tid);
          const auto t0 = std::chrono::steady_clock::now();
          rte_ring_enqueue_bulk(rings[0], reinterpret_cast<void**>(ms.data()), kFrames, nullptr);
          while (rte_ring_count(rings[5]) < kFrames &&
                 std::chrono::steady_clock::now() - t0 < std::chrono::seconds(30)) {
            std::this_thread::sleep_for(std::chrono::microseconds(100));
          }
          const uint64_t run1 = run_ns(tid);
          const unsigned got = rte_ring_count(rings[5]);
          if (got < kFrames) {
            err = fmt::format("{}: {} of {} frames forwarded", v.name(), got, kFrames);
          } else {
            rate = static_cast<double>(run1 - run0) / kFrames;  // ns of worker run time per frame
          }
        }
      }
    }
    sw.close();
  }
  for (rte_ring* r : rings) {
    void* o;
    while (rte_ring_dequeue(r, &o) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(o));
    rte_ring_free(r);
  }
  return rate;
}

void BM_SmcAwarenessCost(benchmark::State& state) {
  env();
  const unsigned rounds = static_cast<unsigned>(state.range(0));
  const std::vector<Variant> variants = {{'a', "none"},     {'a', "sessions"}, {'b', "none"},
                                         {'b', "sessions"}, {'b', "refused"}};
  std::map<std::string, std::vector<double>> rates;
  for (auto _ : state) {
    std::string warm_err;
    measure(variants[0], warm_err);  // discarded: the process's first run pays page faults and cold caches
    for (unsigned r = 0; r < rounds; ++r) {
      for (const Variant& v : variants) {
        std::string err;
        const double ns = measure(v, err);
        if (!err.empty()) {
          state.SkipWithError(err.c_str());
          return;
        }
        rates[v.name()].push_back(ns);
      }
    }
  }
  auto median = [](std::vector<double> x) {
    std::sort(x.begin(), x.end());
    return x[x.size() / 2];
  };
  for (const Variant& v : variants) {
    const double m = median(rates[v.name()]);
    state.counters[v.name() + "_ns_per_pkt"] = m;
    const double base = median(rates[fmt::format("{}/none", v.scenario)]);
    if (std::strcmp(v.smc, "none") != 0) state.counters[v.name() + "_vs_none"] = m / base;
    std::vector<double> all = rates[v.name()];
    std::sort(all.begin(), all.end());
    fmt::print(stderr, "{:<12} median {:7.1f} ns/frame of worker run time ({:.2f} Mpps per core) [{:.1f} .. {:.1f}] "
               "over {} runs{}\n", v.name(), m, 1e3 / m, all.front(), all.back(), all.size(),
               std::strcmp(v.smc, "none") != 0 ? fmt::format(", {:+.1f}% vs {}/none", (m / base - 1) * 100, v.scenario)
                                                : std::string());
  }
}
BENCHMARK(BM_SmcAwarenessCost)->Arg(1)->Arg(5)->ArgName("rounds")->Unit(benchmark::kSecond)->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
