// Switch-level benchmarks with a real EAL (--no-huge) and net_null ports: what applying rules costs (time, and
// memory per installed rule measured as the process's resident-set growth, i.e. everything the switch keeps:
// classifier, action lists, per-core counters, bookkeeping, the config model), and what one rule change costs
// inside a large rule set. Times are reported, never asserted.

#include <benchmark/benchmark.h>
#include <malloc.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "dataplane/eal.h"
#include "dataplane/switch.h"

namespace {

esw::cfg::Config base_config() {
  esw::cfg::Config c;
  c.dataplane.worker_cores = {1};
  c.dataplane.memory_mb = 256;
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

}  // namespace

BENCHMARK_MAIN();
