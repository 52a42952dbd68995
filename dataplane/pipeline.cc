#include "dataplane/pipeline.h"

#include <rte_ether.h>

#include <algorithm>
#include <cstring>

namespace esw::dp {

uint64_t Pipeline::mac_key(const uint8_t* mac) noexcept {
  uint64_t k = 0;
  std::memcpy(&k, mac, RTE_ETHER_ADDR_LEN);
  return k;
}

Pipeline::Pipeline(const cfg::PipelineConfig& config, const std::vector<PortInfo>& ports,
                   const std::vector<std::string>& names)
    : mode_(config.mode), nb_ports_(static_cast<uint16_t>(ports.size())) {
  cross_.fill(kNoPort);
  for (const auto& xc : config.cross_connect) {
    auto from = std::find(names.begin(), names.end(), xc.from);
    auto to = std::find(names.begin(), names.end(), xc.to);
    if (from != names.end() && to != names.end()) {
      cross_[from - names.begin()] = static_cast<uint16_t>(to - names.begin());
    }
  }
  flood_.resize(nb_ports_);
  unknown_.resize(nb_ports_);
  for (const PortInfo& p : ports) {
    if (p.has_mac) macs_.emplace_back(p.mac, p.index);
    for (const PortInfo& q : ports) {
      // Uplinks never bridge to each other: that is how loops between upstream switches are avoided.
      if (q.index == p.index || (p.is_uplink && q.is_uplink)) continue;
      flood_[p.index].push_back(q.index);
      if (q.is_uplink) unknown_[p.index].push_back(q.index);
    }
  }
}

uint16_t Pipeline::unicast_output(uint16_t in_port, uint64_t dst) const noexcept {
  for (const auto& [mac, port] : macs_) {
    if (mac == dst) return port == in_port ? kNoPort : port;
  }
  const auto& up = unknown_[in_port];
  return up.empty() ? kNoPort : up.front();
}

void Pipeline::flood(WorkerContext& ctx, uint16_t in_port, rte_mbuf* m,
                     const std::vector<uint16_t>& outs) const noexcept {
  if (outs.empty()) {
    ctx.drop(in_port, m, DropReason::kNoRoute);
    return;
  }
  // One reference per output; each tx (or tx drop) releases one. Nothing modifies a flooded frame.
  if (outs.size() > 1) rte_mbuf_refcnt_update(m, static_cast<int16_t>(outs.size() - 1));
  for (uint16_t o : outs) ctx.enqueue(o, m);
}

void Pipeline::process(WorkerContext& ctx, uint16_t in_port, rte_mbuf** pkts, uint16_t n) const noexcept {
  if (mode_ == cfg::PipelineMode::kCrossConnect) {
    const uint16_t out = cross_[in_port];
    for (uint16_t i = 0; i < n; ++i) {
      if (out == kNoPort) ctx.drop(in_port, pkts[i], DropReason::kNoRoute);
      else ctx.enqueue(out, pkts[i]);
    }
    return;
  }
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void*));
    if (rte_pktmbuf_data_len(m) < RTE_ETHER_HDR_LEN) {
      ctx.drop(in_port, m, DropReason::kMalformed);
      continue;
    }
    const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
    if (rte_is_multicast_ether_addr(&eth->dst_addr)) {
      flood(ctx, in_port, m, flood_[in_port]);
      continue;
    }
    const uint64_t dst = mac_key(eth->dst_addr.addr_bytes);
    bool known = false;
    for (const auto& [mac, port] : macs_) {
      if (mac == dst) {
        known = true;
        if (port == in_port) ctx.drop(in_port, m, DropReason::kNoRoute);
        else ctx.enqueue(port, m);
        break;
      }
    }
    if (!known) flood(ctx, in_port, m, unknown_[in_port]);
  }
}

}  // namespace esw::dp
