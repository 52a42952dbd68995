#pragma once
// The SMC stage of the pipeline: what a worker does with the few segments the parser flags (kFlagSmc: SYN or
// SYN-ACK with the SMC option, FIN/RST, a CLC eyecatcher at the start of the payload) and with RoCEv2 from a vport
// in strict mode. Every other packet pays one flag test at ingress and one at output, nothing else.
//
//  - ingress (smc_ingress): checks the identities a vport claims in its CLC messages (smc_identity.h) and drops
//    what is not its own, also when a message spans segments; counts SYN/SYN-ACKs with the option per vport; with `smc: deny` on the ingress vport
//    the option becomes NOPs (TCP checksum updated incrementally) so both ends fall back to TCP; otherwise the
//    segment becomes an event for the main lcore. FIN/RST become events only for flows in the published SmcView.
//    CLC-looking payloads become events with their first kSmcEventPayload bytes.
//  - output (smc_egress): a SYN/SYN-ACK still carrying the option towards a `smc: deny` vport is stripped the same
//    way (so the deny vport's peer falls back too); RoCEv2 from a `roce_strict` vport to another vport passes only
//    for a granted (src vport, dst vport, dest QP) and, for WRITE/READ requests, a granted rkey. Refused outputs are
//    counted on the ingress vport (roce_qp_not_granted / roce_rkey_not_granted) and shown by trace.
//
// Events are staged in the worker's context and enqueued with one burst call per pipeline burst (rte_ring elem
// API, multi-producer / single-consumer); a full ring counts the events lost (WorkerStats::smc_events_lost), it
// never blocks.

#include <rte_mbuf.h>

#include <cstdint>

#include "dataplane/fastpath/action_types.h"
#include "dataplane/fastpath/binding.h"
#include "dataplane/fastpath/flow_key.h"
#include "dataplane/fastpath/proto.h"
#include "dataplane/fastpath/worker_context.h"

namespace esw::dp {

struct TraceRecord;

// in_binding: the ingress vport's binding (nullptr: not a vport). trace != nullptr: trace mode (no events, nothing
// held). Returns kCount (forward) or why the segment is dropped (SMC identity enforcement, smc_identity.h); the
// caller drops and counts it.
DropReason smc_ingress(WorkerContext& ctx, const Binding* in_binding, rte_mbuf* m, uint16_t in_port, FlowKey& key,
                       const HeaderOffsets& off, TraceRecord* trace) noexcept;

// Must smc_ingress see this packet although the parser did not flag it (kFlagSmc)? Only TCP while this worker
// holds part of a CLC message (its continuation is checked) or some connection is refused; otherwise false at
// the cost of two loads.
inline bool smc_watching(const WorkerContext& ctx, const FlowKey& key) noexcept {
  return (ctx.smc_hold.used != 0 || (ctx.smc != nullptr && ctx.smc->refused.size() != 0)) &&
         key.ip_proto == kProtoTcp;
}

// Filters outs[0, n_out) (destinations chosen by the walk); returns how many stay. `ports` is the snapshot's
// port map. The packet is not freed here.
unsigned smc_egress(WorkerContext& ctx, const PortMap& ports, bool roce_strict, rte_mbuf* m, uint16_t in_port,
                    FlowKey& key, const HeaderOffsets& off, uint16_t* outs, unsigned n_out,
                    TraceRecord* trace) noexcept;

// Enqueues the staged events (one burst call); what does not fit is counted lost.
void smc_flush_events(WorkerContext& ctx) noexcept;

}  // namespace esw::dp
