// Classifier and flow cache micro-benchmarks. items/s = packets/s (lookups) or rules/s (updates).
// Rule sets are built once per (rules, masks) and kept, so a tiny --benchmark_min_time stays quick.
#include <benchmark/benchmark.h>

#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "common/ref_classifier.h"
#include "dataplane/fastpath/classifier.h"
#include "dataplane/fastpath/flow_cache.h"
#include "dataplane/fastpath/rcu.h"

namespace {

using namespace esw::dp;
using esw::test::set_prefix;

constexpr unsigned kBurst = 32;
constexpr unsigned kPackets = 4096;  // power of two

Rcu& rcu() {
  static Rcu r(1);  // no reader registered: reclaim() frees at once
  return r;
}

// 16 mask shapes, each with enough entropy that 100k random rules stay (nearly) distinct.
FlowKey bench_mask(unsigned i) {
  FlowKey m{};
  switch (i % 16) {
    case 0: m.in_port = 0xffff; m.ipv4_dst = 0xffffffff; m.tp_dst = 0xffff; break;
    case 1: set_prefix(reinterpret_cast<uint8_t*>(&m.ipv4_src), 4, 24); m.ipv4_dst = 0xffffffff; break;
    case 2: set_prefix(m.eth_dst, 6, 48); m.vlan_tci[0] = 0xffff; break;
    case 3: m.ipv4_src = 0xffffffff; m.ip_proto = 0xff; m.tp_src = 0xffff; break;
    case 4: set_prefix(m.ipv6_dst, 16, 64); break;
    case 5: set_prefix(m.ipv6_src, 16, 128); break;
    case 6: m.tun_id = 0xffffff; set_prefix(m.eth_dst, 6, 48); break;
    case 7: m.regs[0] = 0xffffffff; set_prefix(reinterpret_cast<uint8_t*>(&m.ipv4_dst), 4, 24); break;
    case 8: set_prefix(m.eth_src, 6, 48); break;
    case 9: m.ipv4_dst = 0xffffffff; m.in_port = 0x00ff; break;
    case 10: m.in_port = 0xffff; m.eth_type = 0xffff; m.ipv4_src = 0xffffffff; break;
    case 11: m.tp_src = 0xffff; m.tp_dst = 0xffff; m.ip_proto = 0xff; m.ipv4_dst = 0xffff; break;
    case 12: set_prefix(m.ipv6_dst, 16, 48); m.tp_dst = 0xffff; break;
    case 13: m.regs[1] = 0xffffffff; m.regs[0] = 0xffffffff; break;
    case 14: m.roce_dqp = 0xffffff; m.flags = 0xffff; break;
    default: m.ip_proto = 0xff; m.ipv4_src = 0xffffffff; m.ipv4_dst = 0xffffffff; break;
  }
  return m;
}

FlowKey random_key(std::mt19937_64& rng) {
  FlowKey k;
  for (unsigned w = 0; w < kFlowKeyWords; ++w) key_words(k)[w] = rng();
  return k;
}

std::vector<RuleSpec> make_rules(unsigned n, unsigned masks, uint64_t seed, uint32_t first_id = 1) {
  std::mt19937_64 rng(seed);
  std::vector<RuleSpec> v(n);
  for (unsigned i = 0; i < n; ++i) {
    RuleSpec& s = v[i];
    s.id = first_id + i;
    s.table = 0;
    s.priority = uint32_t(rng() % 16);
    s.mask = bench_mask(i % masks);
    const FlowKey r = random_key(rng);
    for (unsigned w = 0; w < kFlowKeyWords; ++w) key_words(s.value)[w] = key_words(r)[w] & key_words(s.mask)[w];
    s.actions = &v[i];
  }
  return v;
}

struct RuleSet {
  std::unique_ptr<Classifier> cls;
  std::vector<FlowKey> pkts;
  double bytes_per_rule = 0;
  double hit_rate = 0;
  size_t subtables = 0;
};

double bytes_per_rule(const Classifier& c) {
  const ClassifierStats st = c.stats();
  return st.rules ? double(st.snapshot_bytes + st.index_bytes) / double(st.rules) : 0.0;
}

RuleSet& rule_set(unsigned n, unsigned masks) {
  static std::map<std::pair<unsigned, unsigned>, RuleSet> sets;
  RuleSet& s = sets[{n, masks}];
  if (s.cls) return s;
  s.cls = std::make_unique<Classifier>(rcu());
  const std::vector<RuleSpec> rules = make_rules(n, masks, n * 31 + masks);
  Batch b;
  b.reserve(n + 1);
  b.add_table(0);
  for (const RuleSpec& r : rules) b.add(r);
  if (!s.cls->commit(b).ok()) std::abort();
  s.cls->reclaim();
  std::mt19937_64 rng(7);
  s.pkts.resize(kPackets);
  for (FlowKey& k : s.pkts) {
    k = random_key(rng);
    if (rng() % 10 != 0) {  // 90% derived from a rule, the rest random (misses)
      const RuleSpec& r = rules[rng() % rules.size()];
      for (unsigned w = 0; w < kFlowKeyWords; ++w)
        key_words(k)[w] = (key_words(k)[w] & ~key_words(r.mask)[w]) | key_words(r.value)[w];
    }
  }
  size_t hits = 0;
  for (const FlowKey& k : s.pkts) hits += lookup(*s.cls->acquire(), 0, k) != nullptr;
  s.hit_rate = double(hits) / kPackets;
  s.bytes_per_rule = bytes_per_rule(*s.cls);
  s.subtables = s.cls->stats().subtables;
  return s;
}

void set_counters(benchmark::State& st, const RuleSet& s) {
  st.counters["B/rule"] = s.bytes_per_rule;
  st.counters["hit%"] = 100.0 * s.hit_rate;
  st.counters["subtables"] = double(s.subtables);
}

// Burst lookup in one table: the classifier's core cost per packet.
void BM_LookupBurst(benchmark::State& st) {
  RuleSet& s = rule_set(unsigned(st.range(0)), unsigned(st.range(1)));
  const TableSet& snap = *s.cls->acquire();
  const FlowKey* ptrs[kBurst];
  const Rule* out[kBurst];
  size_t i = 0;
  for (auto _ : st) {
    for (unsigned j = 0; j < kBurst; ++j) ptrs[j] = &s.pkts[(i + j) & (kPackets - 1)];
    lookup_burst(snap, 0, ptrs, kBurst, out);
    benchmark::DoNotOptimize(out);
    i += kBurst;
  }
  st.SetItemsProcessed(int64_t(st.iterations()) * kBurst);
  set_counters(st, s);
}
BENCHMARK(BM_LookupBurst)->ArgsProduct({{1, 100, 10000, 100000}, {1, 4, 16}});

// The full walk as the pipeline calls it (the key is copied because the walk rewrites it).
void BM_WalkBurst(benchmark::State& st) {
  RuleSet& s = rule_set(unsigned(st.range(0)), unsigned(st.range(1)));
  const TableSet& snap = *s.cls->acquire();
  FlowKey keys[kBurst];
  FlowKey* ptrs[kBurst];
  WalkResult res[kBurst];
  for (unsigned j = 0; j < kBurst; ++j) ptrs[j] = &keys[j];
  size_t i = 0;
  for (auto _ : st) {
    for (unsigned j = 0; j < kBurst; ++j) keys[j] = s.pkts[(i + j) & (kPackets - 1)];
    walk_burst(snap, ptrs, kBurst, res);
    benchmark::DoNotOptimize(res);
    i += kBurst;
  }
  st.SetItemsProcessed(int64_t(st.iterations()) * kBurst);
  set_counters(st, s);
}
BENCHMARK(BM_WalkBurst)->Args({10000, 4})->Args({100000, 16});

// One packet at a time, for comparison with the burst path.
void BM_LookupScalar(benchmark::State& st) {
  RuleSet& s = rule_set(unsigned(st.range(0)), unsigned(st.range(1)));
  const TableSet& snap = *s.cls->acquire();
  size_t i = 0;
  for (auto _ : st) {
    benchmark::DoNotOptimize(lookup(snap, 0, s.pkts[i & (kPackets - 1)]));
    ++i;
  }
  st.SetItemsProcessed(int64_t(st.iterations()));
  set_counters(st, s);
}
BENCHMARK(BM_LookupScalar)->Args({10000, 4})->Args({100000, 16});

// ---- flow cache ----

void flow_cache_bench(benchmark::State& st, bool hit) {
  static std::vector<FlowKey> keys = [] {
    std::mt19937_64 rng(11);
    std::vector<FlowKey> v(2 * kPackets);
    for (FlowKey& k : v) k = random_key(rng);
    return v;
  }();
  FlowCache<const void*> cache(2 * kPackets * 2, 100);
  for (unsigned i = 0; i < kPackets; ++i) cache.insert(keys[i], cache.hash(keys[i]), 1, &keys[i]);
  const size_t base = hit ? 0 : kPackets;  // the second half was never inserted
  size_t i = 0;
  uint64_t found = 0;
  uint64_t hs[kBurst];
  for (auto _ : st) {
    for (unsigned j = 0; j < kBurst; ++j) {
      hs[j] = cache.hash(keys[base + ((i + j) & (kPackets - 1))]);
      cache.prefetch(hs[j]);
    }
    for (unsigned j = 0; j < kBurst; ++j)
      found += cache.find(keys[base + ((i + j) & (kPackets - 1))], hs[j], 1) != nullptr;
    i += kBurst;
  }
  benchmark::DoNotOptimize(found);
  st.SetItemsProcessed(int64_t(st.iterations()) * kBurst);
  st.counters["hit%"] = 100.0 * double(found) / double(st.iterations() * kBurst);
}
void BM_FlowCacheHit(benchmark::State& st) { flow_cache_bench(st, true); }
void BM_FlowCacheMiss(benchmark::State& st) { flow_cache_bench(st, false); }
BENCHMARK(BM_FlowCacheHit);
BENCHMARK(BM_FlowCacheMiss);

// ---- updates ----

const Batch& bulk_add_batch(unsigned masks) {
  static std::map<unsigned, Batch> batches;
  Batch& b = batches[masks];
  if (b.empty()) {
    const std::vector<RuleSpec> rules = make_rules(100000, masks, 99 + masks);
    b.reserve(rules.size() + 1);
    b.add_table(0);
    for (const RuleSpec& r : rules) b.add(r);
  }
  return b;
}

void BM_BulkInsert100k(benchmark::State& st) {
  const Batch& b = bulk_add_batch(unsigned(st.range(0)));
  double bpr = 0;
  for (auto _ : st) {
    auto cls = std::make_unique<Classifier>(rcu());
    const auto t0 = std::chrono::steady_clock::now();
    const CommitResult r = cls->commit(b);
    cls->reclaim();
    const auto t1 = std::chrono::steady_clock::now();
    if (!r.ok()) st.SkipWithError(r.message().c_str());
    st.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
    bpr = bytes_per_rule(*cls);
  }
  st.SetItemsProcessed(int64_t(st.iterations()) * 100000);
  st.counters["B/rule"] = bpr;
}
BENCHMARK(BM_BulkInsert100k)->Arg(1)->Arg(16)->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_BulkDelete100k(benchmark::State& st) {
  const Batch& add = bulk_add_batch(unsigned(st.range(0)));
  Batch del;
  del.reserve(100000);
  for (uint32_t id = 1; id <= 100000; ++id) del.remove(id);
  for (auto _ : st) {
    auto cls = std::make_unique<Classifier>(rcu());
    if (!cls->commit(add).ok()) std::abort();
    cls->reclaim();
    const auto t0 = std::chrono::steady_clock::now();
    const CommitResult r = cls->commit(del);
    cls->reclaim();
    const auto t1 = std::chrono::steady_clock::now();
    if (!r.ok()) st.SkipWithError(r.message().c_str());
    st.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
  }
  st.SetItemsProcessed(int64_t(st.iterations()) * 100000);
}
BENCHMARK(BM_BulkDelete100k)->Arg(1)->Arg(16)->UseManualTime()->Unit(benchmark::kMillisecond);

// One rule modified (new priority and value: a remove + an add) in a 100k-rule set, published and reclaimed.
void BM_SingleChange100k(benchmark::State& st) {
  RuleSet& s = rule_set(100000, unsigned(st.range(0)));
  std::mt19937_64 rng(5);
  const std::vector<RuleSpec> pool = make_rules(1024, unsigned(st.range(0)), 1234);
  size_t i = 0;
  for (auto _ : st) {
    RuleSpec r = pool[i & 1023];
    r.id = uint32_t(1 + rng() % 100000);
    Batch b;
    b.modify(r);
    const CommitResult res = s.cls->commit(b);
    s.cls->reclaim();
    if (!res.ok()) st.SkipWithError(res.message().c_str());
    ++i;
  }
  st.SetItemsProcessed(int64_t(st.iterations()));
  st.counters["B/rule"] = bytes_per_rule(*s.cls);
}
BENCHMARK(BM_SingleChange100k)->Arg(1)->Arg(16)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
