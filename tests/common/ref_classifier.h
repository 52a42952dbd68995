#pragma once
// Brute-force reference classifier for differential tests, and the random rule/packet generator they share with
// the benchmark. Deliberately shares no logic with dataplane/classifier.cc: every lookup is a linear scan of the
// table's rules in (priority descending, id ascending) order, the first match wins; the walk applies the same
// documented semantics (rewrite before goto, miss ends the walk).

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "dataplane/fastpath/classifier.h"

namespace esw::test {

using dp::FlowKey;
using dp::KeyRewrite;
using dp::RuleSpec;

struct RefRule {
  RuleSpec spec;
  KeyRewrite rewrite;
  bool has_rewrite = false;
  uint8_t n_words = 0;
  uint8_t words[dp::kFlowKeyWords];  // words the mask uses (a speed-up only; the scan stays exhaustive)

  bool matches(const FlowKey& k) const {
    const uint64_t* kw = dp::key_words(k);
    const uint64_t* v = dp::key_words(spec.value);
    const uint64_t* m = dp::key_words(spec.mask);
    for (unsigned j = 0; j < n_words; ++j)
      if ((kw[words[j]] & m[words[j]]) != v[words[j]]) return false;
    return true;
  }
};

struct RefWalk {
  std::vector<uint32_t> ids;  // rules hit, in order
  int miss_table = -1;        // -1: ended on a rule without goto
  FlowKey key{};              // key after all rewrites
  unsigned ties = 0;          // lookups where two matching rules had the winner's priority (coverage)
};

class RefClassifier {
 public:
  void add_table(unsigned t) { tables_.insert(t); }
  void remove_table(unsigned t) { tables_.erase(t); }
  bool has_table(unsigned t) const { return tables_.count(t) != 0; }
  void add(const RuleSpec& s) {
    RefRule r;
    r.spec = s;
    r.spec.rewrite = nullptr;
    if (s.rewrite != nullptr) {
      r.rewrite = *s.rewrite;
      r.has_rewrite = true;
    }
    for (unsigned w = 0; w < dp::kFlowKeyWords; ++w)
      if (dp::key_words(s.mask)[w] != 0) r.words[r.n_words++] = uint8_t(w);
    rules_[s.id] = r;
    sorted_valid_ = false;
  }
  bool remove(uint32_t id) {
    sorted_valid_ = false;
    return rules_.erase(id) != 0;
  }
  void modify(const RuleSpec& s) { add(s); }
  bool contains(uint32_t id) const { return rules_.count(id) != 0; }
  const std::map<uint32_t, RefRule>& rules() const { return rules_; }
  size_t size() const { return rules_.size(); }

  // The winner in table t, or nullptr. Call prepare() after changes (walk() does).
  const RefRule* lookup(unsigned t, const FlowKey& k, unsigned* ties = nullptr) const {
    const RefRule* best = nullptr;
    for (const RefRule* r : sorted_[t]) {
      if (best != nullptr && r->spec.priority < best->spec.priority) break;
      if (!r->matches(k)) continue;
      if (best == nullptr) {
        best = r;  // sorted: first match wins (priority desc, then lower id)
        if (ties == nullptr) break;
      } else {
        ++*ties;  // another match with the same priority and a higher id
        break;
      }
    }
    return best;
  }

  void prepare() const {
    if (sorted_valid_) return;
    for (auto& v : sorted_) v.clear();
    for (const auto& [id, r] : rules_) sorted_[r.spec.table].push_back(&r);
    for (auto& v : sorted_)
      std::sort(v.begin(), v.end(), [](const RefRule* a, const RefRule* b) {
        if (a->spec.priority != b->spec.priority) return a->spec.priority > b->spec.priority;
        return a->spec.id < b->spec.id;
      });
    sorted_valid_ = true;
  }

