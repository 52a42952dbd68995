#pragma once
// Byte-range helpers shared by the fast path (binding checks) and the offload translators (which key fields a
// rule's mask uses). Header-only; no DPDK.

#include <cstddef>
#include <cstdint>

namespace esw::dp {

// Whether the n bytes at p (a key field: an address, a mask) are all zero: unset, or wildcarded.
inline bool all_zero(const void* p, size_t n) noexcept {
  const auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i) {
    if (b[i] != 0) return false;
  }
  return true;
}

}  // namespace esw::dp
