#pragma once
// Multi-table tuple-space classifier with RCU-published immutable snapshots.
//
// MODEL
//  - Tables 0..254 (kMaxTables). A table exists once a batch adds it. A packet's walk starts in table 0.
//  - A rule: id (unique, != kInvalidRuleId, indexes the pipeline's per-core counters), table, priority, match
//    (value + mask over FlowKey, value must be within the mask), optional goto_table (strictly higher, existing
//    table: loops are impossible), optional key rewrite (key = (key & ~m) | v, applied before the goto so later
//    tables see set_field/set_register results; the walk stays a pure function of the ingress key and can be
//    cached), and an opaque `actions` pointer the classifier never dereferences.
//  - Winner in a table: highest priority; among equal priorities the LOWEST id wins. Both are folded into one
//    64-bit rank = priority << 32 | (0xffffffff - id), so "better" is one integer compare everywhere.
//
// LOOKUP (tuple-space search, after Open vSwitch's classifier)
//  - One subtable per distinct mask in a table. A subtable keeps the mask once plus the list of FlowKey words it
//    uses; it hashes only those words. Rules store only their masked words (miniflow-like).
//  - Per masked value a subtable holds exactly one entry: the winning rule. Lower-ranked rules with the same
//    masked value (shadowed duplicates) are kept on a control-only chain so a delete can promote the next one.
//  - Subtables are ordered by max priority, descending. A packet stops searching once its best match has a
//    priority greater than the next subtable's max priority (equal must go on: the lower id could be there).
//  - Lookups go a burst at a time, one subtable at a time, in stages: hash the burst and prefetch the probe
//    lines; test each 8-entry line branch-free and prefetch the candidate rule; verify. The next subtable's
//    hash+prefetch stage runs before this one's verify stage so prefetches have work to hide behind.
//    No allocation, locks or exceptions; all noexcept.
//  - Hash: CRC32C over the used words (SSE4.2; a multiply mix otherwise) spread to 64 bits by one multiply.
//  - Hash table per subtable: extendible hashing. A directory of 2^depth segment pointers (picked by the top
//    hash bits, with the segment size in the pointer's low bits) and segments of up to 512 8-byte entries
//    (rule pointer in 48 bits + 16-bit hash tag), linear probing from a 64-byte-aligned slot, load <= 3/5, so a
//    lookup usually reads one cache line of entries and follows a pointer only on a tag match. Segments start
//    at 8 entries and double up to 512, then split in two (the directory doubles when needed). This keeps small
//    subtables small and, more importantly, lets a change copy one 4 KiB segment instead of the whole table.
//
// SNAPSHOTS, COPY-ON-WRITE, RCU
//  - Readers see a `TableSet` (all tables of one version): `classifier.acquire()` = one acquire load.
//    A commit builds the next TableSet off to the side and publishes it with one atomic pointer store, so a batch
//    (adds/modifies/removes across tables, table adds/removes) becomes visible all at once, or not at all.
//  - Copy-on-write at every level: TableSet root (2 KiB, always new) -> Table (array of subtable pointers, new
//    when the table changed) -> Subtable header + mask + directory (new when one of its segments changed) ->
//    Segment (4 KiB max, new when one of its entries changed) -> Rule (immutable; never copied, a modify makes a
//    new Rule). Unchanged objects are shared with the previous snapshot; no refcounts are needed because objects
//    are only ever dropped by a transition, and what transition V -> V+1 dropped is freed with snapshot V.
//  - Cost of a batch of k rule changes: O(k) hash operations + one copy per touched segment (<= 4 KiB), touched
//    subtable (64 B + mask + 8 B per directory slot; ~4-8 KiB for a 100k-rule subtable), touched table (8 B per
//    subtable) and the 2 KiB root. Objects created in the same commit are mutated in place, so bulk loads copy
//    nothing. A subtable that falls below 1/16 load is rebuilt (amortised O(1) per delete). Measured: ~4 us CPU
//    to modify one rule in a 100k-rule set, 100k-rule bulk insert/delete in well under 0.2 s.
//  - The old root and everything the transition dropped are queued with the token of rte_rcu_qsbr_start();
//    reclaim() (writer, non-blocking) frees the queue head while rte_rcu_qsbr_check(token, no wait) says every
//    online reader has reported quiescence since. Workers never block, the writer never frees what a reader holds.
//
// ERRORS
//  - commit() validates the batch in order against the state left by the ops before it (so a batch can add a
//    table and then rules in it); the first invalid op is returned as a CommitResult (code, rule id, table, op
//    index) and nothing of the batch is applied. Control-side allocation failure throws std::bad_alloc (and may
//    leave the builder inconsistent: treat it as fatal).
//
// THREADING
//  - Classifier: one control thread (commit, reclaim, find, stats). Readers: any number of registered RCU readers
//    using acquire() + lookup/walk, then Rcu::quiescent() once per poll loop.
//
// MEMORY (bench counter B/rule; malloc_usable_size + header of every block): a rule is 40 B + 8 B per matched
//  word + 16 B per rewritten word (~80 B with malloc rounding), hash entries ~18 B at the average load, the id
//  index ~12-20 B: ~110-125 B/rule for 10k-100k rules. Small sets pay fixed costs (2 KiB root per snapshot,
//  ~200 B per subtable), e.g. ~550 B/rule for 100 rules over 16 masks.

