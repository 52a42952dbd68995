#pragma once
// The declarative configuration model (apiVersion: eswitch/v1) and its loader.
//
// The loader turns YAML into this plain model and rejects anything it does not understand, naming the YAML
// path and line:column. It reports every error it finds, not just the first. The model is plain data: the
// dataplane compiles it; the control process diffs two of them.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace esw::cfg {

inline constexpr const char* kApiVersion = "eswitch/v1";

// One problem in a config, located in the source text. Lines and columns are 1-based; 0 means unknown.
struct Error {
  std::string path;     // YAML path, e.g. "vports[2].attach.devargs"
  int line = 0;
  int column = 0;
  std::string message;  // what is wrong and what would be valid

  // "vports[2].attach.devargs: <message> (line 14, col 11)". An empty path (a problem with the source as a
  // whole: unreadable file, YAML syntax) drops the "<path>: " prefix; an unknown line drops the suffix.
  std::string to_string() const;
};

enum class HugepageMode { kAuto, kOn, kOff };

struct DataplaneConfig {
  int main_core = 0;                 // EAL main lcore: management, API, representor I/O
  std::vector<int> worker_cores;     // poll-mode workers; empty = run the worker on the main core's sibling
  uint32_t memory_mb = 512;          // EAL -m
  HugepageMode hugepages = HugepageMode::kAuto;  // auto: --no-huge when no hugetlbfs is mounted
  uint32_t mbufs = 16384;            // mbufs in the packet pool
  uint16_t mbuf_cache = 256;         // per-lcore mempool cache
  uint16_t rx_queue_size = 1024;
  uint16_t tx_queue_size = 1024;
  uint16_t burst = 32;               // rx/tx burst size
  uint32_t idle_sleep_us = 0;        // max sleep of an idle worker; 0 = never sleep (pure busy poll)
  std::string file_prefix;           // EAL --file-prefix; empty = "esw-<pid>"
  std::vector<std::string> eal_extra;  // extra EAL arguments, passed through unchanged
};

// How a port reaches DPDK: an ethdev from vdev devargs ("net_tap0,iface=eswup0") or a PCI address.
struct Attachment {
  std::string devargs;  // vdev devargs or PCI address with optional ",key=val" args
  uint16_t rx_queues = 1;
  uint16_t tx_queues = 1;
};

struct UplinkConfig {
  std::string name;
  Attachment attach;
  int line = 0;  // where the entry starts, for later cross-checks and messages
};

struct VportConfig {
  std::string name;
  Attachment attach;
  std::optional<std::string> hw_addr;  // "02:00:00:00:00:01"; used by the L2 pipeline to reach this vport
  int line = 0;
};

// Foundation pipeline (replaced by tables): static forwarding with no learning.
//  - kL2: destination MAC of a vport -> that vport; broadcast/multicast -> every other port; unknown unicast
//    -> the uplinks (or dropped when there are none).
//  - kCrossConnect: each `from` port sends everything to its `to` port (testpmd-style io forwarding).
enum class PipelineMode { kL2, kCrossConnect };

struct CrossConnect {
  std::string from;
  std::string to;
};

struct PipelineConfig {
  PipelineMode mode = PipelineMode::kL2;
  std::vector<CrossConnect> cross_connect;
};

struct Config {
  std::string api_version = kApiVersion;
  DataplaneConfig dataplane;
  std::vector<UplinkConfig> uplinks;
  std::vector<VportConfig> vports;
  PipelineConfig pipeline;
};

struct LoadResult {
  std::optional<Config> config;  // set iff errors is empty
  std::vector<Error> errors;     // every problem found, in file order
};

// `source_name` is only used in messages.
LoadResult load_config_string(const std::string& yaml, const std::string& source_name = "<string>");
LoadResult load_config_file(const std::string& path);

// The default config embedded in the binary (config/default.yaml).
const char* default_config_yaml();

// The spelling of each enum value in YAML ("auto", "l2", ...). The loader accepts exactly these.
const char* to_string(HugepageMode mode);
const char* to_string(PipelineMode mode);

}  // namespace esw::cfg
