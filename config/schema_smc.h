#pragma once
// A vport's `smc` key (internal to config/): the policy alone (`smc: allow|deny`) or a mapping with the policy and
// the vport's emulated-ISM endpoint (`smc: {policy: allow, ism: {socket: ..., owner: ..., group: ..., mode: ...,
// max_dmbs: N, max_bytes: N}}`), and the cross-vport checks of the endpoints.

#include "config/config.h"
#include "config/yaml_reader.h"

namespace esw::cfg::detail {

// Pass 1 (schema.cc's read_vport): fills out.smc and out.smc_ism.
bool read_vport_smc(const Value& v, VportConfig& out);

// Pass 2 (checks.cc's check_model): endpoint socket paths unique and not the API socket or a vhost-user socket;
// an endpoint needs policy allow.
void check_smc_ism(const Config& config, Diagnostics& diag);

}  // namespace esw::cfg::detail
