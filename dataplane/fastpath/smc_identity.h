#pragma once
// SMC identity enforcement (issue 11 item 4): the identities a vport claims inside its CLC messages must be its
// own, whatever its guest writes there.
//
//  - RoCE MAC (Proposal offering SMC-R, SMC-R Accept/Confirm) == the vport's hw_addr.
//  - SMC-R GID, the v2 Proposal's RoCEv2 GID and an SMC-Rv2 Confirm's GID list: derived from one of the vport's
//    bound addresses: an IPv4-mapped GID ::ffff:a.b.c.d with a.b.c.d in a bound IPv4 prefix, an IPv6 GID in a bound
//    IPv6 prefix, or the vport's link-local address (fe80::/64 + EUI-64 of hw_addr, RoCE's default GID).
//  - The Proposal's IP prefix area: its IPv4 subnet and every IPv6 prefix must overlap one of the vport's bound
//    prefixes (contain it, as a /24 around a bound /32 does, or lie within it). A zero IPv4 subnet with length 0
//    means "no IPv4" (Linux on an IPv6 connection) and is not checked. Limit: a short prefix (say 198.0.0.0/8)
//    contains the bound ones and so passes: the check keeps a vport from claiming a subnet it is not in, not from
//    claiming a wide one.
//  - SMC-D ISM GIDs are not checked here (the ISM service issues them; no registry is published to the workers).
//
// Only vports with spoofchk on are checked (spoofchk off: the vport may claim anything, as it may send any source).
// A message whose identity is not the vport's is dropped by the worker and counted on the vport under
// smc_foreign_mac / smc_foreign_gid / smc_foreign_prefix (first failing check in that order); the main lcore marks
// the session refused (show smc) and publishes its flow so that every later data segment of the connection, both
// directions, is dropped (smc_flow_refused; segments without payload - ACK, FIN, RST - still pass so both ends can
// close).
//
// Messages split across TCP segments: each worker holds, per TCP direction with an incomplete CLC message, the
// bytes seen so far (ClcHoldTable, fixed size, no allocation). The segment that completes the message is checked
// before it is forwarded, so the second half of a refused message never leaves the switch; the direction then
// stays blocked in the worker until the main lcore's refused set takes over. A part that arrives out of order,
// or a first part when every slot holds a younger message, is dropped (smc_clc_unchecked): TCP retransmits it.
// A direction of one flow always arrives through the same port and queue, so through the same worker.
//
// Threading: ClcHoldTable belongs to one worker; smc_identity_verdict is a pure function.

#include <array>
#include <cstdint>

#include "dataplane/fastpath/binding.h"
#include "dataplane/fastpath/stats.h"
#include "dataplane/smc/clc.h"

namespace esw::dp {

// kCount: the message claims only the vport's own identities. Otherwise kSmcForeignMac / Gid / Prefix.
DropReason smc_identity_verdict(const Binding& b, const smc::Message& m) noexcept;

// smc::Refusal value of a verdict (0 = none), for the event to the main lcore.
uint8_t smc_refusal_of(DropReason r) noexcept;

inline constexpr unsigned kClcHoldSlots = 32;
inline constexpr uint64_t kClcHoldIdleSeconds = 10;  // a held message idle this long may give up its slot

struct ClcHeld {
  uint64_t key = 0;        // smc_hold_key of the direction; 0 = free
  uint64_t tsc = 0;        // last segment seen
  uint32_t next_seq = 0;   // the next byte the message needs
  uint16_t have = 0;       // bytes in buf (pending)
  uint8_t blocked = 0;     // DropReason of the refused message: the direction's data is dropped
  uint8_t buf[smc::kMaxMsgLen];
};

struct ClcHoldTable {
  std::array<ClcHeld, kClcHoldSlots> slots{};
  unsigned used = 0;       // slots with key != 0 (the pipeline looks at TCP payload only while this is non-zero)
  smc::Message scratch;    // parse target (too big for the stack of a burst loop)
};

}  // namespace esw::dp
