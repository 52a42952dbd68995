#pragma once
// Two independent 64-bit hashes of a sequence of strings and numbers, 8 bytes per step: how the switch tells
// rules apart without keeping their text (rule_source_hash, the identity and context hashes of reconcile.cc).
// Equal sequences give equal pairs; different ones collide in both halves with a chance of about 2^-128 (not a
// defence against crafted input, like the FNV-1a it replaces). The encoding is unambiguous: every string is
// preceded by its length, so ("ab", "c") and ("a", "bc") differ, and a number is one step of its own.
// Control path only; nothing here is stored across restarts.

#include <bit>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace esw::dp {

class PairHasher {
 public:
  void add(uint64_t v) noexcept { step(v); }
  void add(std::string_view s) noexcept {
    step(s.size());
    size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      step(w);
    }
    if (i < s.size()) {
      uint64_t w = 0;
      std::memcpy(&w, s.data() + i, s.size() - i);
      step(w);
    }
  }
  void finish(uint64_t out[2]) const noexcept {
    out[0] = fmix(a_);
    out[1] = fmix(b_ ^ 0x9e3779b97f4a7c15ull);
  }

 private:
  // For a fixed state each step is a bijection of the word, and for a fixed word one of the state.
  void step(uint64_t w) noexcept {
    a_ = std::rotl(a_ ^ (w * 0x87c37b91114253d5ull), 31) * 0x4cf5ad432745937full + 0x52dce729;
    b_ = std::rotl(b_ ^ (w * 0xff51afd7ed558ccdull), 27) * 0xc4ceb9fe1a85ec53ull + 0x38495ab5;
  }
  static uint64_t fmix(uint64_t k) noexcept {  // MurmurHash3's finaliser
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
  }
  uint64_t a_ = 0xcbf29ce484222325ull;
  uint64_t b_ = 0x84222325cbf29ce4ull;
};

}  // namespace esw::dp
