#pragma once
// The SMC session table on the main lcore: fed by the workers' SMC events (fastpath/smc_stage.h, drained from the
// event ring by Switch::maintain), it follows each TCP connection that offers SMC from its SYN through the CLC
// exchange (Proposal, Accept, Confirm, Decline) to its FIN/RST or idle timeout, and derives what the workers
// enforce: the flows whose FIN/RST matter and the RoCEv2 grants of SMC-R sessions (fastpath/smc_wire.h SmcView).
//
// Trust: every CLC byte comes from a tenant. The fields read here (header, SMC-R GID/MAC/QPN/rkey, SMC-D GID/DMB
// token, Decline code) are bounds-checked against both the message's own length and the bytes the event carries;
// a message that fails is counted (clc_invalid) and changes nothing. A CLC message is only believed in its
// direction: Proposal and Confirm from the client (the SYN's sender), Accept from the server.
//
// Grants (SMC-R, after Accept and Confirm): client vport -> server vport for the server's QPN and RMB rkey (from
// the Accept), server -> client for the client's (from the Confirm). They end with the session: FIN, RST,
// Decline, idle timeout, or a config change that removes either vport.
//
// Stopgap: this file reads the few CLC fields it needs itself; the full codec (dataplane/smc/clc.h, issue 11
// part 1) replaces that parsing once it lands.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "dataplane/fastpath/smc_wire.h"

namespace esw::dp {

struct SmcSession {
  enum class State : uint8_t { kSyn, kSynAck, kProposal, kAccept, kConfirm, kDeclined, kClosed };
  struct Side {
    uint16_t port = 0xffff;      // switch port index (0xffff: not seen yet)
    std::string vport;           // its name when seen
    uint8_t addr[16] = {};       // IPv4 in the first 4 bytes
    uint16_t tcp_port = 0;       // host order
    uint8_t gid[16] = {};        // SMC-R GID (RoCE) / SMC-D: ISM GID in the first 8 bytes
    uint8_t mac[6] = {};         // SMC-R RoCE MAC
    uint32_t qpn = 0;            // SMC-R QP number (24 bits)
    uint32_t rkey = 0;           // SMC-R RMB rkey
    uint64_t dmb_token = 0;      // SMC-D
    bool clc_seen = false;       // its Accept (server) / Confirm (client) was read
  };
  uint64_t id = 0;
  uint64_t flow = 0;             // smc_flow_hash
  uint8_t ip_version = 4;
  State state = State::kSyn;
  uint8_t version = 0;           // CLC version of the last Accept/Confirm (1, 2), 0 = none yet
  char path = '?';               // 'R' (SMC-R), 'D' (SMC-D), '?' before the Accept
  uint32_t decline_code = 0;
  Side client, server;
  uint64_t events = 0;
  uint64_t clc_bytes = 0;        // CLC segment bytes seen
  std::chrono::steady_clock::time_point first_seen, last_seen;

  bool ended() const { return state == State::kDeclined || state == State::kClosed; }
  bool granted() const { return !ended() && path == 'R' && client.clc_seen && server.clc_seen; }
};
const char* smc_state_name(SmcSession::State s);

struct SmcTableCounters {
  uint64_t events = 0;         // events read from the ring
  uint64_t sessions_created = 0;
  uint64_t sessions_expired = 0;  // idle timeout
  uint64_t sessions_ended = 0;    // FIN/RST/Decline
  uint64_t clc_messages = 0;   // CLC messages applied to a session
  uint64_t clc_invalid = 0;    // failed a length/eyecatcher/direction check
  uint64_t clc_orphan = 0;     // CLC for no known session (other than a Proposal)
};

class SmcSessionTable {
 public:
  using Clock = std::chrono::steady_clock;
  // idle: a session with no event for this long goes away; an ended one is kept min(idle, linger) for show.
  explicit SmcSessionTable(Clock::duration idle = std::chrono::seconds(600),
                           Clock::duration linger = std::chrono::seconds(10))
      : idle_(idle), linger_(linger) {}

  void set_idle_timeout(Clock::duration idle) { idle_ = idle; }
  Clock::duration idle_timeout() const { return idle_; }

  // port_name: switch port index -> name ("" if none).
  void on_event(const SmcEvent& e, Clock::time_point now, const std::function<std::string(uint16_t)>& port_name);
  // Removes idle and lingering ended sessions; returns true when something a worker sees changed.
  bool expire(Clock::time_point now);
  // Ends sessions whose ports are not the vports they were any more (config change); true if any.
  bool forget_ports(const std::function<std::string(uint16_t)>& port_name);

  // What the workers enforce, built fresh (the caller publishes it).
  void build_view(SmcView& out) const;
  // True when the worker view is out of date (set by changes, cleared by build_view's caller).
  bool dirty() const { return dirty_; }
  void clear_dirty() { dirty_ = false; }

  const std::map<uint64_t, SmcSession>& sessions() const { return by_flow_; }
  const SmcTableCounters& counters() const { return counters_; }

 private:
  void apply_clc(SmcSession& s, const SmcEvent& e, bool from_client);
  void end(SmcSession& s, SmcSession::State why);

  Clock::duration idle_;
  Clock::duration linger_;
  std::map<uint64_t, SmcSession> by_flow_;  // few sessions; ordered for a stable show
  uint64_t next_id_ = 1;
  bool dirty_ = false;
  SmcTableCounters counters_;
};

}  // namespace esw::dp
