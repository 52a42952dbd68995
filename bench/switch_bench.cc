// Switch-level benchmarks with a real EAL (--no-huge) and net_null ports: what applying rules costs (time, and
// memory per installed rule measured as the process's resident-set growth, i.e. everything the switch keeps:
// classifier, action lists, per-core counters, bookkeeping, the config model), and what one rule change costs
// inside a large rule set. Times are reported, never asserted.

#include <benchmark/benchmark.h>
#include <malloc.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <rte_eth_ring.h>
#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "dataplane/daemon/eal.h"
#include "dataplane/daemon/switch.h"

namespace {

esw::cfg::Config base_config() {
  esw::cfg::Config c;
  c.dataplane.worker_cores = {1};
  c.dataplane.memory_mb = 768;
  c.dataplane.hugepages = esw::cfg::HugepageMode::kOff;
  c.dataplane.mbufs = 4096;
  c.dataplane.mbuf_cache = 64;
  c.dataplane.file_prefix = fmt::format("esw-swbench-{}", getpid());
  c.dataplane.max_rules = 1 << 18;
  c.representors.kind = esw::cfg::RepresentorKind::kNone;
  c.pipeline.mode = esw::cfg::PipelineMode::kCrossConnect;
  for (int i = 0; i < 4; ++i) {
    esw::cfg::VportConfig v;
    v.name = fmt::format("vm{}", i);
    v.attach.devargs = fmt::format("net_null{},no-rx=1", i);
    v.spoofchk = false;
    c.vports.push_back(v);
  }
  return c;
}

// ACL-style rules: in_port + ipv4 src/dst + tcp dst over `masks` distinct masks.
void add_rules(esw::cfg::Config& c, size_t n, unsigned masks, uint32_t salt = 0) {
  esw::cfg::TableConfig t;
  t.id = 0;
  t.rules.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    esw::cfg::RuleConfig r;
    r.priority = static_cast<uint32_t>(i % 1000);
    const unsigned m = static_cast<unsigned>(i % masks);
    const uint32_t a = static_cast<uint32_t>(i * 7919 + salt);
    r.match.push_back({"in_port", fmt::format("vm{}", i % 4), {}});
    r.match.push_back({"ipv4_src", fmt::format("198.18.{}.{}/{}", (a >> 8) & 0xff, a & 0xff, 32 - (m % 8)), {}});
    r.match.push_back({"ipv4_dst", fmt::format("198.19.{}.{}", (a >> 16) & 0xff, (a >> 3) & 0xff), {}});
    if (m >= 8) r.match.push_back({"tcp_dst", fmt::format("{}", 1 + (i % 60000)), {}});
    r.actions.push_back({"count", "", {}});
    r.actions.push_back({"output", fmt::format("vm{}", (i + 1) % 4), {}});
    t.rules.push_back(std::move(r));
  }
  c.tables.push_back(std::move(t));
}

