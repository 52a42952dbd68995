// The show family of the management API, all reads answered at once: ping, show, stats, trace.

#include <arpa/inet.h>
#include <rte_cycles.h>
#include <unistd.h>

#include <cctype>
#include <map>

#include <fmt/format.h>

#include "config/config.h"
#include "control/api_protocol.h"
#include "dataplane/daemon/api_methods.h"
#include "dataplane/daemon/eal.h"
#include "dataplane/daemon/ism_service.h"
#include "dataplane/daemon/switch.h"
#include "dataplane/fastpath/stats.h"
#include "dataplane/ports/port.h"

namespace esw::dp {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

json drops_json(const PortCounters& c) {
  json d = json::object();
  for (size_t i = 0; i < c.dropped.size(); ++i) d[drop_reason_name(static_cast<DropReason>(i))] = c.dropped[i];
  return d;
}

const cfg::Attachment* attachment_of(const cfg::Config& c, const std::string& name) {
  for (const auto& u : c.uplinks) {
    if (u.name == name) return &u.attach;
  }
  for (const auto& v : c.vports) {
    if (v.name == name) return &v.attach;
  }
  return nullptr;
}

std::string action_text(const std::vector<cfg::ActionConfig>& actions) {
  std::string out;
  for (const auto& a : actions) {
    if (!out.empty()) out += ",";
    out += a.arg.empty() ? a.name : fmt::format("{}:{}", a.name, a.arg);
  }
  return out;
}

std::string ip_text(const uint8_t* a, uint8_t version) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(version == 4 ? AF_INET : AF_INET6, a, buf, sizeof buf);
  return buf;
}
std::string hex_text(const uint8_t* a, size_t n, char sep) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += fmt::format("{}{:02x}", i != 0 && sep != 0 ? std::string(1, sep) : "", a[i]);
  return out;
}

const char* path_name(smc::Path p) {
  switch (p) {
    case smc::Path::kR: return "R";
    case smc::Path::kD: return "D";
    case smc::Path::kBoth: return "R+D";
    case smc::Path::kNone: break;
  }
  return "";
}

json smc_side_json(const SmcSessionInfo& s, const SmcSessionInfo::End& e) {
  json j = {{"vport", e.vport}, {"ip", ip_text(e.addr, s.family)}, {"port", e.tcp_port}};
  if (e.id.has_roce) {
    j["gid"] = ip_text(e.id.smcr_gid, 6);
    j["mac"] = hex_text(e.id.roce_mac, 6, ':');
  }
  if (e.id.has_qp) {
    j["qpn"] = e.id.qpn;
    j["rkey"] = fmt::format("0x{:08x}", e.id.rkey);
    j["rmb_va"] = fmt::format("0x{:x}", e.id.rmb_va);
  }
  if (e.id.has_dmb) j["dmb_token"] = fmt::format("0x{:016x}", e.id.dmb_token);
  return j;
}

json smc_json(const SmcReport& r) {
  json sessions = json::array();
  for (const SmcSessionInfo& s : r.sessions) {
    sessions.push_back({{"state", s.state},
                        {"path", path_name(s.path)},
                        {"version", s.version},
                        {"client", smc_side_json(s, s.client)},
                        {"server", smc_side_json(s, s.server)},
                        {"granted", s.granted},
                        {"decline_code", s.decline_code != 0 ? json(fmt::format("0x{:08x}", s.decline_code)) : json(nullptr)},
                        {"error", s.error.empty() ? json(nullptr) : json(s.error)},
                        {"refused", s.refused.empty() ? json(nullptr) : json(s.refused)},
                        {"refused_by", s.refused_by.empty() ? json(nullptr) : json(s.refused_by)},
                        {"clc_messages", s.clc_messages},
                        {"bytes", {{"client_to_server", s.bytes[0]}, {"server_to_client", s.bytes[1]}}},
                        {"age_s", s.age_s},
                        {"idle_s", s.idle_s}});
  }
  json vports = json::array();
  for (const auto& v : r.vports) {
    vports.push_back({{"name", v.name},
                      {"smc", v.policy},
                      {"roce_strict", v.roce_strict},
                      {"smc_syn", v.smc_syn},
                      {"smc_option_stripped", v.smc_option_stripped},
                      {"smc_clc", v.smc_clc},
                      {"roce_qp_not_granted", v.roce_qp_not_granted},
                      {"roce_rkey_not_granted", v.roce_rkey_not_granted},
                      {"smc_foreign_mac", v.smc_foreign_mac},
                      {"smc_foreign_gid", v.smc_foreign_gid},
                      {"smc_foreign_prefix", v.smc_foreign_prefix},
                      {"smc_flow_refused", v.smc_flow_refused},
                      {"smc_clc_unchecked", v.smc_clc_unchecked}});
  }
  const smc::Counters& c = r.table;
  return {{"sessions", std::move(sessions)},
          {"vports", std::move(vports)},
          {"table", {{"capacity", r.capacity},
                     {"created", c.created},
                     {"overflow", c.overflow},
                     {"no_session", c.no_session},
                     {"ended_fin", c.ended_fin},
                     {"ended_rst", c.ended_rst},
                     {"aged", c.aged},
                     {"declines", c.declines},
                     {"refused", c.refused},
                     {"clc_parsed", c.clc_parsed},
                     {"clc_invalid", c.clc_invalid},
                     {"clc_unexpected", c.clc_unexpected},
                     {"clc_not_clc", c.clc_not_clc},
                     {"clc_incomplete", c.clc_incomplete},
                     {"clc_duplicate", c.clc_duplicate}}},
          {"events", {{"enqueued", r.events_enqueued},
                      {"lost", r.events_lost},
                      {"read", c.events},
                      {"ring_size", r.ring_size},
                      {"ring_used", r.ring_used}}},
          {"grants", {{"flows", r.flows}, {"qp", r.qp_grants}, {"rkey", r.rkey_grants}}},
          {"idle_timeout_s", r.idle_timeout_s}};
}

