#pragma once
// SMC awareness in the fast path, the DPDK-free part: the event record workers hand to the main lcore, the
// immutable lookup sets the main lcore publishes to the workers (SMC session flows, RoCEv2 grants), the flow hash
// both sides agree on, and the SMC TCP option strip.
//
// Threading: SmcEvent is copied by value into a ring (no pointers into mbufs); SmcView is built by the main lcore,
// published with one pointer store (RCU, like the pipeline snapshot) and only read by workers.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "dataplane/fastpath/flow_key.h"

namespace esw::dp {

inline constexpr uint32_t kSmcEventPayload = 256;  // CLC bytes copied per event (a v1 message fits; a v2 Proposal may not)

enum class SmcEventType : uint8_t {
  kSyn = 1,     // SYN with the SMC option (client's offer)
  kSynAck = 2,  // SYN-ACK with the SMC option (server's answer)
  kClc = 3,     // TCP payload starting with a CLC eyecatcher
  kFin = 4,     // FIN of a flow the main lcore lists as an SMC session
  kRst = 5,     // RST of such a flow
};
const char* smc_event_name(SmcEventType t) noexcept;

// One event, fixed size, copied into the ring (rte_ring elem API): allocation-free on both sides.
struct SmcEvent {
  uint64_t tsc;            // rte_rdtsc() when the worker saw the segment
  SmcEventType type;
  uint8_t ip_version;      // 4 or 6
  uint16_t in_port;        // switch port index the segment entered on
  uint16_t payload_len;    // bytes in payload[] (kClc: min(TCP payload, kSmcEventPayload))
  uint16_t segment_len;    // the segment's whole TCP payload length
  uint32_t seq;            // TCP sequence number, host order
  uint16_t sport;          // network order
  uint16_t dport;          // network order
  uint16_t tcp_flags;      // host order, 12 bits
  uint16_t worker;
  uint8_t src[16];         // IPv4: the first 4 bytes
  uint8_t dst[16];
  uint8_t eth_src[6];
  uint8_t eth_dst[6];
  uint8_t refused;         // kClc: smc::Refusal (0 = none) when the worker dropped the segment (smc_identity.h)
  uint8_t pad[7];
  uint8_t payload[kSmcEventPayload];
};
static_assert(sizeof(SmcEvent) % 8 == 0, "ring elements are a multiple of 4 bytes; keep 8 for the u64");

// The same 64-bit value for both directions of a TCP flow (addresses as on the wire, ports network order);
// never 0. a/b are 4 (IPv4) or 16 (IPv6) bytes.
uint64_t smc_flow_hash(const uint8_t* a, uint16_t pa, const uint8_t* b, uint16_t pb, unsigned alen) noexcept;
uint64_t smc_flow_hash(const FlowKey& k) noexcept;

// Grant keys: the RoCEv2 traffic a strict vport `src` may send to vport `dst` (switch port indexes < 1024).
constexpr uint64_t roce_qp_grant(uint16_t src, uint16_t dst, uint32_t dqp) noexcept {
  return 1ull << 63 | uint64_t(src & 0x3ff) << 40 | uint64_t(dst & 0x3ff) << 24 | (dqp & 0xffffff);
}
constexpr uint64_t roce_rkey_grant(uint16_t src, uint16_t dst, uint32_t rkey) noexcept {
  return 1ull << 62 | uint64_t(src & 0x3ff) << 42 | uint64_t(dst & 0x3ff) << 32 | rkey;
}

// An immutable set of non-zero 64-bit keys: open addressing, linear probing, load <= 1/2. contains() touches one
// or two cache lines.
class KeySet {
 public:
  KeySet() = default;
  explicit KeySet(const std::vector<uint64_t>& keys);
  bool contains(uint64_t key) const noexcept {
    if (count_ == 0) return false;
    for (size_t i = (key * 0x9e3779b97f4a7c15ull) >> shift_;; i = (i + 1) & mask_) {
      const uint64_t s = slots_[i];
      if (s == key) return true;
      if (s == 0) return false;
    }
  }
  size_t size() const noexcept { return count_; }

 private:
  std::vector<uint64_t> slots_;
  size_t mask_ = 0;
  unsigned shift_ = 63;
  size_t count_ = 0;
};

// What the workers need from the SMC session table: published by the main lcore, read once per poll loop.
struct SmcView {
  KeySet flows;  // smc_flow_hash of live SMC sessions: their FIN/RST become events
  KeySet qps;    // roce_qp_grant keys
  KeySet rkeys;  // roce_rkey_grant keys
  KeySet refused;  // smc_flow_hash of sessions whose CLC message was refused: their data is dropped both ways
  uint64_t version = 0;
};

// Replaces every SMC experimental option (kind 254, length 6, ExID E2D4C3D9) in the TCP header tcp[0, hdr_len)
// with NOPs and updates the TCP checksum incrementally (the option bytes are in the segment the checksum covers;
// the pseudo-header is unchanged). hdr_len must be the validated header length. Returns how many were replaced.
unsigned strip_smc_option(uint8_t* tcp, uint32_t hdr_len) noexcept;

}  // namespace esw::dp
