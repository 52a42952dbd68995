#pragma once
// What the fast path executes: action types, compiled action lists, the port map of a pipeline snapshot and
// meter profiles. Produced by the rule compiler (dataplane/rules/actions.h), read by the workers.
// Semantics (documented for users in dataplane/README.md):
//  - A packet's walk (classifier.h) hits one rule per table; the actions of every hit rule run in walk order.
//  - Modifications (set_field, dec_ttl, push_vlan, pop_vlan) change the packet in place, in order. The key seen
//    by later tables changes through the rule's KeyRewrite, compiled from the same actions.
//  - Fates: output(port) (several allowed: the packet goes to each), to_representor (the ingress vport's
//    representor, or the named port's), drop. drop wins over every output; a walk with no fate and no miss
//    drops the packet (counted as no_fate). A table miss runs that table's miss actions.
//  - mirror(port) sends a copy of the packet as it entered the switch (before any modification), whatever the
//    fate (a dropped packet is still mirrored: that is what mirrors are for).
//  - count adds packets and bytes to the rule's counters (per core, summed when read).
//  - meter(id) runs the packet through an srTCM/trTCM meter (rte_meter, per core); red packets are dropped
//    (counted as meter_drop), yellow pass.
//  - dec_ttl on TTL <= 1 drops the packet (ttl_exceeded); checksums (IPv4 header, TCP/UDP pseudo-header) are
//    updated incrementally by every modification that touches them.
//
// Fast path: execute() is a template on kTrace so trace runs the same code, recording what it does.

#include <rte_mbuf.h>
#include <rte_meter.h>

#include <array>
#include <cstdint>
#include <vector>

#include "dataplane/fastpath/port_io.h"
#include "dataplane/fastpath/stats.h"

namespace esw::dp {

enum class ActionType : uint8_t {
  kOutput,
  kToRepresentor,  // port = kIngressRepresentor: the ingress port's representor
  kDrop,
  kMirror,
  kCount,
  kMeter,
  kSetEthSrc,
  kSetEthDst,
  kSetIpv4Src,
  kSetIpv4Dst,
  kSetIpv6Src,
  kSetIpv6Dst,
  kSetTpSrc,
  kSetTpDst,
  kSetVlanVid,
  kSetVlanPcp,
  kSetDscp,
  kSetEcn,
  kSetTtl,
  kDecTtl,
  kPushVlan,
  kPopVlan,
  kSetRegister,  // key only (via the rule's rewrite); nothing to do on the packet
};
const char* action_name(ActionType t) noexcept;
bool action_modifies_packet(ActionType t) noexcept;

inline constexpr uint16_t kIngressRepresentor = 0xffff;

struct Action {
  ActionType type = ActionType::kDrop;
  uint8_t reg = 0;      // set_register: register index
  uint16_t port = 0;    // output / mirror / to_representor target port index
  uint32_t arg = 0;     // meter index; vid/pcp/dscp/ecn/ttl value; push_vlan: tpid << 16 | tci (host order)
  uint8_t bytes[16]{};  // set_field values in wire order (MAC: 6, IPv4: 4, IPv6: 16, ports: 2)
};

// An immutable action list, shared by every rule that has the same actions (interned by the compiler).
struct ActionList {
  std::vector<Action> actions;
  bool modifies = false;   // any packet modification
  bool has_fate = false;   // output / to_representor / drop
  bool has_mirror = false;
  bool has_count = false;
  bool has_meter = false;
};

struct Binding;

// What a port maps to. Immutable, part of the pipeline snapshot.
struct PortMap {
  static constexpr uint16_t kNoPort = 0xffff;
  uint16_t nb_ports = 0;                             // highest port index in use + 1
  std::array<PortIo, kMaxPorts> io{};                // switch port index -> how to reach it (kNone: free slot)
  std::array<uint16_t, kMaxPorts> representor_of{};  // vport -> its representor port, or kNoPort
  std::array<uint16_t, kMaxPorts> rep_peer{};        // representor -> its vport, or kNoPort
  std::array<const Binding*, kMaxPorts> binding{};   // vport -> its binding (nullptr: uplinks, representors)
  PortMap() {
    representor_of.fill(kNoPort);
    rep_peer.fill(kNoPort);
    binding.fill(nullptr);
  }
};

// Meter configuration: one entry per meter id. Kept in the pipeline snapshot; run-time state is per core.
struct MeterProfile {
  bool tr_tcm = false;  // srTCM (cir, cbs, ebs) or trTCM (cir, pir, cbs, pbs)
  uint64_t cir = 0;     // bytes per second
  uint64_t pir = 0;
  uint64_t cbs = 0;
  uint64_t ebs_or_pbs = 0;
};

// Per-core meter run-time state for one meter.
struct MeterRuntime {
  rte_meter_srtcm_profile sr_profile;
  rte_meter_trtcm_profile tr_profile;
  rte_meter_srtcm sr;
  rte_meter_trtcm tr;
  bool tr_tcm = false;
  bool configured = false;
};
// Builds the run-time state of one meter (control side or worker start); false if the profile is invalid.
bool init_meter(const MeterProfile& p, MeterRuntime& rt) noexcept;


}  // namespace esw::dp
