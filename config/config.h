#pragma once
// The declarative configuration model (apiVersion: eswitch/v1) and its loader.
//
// The loader turns YAML into this plain model and rejects anything it does not understand, naming the YAML
// path and line:column. It reports every error it finds, not just the first. The model is plain data: the
// dataplane compiles it; the control process diffs two of them.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control/api_protocol.h"

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
  std::string file_prefix;           // EAL --file-prefix; empty = "eswitch" (one instance)
  std::vector<std::string> eal_extra;  // extra EAL arguments, passed through unchanged
  uint32_t max_rules = 262144;       // rule ids per switch (per-core counter arrays are sized by it)
  uint32_t flow_cache_entries = 8192;  // per worker
  uint32_t flow_cache_insert_inv_prob = 10;  // a live cache entry is replaced by 1 in N misses
  std::string api_socket = esw::api::kDefaultSocketPath;  // management API; "" = none
  std::string api_socket_group;     // group owning the socket (mode 0660); "" = the process's group
  // The management API's limits (dataplane/daemon/api_server.h ApiServerOptions, control/README.md "Limits").
  uint64_t api_max_request_bytes = uint64_t{64} << 20;  // a longer request line is refused ("too_large")
  uint32_t api_max_clients = 64;            // concurrent connections (the idle longest is evicted at the limit)
  uint32_t api_idle_timeout_ms = 60000;     // a connection without a request this long is closed
  uint32_t api_request_timeout_ms = 30000;  // a request not complete this long after its first byte is dropped

  // Every field, so a field added above is compared without anyone remembering to (reconcile: a dataplane
  // change needs a restart).
  bool operator==(const DataplaneConfig&) const = default;
};

// A vport served over vhost-user by rte_vhost directly (vdpa/vhost_port.h), not by an ethdev.
struct VhostUserAttachment {
  std::string socket;   // absolute path of the unix socket
  bool client = false;  // server: eswitchd listens; client: eswitchd connects (and reconnects)
  uint16_t queues = 1;  // queue pairs, 1..8
  std::string vdpa_device;  // non-empty: a hardware vDPA device (rte_vdpa name) serves the queues, not software
  uint16_t mtu = 0;  // 0: none. Else the largest L3 frame the guest may send (F_MTU; a larger front-end MTU is refused)
};

// eswitch's own XDP program on a net_af_xdp attachment (dataplane/xdp/, dataplane/ports/xdp_guard.h).
struct XdpAttachment {
  bool builtin = true;       // program: builtin (default when xdp is given) | none
  std::string mode = "auto"; // auto | native | generic
  // Uplinks only (dataplane/xdp/uplink.bpf.c): broadcast / multicast frames the vports' addresses do not claim
  // go to the switch (true) or to the host kernel (false, the default).
  bool broadcast_to_switch = false;
  bool multicast_to_switch = false;
  bool has_uplink_keys = false;  // broadcast or multicast was given (refused on a vport)
};

// How a port reaches DPDK: an ethdev from vdev devargs ("net_tap0,iface=eswup0") or a PCI address; a vport may
// instead be a vhost-user socket.
struct Attachment {
  std::string devargs;  // vdev devargs or PCI address with optional ",key=val" args
  uint16_t rx_queues = 1;
  uint16_t tx_queues = 1;
  std::optional<VhostUserAttachment> vhost_user;  // set: devargs is unused
  std::optional<XdpAttachment> xdp;  // net_af_xdp only; unset: the PMD's default program
  // Vports: rules pushed below the worker (dataplane/offload/xdp_tier.h): "off" (default), "auto" (what the
  // port's XDP program can drop), "required" (as auto, and an apply fails when a drop rule for the port cannot).
  std::string offload = "off";
};

struct UplinkConfig {
  std::string name;
  Attachment attach;
  int line = 0;  // where the entry starts, for later cross-checks and messages
};

// Where a value sits in the source, for errors found after loading (e.g. by the rule compiler).
struct Loc {
  int line = 0;
  int column = 0;
};

