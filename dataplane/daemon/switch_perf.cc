// Worker cycle accounting as the main lcore reads it (issue 15, item 7): the counters are the workers' own
// (dataplane/fastpath/stats.h WorkerCycles), read without locks like every other per-core counter.
#include <fmt/format.h>

#include "dataplane/daemon/switch.h"

namespace esw::dp {

std::vector<WorkerCycleStats> Switch::worker_cycles() const {
  std::vector<WorkerCycleStats> out;
  out.reserve(workers_.size());
  for (const auto& w : workers_) out.push_back({w->params().index, w->params().lcore, w->stats().cycles});
  return out;
}

void Switch::print_worker_cycles(FILE* out) const {
  for (const WorkerCycleStats& w : worker_cycles()) {
    fmt::print(out, "worker {} lcore {}: busy_cycles={} idle_cycles={} packets={} busy_loops={}\n", w.index, w.lcore,
               w.cycles.busy_cycles, w.cycles.idle_cycles, w.cycles.packets, w.cycles.busy_loops);
  }
}

}  // namespace esw::dp
