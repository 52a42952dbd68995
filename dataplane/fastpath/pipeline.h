#pragma once
// The per-burst pipeline: parse once -> exact-match flow cache -> classifier walk (tables, goto) -> actions ->
// tx buffers. A Pipeline object is an immutable snapshot of everything but the tables (port map, table miss
// actions, meter profiles); the tables are the classifier's own snapshot. Workers read both pointers once per
// loop iteration; the main lcore publishes new versions and frees old ones after an RCU grace period.

#include <rte_mbuf.h>

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/fastpath/action_exec.h"
#include "dataplane/fastpath/action_types.h"
#include "dataplane/fastpath/binding.h"
#include "dataplane/fastpath/classifier.h"
#include "dataplane/fastpath/stats.h"
#include "dataplane/fastpath/worker_context.h"

namespace esw::dp {

class ActionInterner;

class Pipeline {
 public:
  Pipeline();

  // Runs a burst that entered on in_port. With kTrace, `trace` gets what the (single) packet did; the flow cache
  // is bypassed (it would return the same walk) and nothing is transmitted.
  template <bool kTrace>
  void process(WorkerContext& ctx, const TableSet& tables, uint16_t in_port, rte_mbuf** pkts, uint16_t n,
               TraceRecord* trace = nullptr) const noexcept;

  PortMap ports;
  std::vector<std::unique_ptr<Binding>> bindings;  // owned here, referenced by ports.binding
  uint64_t generation = 0;  // bumped on every publish: with the tables' version it tags flow-cache entries
  std::array<const ActionList*, kMaxTables> miss_actions{};  // per table: what a miss does
  std::vector<MeterProfile> meters;
  uint64_t meter_generation = 0;  // changes when `meters` changes; workers rebuild their meter state
  uint32_t max_rules = 0;         // rule ids are < max_rules (per-core counter arrays)
  ActionInterner* interner = nullptr;  // owner of every ActionList reachable from here (outlives snapshots)
};

extern template void Pipeline::process<false>(WorkerContext&, const TableSet&, uint16_t, rte_mbuf**, uint16_t,
                                              TraceRecord*) const noexcept;
extern template void Pipeline::process<true>(WorkerContext&, const TableSet&, uint16_t, rte_mbuf**, uint16_t,
                                             TraceRecord*) const noexcept;

}  // namespace esw::dp
