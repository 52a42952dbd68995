#pragma once
// A tap representor: the Linux netdev rep-<vport>, served as a plain tap file descriptor on the main lcore.
// No PMD and no ethdev: a representor is the slow path, and 64+ vports must not need 64+ ethdevs.
//
//   worker --(per-worker tx ring, SP/SC)--> main lcore service(): write() --> rep-<vport> --> host stack/tcpdump
//   host --> rep-<vport> --> main lcore service(): read() into an mbuf --(rx ring, SP/SC)--> the worker polling it
//
// The rings are the port's queues (PortIo burst functions): tx queue w belongs to worker w (no sharing, no
// lock); the rx queue is polled like any port's. service() runs when the tap fd is readable (level-triggered:
// a budget per call, the rest on the next), when a worker signalled queued frames through the wake eventfd (one
// write per main-lcore pass at most: the grout control-output pattern), and on the slow safety tick. Frames that do not
// fit (rx ring full, no mbuf, the kernel refusing a write) are counted in driver_counters(), never waited for.
// The netdev disappears when the port closes (the fd is its only owner).
//
// Threading: everything but the two burst functions runs on the main lcore.

#include <rte_mempool.h>
#include <rte_ring.h>

#include <atomic>
#include <cstdint>
#include <vector>

#include "dataplane/ports/port.h"

namespace esw::rep {

class TapRepresentor final : public dp::Port {
 public:
  ~TapRepresentor() override;
  void open(const dp::PortSpec& spec, uint16_t index, rte_mempool* pool, uint16_t nb_workers) override;
  void start() override;
  void stop() noexcept override;
  void close() noexcept override;
  bool link_up() const override { return started_ && carrier_; }
  void set_carrier(bool up) noexcept override;
  dp::DriverCounters driver_counters() const override;
  dp::PortIo io() const noexcept override;
  std::vector<int> service_fds() const override { return {fd_, wake_fd_}; }
  bool needs_service() const noexcept override { return open_; }
  void service() noexcept override;

 private:
  static uint16_t rx_burst(void* dev, uint16_t queue, rte_mbuf** pkts, uint16_t n) noexcept;
  static uint16_t tx_burst(void* dev, uint16_t queue, rte_mbuf** pkts, uint16_t n) noexcept;
  [[noreturn]] void fail(const std::string& what, int err) const;
  void set_flags_up(bool up) noexcept;
  void from_host() noexcept;
  bool to_host() noexcept;  // true: frames are left for the next pass
  void free_ring(rte_ring*& r) noexcept;

  int fd_ = -1;
  // Workers wake the main lcore through wake_fd_ (an eventfd) when they queue frames for the host and the main
  // lcore asked to be woken (wake_armed_): at most one write per main-lcore pass, none while it is draining.
  int wake_fd_ = -1;
  alignas(64) std::atomic<bool> wake_armed_{true};
  rte_mempool* pool_ = nullptr;
  rte_ring* rx_ring_ = nullptr;         // host -> the worker that polls this port
  std::vector<rte_ring*> tx_rings_;     // per worker -> host
  bool carrier_ = true;
  // Main lcore counters.
  uint64_t from_host_ = 0, to_host_ = 0;
  uint64_t rx_ring_full_ = 0, rx_nombuf_ = 0, rx_errors_ = 0, write_errors_ = 0;
};

}  // namespace esw::rep
