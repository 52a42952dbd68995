#include "dataplane/fastpath/smc_wire.h"

#include <algorithm>
#include <cstring>

#include "dataplane/fastpath/checksum.h"
#include "dataplane/fastpath/proto.h"

namespace esw::dp {

const char* smc_event_name(SmcEventType t) noexcept {
  switch (t) {
    case SmcEventType::kSyn: return "syn";
    case SmcEventType::kSynAck: return "syn_ack";
    case SmcEventType::kClc: return "clc";
    case SmcEventType::kFin: return "fin";
    case SmcEventType::kRst: return "rst";
  }
  return "?";
}

namespace {
inline uint64_t mix(uint64_t h, uint64_t v) noexcept {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  return h * 0xff51afd7ed558ccdull;
}
uint64_t endpoint(const uint8_t* a, uint16_t port, unsigned alen) noexcept {
  uint64_t h = port;
  for (unsigned i = 0; i < alen; i += 4) {
    uint32_t w;
    std::memcpy(&w, a + i, 4);
    h = mix(h, w);
  }
  return h;
}
}  // namespace

uint64_t smc_flow_hash(const uint8_t* a, uint16_t pa, const uint8_t* b, uint16_t pb, unsigned alen) noexcept {
  const uint64_t ea = endpoint(a, pa, alen);
  const uint64_t eb = endpoint(b, pb, alen);
  // Order-independent: the two endpoints sorted. Equal endpoint hashes (a flow to itself) are fine too.
  const uint64_t h = mix(mix(alen, std::min(ea, eb)), std::max(ea, eb));
  return h | 1ull << 63;
}

uint64_t smc_flow_hash(const FlowKey& k) noexcept {
  if (k.eth_type == to_be16(kEthTypeIpv4)) {
    return smc_flow_hash(reinterpret_cast<const uint8_t*>(&k.ipv4_src), k.tp_src,
                         reinterpret_cast<const uint8_t*>(&k.ipv4_dst), k.tp_dst, 4);
  }
  return smc_flow_hash(k.ipv6_src, k.tp_src, k.ipv6_dst, k.tp_dst, 16);
}

KeySet::KeySet(const std::vector<uint64_t>& keys) {
  size_t cap = 8;
  while (cap < keys.size() * 2) cap <<= 1;
  slots_.assign(cap, 0);
  mask_ = cap - 1;
  shift_ = 64 - static_cast<unsigned>(__builtin_ctzll(cap));
  for (uint64_t k : keys) {
    if (k == 0) continue;
    for (size_t i = (k * 0x9e3779b97f4a7c15ull) >> shift_;; i = (i + 1) & mask_) {
      if (slots_[i] == k) break;
      if (slots_[i] == 0) {
        slots_[i] = k;
        ++count_;
        break;
      }
    }
  }
}

unsigned strip_smc_option(uint8_t* tcp, uint32_t hdr_len) noexcept {
  constexpr uint32_t kTcpMinLen = 20;
  unsigned stripped = 0;
  uint32_t i = kTcpMinLen;
  while (i < hdr_len) {
    const uint8_t kind = tcp[i];
    if (kind == kTcpOptEol) break;
    if (kind == kTcpOptNop) {
      ++i;
      continue;
    }
    if (hdr_len - i < 2) break;
    const uint32_t len = tcp[i + 1];
    if (len < 2 || len > hdr_len - i) break;
    if (kind == kTcpOptExp && len == kSmcOptLen && std::memcmp(tcp + i + 2, kSmcExId, 4) == 0) {
      // The checksum sums 16-bit words from the start of the TCP header (an even offset of the segment): update
      // over the word-aligned span that covers the option.
      const uint32_t from = i & ~1u;
      const uint32_t to = std::min<uint32_t>((i + len + 1) & ~1u, hdr_len);
      uint8_t before[8];
      std::memcpy(before, tcp + from, to - from);
      std::memset(tcp + i, kTcpOptNop, len);
      csum_replace(tcp + 16, before, tcp + from, to - from);
      ++stripped;
    }
    i += len;
  }
  return stripped;
}

}  // namespace esw::dp
