#pragma once
// Executes the actions of a walk on one packet. Header-only: a template on kTrace, so trace runs exactly the
// code the workers run and only adds recording. Semantics: see actions.h.

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_ether.h>
#include <rte_mbuf.h>
#include <rte_meter.h>

#include <cstring>
#include <string>
#include <vector>

#include "dataplane/fastpath/action_types.h"
#include "dataplane/fastpath/binding.h"
#include "dataplane/fastpath/checksum.h"
#include "dataplane/fastpath/classifier.h"
#include "dataplane/fastpath/flow_key.h"
#include "dataplane/fastpath/smc_stage.h"
#include "dataplane/fastpath/worker_context.h"

namespace esw::dp {

// Outputs of one packet: as many as there are ports, so flooding reaches every port (it was 16, and a broadcast
// from a tenant reached only the first 16 of 64 vports). More output actions than that can only repeat a port;
// the extra copies are not sent. The array is on the stack and never initialised: its size costs nothing.
inline constexpr unsigned kMaxOutputs = kMaxPorts;
inline constexpr unsigned kMaxMirrors = 4;

// The rules one packet hit: from the classifier walk (`rules`), or from the flow cache (`lists` and `ids`, no
// Rule touched; `rules` is nullptr then).
struct WalkView {
  uint8_t n_hits = 0;
  uint8_t miss_table = kNoTable;
  const Rule* const* rules = nullptr;
  const ActionList* const* lists = nullptr;
  const uint32_t* ids = nullptr;

  static WalkView of(const CachedWalk& c) noexcept { return {c.n_hits, c.miss_table, nullptr, c.lists, c.ids}; }
  const ActionList* list(unsigned i) const noexcept {
    return rules != nullptr ? static_cast<const ActionList*>(rules[i]->actions()) : lists[i];
  }
  uint32_t id(unsigned i) const noexcept { return rules != nullptr ? rules[i]->id() : ids[i]; }
};

// What trace records; filled only when kTrace.
struct TraceRecord {
  struct Hit {
    uint8_t table;
    uint32_t rule_id;
    uint32_t priority;
    const ActionList* actions;
    uint8_t goto_table;
  };
  std::vector<Hit> hits;
  uint8_t miss_table = kNoTable;
  const ActionList* miss_actions = nullptr;
  std::vector<uint16_t> outputs;
  std::vector<uint16_t> mirrors;
  std::vector<uint16_t> egress_filtered;  // outputs refused by the destination vport's egress filter
  std::vector<uint16_t> smc_stripped;     // the SMC option was removed because of this vport's smc: deny
  std::vector<std::pair<uint16_t, DropReason>> roce_refused;  // roce_strict: outputs refused, and why
  bool binding_checked = false;           // the ingress vport's binding stage ran
  DropReason binding = DropReason::kCount;  // its verdict (kCount = allowed)
  bool passthrough = false;               // representor -> vport, no tables
  bool dropped = false;
  DropReason drop_reason = DropReason::kCount;
  std::vector<uint8_t> final_packet;
};

// Read-only inputs of execution: everything comes from the pipeline snapshot of this loop iteration.
struct ExecEnv {
  const PortMap* ports;
  const ActionList* const* miss_actions;  // per table; never null entries for existing tables
  uint32_t max_rules;
  bool roce_strict = false;  // the ingress vport's roce_strict (smc_stage.h)
};

namespace exec_detail {

// Where the L4 checksum lives (nullptr: none, or not to be touched, like a zero UDP checksum over IPv4).
inline uint8_t* l4_csum(uint8_t* pkt, uint32_t len, const FlowKey& key, const HeaderOffsets& off) noexcept {
  if (off.l4 == HeaderOffsets::kNone || (key.ip_frag & kFragLater)) return nullptr;
  uint8_t* l4 = pkt + off.l4;
  if (key.ip_proto == IPPROTO_TCP && off.l4 + 18u <= len) return l4 + 16;
  if (key.ip_proto == IPPROTO_UDP && off.l4 + 8u <= len) {
    if (l4[6] == 0 && l4[7] == 0 && key.eth_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) return nullptr;
    return l4 + 6;
  }
  if (key.ip_proto == IPPROTO_ICMPV6 && off.l4 + 4u <= len) return l4 + 2;  // pseudo-header covers addresses
  return nullptr;
}

inline bool is_ipv4(const FlowKey& k) noexcept { return k.eth_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4); }
inline bool is_ipv6(const FlowKey& k) noexcept { return k.eth_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV6); }

