#pragma once
// Builds a vport's Binding (the fast path's anti-spoofing data, dataplane/fastpath/binding.h) from its config.
// Control path only; no DPDK.

#include <string>

#include "config/config.h"
#include "dataplane/fastpath/binding.h"

namespace esw::dp {

// false + error (naming the vport and the field) on a malformed address or a spoofchk vport without hw_addr.
bool make_binding(const cfg::VportConfig& v, Binding& out, std::string& error);

}  // namespace esw::dp
