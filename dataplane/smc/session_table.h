#pragma once
// SMC session table: what the switch knows about each TCP connection that negotiates SMC, built on the main
// lcore from event records the workers send (the worker side classifies SYN/SYN-ACK with the SMC option, the
// CLC messages at the start of those connections, FIN and RST, and enqueues one Event per such segment).
//
// A session is keyed by its 5-tuple (client = the side that sent the SYN) and holds: the vports of both ends,
// the state of the handshake, version, path (R/D), what each side claimed in its CLC messages (RoCE MAC and GID,
// QPN, rkey, RMB VA, ISM GIDs, DMB token, IP prefix area), the Decline code, bytes seen, and timestamps.
//
// Lifecycle: created by a SYN with the SMC option; ended (removed) by RST, by FIN from both sides, or by idle
// aging (age()). A Decline or a fallback to plain TCP keeps the record (state and reason, for show/telemetry)
// until then, but the session is no longer `smc_active()`: grants derived from it must end.
//
// CLC bytes: each Event carries the first <= kEventClcBytes bytes of the segment's TCP payload plus the
// payload's length and sequence number. The table reassembles each direction in sequence order (a message may
// span two or more segments; several messages may share one), parses every complete message with clc.h, and
// counts what it cannot see whole (a segment longer than the copy) or cannot parse.
//
// Bounded: at most Config::capacity sessions; a SYN beyond that is counted (Counters::overflow) and not tracked.
//
// Threading: not thread-safe; one owner (the main lcore). No allocation after construction (the slot array and
// the index are sized once: about 3 KiB per session of capacity, most of it the two reassembly buffers);
// nothing throws after construction.

#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "dataplane/smc/clc.h"

namespace esw::smc {

// ---- event records (the worker -> main lcore ABI) ---------------------------------------------------------

inline constexpr size_t kEventClcBytes = 256;
inline constexpr uint16_t kNoVport = 0xffff;

// A TCP 5-tuple as the packet carries it (source = the sender of this segment). Addresses in network order;
// IPv4 in the first 4 bytes of src/dst, the rest zero. Ports in host order.
struct FiveTuple {
  uint8_t src[16] = {};
  uint8_t dst[16] = {};
  uint16_t sport = 0;
  uint16_t dport = 0;
  uint8_t family = 4;  // 4 or 6
  uint8_t pad[3] = {};
  bool operator==(const FiveTuple&) const = default;
  FiveTuple reversed() const noexcept;
};

enum class EventKind : uint8_t {
  kSynOption = 1,     // SYN (no ACK) carrying the SMC option
  kSynAckOption = 2,  // SYN-ACK carrying the SMC option
  kClc = 3,           // a segment with payload on a connection the worker considers SMC (first bytes copied)
  kFin = 4,
  kRst = 5,
  kSynAckPlain = 6,   // SYN-ACK without the option on a connection whose SYN had it: TCP fallback
};

// Why the worker refused a CLC segment (the identity a vport claimed is not its own; the switch dropped it).
enum class Refusal : uint8_t {
  kNone = 0,
  kForeignMac = 1,     // RoCE MAC is not the vport's hw_addr
  kForeignGid = 2,     // SMC-R / RoCEv2 GID not derived from one of its bound addresses
  kForeignPrefix = 3,  // the Proposal's IP area names a prefix outside its bound prefixes
};
const char* to_string(Refusal r) noexcept;  // "", "foreign_mac", "foreign_gid", "foreign_prefix"

struct Event {
  FiveTuple tuple;
  uint16_t in_vport = kNoVport;  // the switch port the segment entered by
  EventKind kind = EventKind::kClc;
  Refusal refused = Refusal::kNone;  // kClc: the worker dropped this segment (it completed a refused message)
  uint32_t seq = 0;              // TCP sequence number of the segment (host order)
  uint16_t payload_len = 0;      // the segment's TCP payload length
  uint16_t copied = 0;           // bytes of it in clc[] (<= kEventClcBytes)
  uint8_t clc[kEventClcBytes];   // the first `copied` payload bytes (kClc only)
};
// Fixed layout for the worker -> main lcore ring (copied by value, no pointers).
static_assert(std::is_trivially_copyable_v<Event> && sizeof(Event) == 308, "Event is a fixed-size record");

// ---- sessions -----------------------------------------------------------------------------------------------

enum class State : uint8_t {
  kSyn,        // SYN with the option seen
  kSynAck,     // both ends offered SMC in the TCP handshake
  kProposal,   // client's Proposal seen
  kAccept,     // server's Accept seen
  kConfirm,    // client's Confirm seen: SMC in use
  kDeclined,   // a Decline (either side): TCP fallback
  kFallback,   // SYN-ACK without the option, or non-CLC data where a CLC message was due
  kRefused,    // the switch refused a CLC message (Session::refused says why): no grants, its data is dropped
};
const char* to_string(State s) noexcept;  // "syn", "synack", "proposal", "accept", "confirm", "declined", "fallback",
                                          // "refused"

// What one end claimed in its CLC messages (client: Proposal + Confirm; server: Accept).
struct SideIdentity {
  bool has_roce = false;
  uint8_t roce_mac[6] = {};
  uint8_t smcr_gid[16] = {};
  bool has_rocev2_gid = false;
  uint8_t rocev2_gid[16] = {};
  bool has_qp = false;
  uint32_t qpn = 0;
  uint32_t rkey = 0;
  uint64_t rmb_va = 0;
  bool has_dmb = false;
  uint64_t dmb_token = 0;
  uint8_t ism_count = 0;
  IsmGid ism[1 + kMaxIsmEntries];
};

// Reassembly state of one direction.
struct StreamBuf {
  bool started = false;
  uint32_t next_seq = 0;
  uint16_t have = 0;
  uint8_t buf[kMaxMsgLen];
};

struct Session {
  FiveTuple client;              // client -> server (the SYN's tuple)
  uint16_t client_vport = kNoVport;
  uint16_t server_vport = kNoVport;
  State state = State::kSyn;
  uint8_t version = 0;           // from the Accept (else the Proposal)
  Path path = Path::kNone;       // Proposal: offered paths; from the Accept on: the chosen path (R or D)
  bool fin_client = false;
  bool fin_server = false;
  SideIdentity client_id;
  SideIdentity server_id;
  bool has_ip_area = false;      // the Proposal's IP prefix area
  IpArea ip;
  uint32_t decline_code = 0;
  bool declined_by_server = false;
  const char* error = nullptr;   // last CLC problem on this session (static string), nullptr if none
  Refusal refused = Refusal::kNone;  // kRefused: why
  bool refused_client = false;   // kRefused: the client's message was refused (else the server's)
  uint32_t clc_messages = 0;
  uint64_t bytes[2] = {};        // TCP payload bytes reported by events: [0] client -> server, [1] back
  uint64_t first_ns = 0;
  uint64_t last_ns = 0;
  StreamBuf stream[2];           // [0] client -> server, [1] server -> client

