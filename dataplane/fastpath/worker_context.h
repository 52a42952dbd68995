#pragma once
// What one worker owns while it processes a burst: per-port transmit buffers and counters. Single writer
// (the worker); the main lcore only reads counters.

#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <array>
#include <cstdint>

#include "dataplane/fastpath/flow_cache.h"
#include "dataplane/fastpath/port_io.h"
#include "dataplane/fastpath/smc_identity.h"
#include "dataplane/fastpath/smc_wire.h"
#include "dataplane/fastpath/stats.h"

namespace esw::dp {

inline constexpr uint16_t kMaxRxBurst = 64;

struct TxBuffer {
  uint16_t count = 0;
  bool listed = false;  // in WorkerContext::pending
  uint64_t bytes = 0;   // pkt_len of pkts[0, count), summed at enqueue (the mbuf is hot then)
  std::array<rte_mbuf*, kMaxRxBurst> pkts{};
};

struct Rule;
struct MeterRuntime;

struct ActionList;

// What the flow cache remembers of a walk: short walks only (longer ones are walked every time). It holds the
// result itself (each hit's action list and rule id), so a cache hit never touches a Rule: with 100k rules the
// Rules are spread over megabytes, the interned action lists are few and stay hot. Both live as long as the
// snapshot the entry's generation names (action lists: longer, the interner owns them).
inline constexpr unsigned kCachedHits = 4;
struct CachedWalk {
  uint8_t n_hits;
  uint8_t miss_table;
  uint32_t ids[kCachedHits];
  const ActionList* lists[kCachedHits];
};
static_assert(sizeof(CachedWalk) == 56, "a flow-cache set (hashes, generations, two of these) in 3 lines");

// SMC events waiting for this burst's enqueue (smc_stage.h).
inline constexpr uint16_t kSmcStaged = 8;

struct WorkerContext {
  uint16_t worker_index = 0;  // also picks this worker's tx queue of every port (PortIo::tx_burst)
  FlowCache<CachedWalk>* flow_cache = nullptr;
  RuleCounter* rule_counters = nullptr;  // [max_rules], indexed by rule id
  MeterRuntime* meters = nullptr;        // [nb_meters]
  uint32_t nb_meters = 0;
  uint64_t meter_generation = 0;
  const PortIo* io = nullptr;  // switch port index -> how to send there (the snapshot's PortMap), set every loop
  uint16_t nb_pending = 0;     // ports with queued frames, in pending[0, nb_pending)
  std::array<uint16_t, kMaxPorts> pending{};
  std::array<TxBuffer, kMaxPorts> tx{};
  WorkerStats stats;
  const SmcView* smc = nullptr;   // the published SMC view of this loop iteration (never null in a worker)
  rte_ring* smc_ring = nullptr;   // events to the main lcore; nullptr: no events (trace)
  uint16_t n_smc_staged = 0;
  std::array<SmcEvent, kSmcStaged> smc_staged;
  ClcHoldTable smc_hold;          // CLC messages split across segments, being checked (smc_identity.h)

  void flush(uint16_t port) noexcept {
    TxBuffer& b = tx[port];
    if (b.count == 0) return;
    const PortIo& pio = io[port];
    if (pio.kind == PortIo::Kind::kNone) [[unlikely]] {  // the port went away while frames were queued for it
      rte_pktmbuf_free_bulk(b.pkts.data(), b.count);
      stats.ports[port].tx_dropped += b.count;
      b.count = 0;
      b.bytes = 0;
      return;
    }
    // Bytes were summed at enqueue; a frame the driver did not take is still ours, so its length is taken off
    // here (a sent one may already be freed: never read).
    const uint16_t sent = pio.tx_burst(worker_index, b.pkts.data(), b.count);
    PortCounters& c = stats.ports[port];
    uint64_t bytes = b.bytes;
    if (sent < b.count) [[unlikely]] {
      for (uint16_t i = sent; i < b.count; ++i) bytes -= b.pkts[i]->pkt_len;
      c.tx_dropped += b.count - sent;
      rte_pktmbuf_free_bulk(&b.pkts[sent], b.count - sent);
    }
    c.tx_packets += sent;
    c.tx_bytes += bytes;
    b.count = 0;
    b.bytes = 0;
  }

  // Sends what every port has queued: only the ports that got frames since the last flush are visited, so the
  // cost does not grow with the number of ports.
  void flush_all() noexcept {
    for (uint16_t i = 0; i < nb_pending; ++i) {
      const uint16_t port = pending[i];
      tx[port].listed = false;
      flush(port);
    }
    nb_pending = 0;
  }

  // Queues m for transmission on `port`; sends a full buffer right away.
  void enqueue(uint16_t port, rte_mbuf* m) noexcept {
    TxBuffer& b = tx[port];
    if (!b.listed) {
      b.listed = true;
      pending[nb_pending++] = port;
    }
    b.pkts[b.count++] = m;
    b.bytes += m->pkt_len;
    if (b.count == kMaxRxBurst) flush(port);
  }

  void drop(uint16_t in_port, rte_mbuf* m, DropReason why) noexcept {
    stats.ports[in_port].dropped[static_cast<size_t>(why)]++;
    rte_pktmbuf_free(m);
  }
};

}  // namespace esw::dp
