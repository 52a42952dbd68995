#include "dataplane/daemon/switch.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <cstring>
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

std::vector<PortStats> Switch::port_stats() const {
  std::vector<PortStats> out;
  for (uint16_t i = 0; i < kMaxPorts; ++i) {
    const Port* p = slots_[i].get();
    if (p == nullptr) continue;
    PortStats s;
    s.name = p->name();
    s.role = p->spec().role;
    s.driver = p->driver_name();
    s.kind = p->spec().kind;
    s.device = p->driver_counters();
    s.link_up = p->is_started() && p->link_up();
    s.rx_queues.resize(p->spec().rx_queues);
    for (const auto& w : workers_) {
      s.counters += w->stats().ports[i];
      for (uint16_t q = 0; q < p->spec().rx_queues; ++q) {
        const QueueCounters& c = w->queue_counters(i, q);
        s.rx_queues[q].packets += c.packets;
        s.rx_queues[q].bytes += c.bytes;
        s.rx_queues[q].polls += c.polls;
        s.rx_queues[q].empty_polls += c.empty_polls;
      }
    }
    p->add_carried(s.counters);
    xdp_offload_.add_steered_tx(i, s.name, s.counters.tx_packets, s.counters.tx_bytes, slots_);  // XDP steer rules
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<VportStats> Switch::vport_stats() const {
  std::vector<VportStats> out;
  for (const auto& v : config_.vports) {
    const int i = port_index(v.name);
    if (i < 0) continue;
    VportStats s;
    s.name = v.name;
    s.active = v.state == cfg::VportState::kActive;
    if (const auto rp = rep::plan_representor(config_.representors, v); rp && port_index(rp->name) >= 0) {
      s.representor = rp->name;
    }
    PortCounters c;
    for (const auto& w : workers_) c += w->stats().ports[i];
    slots_[i]->add_carried(c);
    xdp_offload_.add_steered_tx(static_cast<uint16_t>(i), v.name, c.tx_packets, c.tx_bytes, slots_);
    s.rx_packets = c.rx_packets;
    s.tx_packets = c.tx_packets;
    slots_[i]->add_early_drops(c.dropped);  // dropped below the worker (XDP), by the binding's reasons
    for (size_t r = 0; r < c.dropped.size(); ++r) {
      s.drops.emplace_back(drop_reason_name(static_cast<DropReason>(r)), c.dropped[r]);
    }
    out.push_back(std::move(s));
  }
  return out;
}

SmcReport Switch::smc_report() const {
  SmcReport r;
  const uint64_t now = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                 std::chrono::steady_clock::now().time_since_epoch()).count());
  auto name_of = [this](uint16_t i) {
    return i != smc::kNoVport && names_.name_of ? names_.name_of(i) : std::string();
  };
  smc_->for_each([&](const smc::Session& s) {
    SmcSessionInfo x;
    x.state = smc::to_string(s.state);
    x.path = s.path;
    x.version = s.version;
    x.family = s.client.family;
    x.client.port = s.client_vport;
    x.client.vport = name_of(s.client_vport);
    std::memcpy(x.client.addr, s.client.src, 16);
    x.client.tcp_port = s.client.sport;
    x.client.id = s.client_id;
    x.server.port = s.server_vport;
    x.server.vport = name_of(s.server_vport);
    std::memcpy(x.server.addr, s.client.dst, 16);
    x.server.tcp_port = s.client.dport;
    x.server.id = s.server_id;
    x.granted = smc_granted(s);
    x.decline_code = s.decline_code;
    x.error = s.error != nullptr ? s.error : "";
    if (s.state == smc::State::kRefused) {
      x.refused = smc::to_string(s.refused);
      x.refused_by = s.refused_client ? "client" : "server";
    }
    x.clc_messages = s.clc_messages;
    x.bytes[0] = s.bytes[0];
    x.bytes[1] = s.bytes[1];
    x.age_s = static_cast<double>(now - std::min(now, s.first_ns)) / 1e9;
    x.idle_s = static_cast<double>(now - std::min(now, s.last_ns)) / 1e9;
    r.sessions.push_back(std::move(x));
  });
  std::sort(r.sessions.begin(), r.sessions.end(), [](const SmcSessionInfo& a, const SmcSessionInfo& b) {
    return a.age_s > b.age_s;  // oldest first: a stable order for show
  });
  r.table = smc_->counters();
  r.capacity = smc_->capacity();
  for (const auto& w : workers_) {
    r.events_enqueued += w->stats().smc_events;
    r.events_lost += w->stats().smc_events_lost;
  }
  r.ring_size = rte_ring_get_capacity(smc_ring_);
  r.ring_used = rte_ring_count(smc_ring_);
  const SmcView* view = smc_cur_.get();
  r.flows = view->flows.size();
  r.qp_grants = view->qps.size();
  r.rkey_grants = view->rkeys.size();
  r.idle_timeout_s = static_cast<double>(smc_->config().idle_timeout_ns) / 1e9;
  for (const auto& v : config_.vports) {
    const int i = port_index(v.name);
    if (i < 0) continue;
    PortCounters c;
    for (const auto& w : workers_) c += w->stats().ports[i];
    r.vports.push_back({v.name, v.smc == cfg::SmcPolicy::kAllow ? "allow" : "deny", v.roce_strict, c.smc_syn,
                        c.smc_option_stripped, c.smc_clc,
                        c.dropped[static_cast<size_t>(DropReason::kRoceQpNotGranted)],
                        c.dropped[static_cast<size_t>(DropReason::kRoceRkeyNotGranted)],
                        c.dropped[static_cast<size_t>(DropReason::kSmcForeignMac)],
                        c.dropped[static_cast<size_t>(DropReason::kSmcForeignGid)],
                        c.dropped[static_cast<size_t>(DropReason::kSmcForeignPrefix)],
                        c.dropped[static_cast<size_t>(DropReason::kSmcFlowRefused)],
                        c.dropped[static_cast<size_t>(DropReason::kSmcClcUnchecked)]});
  }
  return r;
}

