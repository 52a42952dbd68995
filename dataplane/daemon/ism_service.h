#pragma once
// eswitchd's emulated ISM service (SMC-D between local vports, issue 12): the ISM core and its per-vport unix
// socket endpoints (dataplane/smc/ism_server.h) on the main lcore's event loop, following the running config.
//
//  - A vport with `smc: {policy: allow, ism: {socket, owner, group, mode, max_dmbs, max_bytes}}` gets an endpoint
//    at that path, owner and mode, with those DMB limits. Its ISM vport id is its switch port index (the index
//    the SMC session table records for a connection's ends).
//  - sync() after every apply: an endpoint whose vport is gone, changed its ISM settings or got another port
//    index is removed (its clients disconnected, its grants revoked, its DMBs zeroed and their peers told
//    through the CDC abort flag) and, if still wanted, created again.
//  - sync() also runs after runtime rule changes; every DMB its owner bound to a TCP flow (kBindFlow) is checked
//    with Switch::trace both ways, and revoked when the switch would now drop that flow. A bind is refused when
//    the switch would not forward that flow both ways between the DMB's two vports (their own addresses).
//  - report() is `show smc`'s "ism" part; the /eswitch/smc_ism telemetry command answers from a snapshot this
//    class publishes every 500 ms and after each sync (the telemetry thread never touches the service).
//
// Threading: the loop thread only (the telemetry callback reads the snapshot under its own mutex).

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "dataplane/daemon/event_loop.h"
#include "dataplane/smc/ism.h"
#include "dataplane/smc/ism_server.h"

namespace esw::dp {

class Switch;

inline constexpr uint16_t kDefaultIsmChid = 0xFF00;

class IsmService {
 public:
  // Throws esw::dp::Error for a CHID outside 0xFF00-0xFFFE or when the endpoints' epoll fd cannot be made.
  IsmService(EventLoop& loop, uint16_t chid);
  ~IsmService();  // removes every endpoint (sockets unlinked, DMBs zeroed) and the loop handlers
  IsmService(const IsmService&) = delete;
  IsmService& operator=(const IsmService&) = delete;

  // Makes the endpoints match sw.config(). Returns one message per endpoint that could not be created (named by
  // vport and path); the other endpoints are up.
  std::vector<std::string> sync(Switch& sw);

  // {chid, endpoints: [{vport, port, socket, mode, clients, dmbs, bytes, max_dmbs, max_bytes}],
  //  connections: [{owner, writer, token (hex), size, writers, produced, aborted}], counters: {...}}
  nlohmann::json report() const;

  size_t endpoint_count() const { return endpoints_.size(); }

 private:
  struct Endpoint {
    std::string vport;
    uint16_t port = 0;
    cfg::SmcIsmConfig cfg;
  };
  void publish();
  // Installs the bind-time flow check (Service::set_flow_validator) against `sw`.
  void attach_switch(Switch& sw);
  // DMBs bound to a TCP flow (bind_flow) that the switch would now drop, either way, are revoked (both tenants
  // see -ECONNRESET). Uses Switch::trace (the installed tables, bindings and egress filters).
  void check_flows(Switch& sw);
  bool flow_passes(Switch& sw, uint16_t from, uint16_t to, uint32_t src, uint32_t dst, uint16_t sport,
                   uint16_t dport);

  EventLoop& loop_;
  smc::ism::Service svc_;
  smc::ism::Server server_;
  std::map<uint16_t, Endpoint> endpoints_;  // by port index (= ISM vport id)
  EventLoop::Id fd_id_ = 0, timer_id_ = 0;
  uint64_t flows_torn_down_ = 0;
};

// The running service, for `show smc` and telemetry (nullptr when eswitchd runs none). Loop thread.
IsmService* ism_service();
void set_ism_service(IsmService* s);

}  // namespace esw::dp
