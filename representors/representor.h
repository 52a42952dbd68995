#pragma once
// Representors: the switch-side end of every vport's tunnel (mlx5 switchdev model). What a vport sends that no
// rule handles (a table miss, the default miss action `to_representor`) leaves on its representor; what the
// host sends on a representor reaches its vport untouched, without the tables (fastpath/pipeline.cc,
// PortMap::rep_peer); the representor's carrier follows its vport's state.
//
// Kinds (config `representors.kind`):
//  - tap: a Linux tap netdev rep-<vport> served as a plain file descriptor on the main lcore (tap.h). Costs no
//    ethdev, so the number of vports is not bounded by RTE_MAX_ETHPORTS.
//  - none: misses are dropped (counted as no_representor).
//  - the DPDK-representor flavour of a NIC with an embedded switch (`representor=vf[0-3]` devargs) is an
//    ethdev port of role representor: plan_representor() returns kind "ethdev" for it once the config can
//    name one (not built yet: no such NIC here).
//
// Threading: main lcore only (the fast path sees representors only as ports in the PortMap).

#include <optional>
#include <string>

#include "config/config.h"

namespace esw::rep {

// "rep-<vport>": the netdev name of a vport's tap representor.
std::string representor_name(const std::string& vport);

struct RepresentorPlan {
  std::string name;     // switch port name (= netdev name for tap)
  std::string kind;     // port backend kind (dataplane/ports/port.h)
  std::string devargs;  // what the backend opens
};

// What the representor of `vport` is under `config`, or nothing when vports have no representors.
std::optional<RepresentorPlan> plan_representor(const cfg::RepresentorConfig& config, const cfg::VportConfig& vport);

// Registers the representor port kinds ("tap") with the port layer. Idempotent.
void register_port_kinds();

}  // namespace esw::rep