//
// USAGE
//   Rcu rcu(n_workers);  Classifier cls(rcu);                       // main lcore
//   Batch b;  b.add_table(0);  b.add_table(1);
//   RuleSpec r;  r.id = 7;  r.table = 0;  r.priority = 100;  r.goto_table = 1;
//   r.mask.in_port = 0xffff;  r.value.in_port = 3;  r.rewrite = &rw;  r.actions = compiled;
//   b.add(r);
//   if (CommitResult res = cls.commit(b); !res.ok()) log(res.message());  // nothing applied
//   ... later, e.g. every management-loop tick:  cls.reclaim();
//
//   rcu.register_reader(worker_id);                                   // worker lcore, once
//   for (;;) {
//     const TableSet* snap = cls.acquire();                           // once per poll iteration
//     walk_burst(*snap, key_ptrs, n, results);                        // keys get rewritten: copy if needed
//     ... results[i].hits[0..n_hits) -> actions(), id(); results[i].missed() -> miss_table
//     rcu.quiescent(worker_id);                                       // snap is dead past here
//   }

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/fastpath/flow_key.h"
#include "dataplane/fastpath/rcu.h"

namespace esw::dp {

inline constexpr unsigned kMaxTables = 255;  // table numbers 0..254
inline constexpr uint8_t kNoTable = 0xff;    // "no goto" in rules, "no miss" in walk results
inline constexpr uint32_t kInvalidRuleId = 0xffffffff;
inline constexpr unsigned kMaxWalkHits = 16;  // longest goto chain a batch may create (checked at commit)
inline constexpr unsigned kMaxBurst = 64;     // lookups are processed in chunks of this many keys

// A key rewrite: key = (key & ~mask) | value, value within mask.
struct KeyRewrite {
  FlowKey value{};
  FlowKey mask{};
};

// What the control plane asks for. Copied by Batch (including *rewrite).
struct RuleSpec {
  FlowKey value{};  // pre-masked: value & ~mask must be zero
  FlowKey mask{};
  uint32_t id = kInvalidRuleId;
  uint32_t priority = 0;
  uint8_t table = 0;
  uint8_t goto_table = kNoTable;
  const KeyRewrite* rewrite = nullptr;  // optional
  const void* actions = nullptr;        // opaque to the classifier
};

namespace detail {
struct SubtableBuilder;
}

// An installed rule as the fast path sees it. Immutable while any snapshot that reaches it is alive.
class Rule {
 public:
  uint32_t id() const noexcept { return id_; }
  uint32_t priority() const noexcept { return priority_; }
  uint8_t table() const noexcept { return table_; }
  uint8_t goto_table() const noexcept { return goto_; }
  bool has_goto() const noexcept { return goto_ != kNoTable; }
  const void* actions() const noexcept { return actions_; }
  bool has_rewrite() const noexcept { return rewrite_map_ != 0; }
  uint64_t rank() const noexcept { return uint64_t(priority_) << 32 | (0xffffffffu - id_); }

