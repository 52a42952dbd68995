#include "dataplane/fastpath/smc_stage.h"

#include <rte_cycles.h>
#include <rte_ring_elem.h>

#include <algorithm>
#include <cstring>

#include "dataplane/fastpath/action_exec.h"
#include "dataplane/fastpath/proto.h"
#include "dataplane/fastpath/smc_identity.h"

namespace esw::dp {

namespace {

inline uint16_t rd16(const uint8_t* p) noexcept { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t rd32(const uint8_t* p) noexcept {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 | static_cast<uint32_t>(p[2]) << 8 |
         p[3];
}

// The TCP segment of a parsed packet: header, header length, payload and its length (IP length bounds it, not
// the frame: Ethernet padding is not payload).
struct TcpView {
  uint8_t* tcp;
  uint32_t hdr_len;
  const uint8_t* payload;
  uint32_t payload_len;
};

bool tcp_view(rte_mbuf* m, const FlowKey& key, const HeaderOffsets& off, TcpView& v) noexcept {
  if (key.ip_proto != kProtoTcp || off.l4 == HeaderOffsets::kNone || off.l3 == HeaderOffsets::kNone ||
      (key.ip_frag & kFragLater)) {
    return false;
  }
  uint8_t* pkt = rte_pktmbuf_mtod(m, uint8_t*);
  const uint32_t len = rte_pktmbuf_data_len(m);
  uint32_t l3_end;
  if (key.eth_type == to_be16(kEthTypeIpv4)) {
    l3_end = off.l3 + rd16(pkt + off.l3 + 2);
  } else {
    l3_end = off.l3 + 40u + rd16(pkt + off.l3 + 4);
  }
  // The parser validated all of this; the packet has not changed length since (set_field does not resize).
  if (l3_end > len || off.l4 + 20u > l3_end) return false;
  v.tcp = pkt + off.l4;
  v.hdr_len = (v.tcp[12] >> 4) * 4u;
  if (off.l4 + v.hdr_len > l3_end) return false;
  v.payload = v.tcp + v.hdr_len;
  v.payload_len = l3_end - off.l4 - v.hdr_len;
  return true;
}

void stage_event(WorkerContext& ctx, SmcEventType type, uint16_t in_port, const FlowKey& key, const TcpView& v,
                 bool copy_payload, uint8_t refused = 0) noexcept {
  if (ctx.smc_ring == nullptr) return;
  if (ctx.n_smc_staged == kSmcStaged) smc_flush_events(ctx);
  SmcEvent& e = ctx.smc_staged[ctx.n_smc_staged++];
  e.tsc = rte_rdtsc();
  e.type = type;
  const bool v4 = key.eth_type == to_be16(kEthTypeIpv4);
  e.ip_version = v4 ? 4 : 6;
  e.in_port = in_port;
  e.segment_len = static_cast<uint16_t>(std::min<uint32_t>(v.payload_len, UINT16_MAX));
  e.payload_len = copy_payload ? static_cast<uint16_t>(std::min<uint32_t>(v.payload_len, kSmcEventPayload)) : 0;
  e.seq = rd32(v.tcp + 4);
  e.sport = key.tp_src;
  e.dport = key.tp_dst;
  e.tcp_flags = static_cast<uint16_t>((v.tcp[12] & 0x0f) << 8 | v.tcp[13]);
  e.worker = ctx.worker_index;
  e.refused = refused;
  std::memset(e.pad, 0, sizeof e.pad);
  std::memset(e.src, 0, sizeof e.src);
  std::memset(e.dst, 0, sizeof e.dst);
  if (v4) {
    std::memcpy(e.src, &key.ipv4_src, 4);
    std::memcpy(e.dst, &key.ipv4_dst, 4);
  } else {
    std::memcpy(e.src, key.ipv6_src, 16);
    std::memcpy(e.dst, key.ipv6_dst, 16);
  }
  std::memcpy(e.eth_src, key.eth_src, 6);
  std::memcpy(e.eth_dst, key.eth_dst, 6);
  if (e.payload_len != 0) std::memcpy(e.payload, v.payload, e.payload_len);
}

bool is_clc(const TcpView& v) noexcept {
  return v.payload_len >= 4 &&
         (std::memcmp(v.payload, kClcEyecatcherR, 4) == 0 || std::memcmp(v.payload, kClcEyecatcherD, 4) == 0);
}

// ---- identity enforcement (smc_identity.h) ----

uint64_t hold_key(const FlowKey& key, uint64_t flow_hash, uint16_t in_port) noexcept {
  // One TCP direction: the flow's hash with the sender's port and address mixed in.
  uint32_t src4;
  std::memcpy(&src4, key.eth_type == to_be16(kEthTypeIpv4) ? reinterpret_cast<const uint8_t*>(&key.ipv4_src)
                                                             : key.ipv6_src + 12, 4);
  const uint64_t h = flow_hash ^ (uint64_t(key.tp_src) << 48 | uint64_t(in_port) << 32 | src4);
  return (h * 0x9e3779b97f4a7c15ull) | 1;
}

void hold_free(ClcHoldTable& h, ClcHeld* e) noexcept {
  e->key = 0;
  e->have = 0;
  e->blocked = 0;
  --h.used;
}

// The slot of direction k, if any. The same scan frees slots idle for kClcHoldIdleSeconds (a first part whose
// rest never came, a refused direction the published refused set now blocks), so `used` falls back to 0 and
// TCP traffic stops paying for smc_watching once nothing is held.
ClcHeld* hold_find(ClcHoldTable& h, uint64_t k, uint64_t now) noexcept {
  const uint64_t idle = kClcHoldIdleSeconds * rte_get_tsc_hz();
  ClcHeld* found = nullptr;
  for (ClcHeld& e : h.slots) {
    if (e.key == k) {
      found = &e;
    } else if (e.key != 0 && now - e.tsc > idle) {
      hold_free(h, &e);
    }
  }
  return found;
}

ClcHeld* hold_take(ClcHoldTable& h, uint64_t k, uint64_t now) noexcept {
  const uint64_t idle = kClcHoldIdleSeconds * rte_get_tsc_hz();
  ClcHeld* stale = nullptr;
  for (ClcHeld& e : h.slots) {
    if (e.key == 0) {
      ++h.used;
      e.key = k;
      return &e;
    }
    if (stale == nullptr && now - e.tsc > idle) stale = &e;
  }
  if (stale != nullptr) stale->key = k;
  return stale;
}

DropReason check_message(ClcHoldTable& h, const Binding& b, const uint8_t* p, uint32_t n) noexcept {
  if (!smc::parse({p, n}, h.scratch).ok()) return DropReason::kCount;  // invalid: the peer refuses it, the table counts
  return smc_identity_verdict(b, h.scratch);
}

// The CLC messages a segment from a spoof-checked vport carries or completes: kCount (forward) or why it is
// dropped. continuation: the segment continues a held message (its bytes matter to the session table).
DropReason clc_check(WorkerContext& ctx, const Binding& b, uint16_t in_port, const FlowKey& key, uint64_t flow_hash,
                     const TcpView& v, bool live, bool& continuation) noexcept {
  ClcHoldTable& h = ctx.smc_hold;
  const uint8_t* p = v.payload;
  uint32_t n = v.payload_len;
  const uint32_t seq = rd32(v.tcp + 4);
  const uint64_t now = live ? rte_rdtsc() : 0;
  const uint64_t hk = hold_key(key, flow_hash, in_port);
  ClcHeld* e = live && h.used != 0 ? hold_find(h, hk, now) : nullptr;
  if (e != nullptr) {
    e->tsc = now;
    if (e->blocked) return DropReason::kSmcFlowRefused;
    const auto delta = static_cast<int32_t>(seq - e->next_seq);
    if (delta > 0) return DropReason::kSmcClcUnchecked;  // a gap: TCP sends the missing part again
    const auto skip = static_cast<uint32_t>(-delta);
    if (skip >= n) return DropReason::kCount;  // only bytes already seen (and forwarded)
    continuation = true;
    p += skip;
    n -= skip;
    e->next_seq = seq + v.payload_len;
    for (;;) {
      const smc::Probe pr = smc::probe({e->buf, e->have});
      if (pr.kind == smc::ProbeKind::kNotClc) {  // not CLC after all: nothing to police
        hold_free(h, e);
        return DropReason::kCount;
      }
      const uint32_t need = pr.kind == smc::ProbeKind::kNeedMore ? smc::kHeaderLen : pr.msg_len;
      const uint32_t take = std::min(need - e->have, n);
      std::memcpy(e->buf + e->have, p, take);
      e->have = static_cast<uint16_t>(e->have + take);
      p += take;
      n -= take;
      if (e->have < need) return DropReason::kCount;  // still partial: harmless to the peer until complete
      if (pr.kind == smc::ProbeKind::kNeedMore) continue;  // the header is complete now: learn the length
      const DropReason why = check_message(h, b, e->buf, e->have);
      if (why != DropReason::kCount) {
        e->blocked = static_cast<uint8_t>(why);
        e->have = 0;
        return why;
      }
      hold_free(h, e);
      e = nullptr;
      break;
    }
  } else if (!(key.flags & kFlagSmc)) {
    return DropReason::kCount;
  }
  // Whole messages from a message boundary; a partial one at the end is held.
  while (n != 0) {
    const smc::Probe pr = smc::probe({p, n});
    if (pr.kind == smc::ProbeKind::kNotClc) return DropReason::kCount;
    if (pr.kind == smc::ProbeKind::kNeedMore || pr.msg_len > n) {
      if (!live) return DropReason::kCount;  // trace: one segment, nothing held
      ClcHeld* slot = hold_take(h, hk, now);
      if (slot == nullptr) return DropReason::kSmcClcUnchecked;  // no room to follow it: TCP sends it again
      std::memcpy(slot->buf, p, n);
      slot->have = static_cast<uint16_t>(n);
      slot->next_seq = seq + v.payload_len;
      slot->blocked = 0;
      slot->tsc = now;
      return DropReason::kCount;
    }
    const DropReason why = check_message(h, b, p, pr.msg_len);
    if (why != DropReason::kCount) {
      if (live) {
        if (ClcHeld* slot = hold_take(h, hk, now); slot != nullptr) {
          slot->blocked = static_cast<uint8_t>(why);
          slot->have = 0;
          slot->tsc = now;
        }
      }
      return why;
    }
    p += pr.msg_len;
    n -= pr.msg_len;
  }
  return DropReason::kCount;
}

}  // namespace

void smc_flush_events(WorkerContext& ctx) noexcept {
  const unsigned n = ctx.n_smc_staged;
  if (n == 0) return;
  const unsigned sent =
      rte_ring_enqueue_burst_elem(ctx.smc_ring, ctx.smc_staged.data(), sizeof(SmcEvent), n, nullptr);
  ctx.stats.smc_events += sent;
  ctx.stats.smc_events_lost += n - sent;
  ctx.n_smc_staged = 0;
}

DropReason smc_ingress(WorkerContext& ctx, const Binding* in_binding, rte_mbuf* m, uint16_t in_port, FlowKey& key,
                       const HeaderOffsets& off, TraceRecord* trace) noexcept {
  TcpView v;
  if (!tcp_view(m, key, off, v)) return DropReason::kCount;
  const uint8_t fl = v.tcp[13];
  PortCounters& pc = ctx.stats.ports[in_port];
  const bool count = trace == nullptr;  // trace changes no live state
  if (key.smc_option && (fl & kTcpFlagSyn)) {
    if (count) pc.smc_syn++;
    if (in_binding != nullptr && !in_binding->smc_allowed) {
      if (strip_smc_option(v.tcp, v.hdr_len) != 0) {
        key.smc_option = 0;  // the tables match the segment as it leaves
        if (count) pc.smc_option_stripped++;
        if (trace != nullptr) trace->smc_stripped.push_back(in_port);
      }
      return DropReason::kCount;
    }
    stage_event(ctx, (fl & kTcpFlagAck) ? SmcEventType::kSynAck : SmcEventType::kSyn, in_port, key, v, false);
    return DropReason::kCount;
  }
  const uint64_t fh = smc_flow_hash(key);
  if (v.payload_len != 0 && ctx.smc != nullptr && ctx.smc->refused.size() != 0 && ctx.smc->refused.contains(fh)) {
    // A connection whose CLC message was refused: no data either way. The published set blocks it from now on, so
    // a slot this worker still holds for the direction is released.
    if (ctx.smc_hold.used != 0 && count) {
      if (ClcHeld* e = hold_find(ctx.smc_hold, hold_key(key, fh, in_port), rte_rdtsc()); e != nullptr) {
        hold_free(ctx.smc_hold, e);
      }
    }
    return DropReason::kSmcFlowRefused;
  }
  const bool clc = is_clc(v);
  bool continuation = false;
  DropReason why = DropReason::kCount;
  // (Only a segment that starts like CLC, or any while this worker holds part of a message: the rest of the TCP
  // traffic that smc_watching lets in - while a refused connection exists - pays the lookup above, not this.)
  if (v.payload_len != 0 && in_binding != nullptr && in_binding->spoofchk &&
      ((key.flags & kFlagSmc) || ctx.smc_hold.used != 0)) {
    why = clc_check(ctx, *in_binding, in_port, key, fh, v, count, continuation);
  }
  if (clc && count) pc.smc_clc++;
  // The session table sees what the peer receives, and the refusals (the segment that made them): not bytes
  // dropped for other reasons (a gap, a blocked direction).
  const uint8_t refusal = smc_refusal_of(why);
  if ((clc || continuation) && (why == DropReason::kCount || refusal != 0)) {
    stage_event(ctx, SmcEventType::kClc, in_port, key, v, true, refusal);
  }
  if (why != DropReason::kCount) return why;
  if ((fl & (kTcpFlagFin | kTcpFlagRst)) && ctx.smc != nullptr && ctx.smc->flows.size() != 0 &&
      ctx.smc->flows.contains(fh)) {
    stage_event(ctx, (fl & kTcpFlagRst) ? SmcEventType::kRst : SmcEventType::kFin, in_port, key, v, false);
  }
  return DropReason::kCount;
}

unsigned smc_egress(WorkerContext& ctx, const PortMap& ports, bool roce_strict, rte_mbuf* m, uint16_t in_port,
                    FlowKey& key, const HeaderOffsets& off, uint16_t* outs, unsigned n_out,
                    TraceRecord* trace) noexcept {
  const bool count = trace == nullptr;
  // A SYN/SYN-ACK still offering SMC towards a deny vport: strip once (the frame is shared by every output).
  if ((key.flags & kFlagSmc) && key.smc_option) {
    for (unsigned i = 0; i < n_out; ++i) {
      const Binding* b = ports.binding[outs[i]];
      if (b == nullptr || b->smc_allowed) continue;
      TcpView v;
      if (tcp_view(m, key, off, v) && (v.tcp[13] & kTcpFlagSyn) && strip_smc_option(v.tcp, v.hdr_len) != 0) {
        key.smc_option = 0;
        if (count) ctx.stats.ports[outs[i]].smc_option_stripped++;
        if (trace != nullptr) trace->smc_stripped.push_back(outs[i]);
      }
      break;
    }
  }
  if (!roce_strict || !(key.flags & kFlagRoce)) return n_out;
  uint32_t rkey = 0;
  const bool has_reth = (key.flags & kFlagRoceReth) && off.l4 != HeaderOffsets::kNone;
  if (has_reth) {
    const uint8_t* reth = rte_pktmbuf_mtod(m, const uint8_t*) + off.l4 + 8 + kBthLen;
    rkey = rd32(reth + 8);
  }
  const SmcView* view = ctx.smc;
  unsigned kept = 0;
  for (unsigned i = 0; i < n_out; ++i) {
    const uint16_t dst = outs[i];
    if (ports.binding[dst] != nullptr) {  // vport to vport: only what a CLC exchange granted
      DropReason why = DropReason::kCount;
      if (view == nullptr || !view->qps.contains(roce_qp_grant(in_port, dst, key.roce_dqp))) {
        why = DropReason::kRoceQpNotGranted;
      } else if (has_reth && !view->rkeys.contains(roce_rkey_grant(in_port, dst, rkey))) {
        why = DropReason::kRoceRkeyNotGranted;
      }
      if (why != DropReason::kCount) {
        if (count) ctx.stats.ports[in_port].dropped[static_cast<size_t>(why)]++;
        if (trace != nullptr) trace->roce_refused.push_back({dst, why});
        continue;
      }
    }
    outs[kept++] = dst;
  }
  return kept;
}

}  // namespace esw::dp