enum class Flavour { kVf, kSf };
enum class VportState { kActive, kInactive };
enum class SmcPolicy { kAllow, kDeny };

// Egress rate limit of a vport (what it may send into the switch), enforced with an srTCM meter.
struct RateLimit {
  uint64_t tx_max_bps = 0;      // bits per second; 0 = unlimited
  uint64_t tx_burst_bytes = 0;  // committed burst; 0 = tx_max_bps / 8 / 10 (100 ms worth), at least 2 MTUs
};

// The vport's endpoint of the emulated ISM service (SMC-D between local vports, dataplane/smc/ism_server.h):
// `smc: {policy: allow, ism: {socket: ..., owner: ..., group: ..., mode: ..., max_dmbs: N, max_bytes: N}}`.
struct SmcIsmConfig {
  std::string socket;           // absolute path of the unix socket (bind-mounted into the vport's tenant)
  int64_t owner = -1;           // uid of the socket file; -1: eswitchd's
  int64_t group = -1;           // gid; -1: eswitchd's
  uint32_t mode = 0600;         // permission bits of the socket file
  uint32_t max_dmbs = 64;       // DMBs the vport may own at once
  uint64_t max_bytes = 64ull << 20;  // bytes of DMBs the vport may own at once
  bool operator==(const SmcIsmConfig&) const = default;
};