  // Masked values of the subtable's words, in word order, then (value, mask) pairs of rewritten words.
  const uint64_t* words() const noexcept { return reinterpret_cast<const uint64_t*>(this + 1); }
  void apply_rewrite(FlowKey& key) const noexcept {
    uint64_t* k = key_words(key);
    const uint64_t* rw = words() + n_match_;
    for (unsigned m = rewrite_map_; m != 0; m &= m - 1, rw += 2) {
      unsigned w = unsigned(__builtin_ctz(m));
      k[w] = (k[w] & ~rw[1]) | rw[0];
    }
  }

 private:
  friend class Classifier;
  friend struct ClassifierImpl;
  uint32_t id_;
  uint32_t priority_;
  const void* actions_;
  uint8_t table_;
  uint8_t goto_;
  uint8_t n_match_;
  uint8_t n_rewrite_;
  uint16_t rewrite_map_;
  uint16_t pad_;
  // Control thread only; the fast path never reads these.
  Rule* next_dup_;                    // next lower-ranked rule with the same table, mask and masked value
  detail::SubtableBuilder* owner_;    // the mask's builder
};
static_assert(sizeof(Rule) == 40 && alignof(Rule) == 8);

struct Table;  // opaque outside classifier.cc

// One published version of all tables. Everything reachable from it is immutable.
struct TableSet {
  uint64_t version;  // 0 = the initial empty set; +1 per published commit. Flow caches tag entries with it.
  uint32_t n_rules;
  uint16_t n_tables;
  uint16_t pad;
  const Table* tables[kMaxTables];  // nullptr: no such table
};

// Everything one walk did: the rules hit in order (table 0 first), and where it ended on a miss.
struct WalkResult {
  uint8_t n_hits;
  uint8_t miss_table;  // table whose lookup found nothing, kNoTable if the walk ended on a rule without goto
  const Rule* hits[kMaxWalkHits];
  bool missed() const noexcept { return miss_table != kNoTable; }
};

// Fast path. `snap` must come from acquire() on a registered, online RCU reader (or a quiet single thread).
const Rule* lookup(const TableSet& snap, uint8_t table, const FlowKey& key) noexcept;
void lookup_burst(const TableSet& snap, uint8_t table, const FlowKey* const keys[], uint32_t n,
                  const Rule* out[]) noexcept;
// Walk from table 0: lookup, apply the rule's rewrite to `key`, follow goto. Keep a copy of the ingress key if
// you need it (e.g. for the flow cache).
void walk(const TableSet& snap, FlowKey& key, WalkResult& result) noexcept;
void walk_burst(const TableSet& snap, FlowKey* const keys[], uint32_t n, WalkResult results[]) noexcept;

// ---- control side ----

enum class CommitError : uint8_t {
  kNone,
  kBadRuleId,           // id == kInvalidRuleId
  kDuplicateId,         // add of an id that is installed (or added earlier in the batch)
  kUnknownId,           // remove/modify of an id that is not installed
  kBadTable,            // table number >= kMaxTables (rule table, goto target or table op)
  kMissingTable,        // rule in a table that does not exist; remove_table of a missing table
  kGotoNotHigher,       // goto_table <= table
  kGotoMissing,         // goto to a table that does not exist
  kValueOutsideMask,    // value & ~mask != 0
  kRewriteOutsideMask,  // rewrite value & ~mask != 0
  kTableExists,         // add_table of an existing table
  kTableNotEmpty,       // remove_table of a table that still has rules
  kTableReferenced,     // remove_table of a table some rule jumps to
  kChainTooLong,        // the rule's goto makes a chain of more than kMaxWalkHits tables possible
};
const char* to_string(CommitError e) noexcept;

struct [[nodiscard]] CommitResult {
  CommitError error = CommitError::kNone;
  uint32_t rule_id = kInvalidRuleId;  // the offending rule (kInvalidRuleId for table ops)
  uint16_t table = 0xffff;            // the offending table, when relevant
  uint32_t op_index = 0;              // index of the offending op in the batch
  uint64_t version = 0;               // on success: the version now published (unchanged for an empty batch)
  bool ok() const noexcept { return error == CommitError::kNone; }
  std::string message() const;  // e.g. "op 3: rule 17: goto_table 2 is not higher than table 5"
};

// An ordered list of changes applied atomically by Classifier::commit.
class Batch {
 public:
  void reserve(size_t n_rules);
  void add(const RuleSpec& r);
  void modify(const RuleSpec& r);  // replaces the installed rule r.id entirely
  void remove(uint32_t id);
  void add_table(unsigned table);
  void remove_table(unsigned table);  // must be empty and not a goto target at that point of the batch
  size_t size() const noexcept { return ops_.size(); }
  bool empty() const noexcept { return ops_.empty(); }
  void clear();

