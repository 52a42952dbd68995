#pragma once
// The forwarding decision for a burst. A Pipeline is immutable once built and is published to the workers as
// a snapshot (see Switch): the workers read it through one pointer per loop iteration and never lock.
//
// This is the foundation pipeline: static, learning-free L2 forwarding or port cross-connects. The match/
// action tables replace its decision step; the burst interface (in: port + mbufs, out: tx buffers and drop
// counters) stays.

#include <rte_mbuf.h>

#include <array>
#include <cstdint>
#include <vector>

#include "config/config.h"
#include "dataplane/stats.h"
#include "dataplane/worker_context.h"

namespace esw::dp {

struct PortInfo {
  uint16_t index;
  bool is_uplink;
  bool has_mac;
  uint64_t mac;  // 48-bit MAC in the low bytes, wire order (as loaded by mac_key())
};

class Pipeline {
 public:
  static constexpr uint16_t kNoPort = 0xffff;

  // `ports` indexed by switch port index; `names` resolves cross-connect names to indexes.
  Pipeline(const cfg::PipelineConfig& config, const std::vector<PortInfo>& ports,
           const std::vector<std::string>& names);

  void process(WorkerContext& ctx, uint16_t in_port, rte_mbuf** pkts, uint16_t n) const noexcept;

  // Where a unicast frame to `dst` entering on `in_port` goes (kNoPort = dropped); for tests and trace.
  uint16_t unicast_output(uint16_t in_port, uint64_t dst) const noexcept;

  static uint64_t mac_key(const uint8_t* mac) noexcept;

 private:
  void flood(WorkerContext& ctx, uint16_t in_port, rte_mbuf* m, const std::vector<uint16_t>& outs) const noexcept;

  cfg::PipelineMode mode_;
  uint16_t nb_ports_;
  std::array<uint16_t, kMaxPorts> cross_{};            // cross-connect: in -> out
  std::vector<std::pair<uint64_t, uint16_t>> macs_;    // vport MAC -> port
  std::vector<std::vector<uint16_t>> flood_;           // in -> every other port
  std::vector<std::vector<uint16_t>> unknown_;         // in -> uplinks other than in
};

}  // namespace esw::dp