json run_ping(ApiContext& ctx, const ApiCall&) {
  return {{"api", api::kApiVersion},
          {"pid", getpid()},
          {"uptime_s", ms_since(ctx.started) / 1000.0},
          {"generation", ctx.running.generation},
          {"config_hash", ctx.running.hash},
          {"file_prefix", Eal::file_prefix()},
          {"clients", ctx.clients},
          {"apply_in_progress", ctx.apply_in_progress},
          {"requests", ctx.requests}};
}

json run_show(ApiContext& ctx, const ApiCall& call) {
  const json& params = call.params;
  const std::string what = api_param_string(params, "what", true);
  const cfg::Config& config = ctx.sw.config();
  json out = json::object();
  if (what == "ports") {
    // The DPDK device name and port id are what dpdk-dumpcap and dpdk-telemetry.py's /ethdev/ commands take.
    std::map<std::string, const Port*> by_name;
    for (const auto& p : ctx.sw.ports()) {
      if (p != nullptr) by_name[p->name()] = p.get();
    }
    json ports = json::array();
    for (const PortStats& s : ctx.sw.port_stats()) {
      const PortCounters& c = s.counters;
      const cfg::Attachment* a = attachment_of(config, s.name);
      const Port* port = by_name.count(s.name) ? by_name[s.name] : nullptr;
      json queues = json::array();
      for (size_t q = 0; q < s.rx_queues.size(); ++q) {
        const QueueCounters& qc = s.rx_queues[q];
        queues.push_back({{"queue", q},
                          {"packets", qc.packets},
                          {"bytes", qc.bytes},
                          {"polls", qc.polls},
                          {"empty_polls", qc.empty_polls}});
      }
      json peer = nullptr;  // the backend's session with its peer (vhost-user guest), when it has one
      if (port != nullptr) {
        const PeerStatus ps = port->peer_status();
        if (ps.present) {
          json pq = json::array();
          for (size_t q = 0; q < ps.queues.size(); ++q) {
            const PeerQueue& x = ps.queues[q];
            pq.push_back({{"queue_pair", q},
                          {"rx_enabled", x.rx_enabled},
                          {"tx_enabled", x.tx_enabled},
                          {"rx_packets", x.rx_packets},
                          {"tx_packets", x.tx_packets},
                          {"tx_dropped", x.tx_dropped}});
          }
          peer = {{"connected", ps.connected},
                  {"features", fmt::format("0x{:x}", ps.features)},
                  {"feature_names", ps.feature_names},
                  {"connects", ps.connects},
                  {"disconnects", ps.disconnects},
                  {"queues", std::move(pq)}};
          json extra = json::object();
          for (const auto& [k, v] : ps.counters) extra[k] = v;
          peer["counters"] = std::move(extra);
          if (!ps.state.empty()) peer["state"] = ps.state;
        }
      }
      ports.push_back({{"name", s.name},
                       {"role", port_role_name(s.role)},
                       {"driver", s.driver},
                       {"devargs", a != nullptr ? a->devargs : ""},
                       {"device", port != nullptr ? port->device_name() : ""},
                       {"kind", s.kind},
                       {"port_id", port != nullptr && port->port_id() != Port::kNoEthdev ? json(port->port_id())
                                                                                           : json(nullptr)},
                       {"link_up", s.link_up},
                       {"rx_packets", c.rx_packets},
                       {"rx_bytes", c.rx_bytes},
                       {"tx_packets", c.tx_packets},
                       {"tx_bytes", c.tx_bytes},
                       {"tx_dropped", c.tx_dropped},
                       {"dropped_total", c.dropped_total()},
                       {"dropped", drops_json(c)},
                       {"rx_queues", std::move(queues)},
                       // What the device (or the host side of a tap representor) counted below the switch:
                       // loss before a worker saw the frame. null when the backend cannot tell.
                       {"device_counters", s.device.valid ? json{{"ipackets", s.device.ipackets},
                                                                 {"opackets", s.device.opackets},
                                                                 {"imissed", s.device.imissed},
                                                                 {"ierrors", s.device.ierrors},
                                                                 {"oerrors", s.device.oerrors},
                                                                 {"rx_nombuf", s.device.rx_nombuf},
                                                                 // an uplink's XDP program: frames it sorted
                                                                 {"xdp_to_switch", s.device.xdp_uplink
                                                                      ? json(s.device.xdp_to_switch) : json(nullptr)},
                                                                 {"xdp_to_host", s.device.xdp_uplink
                                                                      ? json(s.device.xdp_to_host) : json(nullptr)}}
                                                          : json(nullptr)},
                       {"peer", std::move(peer)}});
    }
    out["ports"] = std::move(ports);
    // The packet pool: what is held anywhere (queues, rings, workers' bursts) right now. At rest it returns to
    // its value before traffic; a backend that kept frames of a vanished peer would show here.
    const MempoolReport pool = ctx.sw.mempool_report();
    out["mbufs"] = {{"size", pool.size}, {"in_use", pool.in_use}};
  } else if (what == "vports" || what == "representors") {
    const std::vector<VportStats> stats = ctx.sw.vport_stats();
    json list = json::array();
    for (const auto& v : config.vports) {
      const VportStats* s = nullptr;
      for (const auto& x : stats) {
        if (x.name == v.name) s = &x;
      }
      json drops = json::object();
      uint64_t drops_total = 0;
      if (s != nullptr) {
        for (const auto& [reason, n] : s->drops) {
          drops[reason] = n;
          drops_total += n;
        }
      }
      if (what == "representors") {
        list.push_back({{"vport", v.name},
                        {"representor", s != nullptr ? s->representor : ""},
                        {"kind", config.representors.kind == cfg::RepresentorKind::kTap ? "tap" : "none"},
                        {"active", s != nullptr ? s->active : v.state == cfg::VportState::kActive}});
        continue;
      }
      list.push_back({{"name", v.name},
                      {"flavour", v.flavour == cfg::Flavour::kVf ? "vf" : "sf"},
                      {"id", v.id},
                      {"devargs", v.attach.devargs},
                      {"hw_addr", v.hw_addr.value_or("")},
                      {"ipv4", v.ipv4},
                      {"ipv6", v.ipv6},
                      {"vlan", v.vlan ? json(*v.vlan) : json(nullptr)},
                      {"state", v.state == cfg::VportState::kActive ? "active" : "inactive"},
                      {"spoofchk", v.spoofchk},
                      {"trust", v.trust},
                      {"roce", v.roce},
                      {"roce_strict", v.roce_strict},
                      {"smc", v.smc == cfg::SmcPolicy::kAllow ? "allow" : "deny"},
                      {"representor", s != nullptr ? s->representor : ""},
                      {"active", s != nullptr ? s->active : v.state == cfg::VportState::kActive},
                      {"rx_packets", s != nullptr ? s->rx_packets : 0},
                      {"tx_packets", s != nullptr ? s->tx_packets : 0},
                      {"drops_total", drops_total},
                      {"drops", std::move(drops)}});
    }
    out[what] = std::move(list);
  } else if (what == "tables") {
    struct Agg {
      size_t rules = 0;
      uint64_t packets = 0;
      uint64_t bytes = 0;
    };
    std::map<unsigned, Agg> agg;
    for (const RuleStats& r : ctx.sw.rule_stats()) {
      Agg& a = agg[r.table];
      ++a.rules;
      a.packets += r.packets;
      a.bytes += r.bytes;
    }
    std::map<unsigned, const cfg::TableConfig*> declared;
    for (const auto& t : config.tables) declared[t.id] = &t;
    for (const auto& [id, t] : declared) agg.try_emplace(id);
    json tables = json::array();
    for (const auto& [id, a] : agg) {
      const cfg::TableConfig* t = declared.count(id) ? declared[id] : nullptr;
      tables.push_back({{"id", id},
                        {"name", t != nullptr ? t->name : ""},
                        {"declared", t != nullptr},
                        {"configured_rules", t != nullptr ? t->rules.size() : 0},
                        {"rules", a.rules},
                        {"packets", a.packets},
                        {"bytes", a.bytes},
                        {"miss", t != nullptr && !t->miss.empty() ? action_text(t->miss) : "to_representor"}});
    }
    const ClassifierStats cs = ctx.sw.classifier_stats();
    out["tables"] = std::move(tables);
    out["classifier"] = {{"version", cs.version},
                         {"rules", cs.rules},
                         {"tables", cs.tables},
                         {"subtables", cs.subtables},
                         {"snapshot_bytes", cs.snapshot_bytes},
                         {"index_bytes", cs.index_bytes},
                         {"published", cs.published},
                         {"freed", cs.freed},
                         {"pending_reclaim", cs.pending_reclaim}};
  } else if (what == "rules") {
    const json* table = api_param(params, "table");
    if (table != nullptr && !table->is_number_unsigned()) {
      throw ApiError{"bad_request", "params.table must be a table id (0..254)"};
    }
    const uint64_t offset = api_param_uint(params, "offset", 0);
    const uint64_t limit = api_param_uint(params, "limit", 0);  // 0: all
    json rules = json::array();
    uint64_t matched = 0;
    const auto xdp = ctx.sw.xdp_rule_report();  // offload tier: where a rule runs besides the worker
    for (const RuleStats& r : ctx.sw.rule_stats()) {
      if (table != nullptr && r.table != table->get<uint64_t>()) continue;
      const uint64_t idx = matched++;
      if (idx < offset || (limit != 0 && idx >= offset + limit)) continue;
      rules.push_back({{"id", r.id},
                       {"table", r.table},
                       {"priority", r.priority},
                       {"where", r.where},
                       {"match", r.match},
                       {"actions", r.actions},
                       {"packets", r.packets},
                       {"bytes", r.bytes}});
      const auto x = xdp.find(r.id);
      const bool in_xdp = x != xdp.end() && !x->second.ports.empty();
      rules.back()["runs"] = in_xdp ? "xdp" : "software";  // the worker always has the rule too
      rules.back()["xdp_ports"] = in_xdp ? json(x->second.ports) : json::array();
      rules.back()["xdp_drops"] = x != xdp.end() ? x->second.xdp_drops : 0;
      rules.back()["xdp_steered"] = x != xdp.end() ? x->second.xdp_steered : 0;  // steer rules: redirected in XDP
      if (!in_xdp && x != xdp.end() && !x->second.refused.empty()) rules.back()["xdp_refused"] = x->second.refused;
    }
    out["rules"] = std::move(rules);
    out["total"] = matched;
  } else if (what == "smc") {
    out = smc_json(ctx.sw.smc_report());
    if (const IsmService* ism = ism_service()) out["ism"] = ism->report();  // SMC-D endpoints and DMBs
  } else {
    throw ApiError{"bad_request",
                   fmt::format("show: unknown \"{}\"; one of ports, vports, tables, rules, representors, smc", what)};
  }
  return out;
}