 private:
  friend struct ClassifierImpl;
  enum class Kind : uint8_t { kAdd, kModify, kRemove, kAddTable, kRemoveTable };
  struct Op {
    Kind kind;
    uint32_t arg;  // spec index (add/modify), rule id (remove), table (table ops)
  };
  void push_spec(Kind k, const RuleSpec& r);
  std::vector<Op> ops_;
  std::vector<RuleSpec> specs_;
  std::deque<KeyRewrite> rewrites_;  // stable addresses for specs_[i].rewrite
};

struct ClassifierOptions {
  bool poison_freed = false;  // overwrite freed snapshot memory (tests: makes a use-after-free visible)
};

struct ClassifierStats {
  uint64_t version = 0;
  size_t rules = 0;
  size_t tables = 0;
  size_t subtables = 0;
  size_t snapshot_bytes = 0;  // live published objects, including retired ones not yet reclaimed
  size_t index_bytes = 0;     // control-only indexes (id map, per-mask builders), approximate
  uint64_t published = 0;
  uint64_t freed = 0;              // retired snapshots reclaimed
  uint64_t newest_freed_version = 0;  // version of the newest snapshot reclaimed (0 = none yet)
  size_t pending_reclaim = 0;      // retired snapshots waiting for a grace period
};

struct RuleInfo {
  RuleSpec spec;  // spec.rewrite == nullptr; see rewrite/has_rewrite
  KeyRewrite rewrite;
  bool has_rewrite = false;
};

struct ClassifierImpl;

class Classifier {
 public:
  explicit Classifier(Rcu& rcu, ClassifierOptions opt = {});
  ~Classifier();  // frees everything: no reader may hold a snapshot any more
  Classifier(const Classifier&) = delete;
  Classifier& operator=(const Classifier&) = delete;

  // Control thread. Returns immediately after the pointer store; call reclaim() later.
  CommitResult commit(const Batch& batch);
  // Control thread. Frees retired snapshots whose grace period has ended. Never blocks. Returns how many.
  size_t reclaim() noexcept;

  // Readers: one acquire load. Never null (version 0 is an empty set).
  const TableSet* acquire() const noexcept { return pub_.acquire(); }
  const Published<TableSet>& published() const noexcept { return pub_; }

  // Control thread.
  std::optional<RuleInfo> find(uint32_t id) const;
  ClassifierStats stats() const;
  uint64_t version() const noexcept;

 private:
  Published<TableSet> pub_;
  std::unique_ptr<ClassifierImpl> impl_;
};

}  // namespace esw::dp
