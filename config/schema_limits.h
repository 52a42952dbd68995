#pragma once
// The config schema's limits, in one place for the loader's parts (yaml_reader.h, formats.cc, schema*.cc,
// rule_text.cc, checks.cc). Internal to config/.

#include <cstddef>
#include <cstdint>

namespace esw::cfg::detail {

inline constexpr int kMaxCore = 1023;               // RTE_MAX_LCORE - 1 of the stock DPDK build
inline constexpr int64_t kMaxMempoolCache = 512;    // RTE_MEMPOOL_CACHE_MAX_SIZE
inline constexpr int64_t kMaxQueuesPerPort = 1024;  // RTE_MAX_QUEUES_PER_PORT
inline constexpr int64_t kMaxIdleSleepUs = 1'000'000;
inline constexpr size_t kMaxPortNameLen = 15;   // IFNAMSIZ - 1: uplink names become netdev names
inline constexpr size_t kMaxVportNameLen = 11;  // a vport's representor netdev is "rep-<name>", at most 15 characters
inline constexpr size_t kMaxIdentifierLen = 63;  // meter, table and rule names
inline constexpr size_t kMaxFilePrefixLen = 64;
inline constexpr size_t kMaxUnixPathLen = 107;  // sizeof(sockaddr_un::sun_path) - 1
inline constexpr uint16_t kMaxVhostQueues = 8;  // vhost-user queue pairs per vport (vdpa/vhost_port.h kMaxQueues)
// vhost_user.mtu: virtio-net's MTU range (VIRTIO_MIN_MTU 68 .. VIRTIO_MAX_MTU 65535, DPDK lib/vhost).
inline constexpr uint16_t kMinVhostMtu = 68;
inline constexpr uint16_t kMaxVhostMtu = 65535;
inline constexpr size_t kMaxGroupNameLen = 32;  // what shadow-utils accepts
inline constexpr size_t kMaxPorts = 256;        // dataplane/flow_key.h kMaxPorts: uplinks + vports + representors
inline constexpr int64_t kMaxTableId = 254;     // 255 is the classifier's "no table"
inline constexpr int64_t kMaxPriority = 65535;
inline constexpr int64_t kMinBurstBytes = 1518;  // one full-size Ethernet frame: a smaller bucket never passes one
inline constexpr int64_t kMaxBurstBytes = 4294967295;
inline constexpr uint64_t kMinRateBps = 8;                   // meters count bytes: 1 byte/s
inline constexpr uint64_t kMaxRateBps = 10'000'000'000'000;  // 10T
inline constexpr size_t kMaxShownLen = 40;  // longer user text is cut in messages

}  // namespace esw::cfg::detail