  bool smc_active() const noexcept {
    return state != State::kDeclined && state != State::kFallback && state != State::kRefused;
  }
};

struct Counters {
  uint64_t events = 0;
  uint64_t created = 0;
  uint64_t overflow = 0;        // SYN with the option while the table was full: not tracked
  uint64_t no_session = 0;      // an event for a connection the table does not track
  uint64_t ended_rst = 0;
  uint64_t ended_fin = 0;
  uint64_t aged = 0;
  uint64_t clc_parsed = 0;      // complete messages parsed
  uint64_t clc_invalid = 0;     // messages parse() refused (Session::error has the reason)
  uint64_t clc_unexpected = 0;  // a valid message out of order or from the wrong side
  uint64_t clc_not_clc = 0;     // data that is not a CLC message where one was due (session falls back)
  uint64_t clc_incomplete = 0;  // bytes missing: segment longer than the copy, a gap in the sequence
  uint64_t clc_duplicate = 0;   // retransmitted bytes ignored
  uint64_t declines = 0;
  uint64_t refused = 0;         // sessions ended in kRefused (a CLC message the worker refused)
};

struct Config {
  uint32_t capacity = 4096;
  uint64_t idle_timeout_ns = 60ull * 1000 * 1000 * 1000;
};

class SessionTable {
 public:
  explicit SessionTable(const Config& cfg);

  // Applies events in order; now_ns stamps them (any monotonic clock, the same one age() gets).
  void apply(const Event& ev, uint64_t now_ns) noexcept;
  void apply(std::span<const Event> evs, uint64_t now_ns) noexcept {
    for (const Event& e : evs) apply(e, now_ns);
  }

  // Removes sessions idle for longer than the idle timeout; returns how many.
  size_t age(uint64_t now_ns) noexcept;

  // The session of a connection, by either direction's tuple; nullptr if not tracked.
  const Session* find(const FiveTuple& t) const noexcept;

  // Visits every session (order unspecified). The table must not be changed from inside f.
  template <typename F>
  void for_each(F&& f) const {
    for (uint32_t i = 0; i < slots_.size(); ++i)
      if (used_[i]) f(slots_[i]);
  }

  size_t size() const noexcept { return size_; }
  size_t capacity() const noexcept { return slots_.size(); }
  const Counters& counters() const noexcept { return counters_; }
  const Config& config() const noexcept { return cfg_; }

 private:
  uint32_t lookup(const FiveTuple& t, bool& is_client) const noexcept;  // slot or kNone
  uint32_t insert(const FiveTuple& client) noexcept;                     // slot or kNone (full)
  void remove(uint32_t slot) noexcept;
  void on_clc(Session& s, int dir, const Event& ev) noexcept;
  void on_message(Session& s, int dir, std::span<const uint8_t> msg) noexcept;

  static constexpr uint32_t kNone = 0xffffffff;
  Config cfg_;
  std::vector<Session> slots_;
  std::vector<uint8_t> used_;
  std::vector<uint32_t> free_;
  // Open addressing (linear probing, tombstones) over 2x capacity buckets holding slot numbers.
  std::vector<uint32_t> index_;
  size_t size_ = 0;
  size_t tombstones_ = 0;
  Counters counters_;
  Message scratch_;  // parse target (too big for the stack of a burst loop)
};

}  // namespace esw::smc