// Rewrites `len` bytes at `at`, keeping the IPv4 header checksum (ip_hdr_csum) and the L4 checksum (when the
// bytes are in its pseudo-header or segment) right.
inline void rewrite(uint8_t* at, const uint8_t* value, size_t len, uint8_t* ip_csum, uint8_t* l4csum) noexcept {
  if (ip_csum != nullptr) csum_replace(ip_csum, at, value, len);
  if (l4csum != nullptr) csum_replace(l4csum, at, value, len);
  std::memcpy(at, value, len);
}

inline void shift_offsets(HeaderOffsets& off, int delta) noexcept {
  auto mv = [delta](uint16_t& o) {
    if (o != HeaderOffsets::kNone) o = static_cast<uint16_t>(o + delta);
  };
  mv(off.l3);
  mv(off.l4);
  mv(off.tun);
  mv(off.inner_l2);
}

// Applies one modifying action. Returns false (and why) when the packet must be dropped instead.
inline bool modify(const Action& a, rte_mbuf* m, FlowKey& key, HeaderOffsets& off, DropReason& why) noexcept {
  uint8_t* pkt = rte_pktmbuf_mtod(m, uint8_t*);
  const uint32_t len = rte_pktmbuf_data_len(m);
  const bool v4 = is_ipv4(key) && off.l3 != HeaderOffsets::kNone;
  const bool v6 = is_ipv6(key) && off.l3 != HeaderOffsets::kNone;
  uint8_t* l3 = off.l3 != HeaderOffsets::kNone ? pkt + off.l3 : nullptr;
  uint8_t* ip_csum = v4 ? l3 + 10 : nullptr;
  switch (a.type) {
    case ActionType::kSetEthSrc: std::memcpy(pkt + 6, a.bytes, 6); return true;
    case ActionType::kSetEthDst: std::memcpy(pkt, a.bytes, 6); return true;
    case ActionType::kSetIpv4Src:
    case ActionType::kSetIpv4Dst:
      if (v4) rewrite(l3 + (a.type == ActionType::kSetIpv4Src ? 12 : 16), a.bytes, 4, ip_csum, l4_csum(pkt, len, key, off));
      return true;
    case ActionType::kSetIpv6Src:
    case ActionType::kSetIpv6Dst:
      if (v6) rewrite(l3 + (a.type == ActionType::kSetIpv6Src ? 8 : 24), a.bytes, 16, nullptr, l4_csum(pkt, len, key, off));
      return true;
    case ActionType::kSetTpSrc:
    case ActionType::kSetTpDst:
      if ((key.ip_proto == IPPROTO_TCP || key.ip_proto == IPPROTO_UDP) && off.l4 != HeaderOffsets::kNone &&
          !(key.ip_frag & kFragLater) && off.l4 + 4u <= len) {
        rewrite(pkt + off.l4 + (a.type == ActionType::kSetTpSrc ? 0 : 2), a.bytes, 2, nullptr, l4_csum(pkt, len, key, off));
      }
      return true;
    case ActionType::kSetVlanVid:
    case ActionType::kSetVlanPcp:
      if (off.vlan != HeaderOffsets::kNone) {
        uint8_t* t = pkt + off.vlan + 2;
        uint16_t tci = static_cast<uint16_t>(t[0] << 8 | t[1]);
        tci = a.type == ActionType::kSetVlanVid ? static_cast<uint16_t>((tci & 0xf000) | (a.arg & 0xfff))
                                                : static_cast<uint16_t>((tci & 0x1fff) | (a.arg & 7) << 13);
        t[0] = static_cast<uint8_t>(tci >> 8);
        t[1] = static_cast<uint8_t>(tci);
      }
      return true;
    case ActionType::kSetDscp:
    case ActionType::kSetEcn: {
      const uint8_t keep = a.type == ActionType::kSetDscp ? 0x03 : 0xfc;
      const uint8_t val = a.type == ActionType::kSetDscp ? static_cast<uint8_t>(a.arg << 2) : static_cast<uint8_t>(a.arg & 3);
      if (v4) {
        uint8_t w[2] = {l3[0], static_cast<uint8_t>((l3[1] & keep) | val)};
        rewrite(l3, w, 2, ip_csum, nullptr);
      } else if (v6) {
        // Traffic class straddles bytes 0 and 1: version(4) tc(8) flow label(20).
        uint8_t tc = static_cast<uint8_t>((l3[0] & 0x0f) << 4 | l3[1] >> 4);
        tc = static_cast<uint8_t>((tc & keep) | val);
        l3[0] = static_cast<uint8_t>((l3[0] & 0xf0) | tc >> 4);
        l3[1] = static_cast<uint8_t>((l3[1] & 0x0f) | (tc & 0x0f) << 4);
      }
      return true;
    }
    case ActionType::kSetTtl:
    case ActionType::kDecTtl: {
      uint8_t* ttl = v4 ? l3 + 8 : v6 ? l3 + 7 : nullptr;
      if (ttl == nullptr) return true;
      uint8_t nv = static_cast<uint8_t>(a.arg);
      if (a.type == ActionType::kDecTtl) {
        if (*ttl <= 1) {
          why = DropReason::kTtlExceeded;
          return false;
        }
        nv = static_cast<uint8_t>(*ttl - 1);
      }
      if (v4) {
        uint8_t w[2] = {nv, l3[9]};
        rewrite(l3 + 8, w, 2, ip_csum, nullptr);
      } else {
        *ttl = nv;
      }
      key.ip_ttl = nv;
      return true;
    }
    case ActionType::kPushVlan: {
      uint8_t* p = reinterpret_cast<uint8_t*>(rte_pktmbuf_prepend(m, 4));
      if (p == nullptr) {
        why = DropReason::kCopyFailed;
        return false;
      }
      std::memmove(p, p + 4, 12);
      const uint16_t tpid = static_cast<uint16_t>(a.arg >> 16), tci = static_cast<uint16_t>(a.arg);
      p[12] = static_cast<uint8_t>(tpid >> 8);
      p[13] = static_cast<uint8_t>(tpid);
      p[14] = static_cast<uint8_t>(tci >> 8);
      p[15] = static_cast<uint8_t>(tci);
      shift_offsets(off, 4);
      off.vlan = 12;
      return true;
    }
    case ActionType::kPopVlan: {
      if (off.vlan == HeaderOffsets::kNone) return true;
      std::memmove(pkt + 4, pkt, 12);
      rte_pktmbuf_adj(m, 4);
      shift_offsets(off, -4);
      // A second tag, if any, is now the first.
      off.vlan = (key.flags & kFlagQinQ) ? 12 : HeaderOffsets::kNone;
      key.flags = static_cast<uint16_t>(key.flags & ~kFlagQinQ);
      return true;
    }
    default: return true;
  }
}

}  // namespace exec_detail

