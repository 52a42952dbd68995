// SMC session table (session_table.h).

#include "dataplane/smc/session_table.h"

#include <algorithm>
#include <cstring>
#include <new>

namespace esw::smc {
namespace {

constexpr uint32_t kEmpty = 0xffffffff;
constexpr uint32_t kTomb = 0xfffffffe;

uint64_t endpoint_hash(const uint8_t* addr, uint16_t port) noexcept {
  uint64_t h = 1469598103934665603ull;
  for (int i = 0; i < 16; ++i) h = (h ^ addr[i]) * 1099511628211ull;
  h = (h ^ (port & 0xff)) * 1099511628211ull;
  h = (h ^ (port >> 8)) * 1099511628211ull;
  return h;
}

// The same for both directions of a connection.
uint64_t tuple_hash(const FiveTuple& t) noexcept {
  uint64_t h = endpoint_hash(t.src, t.sport) + endpoint_hash(t.dst, t.dport) + t.family;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

size_t pow2_at_least(size_t n) noexcept {
  size_t p = 16;
  while (p < n) p <<= 1;
  return p;
}

void take_identity(SideIdentity& side, const Identity& id) noexcept {
  if (id.has_roce) {
    side.has_roce = true;
    std::memcpy(side.roce_mac, id.roce_mac, 6);
    std::memcpy(side.smcr_gid, id.smcr_gid, 16);
  }
  if (id.has_rocev2_gid) {
    side.has_rocev2_gid = true;
    std::memcpy(side.rocev2_gid, id.rocev2_gid, 16);
  }
  if (id.has_qp) {
    side.has_qp = true;
    side.qpn = id.qpn;
    side.rkey = id.rkey;
    side.rmb_va = id.rmb_va;
  }
  if (id.has_dmb) {
    side.has_dmb = true;
    side.dmb_token = id.dmb_token;
  }
  if (id.ism_count != 0) {
    side.ism_count = id.ism_count;
    std::copy(id.ism, id.ism + id.ism_count, side.ism);
  }
}

}  // namespace

FiveTuple FiveTuple::reversed() const noexcept {
  FiveTuple r = *this;
  std::memcpy(r.src, dst, 16);
  std::memcpy(r.dst, src, 16);
  r.sport = dport;
  r.dport = sport;
  return r;
}

const char* to_string(State s) noexcept {
  switch (s) {
    case State::kSyn: return "syn";
    case State::kSynAck: return "synack";
    case State::kProposal: return "proposal";
    case State::kAccept: return "accept";
    case State::kConfirm: return "confirm";
    case State::kDeclined: return "declined";
    case State::kFallback: return "fallback";
    case State::kRefused: return "refused";
  }
  return "?";
}

const char* to_string(Refusal r) noexcept {
  switch (r) {
    case Refusal::kNone: return "";
    case Refusal::kForeignMac: return "foreign_mac";
    case Refusal::kForeignGid: return "foreign_gid";
    case Refusal::kForeignPrefix: return "foreign_prefix";
  }
  return "?";
}

SessionTable::SessionTable(const Config& cfg)
    : cfg_(cfg),
      slots_(std::max<uint32_t>(cfg.capacity, 1)),
      used_(slots_.size(), 0),
      index_(pow2_at_least(slots_.size() * 2), kEmpty) {
  free_.reserve(slots_.size());
  for (uint32_t i = static_cast<uint32_t>(slots_.size()); i-- > 0;) free_.push_back(i);
}

uint32_t SessionTable::lookup(const FiveTuple& t, bool& is_client) const noexcept {
  const size_t mask = index_.size() - 1;
  const FiveTuple rev = t.reversed();
  for (size_t i = tuple_hash(t) & mask, n = 0; n < index_.size(); i = (i + 1) & mask, ++n) {
    const uint32_t s = index_[i];
    if (s == kEmpty) return kNone;
    if (s == kTomb) continue;
    if (slots_[s].client == t) {
      is_client = true;
      return s;
    }
    if (slots_[s].client == rev) {
      is_client = false;
      return s;
    }
  }
  return kNone;
}

uint32_t SessionTable::insert(const FiveTuple& client) noexcept {
  if (free_.empty()) return kNone;
  if (tombstones_ > index_.size() / 4) {  // rebuild the index without tombstones
    std::fill(index_.begin(), index_.end(), kEmpty);
    tombstones_ = 0;
    const size_t mask = index_.size() - 1;
    for (uint32_t s = 0; s < slots_.size(); ++s) {
      if (!used_[s]) continue;
      size_t i = tuple_hash(slots_[s].client) & mask;
      while (index_[i] != kEmpty) i = (i + 1) & mask;
      index_[i] = s;
    }
  }
  const uint32_t s = free_.back();
  free_.pop_back();
  used_[s] = 1;
  Session& ses = slots_[s];
  ses.~Session();
  new (&ses) Session();
  ses.client = client;
  const size_t mask = index_.size() - 1;
  size_t i = tuple_hash(client) & mask;
  while (index_[i] != kEmpty && index_[i] != kTomb) i = (i + 1) & mask;
  if (index_[i] == kTomb) --tombstones_;
  index_[i] = s;
  ++size_;
  return s;
}

void SessionTable::remove(uint32_t slot) noexcept {
  const size_t mask = index_.size() - 1;
  for (size_t i = tuple_hash(slots_[slot].client) & mask, n = 0; n < index_.size(); i = (i + 1) & mask, ++n) {
    if (index_[i] == slot) {
      index_[i] = kTomb;
      ++tombstones_;
      break;
    }
    if (index_[i] == kEmpty) break;
  }
  used_[slot] = 0;
  free_.push_back(slot);
  --size_;
}

const Session* SessionTable::find(const FiveTuple& t) const noexcept {
  bool is_client = false;
  const uint32_t s = lookup(t, is_client);
  return s == kNone ? nullptr : &slots_[s];
}

void SessionTable::apply(const Event& ev, uint64_t now_ns) noexcept {
  ++counters_.events;
  bool is_client = false;
  uint32_t s = lookup(ev.tuple, is_client);
  if (ev.kind == EventKind::kSynOption) {
    if (s == kNone) {
      s = insert(ev.tuple);
      if (s == kNone) {
        ++counters_.overflow;
        return;
      }
      ++counters_.created;
      Session& ses = slots_[s];
      ses.client_vport = ev.in_vport;
      ses.first_ns = now_ns;
      ses.last_ns = now_ns;
      return;
    }
    Session& ses = slots_[s];
    if (is_client && ses.state != State::kSyn && ses.state != State::kSynAck) {
      // The tuple is reused by a new connection (the old one ended without a FIN/RST we saw): start over.
      const FiveTuple client = ses.client;
      ses.~Session();
      new (&ses) Session();
      ses.client = client;
      ses.client_vport = ev.in_vport;
      ses.first_ns = now_ns;
      ++counters_.created;
    }
    // Otherwise a retransmitted SYN, or a SYN the other way on a tracked tuple (simultaneous open is not
    // SMC): keep the session.
    ses.last_ns = now_ns;
    return;
  }
  if (s == kNone) {
    ++counters_.no_session;
    return;
  }
  Session& ses = slots_[s];
  ses.last_ns = now_ns;
  const int dir = is_client ? 0 : 1;
  ses.bytes[dir] += ev.payload_len;
  switch (ev.kind) {
    case EventKind::kSynOption: break;  // handled above
    case EventKind::kSynAckOption:
      if (!is_client) {
        ses.server_vport = ev.in_vport;
        if (ses.state == State::kSyn) ses.state = State::kSynAck;
      }
      break;
    case EventKind::kSynAckPlain:
      if (!is_client) {
        ses.server_vport = ev.in_vport;
        ses.state = State::kFallback;
      }
      break;
    case EventKind::kClc: on_clc(ses, dir, ev); break;
    case EventKind::kFin:
      (is_client ? ses.fin_client : ses.fin_server) = true;
      if (ses.fin_client && ses.fin_server) {
        ++counters_.ended_fin;
        remove(s);
      }
      break;
    case EventKind::kRst:
      ++counters_.ended_rst;
      remove(s);
      break;
  }
}

void SessionTable::on_clc(Session& s, int dir, const Event& ev) noexcept {
  if (ev.refused != Refusal::kNone) {  // the worker dropped it: what it claimed never reached the peer
    if (s.state != State::kRefused) ++counters_.refused;
    s.state = State::kRefused;
    s.refused = ev.refused;
    s.refused_client = dir == 0;
    s.stream[0].have = s.stream[1].have = 0;
    return;
  }
  if (s.state == State::kConfirm || s.state == State::kDeclined || s.state == State::kFallback ||
      s.state == State::kRefused) {
    return;
  }
  StreamBuf& b = s.stream[dir];
  const uint16_t copied = std::min<uint16_t>(ev.copied, static_cast<uint16_t>(kEventClcBytes));
  if (ev.payload_len == 0 || copied == 0) return;
  uint32_t skip = 0;  // bytes at the start of this segment already seen
  if (b.started) {
    const auto delta = static_cast<int32_t>(ev.seq - b.next_seq);
    if (delta > 0) {  // a gap: what was pending cannot be completed
      ++counters_.clc_incomplete;
      s.error = "clc: gap in the TCP sequence";
      b.have = 0;
    } else if (delta < 0) {
      skip = static_cast<uint32_t>(-delta);
      if (skip >= ev.payload_len) {
        ++counters_.clc_duplicate;
        return;
      }
    }
  }
  if (skip >= copied) {  // the new bytes were not copied
    ++counters_.clc_incomplete;
    s.error = "clc: segment longer than the copied bytes";
    b.have = 0;
    b.started = true;
    b.next_seq = ev.seq + ev.payload_len;
    return;
  }
  b.started = true;
  b.next_seq = ev.seq + ev.payload_len;
  const uint32_t add = copied - skip;
  if (b.have + add > kMaxMsgLen) {  // cannot be one message plus the start of another: give up on the stream
    ++counters_.clc_not_clc;
    s.error = "clc: more data than a CLC message before a complete one";
    s.state = State::kFallback;
    b.have = 0;
    return;
  }
  std::memcpy(b.buf + b.have, ev.clc + skip, add);
  b.have = static_cast<uint16_t>(b.have + add);
  const bool lost_tail = copied < ev.payload_len;

  uint32_t pos = 0;
  while (pos < b.have) {
    const std::span<const uint8_t> rest(b.buf + pos, b.have - pos);
    const Probe p = probe(rest);
    if (p.kind == ProbeKind::kNotClc) {
      ++counters_.clc_not_clc;
      s.error = "clc: data that is not a CLC message";
      s.state = State::kFallback;
      b.have = 0;
      return;
    }
    if (p.kind == ProbeKind::kNeedMore || p.msg_len > rest.size()) break;
    on_message(s, dir, rest.first(p.msg_len));
    pos += p.msg_len;
    if (!s.smc_active() || s.state == State::kConfirm) {
      b.have = 0;
      return;
    }
  }
  if (pos != 0) {
    std::memmove(b.buf, b.buf + pos, b.have - pos);
    b.have = static_cast<uint16_t>(b.have - pos);
  }
  if (lost_tail && b.have != 0) {  // a message continues in bytes the worker did not copy
    ++counters_.clc_incomplete;
    s.error = "clc: segment longer than the copied bytes";
    b.have = 0;
  }
}

void SessionTable::on_message(Session& s, int dir, std::span<const uint8_t> msg) noexcept {
  const Result r = parse(msg, scratch_);
  if (!r.ok()) {
    ++counters_.clc_invalid;
    s.error = r.reason;
    return;
  }
  ++counters_.clc_parsed;
  ++s.clc_messages;
  const Message& m = scratch_;
  const Identity id = identity(m);
  const bool from_client = dir == 0;
  switch (m.hdr.type) {
    case MsgType::kProposal:
      if (!from_client || (s.state != State::kSyn && s.state != State::kSynAck)) break;
      s.state = State::kProposal;
      s.version = m.hdr.version;
      s.path = id.path;
      take_identity(s.client_id, id);
      if (id.ip != nullptr) {
        s.has_ip_area = true;
        s.ip = *id.ip;
      }
      return;
    case MsgType::kAccept:
      if (from_client || s.state != State::kProposal) break;
      s.state = State::kAccept;
      s.version = m.hdr.version;
      s.path = id.path;
      take_identity(s.server_id, id);
      return;
    case MsgType::kConfirm:
      if (!from_client || s.state != State::kAccept) break;
      if (id.path != s.path) {
        ++counters_.clc_unexpected;
        s.error = "clc: confirm on another path than the accept";
        return;
      }
      s.state = State::kConfirm;
      take_identity(s.client_id, id);
      return;
    case MsgType::kDecline:
      ++counters_.declines;
      s.state = State::kDeclined;
      s.decline_code = id.decline_code;
      s.declined_by_server = !from_client;
      return;
  }
  ++counters_.clc_unexpected;
  s.error = "clc: message out of order or from the wrong side";
}

size_t SessionTable::age(uint64_t now_ns) noexcept {
  size_t n = 0;
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    if (!used_[i] || now_ns - slots_[i].last_ns <= cfg_.idle_timeout_ns || now_ns < slots_[i].last_ns) continue;
    remove(i);
    ++n;
  }
  counters_.aged += n;
  return n;
}

}  // namespace esw::smc
