#include "dataplane/daemon/ism_service.h"

#include <fmt/format.h>
#include <rte_telemetry.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <utility>

#include "dataplane/daemon/switch.h"
#include "dataplane/error.h"

namespace esw::dp {
namespace {

IsmService* g_service = nullptr;

// The telemetry snapshot: flat name -> value pairs, replaced whole by the loop thread.
std::mutex g_snap_mu;
std::vector<std::pair<std::string, uint64_t>> g_snap;  // under g_snap_mu
bool g_snap_running = false;                            // under g_snap_mu

int cmd_smc_ism(const char*, const char*, rte_tel_data* d) {
  rte_tel_data_start_dict(d);
  std::lock_guard lock(g_snap_mu);
  rte_tel_data_add_dict_u64(d, "running", g_snap_running ? 1 : 0);
  for (const auto& [k, v] : g_snap) rte_tel_data_add_dict_u64(d, k.c_str(), v);
  return 0;
}

void register_telemetry_once() {
  static bool done = false;
  if (done) return;
  done = true;
  rte_telemetry_register_cmd("/eswitch/smc_ism", cmd_smc_ism,
                             "eswitch emulated ISM (SMC-D between vports): endpoints, clients, DMBs, bytes, refusals");
}

std::string hex64(uint64_t v) { return fmt::format("{:016x}", v); }

}  // namespace

IsmService* ism_service() { return g_service; }
void set_ism_service(IsmService* s) { g_service = s; }

IsmService::IsmService(EventLoop& loop, uint16_t chid) : loop_(loop), svc_(chid), server_(svc_) {
  if (!svc_.chid_ok()) {
    throw Error(fmt::format("ism service: CHID 0x{:04x} is outside the emulated-ISM range 0x{:04X}-0x{:04X}", chid,
                            smc::ism::kChidMin, smc::ism::kChidMax));
  }
  if (server_.fd() < 0) throw Error("ism service: epoll_create1 failed for the endpoints");
  fd_id_ = loop_.add_fd(server_.fd(), EventLoop::kRead, [this](uint32_t) { server_.service(); },
                        "ism service: per-vport SMC-D endpoints");
  timer_id_ = loop_.add_timer(std::chrono::milliseconds(500), [this] { publish(); }, "ism service: telemetry");
  register_telemetry_once();
  publish();
}

void IsmService::attach_switch(Switch& sw) {
  // A DMB is bound only to a TCP flow the switch forwards both ways between its owner and writer vports, with the
  // addresses their bindings allow (spoofchk drops anything else in the trace).
  svc_.set_flow_validator([this, &sw](uint32_t owner, uint32_t writer, const smc::ism::Flow& f) -> const char* {
    if (writer == smc::ism::kNoVport) return "ism: bind_flow: the DMB's writer vport is gone";
    const auto o = static_cast<uint16_t>(owner), w = static_cast<uint16_t>(writer);
    if (!flow_passes(sw, o, w, f.local_ip, f.remote_ip, f.local_port, f.remote_port) ||
        !flow_passes(sw, w, o, f.remote_ip, f.local_ip, f.remote_port, f.local_port))
      return "ism: bind_flow: the switch does not forward this TCP flow both ways between the two vports";
    return nullptr;
  });
}

IsmService::~IsmService() {
  loop_.remove(fd_id_);
  loop_.remove(timer_id_);
  for (const auto& [port, ep] : endpoints_) server_.remove_endpoint(port);
  endpoints_.clear();
  std::lock_guard lock(g_snap_mu);
  g_snap.clear();
  g_snap_running = false;
}

std::vector<std::string> IsmService::sync(Switch& sw) {
  attach_switch(sw);
  std::map<uint16_t, Endpoint> want;
  for (const cfg::VportConfig& v : sw.config().vports) {
    if (!v.smc_ism || v.smc != cfg::SmcPolicy::kAllow) continue;
    const int idx = sw.port_index(v.name);
    if (idx < 0) continue;  // not running (an apply that failed to open it)
    want[static_cast<uint16_t>(idx)] = Endpoint{v.name, static_cast<uint16_t>(idx), *v.smc_ism};
  }
  // Gone or changed first (a path may move from one vport to another within one apply).
  for (auto it = endpoints_.begin(); it != endpoints_.end();) {
    auto w = want.find(it->first);
    if (w != want.end() && w->second.vport == it->second.vport && w->second.cfg == it->second.cfg) {
      ++it;
      continue;
    }
    server_.remove_endpoint(it->first);
    it = endpoints_.erase(it);
  }
  std::vector<std::string> problems;
  for (auto& [port, ep] : want) {
    if (endpoints_.contains(port)) continue;
    smc::ism::EndpointConfig ec;
    ec.vport = port;
    ec.path = ep.cfg.socket;
    ec.uid = ep.cfg.owner < 0 ? static_cast<uid_t>(-1) : static_cast<uid_t>(ep.cfg.owner);
    ec.gid = ep.cfg.group < 0 ? static_cast<gid_t>(-1) : static_cast<gid_t>(ep.cfg.group);
    ec.mode = static_cast<mode_t>(ep.cfg.mode);
    ec.limits = smc::ism::Limits{ep.cfg.max_dmbs, ep.cfg.max_bytes};
    std::string err;
    if (!server_.add_endpoint(ec, &err)) {
      problems.push_back(fmt::format("vport {}: smc.ism: {}", ep.vport, err));
      continue;
    }
    endpoints_.emplace(port, std::move(ep));
  }
  check_flows(sw);
  publish();
  return problems;
}

// Would the switch forward a TCP segment of `f` from `from` to `to` (both directions are checked by the caller)?
bool IsmService::flow_passes(Switch& sw, uint16_t from, uint16_t to, uint32_t src, uint32_t dst, uint16_t sport,
                             uint16_t dport) {
  const auto& vps = sw.config().vports;
  auto vp = [&](uint16_t port) -> const cfg::VportConfig* {
    const auto& slots = sw.ports();
    if (port >= slots.size() || !slots[port]) return nullptr;
    for (const auto& v : vps)
      if (v.name == slots[port]->name()) return &v;
    return nullptr;
  };
  const cfg::VportConfig* a = vp(from);
  const cfg::VportConfig* b = vp(to);
  if (!a || !b) return false;
  auto ip = [](uint32_t x) { return fmt::format("{}.{}.{}.{}", x >> 24, (x >> 16) & 255, (x >> 8) & 255, x & 255); };
  std::string d = fmt::format("in_port={}", a->name);
  if (a->hw_addr) d += ",eth_src=" + *a->hw_addr;
  if (b->hw_addr) d += ",eth_dst=" + *b->hw_addr;
  d += fmt::format(",ipv4,ipv4_src={},ipv4_dst={},tcp,tcp_src={},tcp_dst={}", ip(src), ip(dst), sport, dport);
  TraceResult tr;
  std::string err;
  // A flow the trace cannot even describe is not known to pass.
  if (!sw.trace(d, tr, err)) return false;
  return !tr.record.dropped &&
         std::find(tr.record.outputs.begin(), tr.record.outputs.end(), to) != tr.record.outputs.end();
}

void IsmService::check_flows(Switch& sw) {
  for (const smc::ism::DmbInfo& d : svc_.dmbs()) {
    if (!d.has_flow || d.writer_vport == smc::ism::kNoVport) continue;
    const uint16_t owner = static_cast<uint16_t>(d.owner_vport), writer = static_cast<uint16_t>(d.writer_vport);
    const smc::ism::Flow& f = d.flow;
    const bool ok = flow_passes(sw, owner, writer, f.local_ip, f.remote_ip, f.local_port, f.remote_port) &&
                    flow_passes(sw, writer, owner, f.remote_ip, f.local_ip, f.remote_port, f.local_port);
    if (ok) continue;
    svc_.revoke_dmb(d.token);
    flows_torn_down_++;
  }
}

nlohmann::json IsmService::report() const {
  using nlohmann::json;
  std::map<uint32_t, size_t> clients;
  for (const auto& [id, c] : server_.clients()) clients[c.vport]++;
  auto name_of = [&](uint32_t port) -> json {
    auto it = endpoints_.find(static_cast<uint16_t>(port));
    if (port == smc::ism::kNoVport) return "(removed)";
    return it == endpoints_.end() ? json(fmt::format("port {}", port)) : json(it->second.vport);
  };
  json eps = json::array();
  for (const auto& [port, ep] : endpoints_) {
    const smc::ism::Gid* g = svc_.gid(port);
    eps.push_back({{"vport", ep.vport},
                   {"port", port},
                   {"socket", ep.cfg.socket},
                   {"mode", fmt::format("{:04o}", ep.cfg.mode)},
                   {"gid", g ? hex64(g->gid) + hex64(g->gid_ext) : ""},
                   {"clients", clients[port]},
                   {"dmbs", svc_.dmb_count(port)},
                   {"bytes", svc_.dmb_bytes(port)},
                   {"max_dmbs", ep.cfg.max_dmbs},
                   {"max_bytes", ep.cfg.max_bytes}});
  }
  json conns = json::array();
  for (const smc::ism::DmbInfo& d : svc_.dmbs()) {
    conns.push_back({{"owner", name_of(d.owner_vport)},
                     {"writer", name_of(d.writer_vport)},
                     {"token", hex64(d.token)},
                     {"size", d.size},
                     {"writers_attached", d.writers},
                     {"bytes", d.produced},
                     {"aborted", d.aborted},
                     {"flow", d.has_flow ? json(fmt::format("{}.{}.{}.{}:{} -> {}.{}.{}.{}:{}", d.flow.local_ip >> 24,
                                                            (d.flow.local_ip >> 16) & 255, (d.flow.local_ip >> 8) & 255,
                                                            d.flow.local_ip & 255, d.flow.local_port,
                                                            d.flow.remote_ip >> 24, (d.flow.remote_ip >> 16) & 255,
                                                            (d.flow.remote_ip >> 8) & 255, d.flow.remote_ip & 255,
                                                            d.flow.remote_port))
                                          : json(nullptr)}});
  }
  const smc::ism::Counters& c = svc_.counters();
  const smc::ism::ServerCounters& s = server_.counters();
  return {{"chid", fmt::format("0x{:04X}", svc_.chid())},
          {"endpoints", std::move(eps)},
          {"dmbs", std::move(conns)},
          {"counters",
           {{"dmbs_registered", c.dmbs_registered}, {"dmbs_unregistered", c.dmbs_unregistered},
            {"dmbs_revoked", c.dmbs_revoked}, {"attaches", c.attaches}, {"attach_refused", c.attach_refused},
            {"signals", c.signals}, {"bytes_zeroed", c.bytes_zeroed}, {"clients_accepted", s.accepted},
            {"clients_refused", s.refused_clients}, {"clients_closed", s.closed}, {"requests", s.requests},
            {"bad_requests", s.bad_requests}, {"dropped_slow", s.dropped_slow},
            {"flows_torn_down", flows_torn_down_},
            // esw-smc-run: connect intents recorded / taken by the accepting server / refused (no listener)
            {"intents", s.intents}, {"intents_taken", s.intents_taken}, {"intents_refused", s.intents_refused}}}};
}

void IsmService::publish() {
  const smc::ism::Counters& c = svc_.counters();
  const smc::ism::ServerCounters& s = server_.counters();
  uint64_t dmb_bytes = 0, produced = 0;
  const std::vector<smc::ism::DmbInfo> dmbs = svc_.dmbs();
  for (const auto& d : dmbs) dmb_bytes += d.size, produced += d.produced;
  std::vector<std::pair<std::string, uint64_t>> snap = {
      {"chid", svc_.chid()},
      {"endpoints", endpoints_.size()},
      {"clients", server_.client_count()},
      {"dmbs", dmbs.size()},
      {"dmb_bytes", dmb_bytes},
      {"bytes_produced", produced},
      {"dmbs_registered", c.dmbs_registered},
      {"dmbs_unregistered", c.dmbs_unregistered},
      {"dmbs_revoked", c.dmbs_revoked},
      {"attaches", c.attaches},
      {"attach_refused", c.attach_refused},
      {"bytes_zeroed", c.bytes_zeroed},
      {"clients_accepted", s.accepted},
      {"clients_refused", s.refused_clients},
      {"bad_requests", s.bad_requests},
      {"flows_torn_down", flows_torn_down_},
  };
  std::lock_guard lock(g_snap_mu);
  g_snap = std::move(snap);
  g_snap_running = true;
}

}  // namespace esw::dp