json run_stats(ApiContext& ctx, const ApiCall& call) {
  const json& params = call.params;
  const bool with_rules = api_param_bool(params, "rules", false);
  json ports = json::array();
  uint64_t rx = 0, tx = 0, drops = 0;
  for (const PortStats& s : ctx.sw.port_stats()) {
    const PortCounters& c = s.counters;
    rx += c.rx_packets;
    tx += c.tx_packets;
    drops += c.dropped_total() + c.tx_dropped;
    ports.push_back({{"name", s.name},
                     {"rx_packets", c.rx_packets},
                     {"rx_bytes", c.rx_bytes},
                     {"tx_packets", c.tx_packets},
                     {"tx_bytes", c.tx_bytes},
                     {"tx_dropped", c.tx_dropped},
                     {"dropped", c.dropped_total()}});
  }
  json out = {{"time", std::chrono::duration<double>(Clock::now().time_since_epoch()).count()},
              {"ports", std::move(ports)},
              {"totals", {{"rx_packets", rx}, {"tx_packets", tx}, {"dropped", drops}}}};
  // Cycle accounting per worker (counters since start; a client differences two samples).
  json workers = json::array();
  for (const WorkerCycleStats& w : ctx.sw.worker_cycles()) {
    workers.push_back({{"index", w.index},
                       {"lcore", w.lcore},
                       {"busy_cycles", w.cycles.busy_cycles},
                       {"idle_cycles", w.cycles.idle_cycles},
                       {"packets", w.cycles.packets},
                       {"busy_loops", w.cycles.busy_loops}});
  }
  out["workers"] = std::move(workers);
  out["tsc_hz"] = rte_get_tsc_hz();
  if (with_rules) {
    json rules = json::array();
    for (const RuleStats& r : ctx.sw.rule_stats()) {
      if (r.packets == 0 && r.bytes == 0) continue;
      rules.push_back({{"id", r.id}, {"where", r.where}, {"packets", r.packets}, {"bytes", r.bytes}});
    }
    out["rules"] = std::move(rules);
  }
  return out;
}

