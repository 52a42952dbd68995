// Parser micro-benchmark: bursts of 32 packets of one kind (or a mix), each in its own buffer at an mbuf-like
// stride, parsed into a per-burst key array as a worker would. items/s = packets/s; ns_per_pkt is the inverse.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "common/pkt_builder.h"
#include "dataplane/fastpath/parser.h"

namespace {

using namespace esw::test;  // NOLINT: builder vocabulary
using esw::dp::FlowKey;
using esw::dp::HeaderOffsets;

constexpr size_t kBurst = 32;
constexpr size_t kStride = 2048;  // like mbuf data rooms: each packet in its own cache lines

std::vector<std::pair<std::string, Bytes>> packet_kinds() {
  const Mac host = mac("02:00:00:00:00:aa");
  return {
      {"ipv4_tcp", PacketBuilder().eth().ipv4().tcp().payload(64).build()},
      {"ipv4_udp", PacketBuilder().eth().ipv4().udp({.dport = 53}).payload(64).build()},
      {"vlan_ipv4_tcp_syn_smc",
       PacketBuilder().eth().vlan({.vid = 100}).ipv4()
           .tcp({.flags = kTcpSyn,
                 .options = concat({tcp_opt_mss(1460), tcp_opt_sack_permitted(), tcp_opt_timestamp(1, 0),
                                    tcp_opt_nop(), tcp_opt_wscale(7), tcp_opt_smc()})})
           .build()},
      {"qinq_ipv4_udp",
       PacketBuilder().eth().vlan({.vid = 10, .tpid = kEthTypeQinQ}).vlan({.vid = 20}).ipv4().udp().payload(64)
           .build()},
      {"ipv6_tcp", PacketBuilder().eth().ipv6().tcp().payload(64).build()},
      {"ipv6_ext3_frag_udp",
       PacketBuilder().eth().ipv6().ipv6_ext({.type = kIpProtoHopByHop}).ipv6_ext({.type = kIpProtoDestOpts})
           .ipv6_frag({.more = true}).udp().payload(64).build()},
      {"arp", PacketBuilder().eth().arp().pad_to(60).build()},
      {"icmpv6_ns", PacketBuilder().eth().ipv6({.hop_limit = 255}).icmpv6(nd_ns(ip6("fe80::1"), host)).build()},
      {"vxlan_ipv4",
       PacketBuilder().eth().ipv4().udp().vxlan({.vni = 42}).eth().ipv4().tcp().payload(64).build()},
      {"geneve_opts_ipv6",
       PacketBuilder().eth().ipv6().udp().geneve({.vni = 42, .options = Bytes(8, 0)}).eth().ipv4().tcp().build()},
      {"roce_v2", PacketBuilder().eth().ipv4().udp().bth({.dest_qp = 77}).payload(68).build()},
  };
}

class Burst {
 public:
  explicit Burst(const std::vector<const Bytes*>& pkts) : buf_(kBurst * kStride) {
    for (size_t i = 0; i < kBurst; ++i) {
      const Bytes& p = *pkts[i % pkts.size()];
      std::memcpy(&buf_[i * kStride], p.data(), p.size());
      len_[i] = static_cast<uint32_t>(p.size());
    }
  }

  void run(benchmark::State& st) {
    for (auto _ : st) {
      for (size_t i = 0; i < kBurst; ++i)
        esw::dp::parse_packet(&buf_[i * kStride], len_[i], 1, keys_[i], offs_[i]);
      benchmark::DoNotOptimize(keys_);
      benchmark::DoNotOptimize(offs_);
      benchmark::ClobberMemory();
    }
    const auto pkts = static_cast<double>(st.iterations() * kBurst);
    st.SetItemsProcessed(static_cast<int64_t>(pkts));
    st.counters["ns_per_pkt"] = benchmark::Counter(pkts, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
    bool ok = true;
    for (size_t i = 0; i < kBurst; ++i) ok &= (keys_[i].flags & esw::dp::kFlagMalformed) == 0;
    if (!ok) st.SkipWithError("a benchmark packet parsed as malformed");
  }

 private:
  std::vector<uint8_t> buf_;
  uint32_t len_[kBurst] = {};
  FlowKey keys_[kBurst];
  HeaderOffsets offs_[kBurst];
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  static const auto kinds = packet_kinds();
  std::vector<const Bytes*> all;
  for (const auto& [name, pkt] : kinds) {
    all.push_back(&pkt);
    benchmark::RegisterBenchmark(("parse/" + name).c_str(), [p = &pkt](benchmark::State& st) {
      Burst b({p});
      b.run(st);
    });
  }
  // All kinds interleaved: the branches are no longer predictable per packet.
  benchmark::RegisterBenchmark("parse/mixed", [all](benchmark::State& st) {
    Burst b(all);
    b.run(st);
  });
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
