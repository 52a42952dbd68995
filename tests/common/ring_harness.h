#pragma once
// Test harness for in-process tests with a real EAL and real ethdevs: net_ring ports over rings the test owns,
// so it can inject packets into the switch and collect what the switch transmits. No mock of the switch.

#include <gtest/gtest.h>
#include <rte_eth_ring.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <unistd.h>

#include <chrono>
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "dataplane/daemon/eal.h"

namespace esw::test {

// One switch port backed by two rings: the test enqueues into `to_switch` and dequeues from `from_switch`.
struct RingPort {
  std::string name;
  rte_ring* to_switch = nullptr;
  rte_ring* from_switch = nullptr;
  std::string devname;

  // `out_size`: how many frames the switch may queue towards the test before its tx sees a full ring.
  explicit RingPort(const std::string& n, unsigned out_size = 4096) : name(n) {
    to_switch = rte_ring_create((n + "_in").c_str(), 4096, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
    from_switch = rte_ring_create((n + "_out").c_str(), out_size, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (to_switch == nullptr || from_switch == nullptr) throw std::runtime_error("ring create failed: " + n);
    if (rte_eth_from_rings(n.c_str(), &to_switch, 1, &from_switch, 1, SOCKET_ID_ANY) < 0) {
      throw std::runtime_error("rte_eth_from_rings failed: " + n);
    }
    devname = "net_ring_" + n;
  }
  RingPort(const RingPort&) = delete;
  RingPort& operator=(const RingPort&) = delete;
  ~RingPort() {
    drain();
    rte_ring_free(to_switch);
    rte_ring_free(from_switch);
  }

  void inject(rte_mempool* pool, const std::vector<uint8_t>& frame) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool);
    if (m == nullptr) throw std::runtime_error("no mbuf");
    std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size())), frame.data(), frame.size());
    while (rte_ring_enqueue(to_switch, m) != 0) std::this_thread::yield();
  }

  // Collects up to `want` mbufs (waits at most `timeout`). The caller frees them.
  std::vector<rte_mbuf*> take(size_t want, std::chrono::milliseconds timeout = std::chrono::milliseconds(3000)) {
    std::vector<rte_mbuf*> out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    // At least one pass, so a zero timeout means "what is there now".
    do {
      void* objs[64];
      unsigned n = rte_ring_dequeue_burst(from_switch, objs, static_cast<unsigned>(std::min<size_t>(64, want - out.size())), nullptr);
      for (unsigned i = 0; i < n; ++i) out.push_back(static_cast<rte_mbuf*>(objs[i]));
      if (n == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::microseconds(200));
      if (n == 0 && std::chrono::steady_clock::now() >= deadline) break;
    } while (out.size() < want);
    return out;
  }

  // Collects exactly `want` frames as bytes (and frees the mbufs); fewer if they do not come.
  std::vector<std::vector<uint8_t>> take_bytes(size_t want,
                                               std::chrono::milliseconds timeout = std::chrono::milliseconds(3000)) {
    std::vector<std::vector<uint8_t>> out;
    for (rte_mbuf* m : take(want, timeout)) {
      const auto* d = rte_pktmbuf_mtod(m, const uint8_t*);
      out.emplace_back(d, d + rte_pktmbuf_data_len(m));
      rte_pktmbuf_free(m);
    }
    return out;
  }

  void drain() {
    void* obj;
    while (rte_ring_dequeue(from_switch, &obj) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(obj));
    while (rte_ring_dequeue(to_switch, &obj) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(obj));
  }
};

inline cfg::VportConfig vport(const std::string& name, const std::string& devargs,
                               std::optional<std::string> mac = std::nullopt) {
  cfg::VportConfig v;
  v.name = name;
  v.attach.devargs = devargs;
  v.hw_addr = std::move(mac);
  v.spoofchk = false;  // binding tests turn it on explicitly
  return v;
}

inline cfg::UplinkConfig uplink(const std::string& name, const std::string& devargs) {
  cfg::UplinkConfig u;
  u.name = name;
  u.attach.devargs = devargs;
  return u;
}

inline cfg::Config ring_test_config(const std::string& tag) {
  cfg::Config c;
  c.dataplane.main_core = 0;
  c.dataplane.worker_cores = {1};
  c.dataplane.memory_mb = 256;
  c.dataplane.hugepages = cfg::HugepageMode::kOff;
  c.dataplane.mbufs = 4096;
  c.dataplane.mbuf_cache = 64;
  c.dataplane.idle_sleep_us = 0;
  c.dataplane.file_prefix = "esw-" + tag + "-" + std::to_string(getpid());
  c.dataplane.max_rules = 65536;
  c.representors.kind = cfg::RepresentorKind::kNone;  // tests that need representors turn them on
  return c;
}

// One EAL per test process (the EAL cannot be initialised twice).
class EalEnv : public ::testing::Environment {
 public:
  explicit EalEnv(std::string tag) : tag_(std::move(tag)) {}
  void SetUp() override { dp::Eal::init(ring_test_config(tag_)); }
  void TearDown() override { dp::Eal::cleanup(); }

 private:
  std::string tag_;
};

}  // namespace esw::test