// Resident memory after giving freed heap back to the kernel (glibc keeps freed chunks otherwise, and the
// apply's temporaries would count as if the switch kept them).
size_t rss_bytes() {
  malloc_trim(0);
  std::ifstream f("/proc/self/statm");
  size_t pages = 0, rss = 0;
  f >> pages >> rss;
  return rss * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// Bytes the process has allocated and not freed (malloc's view): what the switch keeps, without the
// fragmentation freed temporaries leave in RSS.
size_t heap_bytes() {
  const struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

struct Env {
  Env() { esw::dp::Eal::init(base_config()); }
  ~Env() { esw::dp::Eal::cleanup(); }
};
Env& env() {
  static Env e;
  return e;
}

// Apply N rules to a running switch (from none); memory per rule = RSS growth / N (the rule set is kept alive
// while RSS is read). The config model that produced the rules is dropped first: only what the switch keeps
// counts.
void BM_ApplyRules(benchmark::State& state) {
  env();
  const size_t n = static_cast<size_t>(state.range(0));
  const unsigned masks = static_cast<unsigned>(state.range(1));
  double bytes_per_rule = 0, classifier_per_rule = 0, heap_per_rule = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto sw = std::make_unique<esw::dp::Switch>(base_config());
    sw->start();
    const size_t before = rss_bytes();  // before the rules' config model exists: it is dropped after the apply
    const size_t heap_before = heap_bytes();
    esw::cfg::Config c = base_config();
    add_rules(c, n, masks);
    state.ResumeTiming();
    const esw::dp::ApplyResult r = sw->apply(c);
    state.PauseTiming();
    if (!r.ok) state.SkipWithError(r.errors.empty() ? "apply failed" : r.errors[0].to_string().c_str());
    c = esw::cfg::Config{};
    sw->maintain();  // what eswitchd's main loop does every 50 ms: free snapshots past their grace period
    bytes_per_rule = static_cast<double>(rss_bytes() - before) / static_cast<double>(n);
    heap_per_rule = static_cast<double>(heap_bytes() - heap_before) / static_cast<double>(n);
    classifier_per_rule = static_cast<double>(sw->classifier_stats().snapshot_bytes) / static_cast<double>(n);
    state.counters["classifier_index_bytes_per_rule"] =
        static_cast<double>(sw->classifier_stats().index_bytes) / static_cast<double>(n);
    state.counters["pending_reclaim"] = static_cast<double>(sw->classifier_stats().pending_reclaim);
    {
      const size_t with_rules = heap_bytes();
      if (!sw->apply(base_config()).ok) state.SkipWithError("removing the rules failed");
      sw->maintain();
      state.counters["heap_freed_by_removal_per_rule"] =
          static_cast<double>(with_rules - heap_bytes()) / static_cast<double>(n);
    }
    sw->close();
    sw.reset();
    state.ResumeTiming();
  }
  state.counters["rules"] = static_cast<double>(n);
  state.counters["rules_per_s"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["rss_bytes_per_rule"] = bytes_per_rule;
  state.counters["heap_bytes_per_rule"] = heap_per_rule;
  state.counters["classifier_bytes_per_rule"] = classifier_per_rule;
}
BENCHMARK(BM_ApplyRules)->Args({1000, 4})->Args({10000, 16})->Args({100000, 16})->Unit(benchmark::kMillisecond)->Iterations(1);

// One rule changed in a big rule set: the reconcile must not rebuild the world.
void BM_ChangeOneRule(benchmark::State& state) {
  env();
  const size_t n = static_cast<size_t>(state.range(0));
  auto sw = std::make_unique<esw::dp::Switch>(base_config());
  sw->start();
  esw::cfg::Config a = base_config();
  add_rules(a, n, 16);
  esw::cfg::Config b = a;
  b.tables[0].rules[n / 2].priority += 1;
  if (!sw->apply(a).ok) state.SkipWithError("apply a failed");
  bool flip = false;
  for (auto _ : state) {
    const esw::dp::ApplyResult r = sw->apply(flip ? a : b);
    if (!r.ok || r.diff.size() != 2) state.SkipWithError("expected exactly one rule removed and one added");
    flip = !flip;
  }
  sw->close();
}
BENCHMARK(BM_ChangeOneRule)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond)->Iterations(3);

// A spoofing vport must cost only itself: vm1 has a backlog of legitimate frames for vm3, vm2 (the offender) a
// backlog of spoofed frames of the same size. Both backlogs sit in their rx rings before the switch starts, so
// the worker, not an injector thread, is the bottleneck. Reports vm1's forwarding rate alone and under the
// flood; the worker polls every queue once per loop with the same burst, so a flood can take at most its
// share of the loop, and its frames die early (parse + binding check, no flow cache, tables or tx).
void BM_SpoofFloodIsolation(benchmark::State& state) {
  env();
  constexpr unsigned kRing = 65536, kFrames = 50000;
  const bool flood = state.range(0) != 0;
  auto frame = [](const char* src_mac, const char* src_ip) {
    std::vector<uint8_t> f(64, 0);
    rte_ether_addr s{}, d{};
    rte_ether_unformat_addr(src_mac, &s);
    rte_ether_unformat_addr("02:00:c6:12:00:03", &d);
    std::memcpy(f.data(), d.addr_bytes, 6);
    std::memcpy(f.data() + 6, s.addr_bytes, 6);
    f[12] = 0x08;
    uint8_t* ip = f.data() + 14;
    ip[0] = 0x45;
    ip[3] = 50;  // total length: 20 + 8 + 22
    ip[8] = 64;
    ip[9] = 17;
    in_addr a{}, b{};
    inet_pton(AF_INET, src_ip, &a);
    inet_pton(AF_INET, "198.18.0.3", &b);
    std::memcpy(ip + 12, &a, 4);
    std::memcpy(ip + 16, &b, 4);
    uint8_t* udp = ip + 20;
    udp[1] = 7;
    udp[3] = 7;
    udp[5] = 30;
    return f;
  };
  const std::vector<uint8_t> legit = frame("02:00:c6:12:00:01", "198.18.0.1");
  const std::vector<uint8_t> spoof = frame("02:00:c6:12:00:02", "198.18.9.9");  // vm2's MAC, an unbound IP
  double rate = 0;
  for (auto _ : state) {
    state.PauseTiming();
    static int seq = 0;
    const std::string tag = fmt::format("iso{}", seq++);
    rte_ring* rings[6];
    for (int i = 0; i < 6; ++i) {
      rings[i] = rte_ring_create(fmt::format("{}_{}", tag, i).c_str(), kRing, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
    }
    esw::cfg::Config c = base_config();
    c.vports.clear();
    c.dataplane.mbufs = 2 * kFrames + 8192;
    c.pipeline.mode = esw::cfg::PipelineMode::kL2;
    for (int i = 0; i < 3; ++i) {
      const std::string name = fmt::format("{}v{}", tag, i);
      rte_eth_from_rings(name.c_str(), &rings[2 * i], 1, &rings[2 * i + 1], 1, SOCKET_ID_ANY);
      esw::cfg::VportConfig v;
      v.name = fmt::format("vm{}", i + 1);
      v.attach.devargs = "net_ring_" + name;
      v.hw_addr = fmt::format("02:00:c6:12:00:0{}", i + 1);
      v.ipv4 = {fmt::format("198.18.0.{}", i + 1)};
      c.vports.push_back(v);
    }
    esw::dp::Switch sw(c);
    auto fill = [&](rte_ring* r, const std::vector<uint8_t>& f, unsigned n) {
      for (unsigned k = 0; k < n; ++k) {
        rte_mbuf* m = rte_pktmbuf_alloc(sw.pool());
        std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(f.size())), f.data(), f.size());
        rte_ring_enqueue(r, m);
      }
    };
    fill(rings[0], legit, kFrames);
    if (flood) fill(rings[2], spoof, kFrames);
    state.ResumeTiming();
    const auto t0 = std::chrono::steady_clock::now();
    sw.start();
    unsigned got = 0, first_batch = 0;
    void* objs[256];
    std::chrono::steady_clock::time_point first{};
    while (got < kFrames) {
      const unsigned n = rte_ring_dequeue_burst(rings[5], objs, 256, nullptr);
      if (n != 0 && got == 0) {
        first = std::chrono::steady_clock::now();  // start-up excluded: from the first frame out to the last
        first_batch = n;
      }
      for (unsigned k = 0; k < n; ++k) rte_pktmbuf_free(static_cast<rte_mbuf*>(objs[k]));
      got += n;
      if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(20)) break;
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - first).count();
    state.PauseTiming();
    rate = (got - first_batch) / secs;
    if (got < kFrames) state.SkipWithError("legitimate frames were lost");
    sw.close();
    for (rte_ring* r : rings) {
      while (rte_ring_dequeue(r, objs) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(objs[0]));
      rte_ring_free(r);
    }
    state.ResumeTiming();
  }
  state.counters["legit_mpps"] = rate / 1e6;
}
BENCHMARK(BM_SpoofFloodIsolation)->Arg(0)->Arg(1)->ArgName("flood")->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace

BENCHMARK_MAIN();
