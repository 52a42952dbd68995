#pragma once
// What one worker owns while it processes a burst: per-port transmit buffers and counters. Single writer
// (the worker); the main lcore only reads counters.

#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include <array>
#include <cstdint>

#include "dataplane/fastpath/flow_cache.h"
#include "dataplane/fastpath/stats.h"

namespace esw::dp {

inline constexpr uint16_t kMaxRxBurst = 64;

struct TxBuffer {
  uint16_t count = 0;
  std::array<rte_mbuf*, kMaxRxBurst> pkts{};
};

struct Rule;
struct MeterRuntime;

// What the flow cache remembers of a walk: short walks only (longer ones are walked every time).
inline constexpr unsigned kCachedHits = 6;
struct CachedWalk {
  uint8_t n_hits;
  uint8_t miss_table;
  const Rule* hits[kCachedHits];
};

struct WorkerContext {
  uint16_t worker_index = 0;  // also the tx queue this worker uses on every port
  FlowCache<CachedWalk>* flow_cache = nullptr;
  RuleCounter* rule_counters = nullptr;  // [max_rules], indexed by rule id
  MeterRuntime* meters = nullptr;        // [nb_meters]
  uint32_t nb_meters = 0;
  uint64_t meter_generation = 0;
  uint16_t nb_ports = 0;               // from the current pipeline snapshot, set every loop
  const uint16_t* port_ids = nullptr;  // switch port index -> DPDK port id (the snapshot's PortMap)
  std::array<TxBuffer, kMaxPorts> tx{};
  WorkerStats stats;

  void flush(uint16_t port) noexcept {
    TxBuffer& b = tx[port];
    if (b.count == 0) return;
    if (port_ids[port] == 0xffff) [[unlikely]] {  // the port went away while frames were queued for it
      rte_pktmbuf_free_bulk(b.pkts.data(), b.count);
      stats.ports[port].tx_dropped += b.count;
      b.count = 0;
      return;
    }
    const uint16_t sent = rte_eth_tx_burst(port_ids[port], worker_index, b.pkts.data(), b.count);
    PortCounters& c = stats.ports[port];
    uint64_t bytes = 0;
    for (uint16_t i = 0; i < sent; ++i) bytes += b.pkts[i]->pkt_len;
    c.tx_packets += sent;
    c.tx_bytes += bytes;
    if (sent < b.count) {
      c.tx_dropped += b.count - sent;
      rte_pktmbuf_free_bulk(&b.pkts[sent], b.count - sent);
    }
    b.count = 0;
  }

  void flush_all() noexcept {
    for (uint16_t p = 0; p < nb_ports; ++p) flush(p);
  }

  // Queues m for transmission on `port`; sends a full buffer right away.
  void enqueue(uint16_t port, rte_mbuf* m) noexcept {
    TxBuffer& b = tx[port];
    b.pkts[b.count++] = m;
    if (b.count == kMaxRxBurst) flush(port);
  }

  void drop(uint16_t in_port, rte_mbuf* m, DropReason why) noexcept {
    stats.ports[in_port].dropped[static_cast<size_t>(why)]++;
    rte_pktmbuf_free(m);
  }
};

}  // namespace esw::dp
