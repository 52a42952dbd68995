#include "dataplane/daemon/switch.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>

#include "dataplane/daemon/eal.h"
#include "dataplane/error.h"
#include "dataplane/rules/packet_synth.h"
#include "dataplane/fastpath/parser.h"
#include "representors/representor.h"

namespace esw::dp {

TraceResult Switch::trace(uint16_t in_port, const uint8_t* data, size_t len) {
  TraceResult out;
  FlowKey key;
  HeaderOffsets off;
  parse_packet(data, static_cast<uint32_t>(len), in_port, key, off);
  out.packet = format_key(key, names_);

  rte_mbuf* m = rte_pktmbuf_alloc(pool_);
  if (m == nullptr || len > rte_pktmbuf_tailroom(m)) {
    rte_pktmbuf_free(m);
    out.verdict = "error: no mbuf for the trace packet";
    return out;
  }
  std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(len)), data, len);
  auto ctx = std::make_unique<WorkerContext>();  // scratch: trace transmits nothing and counts nothing live
  const TableSet* tables = classifier_->acquire();
  const Pipeline* p = pipeline_.acquire();
  ctx->io = p->ports.io.data();
  ctx->smc = smc_pub_.acquire();
  p->process<true>(*ctx, *tables, in_port, &m, 1, &out.record);

  const TraceRecord& r = out.record;
  auto port = [&](uint16_t i) {
    std::string n = names_.name_of ? names_.name_of(i) : std::string();
    return n.empty() ? fmt::format("{}", i) : n;
  };
  if (r.passthrough) out.lines.push_back(fmt::format("representor {} -> vport {}", port(in_port), port(r.outputs.front())));
  if (r.binding_checked) {
    out.lines.push_back(fmt::format("binding {}: {}", port(in_port),
                                    r.binding == DropReason::kCount ? "ok" : drop_reason_name(r.binding)));
  }
  for (const auto& h : r.hits) {
    const RuleBook::Installed* ir = book_.find(h.rule_id);
    const std::string where = ir != nullptr ? book_.where_of(*ir, extra_rules_) : "?";
    const std::optional<RuleInfo> info = classifier_->find(h.rule_id);
    const std::string match = info ? format_match(MaskedKey{info->spec.value, info->spec.mask, 0}, names_) : "";
    out.lines.push_back(fmt::format("table {}: rule {} [{}] priority {} match {} -> {}", h.table, h.rule_id, where,
                                    h.priority, match.empty() ? "(any)" : match,
                                    format_actions(*h.actions, names_, h.goto_table)));
  }
  if (r.miss_table != kNoTable) {
    out.lines.push_back(fmt::format("table {}: miss -> {}", r.miss_table,
                                    r.miss_actions ? format_actions(*r.miss_actions, names_) : "(none)"));
  }
  for (uint16_t sp : r.smc_stripped) {
    out.lines.push_back(fmt::format("smc: option removed (smc: deny on {}), TCP checksum updated", port(sp)));
  }
  for (const auto& [rp, why] : r.roce_refused) {
    out.lines.push_back(fmt::format("roce_strict {}: output to {} refused: {} (dest QP {})", port(in_port), port(rp),
                                    drop_reason_name(why), key.roce_dqp));
  }
  std::string extra;
  for (uint16_t mp : r.mirrors) extra += fmt::format(", mirror:{}", port(mp));
  for (uint16_t ef : r.egress_filtered) extra += fmt::format(", egress_filter:{}", port(ef));
  if (r.dropped) {
    out.verdict = fmt::format("drop ({}){}", drop_reason_name(r.drop_reason), extra);
  } else {
    std::string outs;
    for (uint16_t o : r.outputs) outs += fmt::format("{}output:{}", outs.empty() ? "" : ", ", port(o));
    if (outs.empty()) outs = "drop (egress_filter)";
    out.verdict = outs + extra;
  }
  return out;
}

bool Switch::trace(std::string_view description, TraceResult& out, std::string& error) {
  MaskedKey mk;
  if (!parse_match(description, names_, mk, error)) return false;
  if (mk.mask.in_port != 0xffff) {
    error = "in_port is required (the port the packet enters on)";
    return false;
  }
  std::vector<uint8_t> bytes;
  if (!synthesize_packet(mk, bytes, error)) return false;
  out = trace(mk.value.in_port, bytes.data(), bytes.size());
  return true;
}

}  // namespace esw::dp
