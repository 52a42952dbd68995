// The config loader's cost against the size of its input: load_config_string() on configs of 1k to 100k rules
// (one-string form and mapping form) and on one mapping of 1k to 100k keys (a rule's match: the loader takes any
// field name there, the rule compiler judges them later). Google Benchmark fits the complexity over the sizes
// (the "_BigO" line: it should say N, i.e. linear, and "_RMS" how well). Times are reported, never asserted; the
// unit test config_test asserts linearity coarsely.

#include <benchmark/benchmark.h>

#include <string>

#include <fmt/format.h>

#include "config/config.h"

namespace {

std::string head() {
  return "apiVersion: eswitch/v1\n"
         "dataplane:\n  max_rules: 262144\n"
         "uplinks:\n  - name: uplink0\n    attach: { devargs: net_null0 }\n"
         "vports:\n"
         "  - name: vm1\n    attach: { devargs: net_null1 }\n    spoofchk: false\n"
         "  - name: vm2\n    attach: { devargs: net_null2 }\n    spoofchk: false\n"
         "tables:\n  - id: 0\n    rules:\n";
}

std::string compact_rules(size_t n) {
  std::string y = head();
  for (size_t i = 0; i < n; ++i) {
    y += fmt::format("      - \"priority=10,in_port=vm1,udp,ipv4_dst=198.19.{}.{},udp_dst={} "
                     "actions=count,output:uplink0\"\n",
                     (i >> 8) & 255, i & 255, 1000 + (i >> 16));
  }
  return y;
}

std::string mapping_rules(size_t n) {
  std::string y = head();
  for (size_t i = 0; i < n; ++i) {
    y += fmt::format("      - {{priority: 10, match: {{in_port: vm1, udp: true, ipv4_dst: 198.19.{}.{}, udp_dst: {}}}, "
                     "actions: [count, output: uplink0]}}\n",
                     (i >> 8) & 255, i & 255, 1000 + (i >> 16));
  }
  return y;
}

std::string mapping_keys(size_t n) {
  std::string y = head() + "      - actions: [drop]\n        match:\n";
  for (size_t i = 0; i < n; ++i) y += fmt::format("          k{}: {}\n", i, i);
  return y;
}

template <std::string (*Make)(size_t)>
void BM_Load(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const std::string yaml = Make(n);
  for (auto _ : state) {
    esw::cfg::LoadResult r = esw::cfg::load_config_string(yaml, "bench.yaml");
    if (!r.config) state.SkipWithError(r.errors.empty() ? "no config" : r.errors.front().to_string().c_str());
    benchmark::DoNotOptimize(r);
  }
  state.SetComplexityN(static_cast<int64_t>(n));
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(n));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(yaml.size()));
}

}  // namespace

BENCHMARK(BM_Load<compact_rules>)
    ->Name("BM_LoadCompactRules")
    ->RangeMultiplier(10)
    ->Range(1000, 100000)
    ->Unit(benchmark::kMillisecond)
    ->Complexity();
BENCHMARK(BM_Load<mapping_rules>)
    ->Name("BM_LoadMappingRules")
    ->RangeMultiplier(10)
    ->Range(1000, 100000)
    ->Unit(benchmark::kMillisecond)
    ->Complexity();
BENCHMARK(BM_Load<mapping_keys>)
    ->Name("BM_LoadMappingKeys")
    ->RangeMultiplier(10)
    ->Range(1000, 100000)
    ->Unit(benchmark::kMillisecond)
    ->Complexity();

BENCHMARK_MAIN();