  RefWalk walk(const FlowKey& ingress) const {
    prepare();
    RefWalk w;
    w.key = ingress;
    unsigned t = 0;
    for (;;) {
      const RefRule* r = has_table(t) ? lookup(t, w.key, &w.ties) : nullptr;
      if (r == nullptr) {
        w.miss_table = int(t);
        return w;
      }
      w.ids.push_back(r->spec.id);
      if (r->has_rewrite) {
        uint64_t* k = dp::key_words(w.key);
        for (unsigned i = 0; i < dp::kFlowKeyWords; ++i)
          k[i] = (k[i] & ~dp::key_words(r->rewrite.mask)[i]) | dp::key_words(r->rewrite.value)[i];
      }
      if (r->spec.goto_table == dp::kNoTable) return w;
      t = r->spec.goto_table;
    }
  }

 private:
  std::map<uint32_t, RefRule> rules_;
  std::set<unsigned> tables_;
  mutable std::array<std::vector<const RefRule*>, dp::kMaxTables> sorted_;
  mutable bool sorted_valid_ = false;
};

// ------------------------------------------------------------------------------------------------------------
// Random rules and packets with many overlaps: values come from a small pool of "base" keys so that rules
// collide, priorities come from a small range so that ties are common, masks mix full fields, prefixes and
// arbitrary partial bit masks.

inline void set_prefix(uint8_t* bytes, size_t len, unsigned plen) {
  for (size_t i = 0; i < len; ++i) {
    const unsigned bits = plen >= 8 * (i + 1) ? 8u : (plen > 8 * i ? plen - unsigned(8 * i) : 0u);
    bytes[i] = uint8_t(bits == 0 ? 0 : 0xff << (8 - bits));
  }
}

struct GenParams {
  std::vector<unsigned> tables = {0};  // ascending, must include 0
  unsigned masks_per_table = 4;
  unsigned pool = 6;             // distinct values per field (small = many overlaps)
  unsigned max_fields = 3;       // fields per mask
  unsigned priorities = 6;       // priorities drawn from [0, priorities) (small = many ties)
  double goto_prob = 0.4;
  double rewrite_prob = 0.3;
  double dup_prob = 0.1;         // same table+mask+value as an existing rule, other id/priority
  double catch_all_prob = 0.02;  // empty mask
};

class RuleGen {
 public:
  RuleGen(uint64_t seed, GenParams p) : rng_(seed), p_(std::move(p)) {
    for (unsigned i = 0; i < p_.pool; ++i) base_.push_back(random_key());
    for (unsigned t : p_.tables)
      for (unsigned m = 0; m < p_.masks_per_table; ++m) masks_[t].push_back(random_mask());
  }

  std::mt19937_64& rng() { return rng_; }
  const GenParams& params() const { return p_; }
  uint64_t bits() { return rng_(); }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  size_t below(size_t n) { return size_t(rng_() % n); }

  FlowKey random_key() {
    FlowKey k;
    for (unsigned w = 0; w < dp::kFlowKeyWords; ++w) dp::key_words(k)[w] = rng_();
    return k;
  }

  // A key assembled word by word from the pool, with occasional random noise.
  FlowKey pool_key() {
    FlowKey k;
    for (unsigned w = 0; w < dp::kFlowKeyWords; ++w)
      dp::key_words(k)[w] = chance(0.05) ? rng_() : dp::key_words(base_[below(base_.size())])[w];
    return k;
  }

  FlowKey random_mask() {
    FlowKey m{};
    const unsigned nf = 1 + unsigned(below(p_.max_fields));
    for (unsigned f = 0; f < nf; ++f) add_field(m, unsigned(below(20)));
    return m;
  }