std::vector<RuleStats> Switch::rule_stats() const {
  std::vector<RuleStats> out;
  out.reserve(book_.size());
  const auto xdp = xdp_offload_.report(slots_);  // steer rules' frames redirected in XDP count as the rule's
  for (const RuleBook::Installed& r : book_.installed()) {
    const std::optional<RuleInfo> info = classifier_->find(r.id);
    if (!info) continue;
    const RuleSpec& spec = info->spec;
    RuleStats s{r.id, spec.table, spec.priority, book_.where_of(r, extra_rules_), format_match(MaskedKey{spec.value, spec.mask, 0}, names_),
                format_actions(*static_cast<const ActionList*>(spec.actions), names_, spec.goto_table), 0, 0};
    for (const auto& w : workers_) {
      s.packets += w->rule_counters()[r.id].packets;
      s.bytes += w->rule_counters()[r.id].bytes;
    }
    s.packets -= book_.baseline(r.id).packets;
    s.bytes -= book_.baseline(r.id).bytes;
    if (const auto x = xdp.find(r.id); x != xdp.end() && static_cast<const ActionList*>(spec.actions)->has_count) {
      s.packets += x->second.xdp_steered;
      s.bytes += x->second.xdp_steered_bytes;
    }
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(), [](const RuleStats& a, const RuleStats& b) {
    return a.table != b.table ? a.table < b.table : a.priority != b.priority ? a.priority > b.priority : a.id < b.id;
  });
  return out;
}

MempoolReport Switch::mempool_report() const {
  MempoolReport r;
  if (pool_ == nullptr) return r;
  r.size = pool_->size;
  r.in_use = rte_mempool_in_use_count(pool_);
  return r;
}

void Switch::print_summary(FILE* out) const {
  fmt::print(out, "{:<12} {:<11} {:<14} {:>10} {:>12} {:>10} {:>12} {:>8} {:>8}\n", "port", "role", "driver",
             "rx_pkts", "rx_bytes", "tx_pkts", "tx_bytes", "tx_drop", "dropped");
  for (const PortStats& s : port_stats()) {
    const PortCounters& c = s.counters;
    fmt::print(out, "{:<12} {:<11} {:<14} {:>10} {:>12} {:>10} {:>12} {:>8} {:>8}\n", s.name,
               port_role_name(s.role), s.driver, c.rx_packets, c.rx_bytes, c.tx_packets, c.tx_bytes, c.tx_dropped,
               c.dropped_total());
  }
  for (const VportStats& v : vport_stats()) {
    std::string drops;
    for (const auto& [reason, n] : v.drops) {
      if (n != 0) drops += fmt::format(" {}={}", reason, n);
    }
    if (!drops.empty()) fmt::print(out, "vport {} drops:{}\n", v.name, drops);
  }
  print_worker_cycles(out);
  // Only rules that counted something are formatted: with 100k rules and --stats-interval 0.25 formatting every
  // rule kept the main core busy (issue 15); summing the counters first costs a few additions per rule.
  for (const RuleBook::Installed& r : book_.installed()) {
    RuleCounter c{};
    for (const auto& w : workers_) {
      c.packets += w->rule_counters()[r.id].packets;
      c.bytes += w->rule_counters()[r.id].bytes;
    }
    c.packets -= book_.baseline(r.id).packets;
    c.bytes -= book_.baseline(r.id).bytes;
    if (c.packets != 0) {
      fmt::print(out, "rule {} [{}]: {} packets, {} bytes\n", r.id, book_.where_of(r, extra_rules_), c.packets, c.bytes);
    }
  }
}

}  // namespace esw::dp
