#pragma once
// The management API's protocol facts, shared by eswitchd's server (dataplane/daemon/api_server.h) and
// eswitchctl's client (control/api_client.h): one source, so the two ends cannot drift apart. Header-only, no
// DPDK, no JSON library. The framing and the methods are described in dataplane/daemon/api_server.h.

namespace esw::api {

// The "api" field every request and reply carries. A server refuses other versions with "unsupported_api".
inline constexpr int kApiVersion = 1;

// Where eswitchd listens unless dataplane.api_socket says otherwise, and where eswitchctl looks unless
// --socket, $ESWITCH_SOCKET or a config file says otherwise.
inline constexpr const char* kDefaultSocketPath = "/run/eswitch/eswitchd.sock";

}  // namespace esw::api