  // A random valid rule for `table` (goto/rewrite per params). `existing` lets it produce duplicates.
  RuleSpec rule(uint32_t id, unsigned table, const std::vector<RuleSpec>& existing, KeyRewrite* rw_storage) {
    RuleSpec s;
    s.id = id;
    s.table = uint8_t(table);
    s.priority = chance(0.1) ? uint32_t(rng_() % 100000) : uint32_t(below(p_.priorities));
    s.actions = reinterpret_cast<const void*>(uintptr_t(id) * 8 + 8);
    bool dup = false;
    if (!existing.empty() && chance(p_.dup_prob)) {
      const RuleSpec& o = existing[below(existing.size())];
      if (o.table == table) {
        s.mask = o.mask;
        s.value = o.value;
        dup = true;
      }
    }
    if (!dup) {
      if (chance(p_.catch_all_prob)) {
        s.mask = FlowKey{};
      } else {
        s.mask = masks_[table][below(masks_[table].size())];
      }
      const FlowKey v = pool_key();
      for (unsigned w = 0; w < dp::kFlowKeyWords; ++w)
        dp::key_words(s.value)[w] = dp::key_words(v)[w] & dp::key_words(s.mask)[w];
    }
    auto it = std::upper_bound(p_.tables.begin(), p_.tables.end(), table);
    if (it != p_.tables.end() && chance(p_.goto_prob))
      s.goto_table = uint8_t(*(it + std::ptrdiff_t(below(size_t(p_.tables.end() - it)))));
    if (rw_storage != nullptr && chance(p_.rewrite_prob)) {
      *rw_storage = KeyRewrite{};
      const unsigned n = 1 + unsigned(below(2));
      for (unsigned i = 0; i < n; ++i) {
        // Rewrite fields later tables match on: registers, in_port, IPv4 dst, or an arbitrary word part.
        const unsigned w = std::array<unsigned, 5>{14, 15, 0, 3, unsigned(below(16))}[below(5)];
        const uint64_t m = chance(0.5) ? ~uint64_t(0) : rng_();
        dp::key_words(rw_storage->mask)[w] |= m;
      }
      const FlowKey v = pool_key();
      for (unsigned w = 0; w < dp::kFlowKeyWords; ++w)
        dp::key_words(rw_storage->value)[w] = dp::key_words(v)[w] & dp::key_words(rw_storage->mask)[w];
      s.rewrite = rw_storage;
    }
    return s;
  }

  // A packet that hits `r` in its table (if the walk gets there) with pool/random bits elsewhere.
  FlowKey packet_for(const RuleSpec& r) {
    FlowKey k = pool_key();
    for (unsigned w = 0; w < dp::kFlowKeyWords; ++w) {
      uint64_t& x = dp::key_words(k)[w];
      x = (x & ~dp::key_words(r.mask)[w]) | dp::key_words(r.value)[w];
    }
    return k;
  }

 private:
  void add_field(FlowKey& m, unsigned f) {
    switch (f) {
      case 0: m.in_port = 0xffff; break;
      case 1: m.eth_type = 0xffff; break;
      case 2: m.vlan_tci[0] = chance(0.5) ? 0xffff : 0xff0f; break;  // full / VID only (network order)
      case 3: set_prefix(m.eth_dst, 6, chance(0.5) ? 48 : 24); break;
      case 4: set_prefix(m.eth_src, 6, 48); break;
      case 5: m.ip_proto = 0xff; break;
      case 6: m.ip_tos = 0xfc; break;
      case 7: set_prefix(reinterpret_cast<uint8_t*>(&m.ipv4_src), 4, unsigned(below(33))); break;
      case 8: set_prefix(reinterpret_cast<uint8_t*>(&m.ipv4_dst), 4, unsigned(below(33))); break;
      case 9: m.tp_src = chance(0.5) ? 0xffff : uint16_t(rng_()); break;
      case 10: m.tp_dst = chance(0.5) ? 0xffff : 0xf0ff; break;
      case 11: m.tcp_flags = uint16_t(rng_() & 0x3f00); break;
      case 12: set_prefix(m.ipv6_src, 16, std::array<unsigned, 4>{48, 64, 128, unsigned(below(129))}[below(4)]);
        break;
      case 13: set_prefix(m.ipv6_dst, 16, unsigned(below(129))); break;
      case 14: m.tun_id = 0xffffff; break;
      case 15: m.regs[0] = chance(0.5) ? 0xffffffff : uint32_t(rng_()); break;
      case 16: m.regs[1] = 0xffffffff; break;
      case 17: m.flags = uint16_t(rng_() & 0x800f); break;
      default: dp::key_words(m)[below(dp::kFlowKeyWords)] |= rng_() & rng_(); break;  // arbitrary partial
    }
  }

  std::mt19937_64 rng_;
  GenParams p_;
  std::vector<FlowKey> base_;
  std::map<unsigned, std::vector<FlowKey>> masks_;
};

}  // namespace esw::test
