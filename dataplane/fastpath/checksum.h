#pragma once
// Incremental update of an Internet (ones'-complement) checksum, RFC 1624: what set_field actions and the SMC
// option strip use so they never sum a whole packet. No DPDK needed (unit-tested on its own).

#include <cstddef>
#include <cstdint>

namespace esw::dp {

// The checksum at csum (2 bytes, network order) covered old_bytes[0, len); they become new_bytes. len is even and
// the bytes start at an even offset of the checksummed data (16-bit word boundaries).
inline void csum_replace(uint8_t* csum, const uint8_t* old_bytes, const uint8_t* new_bytes, size_t len) noexcept {
  uint32_t sum = static_cast<uint16_t>(~(csum[0] << 8 | csum[1]));
  for (size_t i = 0; i + 1 < len; i += 2) {
    sum += static_cast<uint16_t>(~(old_bytes[i] << 8 | old_bytes[i + 1]));
    sum += static_cast<uint16_t>(new_bytes[i] << 8 | new_bytes[i + 1]);
  }
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  const uint16_t c = static_cast<uint16_t>(~sum);
  csum[0] = static_cast<uint8_t>(c >> 8);
  csum[1] = static_cast<uint8_t>(c);
}

// CRC-32 (IEEE 802.3, reflected, as zlib's crc32(crc, p, n)), bitwise: control path only (the RoCE ICRC of
// synthesized packets, the migration stream's seal).
inline uint32_t crc32_ieee(const uint8_t* p, size_t n, uint32_t crc = 0) noexcept {
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int b = 0; b < 8; ++b) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

}  // namespace esw::dp
