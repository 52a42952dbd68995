// Tuple-space classifier: fast-path lookups and the copy-on-write snapshot builder. Design notes: classifier.h.
#include "dataplane/fastpath/classifier.h"

#include <malloc.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <unordered_map>

namespace esw::dp {

namespace {

constexpr unsigned kMinSegLog = 3;  // 8 entries (one 64-byte line)
constexpr unsigned kMaxSegLog = 9;  // 512 entries (4 KiB): the unit of copy-on-write
constexpr unsigned kMaxDepth = 24;  // directory <= 16M slots; beyond that segments just grow
constexpr uint32_t kRemoved = 0xffffffff;

inline uint64_t mix(uint64_t h, uint64_t w) noexcept {
  h ^= w * 0x9e3779b97f4a7c15ull;
  return (h << 27 | h >> 37) * 0xbf58476d1ce4e5b9ull;
}
inline uint64_t finish(uint64_t z) noexcept {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
// Subtable hash over the masked words. With SSE4.2: CRC32C per word (1/cycle) and one multiply to spread the 32
// bits over 64 (directory = top bits, tag = bits 16..31, probe start = low bits). Otherwise a multiply mix.
// Lookups and the builder both go through hash_start/hash_step/hash_end, so they always agree.
#if defined(__SSE4_2__)
inline uint64_t hash_start(unsigned n) noexcept { return n; }
inline uint64_t hash_step(uint64_t h, uint64_t w) noexcept { return __builtin_ia32_crc32di(h, w); }
inline uint64_t hash_end(uint64_t h) noexcept { return (h | h << 32) * 0x9e3779b97f4a7c15ull; }
#else
inline uint64_t hash_start(unsigned n) noexcept { return n; }
inline uint64_t hash_step(uint64_t h, uint64_t w) noexcept { return mix(h, w); }
inline uint64_t hash_end(uint64_t h) noexcept { return finish(h); }
#endif
inline uint64_t hash_words(const uint64_t* w, unsigned n) noexcept {
  uint64_t h = hash_start(n);
  for (unsigned j = 0; j < n; ++j) h = hash_step(h, w[j]);
  return hash_end(h);
}
inline bool words_equal(const uint64_t* a, const uint64_t* b, unsigned n) noexcept {
  uint64_t d = 0;
  for (unsigned j = 0; j < n; ++j) d |= a[j] ^ b[j];
  return d == 0;
}
inline void prefetch(const void* p) noexcept { __builtin_prefetch(p, 0, 3); }

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Snapshot objects. All are plain memory from Heap; immutable once published.

// Hash entry: the rule pointer (user-space addresses fit in 48 bits) with 16 hash bits as a tag above it, so a
// probe checks 8 entries per cache line and follows a pointer only on a tag match. 0 = empty slot.
using Entry = uint64_t;
constexpr uint64_t kPtrMask = (uint64_t(1) << 48) - 1;
inline uint64_t tag_of(uint64_t h) noexcept { return (h >> 16) & 0xffff; }  // bits home()/dir_index() leave alone
inline Entry make_entry(uint64_t h, const Rule* r) noexcept {
  return tag_of(h) << 48 | reinterpret_cast<uintptr_t>(r);
}
inline const Rule* entry_rule(Entry e) noexcept { return reinterpret_cast<const Rule*>(e & kPtrMask); }
inline bool tag_matches(Entry e, uint64_t h) noexcept { return (e >> 48) == tag_of(h); }
// A segment grows or splits when its load would exceed 3/5.
inline bool overloaded(uint32_t used, uint32_t cap) noexcept { return uint64_t(used) * 5 > uint64_t(cap) * 3; }

struct alignas(64) Segment {
  uint64_t born;  // version of the commit that created it; mutable only during that commit
  uint32_t used;
  uint8_t cap_log;
  uint8_t depth;  // extendible hashing local depth
  uint32_t cap() const noexcept { return 1u << cap_log; }
  Entry* e() noexcept { return reinterpret_cast<Entry*>(this + 1); }
  const Entry* e() const noexcept { return reinterpret_cast<const Entry*>(this + 1); }
  static size_t bytes(unsigned cap_log) noexcept { return sizeof(Segment) + (sizeof(Entry) << cap_log); }
};
static_assert(sizeof(Segment) == 64);

// Directory slot: Segment* with its cap_log in the low 6 bits (segments are 64-byte aligned), so a lookup learns
// the segment size without touching the segment header.
using DirEnt = uintptr_t;
inline DirEnt dir_ent(const Segment* g) noexcept { return reinterpret_cast<uintptr_t>(g) | g->cap_log; }
inline Segment* dir_seg(DirEnt d) noexcept { return reinterpret_cast<Segment*>(d & ~uintptr_t(63)); }
inline unsigned dir_cap_log(DirEnt d) noexcept { return unsigned(d & 63); }
inline uint32_t dir_index(uint64_t h, unsigned depth) noexcept { return uint32_t((h >> 32) >> (32 - depth)); }
// Probes start on an 8-entry (64-byte) boundary: a hit or a miss usually costs one cache line.
inline uint32_t home(uint64_t h, unsigned cap_log) noexcept {
  return uint32_t(h) & ((1u << cap_log) - 1) & ~7u;
}

struct alignas(64) Subtable {
  uint64_t born;
  uint32_t max_priority;
  uint32_t n_entries;  // winners (distinct masked values)
  uint32_t cap_total;  // entry slots over all segments
  uint32_t seq;        // creation order in its table: deterministic order among equal max priorities
  uint8_t n_words;
  uint8_t depth;  // extendible hashing global depth
  uint16_t word_map;
  uint8_t word_idx[kFlowKeyWords];
  // followed by: uint64_t mask[n_words]; DirEnt dir[1 << depth];
  const uint64_t* mask() const noexcept { return reinterpret_cast<const uint64_t*>(this + 1); }
  uint64_t* mask() noexcept { return reinterpret_cast<uint64_t*>(this + 1); }
  const DirEnt* dir() const noexcept { return reinterpret_cast<const DirEnt*>(mask() + n_words); }
  DirEnt* dir() noexcept { return reinterpret_cast<DirEnt*>(mask() + n_words); }
  static size_t bytes(unsigned n_words, unsigned depth) noexcept {
    return sizeof(Subtable) + 8 * n_words + (sizeof(DirEnt) << depth);
  }
};
static_assert(sizeof(Subtable) == 64);

struct Table {
  uint32_t n_subtables;
  uint32_t n_rules;
  // followed by: const Subtable* subs[n_subtables], max priority descending
  const Subtable* const* subs() const noexcept { return reinterpret_cast<const Subtable* const*>(this + 1); }
  const Subtable** subs() noexcept { return reinterpret_cast<const Subtable**>(this + 1); }
};

// ---------------------------------------------------------------------------------------------------------------
// Fast path

namespace {

inline uint64_t hash_key(const uint64_t* k, const Subtable& s) noexcept {
  const uint64_t* m = s.mask();
  uint64_t h = hash_start(s.n_words);
  for (unsigned j = 0; j < s.n_words; ++j) h = hash_step(h, k[s.word_idx[j]] & m[j]);
  return hash_end(h);
}

inline bool matches(const Rule* r, const uint64_t* k, const Subtable& s) noexcept {
  const uint64_t* m = s.mask();
  const uint64_t* rw = r->words();
  uint64_t d = 0;
  for (unsigned j = 0; j < s.n_words; ++j) d |= (k[s.word_idx[j]] & m[j]) ^ rw[j];
  return d == 0;
}

// Full probe from slot j (used by the scalar path and after a 64-bit hash collision in the burst path).
inline const Rule* probe_from(const Segment* g, unsigned cap_log, uint32_t j, uint64_t h, const uint64_t* k,
                              const Subtable& s) noexcept {
  const uint32_t m = (1u << cap_log) - 1;
  for (;; j = (j + 1) & m) {
    const Entry e = g->e()[j];
    if (e == 0) return nullptr;
    if (tag_matches(e, h) && matches(entry_rule(e), k, s)) return entry_rule(e);
  }
}

const Rule* table_lookup(const Table& t, const FlowKey& key) noexcept {
  const uint64_t* k = key_words(key);
  const Rule* best = nullptr;
  uint64_t best_rank = 0;
  const Subtable* const* subs = t.subs();
  for (uint32_t i = 0; i < t.n_subtables; ++i) {
    const Subtable& s = *subs[i];
    if ((best_rank >> 32) > s.max_priority) break;
    const uint64_t h = hash_key(k, s);
    const DirEnt d = s.dir()[dir_index(h, s.depth)];
    const Rule* r = probe_from(dir_seg(d), dir_cap_log(d), home(h, dir_cap_log(d)), h, k, s);
    if (r != nullptr && r->rank() > best_rank) {
      best = r;
      best_rank = r->rank();
    }
  }
  return best;
}

// n <= kMaxBurst. One subtable at a time over the whole burst, in stages so that the memory accesses of
// different packets overlap: (A) hash + prefetch the probe line, (B) probe + prefetch the candidate rule,
// (C) verify. Stage A of subtable i+1 runs between B and C of subtable i, so each prefetch has a whole stage
// of other work to hide behind.
struct BurstStage {
  uint64_t h[kMaxBurst];
  DirEnt d[kMaxBurst];
  uint32_t pos[kMaxBurst];
};

inline void stage_hash(const Subtable& s, const FlowKey* const keys[], const uint8_t act[], uint32_t na,
                       BurstStage& st) noexcept {
  const DirEnt* dir = s.dir();
  for (uint32_t j = 0; j < na; ++j) {
    const uint64_t h = hash_key(key_words(*keys[act[j]]), s);
    const DirEnt d = dir[dir_index(h, s.depth)];
    const uint32_t p = home(h, dir_cap_log(d));
    st.h[j] = h;
    st.d[j] = d;
    st.pos[j] = p;
    prefetch(&dir_seg(d)->e()[p]);
  }
}

void table_lookup_burst(const Table& t, const FlowKey* const keys[], uint32_t n, const Rule* out[]) noexcept {
  uint64_t best_rank[kMaxBurst];
  uint8_t act[kMaxBurst];
  const Rule* cand[kMaxBurst];
  bool slow[kMaxBurst];
  BurstStage stages[2];
  for (uint32_t i = 0; i < n; ++i) {
    out[i] = nullptr;
    best_rank[i] = 0;
    act[i] = uint8_t(i);
  }
  const uint32_t nsub = t.n_subtables;
  if (nsub == 0) return;
  const Subtable* const* subs = t.subs();
  uint32_t na = n;
  stage_hash(*subs[0], keys, act, na, stages[0]);
  for (uint32_t si = 0; si < nsub; ++si) {
    const Subtable& s = *subs[si];
    BurstStage& cur = stages[si & 1];
    BurstStage& nxt = stages[(si + 1) & 1];
    // B: look at the whole 8-entry line at once (no data-dependent branches): the first tag match is the
    // candidate; no match and an empty slot means a miss; a full line without a match (rare) goes slow.
    for (uint32_t j = 0; j < na; ++j) {
      const Entry* line = dir_seg(cur.d[j])->e() + cur.pos[j];
      const uint64_t tag = tag_of(cur.h[j]);
      uint32_t tm = 0, em = 0;
      for (unsigned k = 0; k < 8; ++k) {
        tm |= uint32_t((line[k] >> 48) == tag) << k;
        em |= uint32_t(line[k] == 0) << k;
      }
      const Rule* c = tm != 0 ? entry_rule(line[__builtin_ctz(tm)]) : nullptr;
      prefetch(c != nullptr ? static_cast<const void*>(c) : line);  // never prefetch address 0 (page walk)
      cand[j] = c;
      slow[j] = tm == 0 && em == 0;
    }
    // A for the next subtable, for every packet still active now (some may drop out after C).
    if (si + 1 < nsub) {
      if (si + 2 < nsub) prefetch(subs[si + 2]);
      stage_hash(*subs[si + 1], keys, act, na, nxt);
    }
    // C: verify, keep the better rank.
    for (uint32_t j = 0; j < na; ++j) {
      const Rule* c = cand[j];
      const uint8_t a = act[j];
      const uint64_t* k = key_words(*keys[a]);
      if (slow[j] || (c != nullptr && !matches(c, k, s))) [[unlikely]] {  // full line / 16-bit tag collision
        c = probe_from(dir_seg(cur.d[j]), dir_cap_log(cur.d[j]), cur.pos[j], cur.h[j], k, s);
      }
      if (c == nullptr) continue;
      const uint64_t rk = c->rank();
      if (rk > best_rank[a]) {
        best_rank[a] = rk;
        out[a] = c;
      }
    }
    if (si + 1 == nsub) break;
    // Drop packets whose best already beats everything in the remaining subtables (sorted by max priority).
    const uint32_t next_max = subs[si + 1]->max_priority;
    uint32_t m = 0;
    for (uint32_t j = 0; j < na; ++j) {
      const uint8_t a = act[j];
      if ((best_rank[a] >> 32) > next_max) continue;
      act[m] = a;
      nxt.h[m] = nxt.h[j];
      nxt.d[m] = nxt.d[j];
      nxt.pos[m] = nxt.pos[j];
      ++m;
    }
    na = m;
    if (na == 0) break;
  }
}

}  // namespace

const Rule* lookup(const TableSet& snap, uint8_t table, const FlowKey& key) noexcept {
  const Table* t = table < kMaxTables ? snap.tables[table] : nullptr;
  return t != nullptr ? table_lookup(*t, key) : nullptr;
}

void lookup_burst(const TableSet& snap, uint8_t table, const FlowKey* const keys[], uint32_t n,
                  const Rule* out[]) noexcept {
  const Table* t = table < kMaxTables ? snap.tables[table] : nullptr;
  for (uint32_t base = 0; base < n; base += kMaxBurst) {
    const uint32_t cnt = std::min<uint32_t>(kMaxBurst, n - base);
    if (t == nullptr) {
      for (uint32_t i = 0; i < cnt; ++i) out[base + i] = nullptr;
    } else {
      table_lookup_burst(*t, keys + base, cnt, out + base);
    }
  }
}

void walk(const TableSet& snap, FlowKey& key, WalkResult& res) noexcept {
  res.n_hits = 0;
  res.miss_table = kNoTable;
  unsigned t = 0;
  for (;;) {
    const Table* tb = snap.tables[t];
    const Rule* r = tb != nullptr ? table_lookup(*tb, key) : nullptr;
    if (r == nullptr) {
      res.miss_table = uint8_t(t);
      return;
    }
    res.hits[res.n_hits++] = r;
    r->apply_rewrite(key);
    // Commit guarantees goto chains of at most kMaxWalkHits tables; the bound check is belt and braces.
    if (!r->has_goto() || res.n_hits == kMaxWalkHits) return;
    t = r->goto_table();
  }
}

void walk_burst(const TableSet& snap, FlowKey* const keys[], uint32_t n, WalkResult results[]) noexcept {
  for (uint32_t base = 0; base < n; base += kMaxBurst) {
    const uint32_t cnt = std::min<uint32_t>(kMaxBurst, n - base);
    FlowKey* const* ks = keys + base;
    WalkResult* rs = results + base;
    uint8_t cur[kMaxBurst];
    uint8_t pend[kMaxBurst];
    uint32_t np = cnt;
    for (uint32_t i = 0; i < cnt; ++i) {
      rs[i].n_hits = 0;
      rs[i].miss_table = kNoTable;
      cur[i] = 0;
      pend[i] = uint8_t(i);
    }
    // Gotos only go up, so visiting tables in increasing order handles every packet in one pass.
    while (np != 0) {
      unsigned t = kMaxTables;
      for (uint32_t j = 0; j < np; ++j) t = std::min<unsigned>(t, cur[pend[j]]);
      uint8_t sel[kMaxBurst];
      const FlowKey* sk[kMaxBurst];
      uint32_t ns = 0, nr = 0;
      for (uint32_t j = 0; j < np; ++j) {
        const uint8_t i = pend[j];
        if (cur[i] == t) {
          sel[ns] = i;
          sk[ns++] = ks[i];
        } else {
          pend[nr++] = i;
        }
      }
      np = nr;
      const Table* tb = snap.tables[t];
      const Rule* out[kMaxBurst];
      if (tb != nullptr) {
        table_lookup_burst(*tb, sk, ns, out);
      } else {
        for (uint32_t j = 0; j < ns; ++j) out[j] = nullptr;
      }
      for (uint32_t j = 0; j < ns; ++j) {
        const uint8_t i = sel[j];
        WalkResult& w = rs[i];
        const Rule* r = out[j];
        if (r == nullptr) {
          w.miss_table = uint8_t(t);
          continue;
        }
        w.hits[w.n_hits++] = r;
        r->apply_rewrite(*ks[i]);
        if (r->has_goto() && w.n_hits < kMaxWalkHits) {
          cur[i] = r->goto_table();
          pend[np++] = i;
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Control side

const char* to_string(CommitError e) noexcept {
  switch (e) {
    case CommitError::kNone: return "ok";
    case CommitError::kBadRuleId: return "rule id 0xffffffff is reserved";
    case CommitError::kDuplicateId: return "duplicate rule id";
    case CommitError::kUnknownId: return "no rule with this id";
    case CommitError::kBadTable: return "table number out of range (0..254)";
    case CommitError::kMissingTable: return "table does not exist";
    case CommitError::kGotoNotHigher: return "goto_table must be higher than the rule's table";
    case CommitError::kGotoMissing: return "goto_table does not exist";
    case CommitError::kValueOutsideMask: return "match value has bits outside the mask";
    case CommitError::kRewriteOutsideMask: return "rewrite value has bits outside the rewrite mask";
    case CommitError::kTableExists: return "table already exists";
    case CommitError::kTableNotEmpty: return "table still has rules";
    case CommitError::kTableReferenced: return "table is the goto target of some rule";
    case CommitError::kChainTooLong: return "goto chain would exceed the maximum walk depth";
  }
  return "?";
}

std::string CommitResult::message() const {
  if (ok()) return "ok";
  std::string m = "op " + std::to_string(op_index) + ": ";
  if (rule_id != kInvalidRuleId) m += "rule " + std::to_string(rule_id) + ": ";
  if (table != 0xffff) m += "table " + std::to_string(table) + ": ";
  return m + to_string(error);
}

void Batch::reserve(size_t n) {
  ops_.reserve(n);
  specs_.reserve(n);
}
void Batch::push_spec(Kind k, const RuleSpec& r) {
  ops_.push_back({k, uint32_t(specs_.size())});
  specs_.push_back(r);
  if (r.rewrite != nullptr) {
    rewrites_.push_back(*r.rewrite);
    specs_.back().rewrite = &rewrites_.back();
  }
}
void Batch::add(const RuleSpec& r) { push_spec(Kind::kAdd, r); }
void Batch::modify(const RuleSpec& r) { push_spec(Kind::kModify, r); }
void Batch::remove(uint32_t id) { ops_.push_back({Kind::kRemove, id}); }
void Batch::add_table(unsigned t) { ops_.push_back({Kind::kAddTable, t}); }
void Batch::remove_table(unsigned t) { ops_.push_back({Kind::kRemoveTable, t}); }
void Batch::clear() {
  ops_.clear();
  specs_.clear();
  rewrites_.clear();
}

namespace detail {
struct SubtableBuilder {
  Subtable* cur = nullptr;  // newest version; private to the commit in progress while cur->born == pending
  std::map<uint32_t, uint32_t> prio_count;
  uint64_t mask_hash = 0;
  uint32_t n_rules = 0;  // including shadowed duplicates
  uint8_t table = 0;
  bool dirty = false;
};
}  // namespace detail

namespace {

using detail::SubtableBuilder;

inline uint64_t mask_hash(const FlowKey& m) noexcept {
  uint64_t h = 0;
  for (unsigned w = 0; w < kFlowKeyWords; ++w) h = mix(h, key_words(m)[w]);
  return finish(h);
}
// The subtable keeps its mask compactly (used words only); compare a full mask against it.
inline bool same_mask(const Subtable* s, const FlowKey& m) noexcept {
  const uint64_t* mw = key_words(m);
  unsigned j = 0;
  for (unsigned w = 0; w < kFlowKeyWords; ++w) {
    if (mw[w] == 0) continue;
    if (j >= s->n_words || s->word_idx[j] != w || s->mask()[j] != mw[w]) return false;
    ++j;
  }
  return j == s->n_words;
}

struct TableBuilder {
  bool exists = false;
  bool dirty = false;
  uint32_t n_rules = 0;
  uint32_t goto_refs = 0;  // rules (in lower tables) whose goto is this table
  uint32_t next_seq = 0;
  const Table* cur = nullptr;
  std::map<uint8_t, uint32_t> goto_out;  // goto target -> number of rules here jumping there
  std::unordered_multimap<uint64_t, std::unique_ptr<SubtableBuilder>> subs;  // by mask hash
};

// Counts what it hands out so the benchmark can report bytes per rule honestly (usable size + malloc header).
class Heap {
 public:
  explicit Heap(bool poison) : poison_(poison) {}
  void* alloc(size_t n, size_t align) {
    void* p = align > 16 ? std::aligned_alloc(align, (n + align - 1) & ~(align - 1)) : std::malloc(n);
    if (p == nullptr) throw std::bad_alloc();
    live_ += malloc_usable_size(p) + sizeof(size_t);
    return p;
  }
  void release(void* p) noexcept {
    if (p == nullptr) return;
    const size_t u = malloc_usable_size(p);
    live_ -= u + sizeof(size_t);
    if (poison_) std::memset(p, 0xa5, u);
    std::free(p);
  }
  size_t live() const noexcept { return live_; }

 private:
  size_t live_ = 0;
  bool poison_;
};

inline uint32_t hash32(uint32_t x) noexcept { return uint32_t(finish(x)); }  // control-side id maps

// id -> Rule*, open addressing keyed by rule->id() (8-byte slots, load <= 0.7). Control thread only.
class RuleIndex {
 public:
  RuleIndex() : slots_(16, nullptr) {}
  Rule* find(uint32_t id) const noexcept {
    const uint32_t m = uint32_t(slots_.size() - 1);
    for (uint32_t i = hash32(id) & m;; i = (i + 1) & m) {
      Rule* r = slots_[i];
      if (r == nullptr || r->id() == id) return r;
    }
  }
  void insert(Rule* r) {
    if ((n_ + 1) * 10 > slots_.size() * 7) grow();
    put(r);
    ++n_;
  }
  void erase(uint32_t id) noexcept {
    const uint32_t m = uint32_t(slots_.size() - 1);
    uint32_t i = hash32(id) & m;
    while (slots_[i]->id() != id) i = (i + 1) & m;
    // Backward-shift deletion keeps probe chains intact without tombstones.
    for (uint32_t k = i;;) {
      slots_[i] = nullptr;
      for (;;) {
        k = (k + 1) & m;
        if (slots_[k] == nullptr) {
          if (--n_ * 8 < slots_.size() && slots_.size() > 64) shrink();
          return;
        }
        const uint32_t h = hash32(slots_[k]->id()) & m;
        const bool stays = i <= k ? (i < h && h <= k) : (i < h || h <= k);
        if (!stays) break;
      }
      slots_[i] = slots_[k];
      i = k;
    }
  }
  template <class F>
  void for_each(F f) const {
    for (Rule* r : slots_)
      if (r != nullptr) f(r);
  }
  size_t size() const noexcept { return n_; }
  size_t bytes() const noexcept { return slots_.size() * sizeof(Rule*); }
  void reserve(size_t n) {
    while ((n + 1) * 10 > slots_.size() * 7) grow();
  }

 private:
  void put(Rule* r) noexcept {
    const uint32_t m = uint32_t(slots_.size() - 1);
    uint32_t i = hash32(r->id()) & m;
    while (slots_[i] != nullptr) i = (i + 1) & m;
    slots_[i] = r;
  }
  void grow() { resize(slots_.size() * 2); }
  void shrink() {
    size_t c = 16;
    while (c * 7 < (n_ + 1) * 20) c *= 2;  // back to load ~0.35-0.5
    resize(c);
  }
  void resize(size_t n) {
    std::vector<Rule*> old(n, nullptr);
    old.swap(slots_);
    for (Rule* r : old)
      if (r != nullptr) put(r);
  }
  std::vector<Rule*> slots_;
  size_t n_ = 0;
};

// Batch-local id -> uint32 map (no deletion). Key kInvalidRuleId is never inserted.
class IdMap32 {
 public:
  explicit IdMap32(size_t n) {
    size_t c = 16;
    while (c < 2 * n + 2) c *= 2;
    slots_.assign(c, ~uint64_t(0));
  }
  // Value for id, or kNotFound.
  static constexpr uint64_t kNotFound = ~uint64_t(0);
  uint64_t find(uint32_t id) const noexcept {
    const uint32_t m = uint32_t(slots_.size() - 1);
    for (uint32_t i = hash32(id) & m;; i = (i + 1) & m) {
      if (slots_[i] == ~uint64_t(0)) return kNotFound;
      if (uint32_t(slots_[i] >> 32) == id) return uint32_t(slots_[i]);
    }
  }
  void set(uint32_t id, uint32_t v) noexcept {
    const uint32_t m = uint32_t(slots_.size() - 1);
    uint32_t i = hash32(id) & m;
    while (slots_[i] != ~uint64_t(0) && uint32_t(slots_[i] >> 32) != id) i = (i + 1) & m;
    slots_[i] = uint64_t(id) << 32 | v;
  }

 private:
  std::vector<uint64_t> slots_;
};

}  // namespace

struct ClassifierImpl {
  ClassifierImpl(Rcu& r, ClassifierOptions o, Published<TableSet>& p) : rcu(r), pub(p), opt(o), heap(o.poison_freed) {}
  ~ClassifierImpl();

  Rcu& rcu;
  Published<TableSet>& pub;
  ClassifierOptions opt;
  Heap heap;
  std::array<TableBuilder, kMaxTables> tables;
  RuleIndex index;
  const TableSet* cur = nullptr;
  uint64_t version = 0;
  uint64_t pending = 0;
  size_t n_subtables = 0;
  size_t n_tables = 0;
  std::vector<void*> garbage;  // dropped by the commit in progress; freed with the snapshot it replaces
  std::vector<SubtableBuilder*> dirty_subs;
  std::vector<uint8_t> dirty_tables;
  SubtableBuilder* last_builder = nullptr;  // bulk loads are usually runs of one mask

  struct Retired {
    uint64_t token;
    const TableSet* root;
    std::vector<void*> garbage;
  };
  std::deque<Retired> retired;
  uint64_t n_published = 0, n_freed = 0, newest_freed = 0;

  void init();
  CommitResult commit(const Batch& b);
  CommitResult validate(const Batch& b, IdMap32& net, std::array<bool, kMaxTables>& exists);
  void apply(const Batch& b, const IdMap32& net, const std::array<bool, kMaxTables>& exists);
  size_t reclaim() noexcept;
  void free_retired(Retired& r) noexcept;

  // builder helpers
  void mark(SubtableBuilder* B, TableBuilder& T, uint8_t t);
  SubtableBuilder* builder_for(uint8_t t, const FlowKey& mask);
  Subtable* new_subtable(const Subtable* like, const FlowKey* mask, unsigned depth);
  Segment* new_segment(unsigned cap_log, unsigned depth);
  Subtable* mutable_subtable(SubtableBuilder* B);
  Segment* mutable_segment(Subtable* s, uint32_t di);
  void drop(void* p, uint64_t born) {
    if (born == pending) {
      heap.release(p);
    } else {
      garbage.push_back(p);
    }
  }
  void drop_subtable(Subtable* s);
  void insert_entry(SubtableBuilder* B, uint64_t h, const Rule* r);
  Segment* grow_or_split(SubtableBuilder* B, uint64_t h);
  void rebuild(SubtableBuilder* B);
  void add_rule(const RuleSpec& spec);
  void remove_rule(Rule* r);
  void finalize_subtables();
  void publish();
};

namespace {
inline void set_range(Subtable* s, uint32_t di, unsigned local_depth, DirEnt v) noexcept {
  const uint32_t count = 1u << (s->depth - local_depth);
  const uint32_t start = di & ~(count - 1);
  DirEnt* d = s->dir();
  for (uint32_t i = 0; i < count; ++i) d[start + i] = v;
}
inline void seg_put(Segment* g, uint64_t h, const Rule* r) noexcept {
  const uint32_t m = g->cap() - 1;
  uint32_t j = home(h, g->cap_log);
  while (g->e()[j] != 0) j = (j + 1) & m;
  g->e()[j] = make_entry(h, r);
  ++g->used;
}
inline void seg_erase(Segment* g, uint32_t i, unsigned nw) noexcept {
  const uint32_t m = g->cap() - 1;
  Entry* e = g->e();
  for (uint32_t k = i;;) {
    e[i] = 0;
    for (;;) {
      k = (k + 1) & m;
      if (e[k] == 0) {
        --g->used;
        return;
      }
      const uint32_t h = home(hash_words(entry_rule(e[k])->words(), nw), g->cap_log);
      const bool stays = i <= k ? (i < h && h <= k) : (i < h || h <= k);
      if (!stays) break;
    }
    e[i] = e[k];
    i = k;
  }
}
// Slot holding `words` (the winner of that masked value), or -1.
inline int seg_find(const Segment* g, uint64_t h, const uint64_t* words, unsigned nw) noexcept {
  const uint32_t m = g->cap() - 1;
  for (uint32_t j = home(h, g->cap_log);; j = (j + 1) & m) {
    const Entry e = g->e()[j];
    if (e == 0) return -1;
    if (tag_matches(e, h) && words_equal(entry_rule(e)->words(), words, nw)) return int(j);
  }
}
template <class F>
void for_each_segment(const Subtable* s, F f) {
  const DirEnt* d = s->dir();
  const uint32_t n = 1u << s->depth;
  for (uint32_t i = 0; i < n;) {
    Segment* g = dir_seg(d[i]);
    i += 1u << (s->depth - g->depth);  // before f(), which may free g
    f(g);
  }
}
}  // namespace

void ClassifierImpl::init() {
  auto* ts = static_cast<TableSet*>(heap.alloc(sizeof(TableSet), 64));
  std::memset(static_cast<void*>(ts), 0, sizeof(TableSet));
  cur = ts;
  pub.publish(ts);
}

ClassifierImpl::~ClassifierImpl() {
  for (Retired& r : retired) free_retired(r);
  for (TableBuilder& T : tables) {
    for (auto& [mask, B] : T.subs) {
      for_each_segment(B->cur, [&](Segment* g) { heap.release(g); });
      heap.release(B->cur);
    }
    heap.release(const_cast<Table*>(T.cur));
  }
  index.for_each([&](Rule* r) { heap.release(r); });
  heap.release(const_cast<TableSet*>(cur));
}

Subtable* ClassifierImpl::new_subtable(const Subtable* like, const FlowKey* mask, unsigned depth) {
  unsigned nw = 0;
  uint8_t idx[kFlowKeyWords];
  uint16_t map = 0;
  if (like != nullptr) {
    nw = like->n_words;
  } else {
    for (unsigned w = 0; w < kFlowKeyWords; ++w)
      if (key_words(*mask)[w] != 0) {
        idx[nw++] = uint8_t(w);
        map |= uint16_t(1u << w);
      }
  }
  auto* s = static_cast<Subtable*>(heap.alloc(Subtable::bytes(nw, depth), 64));
  std::memset(static_cast<void*>(s), 0, sizeof(Subtable));
  if (like != nullptr) {
    std::memcpy(static_cast<void*>(s), like, sizeof(Subtable) + 8 * nw);
  } else {
    s->n_words = uint8_t(nw);
    s->word_map = map;
    std::memcpy(s->word_idx, idx, nw);
    for (unsigned j = 0; j < nw; ++j) s->mask()[j] = key_words(*mask)[idx[j]];
  }
  s->born = pending;
  s->depth = uint8_t(depth);
  s->n_entries = 0;
  s->cap_total = 0;
  return s;
}

Segment* ClassifierImpl::new_segment(unsigned cap_log, unsigned depth) {
  auto* g = static_cast<Segment*>(heap.alloc(Segment::bytes(cap_log), 64));
  std::memset(static_cast<void*>(g), 0, Segment::bytes(cap_log));
  g->born = pending;
  g->cap_log = uint8_t(cap_log);
  g->depth = uint8_t(depth);
  return g;
}

Subtable* ClassifierImpl::mutable_subtable(SubtableBuilder* B) {
  Subtable* s = B->cur;
  if (s->born == pending) return s;
  const size_t sz = Subtable::bytes(s->n_words, s->depth);
  auto* c = static_cast<Subtable*>(heap.alloc(sz, 64));
  std::memcpy(static_cast<void*>(c), s, sz);
  c->born = pending;
  garbage.push_back(s);
  B->cur = c;
  return c;
}

Segment* ClassifierImpl::mutable_segment(Subtable* s, uint32_t di) {
  Segment* g = dir_seg(s->dir()[di]);
  if (g->born == pending) return g;
  const size_t sz = Segment::bytes(g->cap_log);
  auto* c = static_cast<Segment*>(heap.alloc(sz, 64));
  std::memcpy(static_cast<void*>(c), g, sz);
  c->born = pending;
  garbage.push_back(g);
  set_range(s, di, g->depth, dir_ent(c));
  return c;
}

void ClassifierImpl::drop_subtable(Subtable* s) {
  for_each_segment(s, [&](Segment* g) { drop(g, g->born); });
  drop(s, s->born);
}

// The segment that holds h must be private and over its load limit.
Segment* ClassifierImpl::grow_or_split(SubtableBuilder* B, uint64_t h) {
  Subtable* s = B->cur;
  uint32_t di = dir_index(h, s->depth);
  Segment* g = dir_seg(s->dir()[di]);
  if (g->cap_log < kMaxSegLog || g->depth >= kMaxDepth) {
    Segment* n = new_segment(g->cap_log + 1u, g->depth);
    for (uint32_t j = 0; j < g->cap(); ++j)
      if (const Entry e = g->e()[j]; e != 0) seg_put(n, hash_words(entry_rule(e)->words(), s->n_words), entry_rule(e));
    set_range(s, di, g->depth, dir_ent(n));
    s->cap_total += n->cap() - g->cap();
    heap.release(g);
    return n;
  }
  if (g->depth == s->depth) {
    // Double the directory: every slot splits into two that point at the same segment.
    Subtable* n = new_subtable(s, nullptr, s->depth + 1u);
    n->n_entries = s->n_entries;
    n->cap_total = s->cap_total;
    const DirEnt* od = s->dir();
    DirEnt* nd = n->dir();
    for (uint32_t i = 0; i < (1u << s->depth); ++i) nd[2 * i] = nd[2 * i + 1] = od[i];
    heap.release(s);
    B->cur = s = n;
    di = dir_index(h, s->depth);
  }
  Segment* a = new_segment(kMaxSegLog, g->depth + 1u);
  Segment* b = new_segment(kMaxSegLog, g->depth + 1u);
  const uint64_t bit = uint64_t(1) << (63 - g->depth);
  for (uint32_t j = 0; j < g->cap(); ++j) {
    const Entry e = g->e()[j];
    if (e == 0) continue;
    const uint64_t eh = hash_words(entry_rule(e)->words(), s->n_words);
    seg_put((eh & bit) ? b : a, eh, entry_rule(e));
  }
  const uint32_t count = 1u << (s->depth - g->depth);
  const uint32_t start = di & ~(count - 1);
  for (uint32_t i = 0; i < count / 2; ++i) {
    s->dir()[start + i] = dir_ent(a);
    s->dir()[start + count / 2 + i] = dir_ent(b);
  }
  s->cap_total += a->cap() + b->cap() - g->cap();
  heap.release(g);
  return (h & bit) ? b : a;
}

// r's masked value must not be in the subtable yet; B->cur must be private.
void ClassifierImpl::insert_entry(SubtableBuilder* B, uint64_t h, const Rule* r) {
  Subtable* s = B->cur;
  Segment* g = mutable_segment(s, dir_index(h, s->depth));
  seg_put(g, h, r);
  ++s->n_entries;
  while (overloaded(g->used, g->cap())) g = grow_or_split(B, h);
}

void ClassifierImpl::rebuild(SubtableBuilder* B) {
  Subtable* old = B->cur;
  Subtable* s = new_subtable(old, nullptr, 0);
  Segment* g = new_segment(kMinSegLog, 0);
  s->dir()[0] = dir_ent(g);
  s->cap_total = g->cap();
  B->cur = s;  // insert_entry may replace B->cur (directory doubling): do not use s below
  const unsigned nw = old->n_words;
  for_each_segment(old, [&](Segment* og) {
    for (uint32_t j = 0; j < og->cap(); ++j)
      if (const Entry e = og->e()[j]; e != 0) insert_entry(B, hash_words(entry_rule(e)->words(), nw), entry_rule(e));
  });
  drop_subtable(old);
}

void ClassifierImpl::mark(SubtableBuilder* B, TableBuilder& T, uint8_t t) {
  if (!B->dirty) {
    B->dirty = true;
    dirty_subs.push_back(B);
  }
  if (!T.dirty) {
    T.dirty = true;
    dirty_tables.push_back(t);
  }
}

SubtableBuilder* ClassifierImpl::builder_for(uint8_t t, const FlowKey& mask) {
  if (last_builder != nullptr && last_builder->table == t && same_mask(last_builder->cur, mask))
    return last_builder;
  TableBuilder& T = tables[t];
  const uint64_t mh = mask_hash(mask);
  auto [lo, hi] = T.subs.equal_range(mh);
  auto it = lo;
  while (it != hi && !same_mask(it->second->cur, mask)) ++it;
  if (it == hi) {
    auto B = std::make_unique<SubtableBuilder>();
    B->table = t;
    B->mask_hash = mh;
    Subtable* s = new_subtable(nullptr, &mask, 0);
    s->seq = T.next_seq++;
    Segment* g = new_segment(kMinSegLog, 0);
    s->dir()[0] = dir_ent(g);
    s->cap_total = g->cap();
    B->cur = s;
    it = T.subs.emplace(mh, std::move(B));
    ++n_subtables;
  }
  return last_builder = it->second.get();
}

void ClassifierImpl::add_rule(const RuleSpec& spec) {
  SubtableBuilder* B = builder_for(spec.table, spec.mask);
  TableBuilder& T = tables[spec.table];
  const Subtable* cs = B->cur;
  const unsigned nw = cs->n_words;
  unsigned nrw = 0;
  uint16_t rmap = 0;
  if (spec.rewrite != nullptr)
    for (unsigned w = 0; w < kFlowKeyWords; ++w)
      if (key_words(spec.rewrite->mask)[w] != 0) {
        ++nrw;
        rmap |= uint16_t(1u << w);
      }
  auto* r = static_cast<Rule*>(heap.alloc(sizeof(Rule) + 8 * nw + 16 * nrw, 8));
  if ((reinterpret_cast<uintptr_t>(r) & ~kPtrMask) != 0) throw std::bad_alloc();  // hash entries hold 48 bits
  r->id_ = spec.id;
  r->priority_ = spec.priority;
  r->actions_ = spec.actions;
  r->table_ = spec.table;
  r->goto_ = spec.goto_table;
  r->n_match_ = uint8_t(nw);
  r->n_rewrite_ = uint8_t(nrw);
  r->rewrite_map_ = rmap;
  r->pad_ = 0;
  r->next_dup_ = nullptr;
  r->owner_ = B;
  auto* w = const_cast<uint64_t*>(r->words());
  for (unsigned j = 0; j < nw; ++j) w[j] = key_words(spec.value)[cs->word_idx[j]];
  for (unsigned m = rmap, k = nw; m != 0; m &= m - 1, k += 2) {
    const unsigned word = unsigned(__builtin_ctz(m));
    w[k] = key_words(spec.rewrite->value)[word];
    w[k + 1] = key_words(spec.rewrite->mask)[word];
  }

  const uint64_t h = hash_words(w, nw);
  const uint32_t di = dir_index(h, cs->depth);
  const int j = seg_find(dir_seg(cs->dir()[di]), h, w, nw);
  if (j < 0) {
    mutable_subtable(B);
    insert_entry(B, h, r);
  } else {
    Rule* win = const_cast<Rule*>(entry_rule(dir_seg(cs->dir()[di])->e()[j]));
    if (r->rank() > win->rank()) {
      r->next_dup_ = win;
      Subtable* s = mutable_subtable(B);
      mutable_segment(s, di)->e()[j] = make_entry(h, r);
    } else {
      Rule* p = win;
      while (p->next_dup_ != nullptr && p->next_dup_->rank() > r->rank()) p = p->next_dup_;
      r->next_dup_ = p->next_dup_;
      p->next_dup_ = r;
    }
  }
  ++B->prio_count[spec.priority];
  ++B->n_rules;
  ++T.n_rules;
  if (spec.goto_table != kNoTable) {
    ++tables[spec.goto_table].goto_refs;
    ++T.goto_out[spec.goto_table];
  }
  mark(B, T, spec.table);
  index.insert(r);
}

void ClassifierImpl::remove_rule(Rule* r) {
  SubtableBuilder* B = r->owner_;
  TableBuilder& T = tables[r->table_];
  const Subtable* cs = B->cur;
  const unsigned nw = cs->n_words;
  const uint64_t h = hash_words(r->words(), nw);
  const uint32_t di = dir_index(h, cs->depth);
  const int j = seg_find(dir_seg(cs->dir()[di]), h, r->words(), nw);
  assert(j >= 0);
  Rule* win = const_cast<Rule*>(entry_rule(dir_seg(cs->dir()[di])->e()[j]));
  if (win == r) {
    Subtable* s = mutable_subtable(B);
    Segment* g = mutable_segment(s, di);
    if (r->next_dup_ != nullptr) {
      g->e()[j] = make_entry(h, r->next_dup_);
    } else {
      seg_erase(g, uint32_t(j), nw);
      --s->n_entries;
    }
  } else {
    // Shadowed duplicate: invisible to lookups, only the control-side chain changes.
    Rule* p = win;
    while (p->next_dup_ != r) p = p->next_dup_;
    p->next_dup_ = r->next_dup_;
  }
  auto it = B->prio_count.find(r->priority_);
  if (--it->second == 0) B->prio_count.erase(it);
  --B->n_rules;
  --T.n_rules;
  if (r->goto_ != kNoTable) {
    --tables[r->goto_].goto_refs;
    auto g = T.goto_out.find(r->goto_);
    if (--g->second == 0) T.goto_out.erase(g);
  }
  mark(B, T, r->table_);
  index.erase(r->id_);
  garbage.push_back(r);
}

void ClassifierImpl::finalize_subtables() {
  for (SubtableBuilder* B : dirty_subs) {
    B->dirty = false;
    TableBuilder& T = tables[B->table];
    if (B->n_rules == 0) {
      drop_subtable(B->cur);
      if (last_builder == B) last_builder = nullptr;
      auto [lo, hi] = T.subs.equal_range(B->mask_hash);
      while (lo->second.get() != B) ++lo;
      T.subs.erase(lo);  // destroys B
      --n_subtables;
      continue;
    }
    const uint32_t mp = B->prio_count.rbegin()->first;
    if (B->cur->max_priority != mp) mutable_subtable(B)->max_priority = mp;
    const Subtable* s = B->cur;
    if (uint64_t(s->n_entries) * 16 < s->cap_total && s->cap_total > (1u << kMaxSegLog)) rebuild(B);
  }
  dirty_subs.clear();
}

void ClassifierImpl::publish() {
  for (uint8_t t : dirty_tables) {
    TableBuilder& T = tables[t];
    T.dirty = false;
    if (T.cur != nullptr) garbage.push_back(const_cast<Table*>(T.cur));
    T.cur = nullptr;
    if (!T.exists) continue;
    std::vector<const SubtableBuilder*> v;
    v.reserve(T.subs.size());
    for (auto& [mask, B] : T.subs) v.push_back(B.get());
    std::sort(v.begin(), v.end(), [](const SubtableBuilder* a, const SubtableBuilder* b) {
      if (a->cur->max_priority != b->cur->max_priority) return a->cur->max_priority > b->cur->max_priority;
      return a->cur->seq < b->cur->seq;
    });
    auto* nt = static_cast<Table*>(heap.alloc(sizeof(Table) + sizeof(void*) * v.size(), 8));
    nt->n_subtables = uint32_t(v.size());
    nt->n_rules = T.n_rules;
    for (size_t i = 0; i < v.size(); ++i) nt->subs()[i] = v[i]->cur;
    T.cur = nt;
  }
  dirty_tables.clear();
  auto* ts = static_cast<TableSet*>(heap.alloc(sizeof(TableSet), 64));
  ts->version = pending;
  ts->n_rules = uint32_t(index.size());
  ts->n_tables = uint16_t(n_tables);
  ts->pad = 0;
  for (unsigned t = 0; t < kMaxTables; ++t) ts->tables[t] = tables[t].cur;

  const TableSet* old = pub.publish(ts);
  const uint64_t token = rcu.start();  // after the store: readers that report this token have seen `ts`
  retired.push_back({token, old, std::move(garbage)});
  garbage = {};
  cur = ts;
  version = pending;
  ++n_published;
}

CommitResult ClassifierImpl::validate(const Batch& b, IdMap32& net, std::array<bool, kMaxTables>& exists) {
  std::array<int64_t, kMaxTables> rules_delta{}, refs_delta{};
  std::map<uint16_t, int64_t> edge_delta;  // (table << 8 | goto) -> change in rule count
  bool new_edges = false;
  for (unsigned t = 0; t < kMaxTables; ++t) exists[t] = tables[t].exists;

  // Current (table, goto) of an id as left by the ops so far; false if it does not exist.
  auto state_of = [&](uint32_t id, uint8_t& t, uint8_t& g) {
    if (const uint64_t v = net.find(id); v != IdMap32::kNotFound) {
      if (v == kRemoved) return false;
      t = b.specs_[v].table;
      g = b.specs_[v].goto_table;
      return true;
    }
    if (const Rule* r = index.find(id)) {
      t = r->table_;
      g = r->goto_;
      return true;
    }
    return false;
  };
  auto count = [&](uint8_t t, uint8_t g, int d) {
    rules_delta[t] += d;
    if (g != kNoTable) {
      refs_delta[g] += d;
      edge_delta[uint16_t(t << 8 | g)] += d;
      if (d > 0) new_edges = true;
    }
  };
  auto check_spec = [&](const RuleSpec& s, CommitResult& e) {
    e.rule_id = s.id;
    if (s.table >= kMaxTables) {
      e.table = s.table;
      e.error = CommitError::kBadTable;
    } else if (!exists[s.table]) {
      e.table = s.table;
      e.error = CommitError::kMissingTable;
    } else if (s.goto_table != kNoTable && s.goto_table <= s.table) {
      e.table = s.goto_table;
      e.error = CommitError::kGotoNotHigher;
    } else if (s.goto_table != kNoTable && !exists[s.goto_table]) {
      e.table = s.goto_table;
      e.error = CommitError::kGotoMissing;
    } else {
      for (unsigned w = 0; w < kFlowKeyWords; ++w)
        if (key_words(s.value)[w] & ~key_words(s.mask)[w]) e.error = CommitError::kValueOutsideMask;
      if (s.rewrite != nullptr && e.error == CommitError::kNone)
        for (unsigned w = 0; w < kFlowKeyWords; ++w)
          if (key_words(s.rewrite->value)[w] & ~key_words(s.rewrite->mask)[w])
            e.error = CommitError::kRewriteOutsideMask;
    }
    return e.error == CommitError::kNone;
  };

  for (uint32_t i = 0; i < b.ops_.size(); ++i) {
    const Batch::Op& op = b.ops_[i];
    CommitResult e;
    e.op_index = i;
    e.version = version;
    uint8_t ot = 0, og = 0;
    switch (op.kind) {
      case Batch::Kind::kAdd:
      case Batch::Kind::kModify: {
        const RuleSpec& s = b.specs_[op.arg];
        e.rule_id = s.id;
        if (s.id == kInvalidRuleId) {
          e.error = CommitError::kBadRuleId;
          return e;
        }
        const bool present = state_of(s.id, ot, og);
        if (op.kind == Batch::Kind::kAdd && present) {
          e.error = CommitError::kDuplicateId;
          return e;
        }
        if (op.kind == Batch::Kind::kModify && !present) {
          e.error = CommitError::kUnknownId;
          return e;
        }
        if (!check_spec(s, e)) return e;
        if (present) count(ot, og, -1);
        count(s.table, s.goto_table, +1);
        net.set(s.id, op.arg);
        break;
      }
      case Batch::Kind::kRemove:
        e.rule_id = op.arg;
        if (op.arg == kInvalidRuleId || !state_of(op.arg, ot, og)) {
          e.error = CommitError::kUnknownId;
          return e;
        }
        count(ot, og, -1);
        net.set(op.arg, kRemoved);
        break;
      case Batch::Kind::kAddTable:
        e.table = uint16_t(std::min<uint32_t>(op.arg, 0xfffe));
        if (op.arg >= kMaxTables) {
          e.error = CommitError::kBadTable;
          return e;
        }
        if (exists[op.arg]) {
          e.error = CommitError::kTableExists;
          return e;
        }
        exists[op.arg] = true;
        break;
      case Batch::Kind::kRemoveTable:
        e.table = uint16_t(std::min<uint32_t>(op.arg, 0xfffe));
        if (op.arg >= kMaxTables) {
          e.error = CommitError::kBadTable;
          return e;
        }
        if (!exists[op.arg]) {
          e.error = CommitError::kMissingTable;
          return e;
        }
        if (tables[op.arg].n_rules + rules_delta[op.arg] != 0) {
          e.error = CommitError::kTableNotEmpty;
          return e;
        }
        if (tables[op.arg].goto_refs + refs_delta[op.arg] != 0) {
          e.error = CommitError::kTableReferenced;
          return e;
        }
        exists[op.arg] = false;
        break;
    }
  }

  if (new_edges) {
    // Longest chain through each new edge t -> g: (tables on the longest path ending at t) + (starting at g).
    std::array<std::vector<uint8_t>, kMaxTables> adj;
    for (unsigned t = 0; t < kMaxTables; ++t) {
      for (auto [g, n] : tables[t].goto_out) {
        auto d = edge_delta.find(uint16_t(t << 8 | g));
        if (int64_t(n) + (d != edge_delta.end() ? d->second : 0) > 0) adj[t].push_back(g);
      }
    }
    for (auto [k, d] : edge_delta)
      if (d > 0 && tables[k >> 8].goto_out.count(uint8_t(k)) == 0) adj[k >> 8].push_back(uint8_t(k));
    std::array<unsigned, kMaxTables> in_len{}, out_len{};
    for (unsigned t = 0; t < kMaxTables; ++t) in_len[t] = std::max(in_len[t], 1u);
    for (unsigned t = 0; t < kMaxTables; ++t)
      for (uint8_t g : adj[t]) in_len[g] = std::max(in_len[g], in_len[t] + 1);
    for (unsigned t = kMaxTables; t-- > 0;) {
      out_len[t] = 1;
      for (uint8_t g : adj[t]) out_len[t] = std::max(out_len[t], out_len[g] + 1);
    }
    for (uint32_t i = 0; i < b.ops_.size(); ++i) {
      const Batch::Op& op = b.ops_[i];
      if (op.kind != Batch::Kind::kAdd && op.kind != Batch::Kind::kModify) continue;
      const RuleSpec& s = b.specs_[op.arg];
      if (s.goto_table == kNoTable || net.find(s.id) != op.arg) continue;
      if (in_len[s.table] + out_len[s.goto_table] > kMaxWalkHits) {
        CommitResult e;
        e.op_index = i;
        e.version = version;
        e.rule_id = s.id;
        e.table = s.goto_table;
        e.error = CommitError::kChainTooLong;
        return e;
      }
    }
  }
  return {};
}

void ClassifierImpl::apply(const Batch& b, const IdMap32& net, const std::array<bool, kMaxTables>& exists) {
  pending = version + 1;
  for (unsigned t = 0; t < kMaxTables; ++t) {
    if (tables[t].exists != exists[t]) {
      tables[t].exists = exists[t];
      n_tables += exists[t] ? 1 : size_t(-1);
      if (!tables[t].dirty) {
        tables[t].dirty = true;
        dirty_tables.push_back(uint8_t(t));
      }
    }
  }
  // Removals first (frees entries for the adds), in op order, each pre-existing rule once.
  for (const Batch::Op& op : b.ops_) {
    uint32_t id;
    if (op.kind == Batch::Kind::kRemove) {
      id = op.arg;
    } else if (op.kind == Batch::Kind::kModify) {
      id = b.specs_[op.arg].id;
    } else {
      continue;
    }
    if (Rule* r = index.find(id)) remove_rule(r);
  }
  for (const Batch::Op& op : b.ops_) {
    if (op.kind != Batch::Kind::kAdd && op.kind != Batch::Kind::kModify) continue;
    const RuleSpec& s = b.specs_[op.arg];
    if (net.find(s.id) == op.arg) add_rule(s);
  }
  finalize_subtables();
  publish();
}

CommitResult ClassifierImpl::commit(const Batch& b) {
  CommitResult res;
  res.version = version;
  if (b.empty()) return res;
  IdMap32 net(b.specs_.size() + b.ops_.size());
  std::array<bool, kMaxTables> exists;
  res = validate(b, net, exists);
  if (!res.ok()) return res;
  index.reserve(index.size() + b.specs_.size());
  apply(b, net, exists);
  res.version = version;
  return res;
}

void ClassifierImpl::free_retired(Retired& r) noexcept {
  newest_freed = r.root->version;
  heap.release(const_cast<TableSet*>(r.root));
  for (void* p : r.garbage) heap.release(p);
  r.garbage.clear();
  ++n_freed;
}

size_t ClassifierImpl::reclaim() noexcept {
  size_t n = 0;
  // Tokens grow with the queue, so the first one still in its grace period ends the scan.
  while (!retired.empty() && rcu.done(retired.front().token)) {
    free_retired(retired.front());
    retired.pop_front();
    ++n;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------------------------

Classifier::Classifier(Rcu& rcu, ClassifierOptions opt) : impl_(std::make_unique<ClassifierImpl>(rcu, opt, pub_)) {
  impl_->init();
}
Classifier::~Classifier() = default;

CommitResult Classifier::commit(const Batch& batch) { return impl_->commit(batch); }
size_t Classifier::reclaim() noexcept { return impl_->reclaim(); }
uint64_t Classifier::version() const noexcept { return impl_->version; }

std::optional<RuleInfo> Classifier::find(uint32_t id) const {
  if (id == kInvalidRuleId) return std::nullopt;
  const Rule* r = impl_->index.find(id);
  if (r == nullptr) return std::nullopt;
  RuleInfo info;
  const Subtable* s = r->owner_->cur;
  for (unsigned j = 0; j < s->n_words; ++j) {
    key_words(info.spec.mask)[s->word_idx[j]] = s->mask()[j];
    key_words(info.spec.value)[s->word_idx[j]] = r->words()[j];
  }
  info.spec.id = r->id_;
  info.spec.priority = r->priority_;
  info.spec.table = r->table_;
  info.spec.goto_table = r->goto_;
  info.spec.actions = r->actions_;
  info.has_rewrite = r->has_rewrite();
  const uint64_t* rw = r->words() + r->n_match_;
  for (unsigned m = r->rewrite_map_; m != 0; m &= m - 1, rw += 2) {
    const unsigned w = unsigned(__builtin_ctz(m));
    key_words(info.rewrite.value)[w] = rw[0];
    key_words(info.rewrite.mask)[w] = rw[1];
  }
  return info;
}

ClassifierStats Classifier::stats() const {
  const ClassifierImpl& m = *impl_;
  ClassifierStats st;
  st.version = m.version;
  st.rules = m.index.size();
  st.tables = m.n_tables;
  st.subtables = m.n_subtables;
  st.snapshot_bytes = m.heap.live();
  st.index_bytes = m.index.bytes() + sizeof(ClassifierImpl);
  for (const TableBuilder& T : m.tables)
    for (const auto& [mask, B] : T.subs)
      st.index_bytes += sizeof(SubtableBuilder) + 48 /* hash node */ + 48 * B->prio_count.size();
  st.published = m.n_published;
  st.freed = m.n_freed;
  st.newest_freed_version = m.newest_freed;
  st.pending_reclaim = m.retired.size();
  return st;
}

}  // namespace esw::dp
