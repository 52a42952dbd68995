#include "dataplane/daemon/smc_sessions.h"

#include <algorithm>
#include <cstring>

#include "dataplane/fastpath/proto.h"

namespace esw::dp {

namespace {

inline uint16_t rd16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t rd24(const uint8_t* p) { return static_cast<uint32_t>(p[0]) << 16 | p[1] << 8 | p[2]; }
inline uint32_t rd32(const uint8_t* p) { return static_cast<uint32_t>(p[0]) << 24 | rd24(p + 1); }
inline uint64_t rd64(const uint8_t* p) { return static_cast<uint64_t>(rd32(p)) << 32 | rd32(p + 4); }

// CLC message types (SMC-NOTES.md, Linux smc_clc.h).
constexpr uint8_t kClcProposal = 1;
constexpr uint8_t kClcAccept = 2;
constexpr uint8_t kClcConfirm = 3;
constexpr uint8_t kClcDecline = 4;
constexpr uint32_t kClcHeaderLen = 8;
constexpr uint32_t kClcTrailerLen = 4;
// Smallest valid message of each kind (v1; v2 messages are longer).
constexpr uint32_t kMinProposal = 52;
constexpr uint32_t kMinAcceptR = 68;
constexpr uint32_t kMinAcceptD = 48;
constexpr uint32_t kMinDecline = 28;

bool same_endpoint(const SmcSession::Side& side, const uint8_t* addr, uint16_t port_be, unsigned alen) {
  return std::memcmp(side.addr, addr, alen) == 0 && side.tcp_port == from_be16(port_be);
}

}  // namespace

const char* smc_state_name(SmcSession::State s) {
  switch (s) {
    case SmcSession::State::kSyn: return "syn";
    case SmcSession::State::kSynAck: return "syn_ack";
    case SmcSession::State::kProposal: return "proposal";
    case SmcSession::State::kAccept: return "accept";
    case SmcSession::State::kConfirm: return "confirm";
    case SmcSession::State::kDeclined: return "declined";
    case SmcSession::State::kClosed: return "closed";
  }
  return "?";
}

void SmcSessionTable::end(SmcSession& s, SmcSession::State why) {
  if (s.ended()) return;
  s.state = why;
  counters_.sessions_ended++;
  dirty_ = true;
}

void SmcSessionTable::on_event(const SmcEvent& e, Clock::time_point now,
                               const std::function<std::string(uint16_t)>& port_name) {
  counters_.events++;
  const unsigned alen = e.ip_version == 4 ? 4 : 16;
  const uint64_t flow = smc_flow_hash(e.src, e.sport, e.dst, e.dport, alen);
  auto it = by_flow_.find(flow);
  const bool proposal = e.type == SmcEventType::kClc && e.payload_len > 4 && e.payload[4] == kClcProposal;
  if (it == by_flow_.end() || (it->second.ended() && (e.type == SmcEventType::kSyn || proposal))) {
    // A new session starts with the client's SYN, or its Proposal when the SYN was not seen (e.g. the ring was
    // full); a reused 4-tuple replaces an ended session.
    if (e.type != SmcEventType::kSyn && !proposal) {
      if (e.type == SmcEventType::kClc) counters_.clc_orphan++;
      return;
    }
    SmcSession s;
    s.id = next_id_++;
    s.flow = flow;
    s.ip_version = e.ip_version;
    s.client.port = e.in_port;
    s.client.vport = port_name(e.in_port);
    std::memcpy(s.client.addr, e.src, 16);
    s.client.tcp_port = from_be16(e.sport);
    std::memcpy(s.server.addr, e.dst, 16);
    s.server.tcp_port = from_be16(e.dport);
    s.first_seen = now;
    it = by_flow_.insert_or_assign(flow, std::move(s)).first;
    counters_.sessions_created++;
    dirty_ = true;
  }
  SmcSession& s = it->second;
  const bool from_client = same_endpoint(s.client, e.src, e.sport, alen);
  const bool from_server = same_endpoint(s.server, e.src, e.sport, alen);
  if (!from_client && !from_server) return;  // a hash collision, not this session
  s.events++;
  s.last_seen = now;
  switch (e.type) {
    case SmcEventType::kSyn:
      break;
    case SmcEventType::kSynAck:
      if (from_server && s.state == SmcSession::State::kSyn) {
        s.state = SmcSession::State::kSynAck;
        s.server.port = e.in_port;
        s.server.vport = port_name(e.in_port);
      }
      break;
    case SmcEventType::kClc:
      s.clc_bytes += e.segment_len;
      apply_clc(s, e, from_client);
      if (!s.ended() && from_server && s.server.port == 0xffff) {
        s.server.port = e.in_port;
        s.server.vport = port_name(e.in_port);
      }
      break;
    case SmcEventType::kFin:
    case SmcEventType::kRst:
      end(s, SmcSession::State::kClosed);
      break;
  }
}

void SmcSessionTable::apply_clc(SmcSession& s, const SmcEvent& e, bool from_client) {
  const uint8_t* m = e.payload;
  const uint32_t have = e.payload_len;
  if (have < kClcHeaderLen) {
    counters_.clc_invalid++;
    return;
  }
  const bool smcd_eye = std::memcmp(m, kClcEyecatcherD, 4) == 0;
  const uint8_t type = m[4];
  const uint32_t length = rd16(m + 5);
  const uint8_t version = m[7] >> 4;
  const uint8_t typev1 = m[7] & 0x03;
  // The message's own length must cover header and trailer and fit in the segment; the fields read below must lie
  // inside both that length and the copied bytes. The trailer is checked when the whole message was copied.
  auto fits = [&](uint32_t end) { return end <= length && end <= have; };
  bool ok = length >= kClcHeaderLen + kClcTrailerLen && length <= e.segment_len && (version == 1 || version == 2);
  if (ok && length <= have) {
    const uint8_t* trailer = m + length - kClcTrailerLen;
    ok = std::memcmp(trailer, kClcEyecatcherR, 4) == 0 || std::memcmp(trailer, kClcEyecatcherD, 4) == 0;
  }
  if (!ok) {
    counters_.clc_invalid++;
    return;
  }
  switch (type) {
    case kClcProposal:
      if (!from_client || length < kMinProposal || !fits(38)) break;
      std::memcpy(s.client.gid, m + 16, 16);
      std::memcpy(s.client.mac, m + 32, 6);
      if (s.state < SmcSession::State::kProposal) s.state = SmcSession::State::kProposal;
      counters_.clc_messages++;
      return;
    case kClcAccept:
    case kClcConfirm: {
      // Accept comes from the server, Confirm from the client; anything else is not believed.
      if ((type == kClcAccept) == from_client) break;
      SmcSession::Side& side = from_client ? s.client : s.server;
      const bool smcd = smcd_eye || typev1 == 1;
      if (smcd) {
        if (length < kMinAcceptD || !fits(24)) break;
        std::memcpy(side.gid, m + 8, 8);
        side.dmb_token = rd64(m + 16);
      } else {
        if (length < kMinAcceptR || !fits(45)) break;
        std::memcpy(side.gid, m + 16, 16);
        std::memcpy(side.mac, m + 32, 6);
        side.qpn = rd24(m + 38);
        side.rkey = rd32(m + 41);
      }
      side.clc_seen = true;
      s.path = smcd ? 'D' : 'R';
      s.version = version;
      s.state = type == kClcAccept ? SmcSession::State::kAccept : SmcSession::State::kConfirm;
      counters_.clc_messages++;
      dirty_ = true;
      return;
    }
    case kClcDecline:
      if (length < kMinDecline || !fits(20)) break;
      s.decline_code = rd32(m + 16);
      counters_.clc_messages++;
      end(s, SmcSession::State::kDeclined);
      return;
    default:
      break;
  }
  counters_.clc_invalid++;
}

bool SmcSessionTable::expire(Clock::time_point now) {
  bool changed = false;
  for (auto it = by_flow_.begin(); it != by_flow_.end();) {
    const SmcSession& s = it->second;
    const Clock::duration keep = s.ended() ? std::min(idle_, linger_) : idle_;
    if (now - s.last_seen >= keep) {
      if (!s.ended()) {
        counters_.sessions_expired++;
        changed = true;
      }
      it = by_flow_.erase(it);
    } else {
      ++it;
    }
  }
  if (changed) dirty_ = true;
  return changed;
}

bool SmcSessionTable::forget_ports(const std::function<std::string(uint16_t)>& port_name) {
  bool changed = false;
  for (auto& [flow, s] : by_flow_) {
    if (s.ended()) continue;
    const bool client_gone = s.client.port != 0xffff && port_name(s.client.port) != s.client.vport;
    const bool server_gone = s.server.port != 0xffff && port_name(s.server.port) != s.server.vport;
    if (client_gone || server_gone) {
      end(s, SmcSession::State::kClosed);
      changed = true;
    }
  }
  return changed;
}

void SmcSessionTable::build_view(SmcView& out) const {
  std::vector<uint64_t> flows, qps, rkeys;
  for (const auto& [flow, s] : by_flow_) {
    if (s.ended()) continue;
    flows.push_back(flow);
    if (!s.granted() || s.client.port == 0xffff || s.server.port == 0xffff) continue;
    qps.push_back(roce_qp_grant(s.client.port, s.server.port, s.server.qpn));
    qps.push_back(roce_qp_grant(s.server.port, s.client.port, s.client.qpn));
    rkeys.push_back(roce_rkey_grant(s.client.port, s.server.port, s.server.rkey));
    rkeys.push_back(roce_rkey_grant(s.server.port, s.client.port, s.client.rkey));
  }
  out.flows = KeySet(flows);
  out.qps = KeySet(qps);
  out.rkeys = KeySet(rkeys);
}

}  // namespace esw::dp
