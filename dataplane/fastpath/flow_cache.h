#pragma once
// Per-core exact-match flow cache: ingress FlowKey -> small trivially-copyable value (e.g. a pointer to a compiled
// walk result living in the snapshot). After OVS's EMC, with these choices:
//  - 2-way set associative: a set is picked by the key hash; each way keeps {hash, generation, value} in one
//    cache line per set and the full 128-byte key in a parallel array, compared only when hash and generation
//    match. Replacement: the way not used most recently.
//  - Generation tag: every entry carries the snapshot version it was computed for; find() only returns entries
//    of the caller's current generation, so publishing a snapshot invalidates the whole cache for free (no
//    per-entry clearing) and a value pointing into an old snapshot is never handed out.
//  - No thrashing when flows outnumber entries: a stale or empty way is always filled, but evicting a live entry
//    happens only with probability 1/insert_inv_prob (OVS emc-insert-inv-prob style; 1 = always). Heavy flows
//    then keep their entries while a flood of one-packet flows mostly passes by.
//  - Fixed size chosen at construction, no allocation afterwards, single-threaded: one instance per worker core.

#include <cstdint>
#include <memory>
#include <type_traits>

#include "dataplane/fastpath/flow_key.h"

namespace esw::dp {

// Key hash: four independent lanes for instruction-level parallelism, then a 64-bit finaliser. Only a good mix is
// promised; the cache always compares the whole key. Words 0-3 (port, ethertype, VLANs, MACs, IP protocol,
// IPv4 addresses) are always mixed; the other twelve in groups of four, and a group that is all zero (an IPv4
// packet has nothing in IPv6, ND/ARP, tunnel or register words) is skipped: it is a pure function of the key,
// so equal keys still hash equally, and the common IPv4/UDP key costs two rounds instead of four.
inline uint64_t flow_key_hash(const FlowKey& key) noexcept {
  const uint64_t* w = key_words(key);
  constexpr uint64_t k1 = 0x9e3779b97f4a7c15ull, k2 = 0xbf58476d1ce4e5b9ull;
  uint64_t a = 0x243f6a8885a308d3ull, b = 0x13198a2e03707344ull, c = 0xa4093822299f31d0ull,
           d = 0x082efa98ec4e6c89ull;
  for (unsigned i = 0; i < kFlowKeyWords; i += 4) {
    if (i != 0 && (w[i] | w[i + 1] | w[i + 2] | w[i + 3]) == 0) continue;
    a = ((a ^ w[i]) * k1) + i;
    b = ((b ^ w[i + 1]) * k1);
    c = ((c ^ w[i + 2]) * k1);
    d = ((d ^ w[i + 3]) * k1);
    a ^= a >> 29;
    b ^= b >> 31;
    c ^= c >> 27;
    d ^= d >> 33;
  }
  uint64_t h = a ^ (b << 17 | b >> 47) ^ (c << 31 | c >> 33) ^ (d << 47 | d >> 17);
  h = (h ^ (h >> 30)) * k2;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

inline bool flow_key_equal(const FlowKey& x, const FlowKey& y) noexcept {
  const uint64_t* a = key_words(x);
  const uint64_t* b = key_words(y);
  uint64_t d = 0;
  for (unsigned i = 0; i < kFlowKeyWords; ++i) d |= a[i] ^ b[i];
  return d == 0;
}

template <class V>
class FlowCache {
  static_assert(std::is_trivially_copyable_v<V>, "flow cache values are copied bytewise");

 public:
  static constexpr uint64_t kNoGeneration = ~uint64_t(0);  // never a snapshot version

  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;
    uint64_t inserts = 0;    // entries written
    uint64_t evictions = 0;  // live entries replaced
    uint64_t skipped = 0;    // inserts declined by the probabilistic policy
  };

  // entries: rounded up to a power of two, at least 2. insert_inv_prob >= 1.
  explicit FlowCache(uint32_t entries, uint32_t insert_inv_prob = 100, uint64_t seed = 0x2545f4914f6cdd1dull)
      : rng_(seed | 1) {
    uint32_t n = 2;
    while (n < entries) n *= 2;
    n_sets_ = n / 2;
    sets_ = std::make_unique<Set[]>(n_sets_);
    keys_ = std::make_unique<FlowKey[]>(n);
    threshold_ = insert_inv_prob <= 1 ? ~uint32_t(0) : ~uint32_t(0) / insert_inv_prob;
    clear();
  }

  static uint64_t hash(const FlowKey& k) noexcept { return flow_key_hash(k); }
  uint32_t capacity() const noexcept { return n_sets_ * 2; }
  const Stats& stats() const noexcept { return stats_; }

  // The set's first two lines and the first line of each way's key (for an IPv4 key every word that differs is there).
  void prefetch(uint64_t h) const noexcept {
    const uint32_t s = set_of(h);
    __builtin_prefetch(&sets_[s], 0, 3);
    if constexpr (sizeof(Set) > 64) __builtin_prefetch(reinterpret_cast<const char*>(&sets_[s]) + 64, 0, 3);
    __builtin_prefetch(&keys_[2 * s], 0, 3);
    __builtin_prefetch(&keys_[2 * s + 1], 0, 3);
  }

  // The value cached for key under generation gen, or nullptr. Valid until the next insert()/clear().
  const V* find(const FlowKey& key, uint64_t h, uint64_t gen) noexcept {
    const uint32_t s = set_of(h);
    Set& set = sets_[s];
    for (unsigned w = 0; w < 2; ++w) {
      if (set.hash[w] == h && set.gen[w] == gen && flow_key_equal(keys_[2 * s + w], key)) [[likely]] {
        set.mru = uint8_t(w);
        ++stats_.hits;
        return &set.value[w];
      }
    }
    ++stats_.misses;
    return nullptr;
  }

  void insert(const FlowKey& key, uint64_t h, uint64_t gen, const V& value) noexcept {
    const uint32_t s = set_of(h);
    Set& set = sets_[s];
    int way = -1;
    for (unsigned w = 0; w < 2 && way < 0; ++w)
      if (set.gen[w] == gen && set.hash[w] == h && flow_key_equal(keys_[2 * s + w], key)) way = int(w);
    for (unsigned w = 0; w < 2 && way < 0; ++w)
      if (set.gen[w] != gen) way = int(w);  // empty or from an older snapshot: free to take
    if (way < 0) {
      if (next_random() > threshold_) {
        ++stats_.skipped;
        return;
      }
      way = 1 - set.mru;
      ++stats_.evictions;
    }
    set.hash[way] = h;
    set.gen[way] = gen;
    set.value[way] = value;
    set.mru = uint8_t(way);
    keys_[2 * s + unsigned(way)] = key;
    ++stats_.inserts;
  }

  void clear() noexcept {
    for (uint32_t i = 0; i < n_sets_; ++i) {
      sets_[i].gen[0] = sets_[i].gen[1] = kNoGeneration;
      sets_[i].hash[0] = sets_[i].hash[1] = 0;
      sets_[i].mru = 0;
    }
  }

 private:
  // mru before the values: find() writes it on every hit, and the two first lines then hold everything a hit of
  // a small value reads and writes (prefetch() fetches both).
  struct alignas(64) Set {
    uint64_t hash[2];
    uint64_t gen[2];
    uint8_t mru;
    V value[2];
  };

  uint32_t set_of(uint64_t h) const noexcept { return uint32_t(h) & (n_sets_ - 1); }
  uint32_t next_random() noexcept {  // xorshift64*
    rng_ ^= rng_ >> 12;
    rng_ ^= rng_ << 25;
    rng_ ^= rng_ >> 27;
    return uint32_t((rng_ * 0x2545f4914f6cdd1dull) >> 32);
  }

  std::unique_ptr<Set[]> sets_;
  std::unique_ptr<FlowKey[]> keys_;
  uint32_t n_sets_ = 0;
  uint32_t threshold_ = 0;
  uint64_t rng_;
  Stats stats_;
};

}  // namespace esw::dp