// Runs the walk's actions on m (which entered on in_port) and hands it to ctx's tx buffers, or drops it.
template <bool kTrace>
inline void execute(WorkerContext& ctx, const ExecEnv& env, rte_mbuf* m, uint16_t in_port, const WalkView& walk,
                    FlowKey& key, HeaderOffsets& off, TraceRecord* trace) noexcept {
  uint16_t outs[kMaxOutputs];
  uint16_t mirrors[kMaxMirrors];
  unsigned n_out = 0, n_mirror = 0;
  bool drop = false, modifies = false;
  DropReason why = DropReason::kNoFate;
  const uint32_t pkt_len = m->pkt_len;

  const ActionList* miss = walk.miss_table != kNoTable ? env.miss_actions[walk.miss_table] : nullptr;
  const unsigned n_lists = walk.n_hits + (miss != nullptr ? 1u : 0u);
  auto list_at = [&](unsigned i) -> const ActionList* {
    return i < walk.n_hits ? walk.list(i) : miss;
  };

  // Pass 1: fates, mirrors, counters, meters.
  for (unsigned i = 0; i < n_lists; ++i) {
    const ActionList* l = list_at(i);
    if (l == nullptr) continue;
    if constexpr (kTrace) {
      if (i < walk.n_hits) {
        const Rule* r = walk.rules[i];  // trace never reads the flow cache: always a classifier walk
        trace->hits.push_back({r->table(), r->id(), r->priority(), l, r->goto_table()});
      } else {
        trace->miss_table = walk.miss_table;
        trace->miss_actions = l;
      }
    }
    modifies |= l->modifies;
    for (const Action& a : l->actions) {
      switch (a.type) {
        case ActionType::kOutput:
          if (n_out < kMaxOutputs) outs[n_out++] = a.port;
          break;
        case ActionType::kToRepresentor: {
          const uint16_t from = a.port == kIngressRepresentor ? in_port : a.port;
          const uint16_t rep = env.ports->representor_of[from];
          if (rep == PortMap::kNoPort) {
            if (!drop) why = DropReason::kNoRepresentor;
            drop = true;
          } else if (n_out < kMaxOutputs) {
            outs[n_out++] = rep;
          }
          break;
        }
        case ActionType::kDrop:
          drop = true;
          why = DropReason::kRule;
          break;
        case ActionType::kMirror:
          if (n_mirror < kMaxMirrors) mirrors[n_mirror++] = a.port;
          break;
        case ActionType::kCount:
          if constexpr (kTrace) break;  // trace never changes live state
          if (i < walk.n_hits && walk.id(i) < env.max_rules) {
            RuleCounter& c = ctx.rule_counters[walk.id(i)];
            c.packets++;
            c.bytes += pkt_len;
          }
          break;
        case ActionType::kMeter: {
          if constexpr (kTrace) break;  // a meter's colour depends on live traffic: trace shows the action only
          if (a.arg >= ctx.nb_meters || !ctx.meters[a.arg].configured) break;
          MeterRuntime& mr = ctx.meters[a.arg];
          const uint64_t now = rte_rdtsc();
          const rte_color c = mr.tr_tcm ? rte_meter_trtcm_color_blind_check(&mr.tr, &mr.tr_profile, now, pkt_len)
                                        : rte_meter_srtcm_color_blind_check(&mr.sr, &mr.sr_profile, now, pkt_len);
          if (c == RTE_COLOR_RED) {
            drop = true;
            why = DropReason::kMeter;
          }
          break;
        }
        default: break;
      }
    }
  }

  // Mirrors get the packet as it entered: a copy when it is about to change, else a shared reference.
  for (unsigned i = 0; i < n_mirror; ++i) {
    rte_mbuf* c;
    if (modifies && !drop) {
      c = rte_pktmbuf_copy(m, m->pool, 0, UINT32_MAX);
      if (c == nullptr) {
        ctx.stats.ports[in_port].dropped[static_cast<size_t>(DropReason::kCopyFailed)]++;
        continue;
      }
    } else {
      rte_mbuf_refcnt_update(m, 1);
      c = m;
    }
    if constexpr (kTrace) {
      trace->mirrors.push_back(mirrors[i]);
      rte_pktmbuf_free(c);
    } else {
      ctx.enqueue(mirrors[i], c);
    }
  }

  if (!drop && n_out == 0) drop = true;  // why stays kNoFate (or kNoRepresentor)
  if (!drop && modifies) {
    for (unsigned i = 0; i < n_lists && !drop; ++i) {
      const ActionList* l = list_at(i);
      if (l == nullptr || !l->modifies) continue;
      for (const Action& a : l->actions) {
        if (action_modifies_packet(a.type) && !exec_detail::modify(a, m, key, off, why)) {
          drop = true;
          break;
        }
      }
    }
  }

  // SMC option towards a deny vport, RoCEv2 grants of a strict ingress vport: one flag test for everything else.
  if (!drop && (key.flags & (kFlagSmc | kFlagRoce))) [[unlikely]] {
    n_out = smc_egress(ctx, *env.ports, env.roce_strict, m, in_port, key, off, outs, n_out, trace);
    if (n_out == 0) {  // every output refused (counted there)
      if constexpr (kTrace) {
        drop = true;
        why = trace->roce_refused.empty() ? DropReason::kNoFate : trace->roce_refused.front().second;
      } else {
        rte_pktmbuf_free(m);
        return;
      }
    }
  }

  if constexpr (kTrace) {
    trace->dropped = drop;
    if (drop) {
      trace->drop_reason = why;
    } else {
      const uint8_t* dst = rte_pktmbuf_mtod(m, const uint8_t*);
      for (unsigned i = 0; i < n_out; ++i) {
        const Binding* b = env.ports->binding[outs[i]];
        if (b != nullptr && !egress_allowed(*b, dst)) trace->egress_filtered.push_back(outs[i]);
        else trace->outputs.push_back(outs[i]);
      }
    }
    const auto* d = rte_pktmbuf_mtod(m, const uint8_t*);
    trace->final_packet.assign(d, d + rte_pktmbuf_data_len(m));
    rte_pktmbuf_free(m);
    return;
  }
  if (drop) {
    ctx.drop(in_port, m, why);
    return;
  }
  // Egress filter of destination vports (on the final destination MAC); counted on the vport it protects.
  const uint8_t* dst = rte_pktmbuf_mtod(m, const uint8_t*);
  unsigned kept = 0;
  for (unsigned i = 0; i < n_out; ++i) {
    const Binding* b = env.ports->binding[outs[i]];
    if (b != nullptr && !egress_allowed(*b, dst)) {
      ctx.stats.ports[outs[i]].dropped[static_cast<size_t>(b->active ? DropReason::kEgressFilter : DropReason::kInactive)]++;
      continue;
    }
    outs[kept++] = outs[i];
  }
  if (kept == 0) {
    rte_pktmbuf_free(m);
    return;
  }
  if (kept > 1) rte_mbuf_refcnt_update(m, static_cast<int16_t>(kept - 1));
  for (unsigned i = 0; i < kept; ++i) ctx.enqueue(outs[i], m);
}

}  // namespace esw::dp