// A VF/SF function on the switch (after devlink port functions). Its identity is what anti-spoofing enforces.
struct VportConfig {
  std::string name;                    // <= 11 characters: its representor netdev is "rep-<name>"
  Flavour flavour = Flavour::kVf;
  uint32_t id = 0;                     // VF/SF number, unique per flavour
  Attachment attach;
  std::optional<std::string> hw_addr;  // "02:00:00:00:00:01", lower case; required when spoofchk is on
  std::vector<std::string> ipv4;       // bound addresses or prefixes: "198.18.0.1", "198.18.1.0/24"
  std::vector<std::string> ipv6;       // bound addresses or prefixes: "2001:db8::1", "2001:db8:1::/64"
  std::optional<uint16_t> vlan;        // access VLAN (1..4094): frames from the vport must be untagged
  VportState state = VportState::kActive;
  bool spoofchk = true;
  bool trust = false;                  // trusted vports may send RAs and DHCP server replies
  bool roce = false;                   // RoCEv2 (UDP 4791) allowed
  bool roce_strict = false;            // RoCEv2 to other vports only for QPs/rkeys an SMC-R CLC exchange granted
  SmcPolicy smc = SmcPolicy::kAllow;   // deny: the SMC TCP option is removed from SYN/SYN-ACKs (both ends use TCP)
  std::optional<SmcIsmConfig> smc_ism; // set: eswitchd serves an ISM endpoint for this vport (needs smc: allow)
  bool dhcp_client = false;            // DHCP/DHCPv6 client discovery from unbound addresses allowed
  bool egress_multicast = true;        // deliver broadcast/multicast frames to this vport
  RateLimit rate;
  int line = 0;
  std::map<std::string, Loc> locs;     // field name ("ipv4[1]", "hw_addr", ...) -> where it was written
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

// One match item as written: `ipv4_dst: 198.18.0.0/24` -> {"ipv4_dst", "198.18.0.0/24"}; a keyword such as
// `tcp: true` -> {"tcp", ""}. Field names and values are checked by the rule compiler (dataplane/ruleset.h),
// which reports errors at `loc`.
struct MatchItem {
  std::string field;
  std::string value;
  Loc loc;
};

// One action as written: `count` -> {"count", ""}; `output: uplink0` -> {"output", "uplink0"};
// `set_field: {eth_dst: 02:..}` -> {"set_field", "eth_dst=02:.."} (one item per field).
struct ActionConfig {
  std::string name;
  std::string arg;
  Loc loc;
  int index = -1;  // which item of the YAML list it was written as (a set_field of n fields gives n actions with
                   // one index); -1 = not from YAML. See action_path().
};

struct RuleConfig {
  std::string name;  // optional; shown by show/trace
  uint32_t priority = 0;
  std::vector<MatchItem> match;
  std::vector<ActionConfig> actions;
  Loc loc;
};

struct TableConfig {
  uint32_t id = 0;  // 0..254
  std::string name;
  std::vector<ActionConfig> miss;  // empty: to_representor
  std::vector<RuleConfig> rules;
  Loc loc;
};

struct MeterConfig {
  std::string name;
  bool tr_tcm = false;  // type: srtcm | trtcm
  uint64_t cir_bps = 0;  // committed rate, bits/s
  uint64_t cbs_bytes = 0;
  uint64_t ebs_bytes = 0;  // srtcm
  uint64_t pir_bps = 0;    // trtcm
  uint64_t pbs_bytes = 0;  // trtcm
  Loc loc;
};

enum class RepresentorKind { kTap, kNone };

struct RepresentorConfig {
  RepresentorKind kind = RepresentorKind::kTap;  // tap: a Linux netdev rep-<vport> per vport
};

struct Config {
  std::string api_version = kApiVersion;
  DataplaneConfig dataplane;
  std::vector<UplinkConfig> uplinks;
  std::vector<VportConfig> vports;
  PipelineConfig pipeline;
  RepresentorConfig representors;
  std::vector<MeterConfig> meters;
  std::vector<TableConfig> tables;
};

struct LoadResult {
  std::optional<Config> config;  // set iff errors is empty
  std::vector<Error> errors;     // every problem found, in file order
};

// `source_name` is only used in messages.
LoadResult load_config_string(const std::string& yaml, const std::string& source_name = "<string>");
LoadResult load_config_file(const std::string& path);

// One rule in the compact one-string form as the runtime `rules` method takes it
// ("name=web,table=0,priority=10,<match> actions=<a>,<b>:<arg>"): the same parser and checks as a string under
// tables[].rules (rule_text.cc), plus "table=N" (0..254; 0 when absent). Errors are appended, located at `path`
// and naming the item; match fields and action arguments are checked later by the rule compiler.
bool parse_rule_text(std::string_view text, const std::string& path, RuleConfig& out, uint32_t& table,
                     std::vector<Error>& errors);

// The default config embedded in the binary (config/default.yaml).
const char* default_config_yaml();

// The hash of a config text that eswitchd reports as config_hash (FNV-1a over 64 bits with the offset basis
// eswitchd has always used, 16 hex digits): eswitchctl compares it with a file's to see whether the file is what
// runs.
std::string text_hash(std::string_view text);

// The spelling of each enum value in YAML ("auto", "l2", ...). The loader accepts exactly these.
const char* to_string(HugepageMode mode);
const char* to_string(PipelineMode mode);
const char* to_string(Flavour flavour);
const char* to_string(VportState state);
const char* to_string(SmcPolicy policy);
const char* to_string(RepresentorKind kind);

// YAML paths of rule items, as the loader writes them in errors, for checks that run on the model (the rule
// compiler) and report at MatchItem::loc / ActionConfig::loc:
//   rule_path(0, 3)                                  "tables[0].rules[3]"
//   match_path("tables[0].rules[3]", item)           "tables[0].rules[3].match.tcp_dst"
//   action_path("tables[0].rules[3].actions", a)     "tables[0].rules[3].actions[1]" (`- drop`),
//                                                    "...actions[1].output" (`- output: vm1`),
//                                                    "...actions[2].set_field.eth_dst" (one field of a set_field)
//   action_path("tables[1].miss", a)                 "tables[1].miss[0]"
std::string rule_path(size_t table_index, size_t rule_index);
std::string match_path(const std::string& rule_path, const MatchItem& item);
std::string action_path(const std::string& list_path, const ActionConfig& action);

}  // namespace esw::cfg
