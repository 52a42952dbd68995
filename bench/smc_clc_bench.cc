// SMC micro-benchmarks: what SMC awareness costs per segment in the worker (find_smc_option on a SYN's options,
// probe() on a payload that is / is not CLC), parse/build of CLC messages, and the session table's event rate
// on the main lcore. items/s = segments (or messages, or events) per second. Times are reported, never asserted.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/smc_clc_cases.h"
#include "dataplane/smc/clc.h"
#include "dataplane/smc/session_table.h"

namespace {

using namespace esw::smc;         // NOLINT: bench
using namespace esw::smc::cases;  // NOLINT: bench
using Bytes = std::vector<uint8_t>;

Bytes encode(const Message& m) {
  Bytes b(kMaxMsgLen);
  b.resize(build(m, b).size);
  return b;
}

void BM_FindSmcOption(benchmark::State& state) {
  // A Linux SYN's options: MSS, SACK-permitted, timestamps, NOP, window scale, NOP NOP SMC.
  const uint8_t opts[] = {2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
                          1, 1, kTcpOptKind, kTcpOptLen, 0xe2, 0xd4, 0xc3, 0xd9};
  for (auto _ : state) {
    benchmark::DoNotOptimize(opts);
    TcpOptScan s = find_smc_option(opts);
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FindSmcOption);

void BM_ProbeNotClc(benchmark::State& state) {
  const std::string http = "GET /index.html HTTP/1.1\r\nHost: 198.18.0.2\r\n\r\n";
  const std::span<const uint8_t> p(reinterpret_cast<const uint8_t*>(http.data()), http.size());
  for (auto _ : state) {
    benchmark::DoNotOptimize(p.data());
    Probe r = probe(p);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ProbeNotClc);

void BM_ProbeClc(benchmark::State& state) {
  const Bytes b = encode(proposal(1, Path::kR));
  for (auto _ : state) {
    benchmark::DoNotOptimize(b.data());
    Probe r = probe(b);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ProbeClc);

// Parse (+ identity) of each message kind, by index into all_cases().
void BM_Parse(benchmark::State& state) {
  const Case c = all_cases()[static_cast<size_t>(state.range(0))];
  const Bytes b = encode(c.msg);
  static Message out;
  for (auto _ : state) {
    benchmark::DoNotOptimize(b.data());
    Result r = parse(b, out);
    Identity id = identity(out);
    benchmark::DoNotOptimize(r);
    benchmark::DoNotOptimize(id);
  }
  state.SetLabel(c.name + " (" + std::to_string(b.size()) + " B)");
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(b.size()));
}
BENCHMARK(BM_Parse)->DenseRange(0, static_cast<int>(all_cases().size()) - 1);

void BM_Build(benchmark::State& state) {
  Message m = proposal(2, Path::kBoth, Path::kBoth);
  add_ipv6(m, 8);
  add_v2(m, 8, 8);
  Bytes out(kMaxMsgLen);
  for (auto _ : state) {
    Result r = build(m, out);
    benchmark::DoNotOptimize(r);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel("proposal_v2_B_B_max (652 B)");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Build);

// A whole SMC-R v2 handshake per iteration, on a table holding `range(0)` other sessions: SYN, SYN-ACK,
// Proposal, Accept, Confirm, FIN, FIN = 7 events.
void BM_SessionHandshake(benchmark::State& state) {
  const auto others = static_cast<uint32_t>(state.range(0));
  SessionTable t({.capacity = others + 16});
  auto tuple = [](uint32_t i) {
    FiveTuple f;
    f.src[0] = 198;
    f.src[1] = 18;
    f.src[2] = static_cast<uint8_t>(i >> 8);
    f.src[3] = static_cast<uint8_t>(i);
    f.dst[0] = 198;
    f.dst[1] = 19;
    f.sport = static_cast<uint16_t>(i >> 16 | 1024);
    f.dport = 5000;
    return f;
  };
  Event ev;
  for (uint32_t i = 0; i < others; ++i) {
    ev.tuple = tuple(i);
    ev.kind = EventKind::kSynOption;
    t.apply(ev, 0);
  }
  const Bytes msgs[3] = {encode(proposal(2, Path::kR, Path::kR)),
                         encode(accept_confirm(MsgType::kAccept, 2, Path::kR, true)),
                         encode(accept_confirm(MsgType::kConfirm, 2, Path::kR, true))};
  FiveTuple c = tuple(0xffffff);
  uint64_t now = 0;
  for (auto _ : state) {
    ++c.sport;
    Event e;
    e.tuple = c;
    e.kind = EventKind::kSynOption;
    t.apply(e, ++now);
    e.tuple = c.reversed();
    e.kind = EventKind::kSynAckOption;
    t.apply(e, now);
    for (int i = 0; i < 3; ++i) {
      e.tuple = i == 1 ? c.reversed() : c;
      e.kind = EventKind::kClc;
      e.seq = i == 2 ? 1000 + static_cast<uint32_t>(msgs[0].size()) : 1000;  // Confirm follows the Proposal
      e.payload_len = e.copied = static_cast<uint16_t>(msgs[i].size());
      std::memcpy(e.clc, msgs[i].data(), msgs[i].size());
      t.apply(e, now);
    }
    e.kind = EventKind::kFin;
    e.tuple = c;
    t.apply(e, now);
    e.tuple = c.reversed();
    t.apply(e, now);
  }
  if (t.counters().clc_parsed != 3 * static_cast<uint64_t>(state.iterations()))
    state.SkipWithError("handshake did not parse");
  state.SetItemsProcessed(state.iterations() * 7);
  state.SetLabel("7 events per handshake");
}
BENCHMARK(BM_SessionHandshake)->Arg(0)->Arg(4000);

}  // namespace

BENCHMARK_MAIN();
