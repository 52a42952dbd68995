#pragma once
// How a worker reaches a port: the fast-path face of the port seam (dataplane/ports/port.h). One PortIo per port
// index lives in each pipeline snapshot; workers call rx/tx once per burst. An ethdev is called directly
// (rte_eth_rx_burst/rte_eth_tx_burst are inline), every other backend through its two burst functions.
//
// Transmit queues: worker w sends on queue w % nb_txq. When several workers share a queue and the backend's
// queues are single-sender (an ethdev with fewer tx queues than workers), txq_locks holds one lock per queue,
// taken once per burst — the Open vSwitch `concurrent_txq` model; no lock is global and none is taken when each
// worker has its own queue.

#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_spinlock.h>

#include <cstdint>

namespace esw::dp {

using BurstFn = uint16_t (*)(void* dev, uint16_t queue, rte_mbuf** pkts, uint16_t n) noexcept;

struct PortIo {
  enum class Kind : uint8_t { kNone, kEthdev, kBurstFn };
  Kind kind = Kind::kNone;
  uint16_t ethdev = 0xffff;  // kEthdev: the DPDK port id
  uint16_t nb_txq = 1;
  BurstFn rx = nullptr;      // kBurstFn
  BurstFn tx = nullptr;
  void* dev = nullptr;
  rte_spinlock_t* txq_locks = nullptr;  // [nb_txq] when queues are shared by workers; else nullptr

  // A backend reached through its two burst functions (everything but an ethdev).
  static PortIo burst_fns(BurstFn rx_fn, BurstFn tx_fn, void* dev_ctx, uint16_t txqs,
                          rte_spinlock_t* locks = nullptr) noexcept {
    PortIo io;
    io.kind = Kind::kBurstFn;
    io.rx = rx_fn;
    io.tx = tx_fn;
    io.dev = dev_ctx;
    io.nb_txq = txqs;
    io.txq_locks = locks;
    return io;
  }

  uint16_t rx_burst(uint16_t q, rte_mbuf** pkts, uint16_t n) const noexcept {
    if (kind == Kind::kEthdev) return rte_eth_rx_burst(ethdev, q, pkts, n);
    return rx(dev, q, pkts, n);
  }

  uint16_t tx_burst(uint16_t worker, rte_mbuf** pkts, uint16_t n) const noexcept {
    const uint16_t q = worker < nb_txq ? worker : static_cast<uint16_t>(worker % nb_txq);
    if (txq_locks != nullptr) [[unlikely]] {
      rte_spinlock_lock(&txq_locks[q]);
      const uint16_t sent = send(q, pkts, n);
      rte_spinlock_unlock(&txq_locks[q]);
      return sent;
    }
    return send(q, pkts, n);
  }

 private:
  uint16_t send(uint16_t q, rte_mbuf** pkts, uint16_t n) const noexcept {
    if (kind == Kind::kEthdev) return rte_eth_tx_burst(ethdev, q, pkts, n);
    return tx(dev, q, pkts, n);
  }
};

}  // namespace esw::dp
