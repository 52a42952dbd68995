#pragma once
// DPDK's log, captured: every message goes through a cookie stream that keeps the recent warnings and errors, so
// a failed DPDK call can be reported as one line naming the driver's own cause ("port vm1 (net_af_packet0,...):
// cannot open device: net_af_packet0: ioctl failed (SIOCGIFINDEX): No such device"). Only critical messages are
// echoed to stderr; the rest is folded into our errors.
//
// Threading: any thread may log (DPDK's own threads too); the capture is mutex-protected - it is never on the
// fast path, which does not log.

#include <string>

namespace esw::dp {

// Installs the capture (idempotent). Before rte_eal_init, so EAL's own errors are captured too.
void install_dpdk_log_capture();
// The most telling recent DPDK log line at WARNING or worse ("" when none): a driver's line over EAL's generic ones.
std::string last_dpdk_error();
// Forgets remembered lines: call before an operation whose failure you want to explain.
void clear_dpdk_errors();

}  // namespace esw::dp
