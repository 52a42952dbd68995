#pragma once
// Quiescent-state-based RCU for snapshot publishing: a thin RAII wrapper over DPDK's rte_rcu_qsbr (librte_rcu),
// usable with or without EAL (the QSBR variable is plain aligned memory), plus the one-pointer publisher.
//
// Protocol (the classic QSBR contract):
//   reader (worker lcore)                         writer (main lcore, control thread)
//   rcu.register_reader(id)   // once, at start    publish new snapshot (store-release of one pointer)
//   loop {                                          token = rcu.start()   // after the store
//     const T* s = published.acquire();             ... later, non-blocking:
//     ... use s and everything reachable ...        if (rcu.done(token)) free what s_old reached
//     rcu.quiescent(id);  // s is dead past here
//   }
//   rcu.unregister_reader(id) // before exit; an offline reader never delays the writer
//
// Why it is safe: rte_rcu_qsbr_start() is a release RMW on the token, so a reader that reports the new token in
// quiescent() (acquire load of the token) sees the new pointer on its next acquire(); a reader that has not
// reported it may still hold the old pointer, and done(token) stays false until it does.

#include <rte_rcu_qsbr.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>

namespace esw::dp {

class Rcu {
 public:
  // max_readers: thread ids are 0..max_readers-1 (the lead uses the worker index).
  explicit Rcu(uint32_t max_readers) : max_readers_(max_readers) {
    size_t sz = rte_rcu_qsbr_get_memsize(max_readers);
    if (sz == 1) throw std::invalid_argument("rte_rcu_qsbr_get_memsize failed");
    sz = (sz + RTE_CACHE_LINE_SIZE - 1) & ~size_t(RTE_CACHE_LINE_SIZE - 1);
    qs_ = static_cast<rte_rcu_qsbr*>(std::aligned_alloc(RTE_CACHE_LINE_SIZE, sz));
    if (qs_ == nullptr) throw std::bad_alloc();
    if (rte_rcu_qsbr_init(qs_, max_readers) != 0) {
      std::free(qs_);
      throw std::runtime_error("rte_rcu_qsbr_init failed");
    }
  }
  ~Rcu() { std::free(qs_); }
  Rcu(const Rcu&) = delete;
  Rcu& operator=(const Rcu&) = delete;

  rte_rcu_qsbr* qsbr() const noexcept { return qs_; }
  uint32_t max_readers() const noexcept { return max_readers_; }

  // Reader lifecycle, called by the reader thread itself before its first acquire() / after its last use.
  void register_reader(unsigned id) {
    if (rte_rcu_qsbr_thread_register(qs_, id) != 0)
      throw std::invalid_argument("rcu: bad reader id " + std::to_string(id));
    rte_rcu_qsbr_thread_online(qs_, id);
  }
  void unregister_reader(unsigned id) noexcept {
    rte_rcu_qsbr_thread_offline(qs_, id);
    rte_rcu_qsbr_thread_unregister(qs_, id);
  }
  // A reader about to block (e.g. sleep on an empty interrupt queue) goes offline instead of stalling writers.
  void offline(unsigned id) noexcept { rte_rcu_qsbr_thread_offline(qs_, id); }
  void online(unsigned id) noexcept { rte_rcu_qsbr_thread_online(qs_, id); }

  // Reader fast path: no snapshot pointer obtained before this call may be used after it.
  void quiescent(unsigned id) noexcept { rte_rcu_qsbr_quiescent(qs_, id); }

  // Writer: call after the pointer store; returns the grace-period token.
  uint64_t start() noexcept { return rte_rcu_qsbr_start(qs_); }
  // Writer: true once every online reader has reported quiescence after start() returned `token`. Never blocks.
  bool done(uint64_t token) noexcept { return rte_rcu_qsbr_check(qs_, token, false) == 1; }

 private:
  rte_rcu_qsbr* qs_ = nullptr;
  uint32_t max_readers_;
};

// One published pointer. Readers: acquire() = one acquire load. Writer: publish() = one release store.
template <class T>
class Published {
 public:
  const T* acquire() const noexcept { return ptr_.load(std::memory_order_acquire); }
  // Returns the previous pointer, which the caller retires (frees after a grace period).
  const T* publish(const T* p) noexcept { return ptr_.exchange(p, std::memory_order_acq_rel); }

 private:
  alignas(64) std::atomic<const T*> ptr_{nullptr};
};

}  // namespace esw::dp
