#include "dataplane/fastpath/pipeline.h"

#include "dataplane/fastpath/parser.h"
#include "dataplane/fastpath/smc_stage.h"

namespace esw::dp {

Pipeline::Pipeline() { miss_actions.fill(nullptr); }

template <bool kTrace>
void Pipeline::process(WorkerContext& ctx, const TableSet& tables, uint16_t in_port, rte_mbuf** pkts, uint16_t n,
                       TraceRecord* trace) const noexcept {
  FlowKey keys[kMaxRxBurst];
  HeaderOffsets offs[kMaxRxBurst];
  uint64_t hashes[kMaxRxBurst];
  WalkView views[kMaxRxBurst];
  uint16_t live[kMaxRxBurst];
  uint16_t n_live = 0;
  const Binding* binding = ports.binding[in_port];
  const ExecEnv env{&ports, miss_actions.data(), max_rules, binding != nullptr && binding->roce_strict};
  // Early drops (malformed, binding, rate limit) are counted at once and freed together at the end of the
  // stage: a flood of bad frames then costs its parse and one bulk free, not a free call per frame.
  rte_mbuf* early_drops[kMaxRxBurst];
  uint16_t n_early = 0;
  auto drop = [&](rte_mbuf* m, DropReason why) {
    if constexpr (kTrace) {
      trace->dropped = true;
      trace->drop_reason = why;
      rte_pktmbuf_free(m);
    } else {
      ctx.stats.ports[in_port].dropped[static_cast<size_t>(why)]++;
      early_drops[n_early++] = m;
    }
  };

  // 0. A representor is the host end of its vport's tunnel: what the host sends goes to the vport, untouched.
  const uint16_t peer = ports.rep_peer[in_port];
  if (peer != PortMap::kNoPort) {
    const Binding* pb = ports.binding[peer];
    for (uint16_t i = 0; i < n; ++i) {
      if (pb != nullptr && !pb->active) {
        drop(pkts[i], DropReason::kInactive);
        continue;
      }
      if constexpr (kTrace) {
        trace->passthrough = true;
        trace->outputs.push_back(peer);
        rte_pktmbuf_free(pkts[i]);
      } else {
        ctx.enqueue(peer, pkts[i]);
      }
    }
    if (n_early != 0) rte_pktmbuf_free_bulk(early_drops, n_early);
    return;
  }

  // 1. Parse the burst once; malformed packets take their defined path (dropped, counted) right here. Then the
  //    ingress vport's binding (anti-spoofing) and rate limit.
  for (uint16_t i = 0; i < n; ++i) {
    if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void*));
    rte_mbuf* m = pkts[i];
    // The parser reads one contiguous buffer: a chained mbuf (jumbo frame from some PMDs) is linearised first.
    if (m->nb_segs > 1 && rte_pktmbuf_linearize(m) != 0) [[unlikely]] {
      drop(m, DropReason::kMalformed);
      continue;
    }
    if (!parse_packet(rte_pktmbuf_mtod(m, const uint8_t*), rte_pktmbuf_data_len(m), in_port, keys[i], offs[i])) {
      drop(m, DropReason::kMalformed);
      continue;
    }
    if (binding != nullptr) {
      const DropReason verdict = check_ingress(*binding, keys[i]);
      if constexpr (kTrace) {
        trace->binding_checked = true;
        trace->binding = verdict;
      }
      if (verdict != DropReason::kCount) {
        drop(m, verdict);
        continue;
      }
      if constexpr (!kTrace) {
        if (binding->rate_meter < ctx.nb_meters) {
          MeterRuntime& mr = ctx.meters[binding->rate_meter];
          if (mr.configured &&
              rte_meter_srtcm_color_blind_check(&mr.sr, &mr.sr_profile, rte_rdtsc(), m->pkt_len) == RTE_COLOR_RED) {
            drop(m, DropReason::kRateLimit);
            continue;
          }
        }
      }
    }
    // SMC handshake segments and connection ends (smc_stage.h); everything else pays this one test.
    if ((keys[i].flags & kFlagSmc) || smc_watching(ctx, keys[i])) [[unlikely]] {
      const DropReason why = smc_ingress(ctx, binding, m, in_port, keys[i], offs[i], trace);
      if (why != DropReason::kCount) {
        drop(m, why);
        continue;
      }
    }
    live[n_live++] = i;
  }
  if (n_early != 0) rte_pktmbuf_free_bulk(early_drops, n_early);
  if constexpr (!kTrace) {
    if (ctx.n_smc_staged != 0) [[unlikely]] smc_flush_events(ctx);
  }

  // 2. Flow cache: hash and prefetch every set first, then probe.
  WalkResult walks[kMaxRxBurst];
  uint16_t misses[kMaxRxBurst];
  uint16_t n_miss = 0;
  if constexpr (kTrace) {
    for (uint16_t j = 0; j < n_live; ++j) misses[n_miss++] = live[j];
  } else {
    FlowCache<CachedWalk>& cache = *ctx.flow_cache;
    const uint64_t cache_gen = tables.version ^ (generation << 40);
    for (uint16_t j = 0; j < n_live; ++j) {
      hashes[live[j]] = FlowCache<CachedWalk>::hash(keys[live[j]]);
      cache.prefetch(hashes[live[j]]);
    }
    for (uint16_t j = 0; j < n_live; ++j) {
      const uint16_t i = live[j];
      const CachedWalk* c = cache.find(keys[i], hashes[i], cache_gen);
      if (c != nullptr) {
        views[i] = WalkView::of(*c);
      } else {
        misses[n_miss++] = i;
      }
    }
  }

  // 3. Walk the misses through the tables as one burst. The walk rewrites the key it is given, so it works on
  //    copies and the ingress key stays the cache key.
  if (n_miss != 0) {
    FlowKey walk_keys[kMaxRxBurst];
    FlowKey* walk_ptrs[kMaxRxBurst];
    for (uint16_t j = 0; j < n_miss; ++j) {
      walk_keys[j] = keys[misses[j]];
      walk_ptrs[j] = &walk_keys[j];
    }
    walk_burst(tables, walk_ptrs, n_miss, walks);
    for (uint16_t j = 0; j < n_miss; ++j) {
      const uint16_t i = misses[j];
      const WalkResult& w = walks[j];
      views[i] = {w.n_hits, w.miss_table, w.hits, nullptr, nullptr};
      if constexpr (!kTrace) {
        if (w.n_hits <= kCachedHits) {
          CachedWalk c;  // insert() copies it
          c.n_hits = w.n_hits;
          c.miss_table = w.miss_table;
          for (unsigned h = 0; h < w.n_hits; ++h) {
            c.ids[h] = w.hits[h]->id();
            c.lists[h] = static_cast<const ActionList*>(w.hits[h]->actions());
          }
          ctx.flow_cache->insert(keys[i], hashes[i], tables.version ^ (generation << 40), c);
        }
      }
    }
  }

  // 4. Actions, in arrival order.
  for (uint16_t j = 0; j < n_live; ++j) {
    const uint16_t i = live[j];
    execute<kTrace>(ctx, env, pkts[i], in_port, views[i], keys[i], offs[i], trace);
  }
}

template void Pipeline::process<false>(WorkerContext&, const TableSet&, uint16_t, rte_mbuf**, uint16_t,
                                       TraceRecord*) const noexcept;
template void Pipeline::process<true>(WorkerContext&, const TableSet&, uint16_t, rte_mbuf**, uint16_t,
                                      TraceRecord*) const noexcept;

}  // namespace esw::dp
