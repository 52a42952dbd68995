#include "dataplane/fastpath/smc_stage.h"

#include <rte_cycles.h>
#include <rte_ring_elem.h>

#include <algorithm>
#include <cstring>

#include "dataplane/fastpath/action_exec.h"
#include "dataplane/fastpath/proto.h"

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
                 bool copy_payload) noexcept {
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

void smc_ingress(WorkerContext& ctx, const Binding* in_binding, rte_mbuf* m, uint16_t in_port, FlowKey& key,
                 const HeaderOffsets& off, TraceRecord* trace) noexcept {
  TcpView v;
  if (!tcp_view(m, key, off, v)) return;
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
      return;
    }
    stage_event(ctx, (fl & kTcpFlagAck) ? SmcEventType::kSynAck : SmcEventType::kSyn, in_port, key, v, false);
    return;
  }
  if (is_clc(v)) {
    if (count) pc.smc_clc++;
    stage_event(ctx, SmcEventType::kClc, in_port, key, v, true);
  }
  if ((fl & (kTcpFlagFin | kTcpFlagRst)) && ctx.smc != nullptr && ctx.smc->flows.size() != 0 &&
      ctx.smc->flows.contains(smc_flow_hash(key))) {
    stage_event(ctx, (fl & kTcpFlagRst) ? SmcEventType::kRst : SmcEventType::kFin, in_port, key, v, false);
  }
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