// trace's params.hex: a frame of 14..9000 bytes, its text at most 4 characters per byte.
constexpr size_t kMinTraceFrame = 14;
constexpr size_t kMaxTraceFrame = 9000;
constexpr size_t kMaxTraceHexChars = 4 * kMaxTraceFrame;

json run_trace(ApiContext& ctx, const ApiCall& call) {
  const json& params = call.params;
  TraceResult tr;
  const json* hex_param = api_param(params, "hex");
  if (hex_param != nullptr && !hex_param->is_string()) throw ApiError{"bad_request", "params.hex must be a string"};
  const std::string_view hex = hex_param != nullptr ? hex_param->get_ref<const std::string&>() : std::string_view();
  if (!hex.empty()) {
    // The size is checked on the text, before anything is converted: at most kMaxTraceFrame bytes, written
    // with at most 3 separators each ("aa:bb", "aa bb", one per line...).
    if (hex.size() > kMaxTraceHexChars) {
      throw ApiError{"too_large", fmt::format("trace: params.hex has {} characters; a frame has at most {} bytes "
                                              "({} characters with separators)",
                                              hex.size(), kMaxTraceFrame, kMaxTraceHexChars)};
    }
    const std::string in_port = api_param_string(params, "in_port", true);
    const int port = ctx.sw.port_index(in_port);
    if (port < 0) throw ApiError{"not_found", fmt::format("trace: no port named {}", quoted_text(in_port))};
    std::vector<uint8_t> bytes;
    std::string digits;
    for (char ch : hex) {
      if (std::isxdigit(static_cast<unsigned char>(ch))) digits += ch;
      else if (ch != ' ' && ch != ':' && ch != '\n' && ch != '\t') {
        throw ApiError{"bad_request",
                       fmt::format("trace: params.hex: {} is not a hex digit", quoted_text(std::string_view(&ch, 1)))};
      }
    }
    if (digits.size() % 2 != 0) throw ApiError{"bad_request", "trace: params.hex has an odd number of digits"};
    if (digits.size() < 2 * kMinTraceFrame || digits.size() > 2 * kMaxTraceFrame) {
      throw ApiError{"bad_request", fmt::format("trace: a frame has {}..{} bytes, got {}", kMinTraceFrame,
                                                kMaxTraceFrame, digits.size() / 2)};
    }
    for (size_t i = 0; i < digits.size(); i += 2) {
      bytes.push_back(static_cast<uint8_t>(std::stoi(digits.substr(i, 2), nullptr, 16)));
    }
    tr = ctx.sw.trace(static_cast<uint16_t>(port), bytes.data(), bytes.size());
  } else {
    const std::string packet = api_param_string(params, "packet", true);
    std::string error;
    if (!ctx.sw.trace(packet, tr, error)) throw ApiError{"bad_request", fmt::format("trace: {}", error)};
  }
  return {{"packet", tr.packet}, {"lines", tr.lines}, {"verdict", tr.verdict}};
}

}  // namespace

void add_show_methods(ApiMethodTable& table) {
  table.push_back({"ping", ApiAccess::kRead, false, nullptr, run_ping});
  table.push_back({"show", ApiAccess::kRead, false, nullptr, run_show});
  table.push_back({"stats", ApiAccess::kRead, false, nullptr, run_stats});
  table.push_back({"trace", ApiAccess::kRead, false, nullptr, run_trace});
}

}  // namespace esw::dp
