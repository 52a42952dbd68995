// SMC session table tests: the handshakes (SMC-R v1, SMC-D v2) from event records, Decline and fallbacks, CLC
// messages split over segments / sharing one / longer than the copy / retransmitted / with a gap, invalid and
// out-of-order messages, FIN/RST/idle ending, the bounded size with its overflow counter, index churn.

#include "dataplane/smc/session_table.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/smc_clc_cases.h"

namespace esw::smc {
namespace {

using namespace esw::smc::cases;  // NOLINT: test vocabulary
using Bytes = std::vector<uint8_t>;

constexpr uint16_t kVm1 = 1;
constexpr uint16_t kVm2 = 2;
constexpr uint64_t kSec = 1000ull * 1000 * 1000;

FiveTuple tuple(uint16_t sport, uint8_t last = 1) {
  FiveTuple t;
  const uint8_t a[4] = {198, 18, 0, last};
  const uint8_t b[4] = {198, 18, 0, 2};
  std::memcpy(t.src, a, 4);
  std::memcpy(t.dst, b, 4);
  t.sport = sport;
  t.dport = 5000;
  return t;
}

Bytes encode(const Message& m) {
  Bytes b(kMaxMsgLen);
  const Result r = build(m, b);
  EXPECT_TRUE(r.ok()) << r.reason;
  b.resize(r.size);
  return b;
}

// A connection's two directions with sequence numbers.
struct Conn {
  FiveTuple c;
  uint32_t seq[2] = {1001, 5001};
  explicit Conn(uint16_t sport) : c(tuple(sport)) {}

  Event ev(EventKind k, bool from_client) const {
    Event e;
    e.tuple = from_client ? c : c.reversed();
    e.in_vport = from_client ? kVm1 : kVm2;
    e.kind = k;
    return e;
  }
  // A data segment carrying bytes [0, n) of data from one side, first `copy` bytes copied (default all,
  // capped at the event's buffer).
  Event data(bool from_client, const uint8_t* d, size_t n, size_t copy = SIZE_MAX) {
    Event e = ev(EventKind::kClc, from_client);
    const int dir = from_client ? 0 : 1;
    e.seq = seq[dir];
    seq[dir] += static_cast<uint32_t>(n);
    e.payload_len = static_cast<uint16_t>(n);
    e.copied = static_cast<uint16_t>(std::min({n, copy, kEventClcBytes}));
    std::memcpy(e.clc, d, e.copied);
    return e;
  }
  Event data(bool from_client, const Bytes& b) { return data(from_client, b.data(), b.size()); }
};

void open(SessionTable& t, const Conn& c, uint64_t now = 0) {
  t.apply(c.ev(EventKind::kSynOption, true), now);
  t.apply(c.ev(EventKind::kSynAckOption, false), now);
}

TEST(SmcSession, SmcrV1Handshake) {
  SessionTable t({.capacity = 16});
  Conn c(40001);
  open(t, c, 1);
  const Session* s = t.find(c.c);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->state, State::kSynAck);
  EXPECT_EQ(t.find(c.c.reversed()), s);  // either direction finds it
  const Message prop = proposal(1, Path::kR);
  const Message acc = accept_confirm(MsgType::kAccept, 1, Path::kR, true);
  Message conf = accept_confirm(MsgType::kConfirm, 1, Path::kR, true);
  conf.accept_confirm.r.qpn = 0x000777;
  conf.accept_confirm.r.rkey = 0x12345678;
  conf.accept_confirm.r.mac[5] = 0x01;
  t.apply(c.data(true, encode(prop)), 2);
  EXPECT_EQ(s->state, State::kProposal);
  t.apply(c.data(false, encode(acc)), 3);
  EXPECT_EQ(s->state, State::kAccept);
  t.apply(c.data(true, encode(conf)), 4);
  EXPECT_EQ(s->state, State::kConfirm);
  EXPECT_TRUE(s->smc_active());
  EXPECT_EQ(s->error, nullptr);
  EXPECT_EQ(s->client_vport, kVm1);
  EXPECT_EQ(s->server_vport, kVm2);
  EXPECT_EQ(s->version, 1);
  EXPECT_EQ(s->path, Path::kR);
  EXPECT_EQ(s->clc_messages, 3u);
  EXPECT_EQ(s->bytes[0], 92u + 68u);
  EXPECT_EQ(s->bytes[1], 68u);
  EXPECT_EQ(s->first_ns, 1u);
  EXPECT_EQ(s->last_ns, 4u);
  // Server: the Accept's QP, rkey, VA, MAC, GID. Client: the Proposal's MAC/GID, then the Confirm's QP and rkey.
  EXPECT_TRUE(s->server_id.has_qp);
  EXPECT_EQ(s->server_id.qpn, 0xabcdefu);
  EXPECT_EQ(s->server_id.rkey, 0xdeadbeefu);
  EXPECT_EQ(s->server_id.rmb_va, 0x00007f0012345000ull);
  EXPECT_EQ(0, std::memcmp(s->server_id.roce_mac, acc.accept_confirm.r.mac, 6));
  EXPECT_EQ(0, std::memcmp(s->server_id.smcr_gid, acc.accept_confirm.r.gid, 16));
  EXPECT_EQ(s->client_id.qpn, 0x777u);
  EXPECT_EQ(s->client_id.rkey, 0x12345678u);
  EXPECT_EQ(0, std::memcmp(s->client_id.roce_mac, conf.accept_confirm.r.mac, 6));
  EXPECT_TRUE(s->has_ip_area);
  EXPECT_EQ(s->ip.ipv4_subnet, 0xc6120000u);
  EXPECT_EQ(t.counters().clc_parsed, 3u);
  EXPECT_EQ(t.counters().created, 1u);
  // Later data (the application's) is not looked at.
  const std::string http = "GET / HTTP/1.1\r\n";
  t.apply(c.data(true, reinterpret_cast<const uint8_t*>(http.data()), http.size()), 5);
  EXPECT_EQ(s->state, State::kConfirm);
  EXPECT_EQ(t.counters().clc_not_clc, 0u);
}

TEST(SmcSession, SmcdV2Handshake) {
  SessionTable t({.capacity = 16});
  Conn c(40002);
  open(t, c);
  Message prop = proposal(2, Path::kNone, Path::kD);
  prop.proposal.ip = {};
  add_v2(prop, 0, 2);
  prop.proposal.smcd_v2.ism[0] = GidChid{0x1111, 0xffff};
  prop.proposal.smcd_v2.ism[1] = GidChid{0x2222, 0xffff};
  Message acc = accept_confirm(MsgType::kAccept, 2, Path::kD, true);
  Message conf = accept_confirm(MsgType::kConfirm, 2, Path::kD, true);
  conf.accept_confirm.d.dmb_token = 0x0102030405060708ull;
  conf.accept_confirm.d.ism_gid = 0x1111;
  conf.accept_confirm.d.chid = 0xffff;
  conf.accept_confirm.d.gid_ext = 0x2222;
  t.apply(c.data(true, encode(prop)), 1);
  t.apply(c.data(false, encode(acc)), 2);
  t.apply(c.data(true, encode(conf)), 3);
  const Session* s = t.find(c.c);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->state, State::kConfirm) << (s->error ? s->error : "");
  EXPECT_EQ(s->version, 2);
  EXPECT_EQ(s->path, Path::kD);
  EXPECT_TRUE(s->server_id.has_dmb);
  EXPECT_EQ(s->server_id.dmb_token, 0xfedcba9876543210ull);
  EXPECT_EQ(s->client_id.dmb_token, 0x0102030405060708ull);
  // The Confirm's emulated-ISM GID (gid + gid_ext) replaces the Proposal's offers on the client side.
  ASSERT_EQ(s->client_id.ism_count, 1);
  EXPECT_EQ(s->client_id.ism[0].gid, 0x1111u);
  EXPECT_EQ(s->client_id.ism[0].gid_ext, 0x2222u);
  EXPECT_TRUE(s->client_id.ism[0].emulated);
  ASSERT_EQ(s->server_id.ism_count, 1);
  EXPECT_EQ(s->server_id.ism[0].gid, 0x0123456789abcdefull);
  EXPECT_FALSE(s->has_ip_area);
}

TEST(SmcSession, DeclineAndFallbacks) {
  SessionTable t({.capacity = 16});
  Conn c(40003);
  open(t, c);
  t.apply(c.data(true, encode(proposal(2, Path::kR, Path::kR))), 1);
  t.apply(c.data(false, encode(decline(2, Path::kR, kDeclNoSmcDev))), 2);
  const Session* s = t.find(c.c);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->state, State::kDeclined);
  EXPECT_FALSE(s->smc_active());
  EXPECT_EQ(s->decline_code, kDeclNoSmcDev);
  EXPECT_TRUE(s->declined_by_server);
  EXPECT_EQ(t.counters().declines, 1u);

  // SYN-ACK without the option: plain TCP.
  Conn p(40004);
  t.apply(p.ev(EventKind::kSynOption, true), 0);
  t.apply(p.ev(EventKind::kSynAckPlain, false), 0);
  EXPECT_EQ(t.find(p.c)->state, State::kFallback);

  // Non-CLC data where the Proposal was due.
  Conn h(40005);
  open(t, h);
  const std::string http = "GET / HTTP/1.1\r\n";
  t.apply(h.data(true, reinterpret_cast<const uint8_t*>(http.data()), http.size()), 0);
  EXPECT_EQ(t.find(h.c)->state, State::kFallback);
  EXPECT_EQ(t.counters().clc_not_clc, 1u);
  EXPECT_STREQ(t.find(h.c)->error, "clc: data that is not a CLC message");
}

TEST(SmcSession, SplitAcrossSegmentsAndRetransmits) {
  const Bytes prop = encode(proposal(1, Path::kBoth));  // 92 bytes
  for (size_t cut = 1; cut < prop.size(); ++cut) {
    SessionTable t({.capacity = 4});
    Conn c(40010);
    open(t, c);
    const Event first = c.data(true, prop.data(), cut);
    t.apply(first, 0);
    EXPECT_EQ(t.find(c.c)->state, State::kSynAck) << cut;
    t.apply(first, 0);  // retransmission of the first part: ignored
    t.apply(c.data(true, prop.data() + cut, prop.size() - cut), 0);
    ASSERT_EQ(t.find(c.c)->state, State::kProposal) << cut;
    EXPECT_EQ(t.counters().clc_duplicate, 1u);
    EXPECT_EQ(t.counters().clc_parsed, 1u);
  }
  // A retransmission that overlaps the old bytes and carries new ones is trimmed.
  SessionTable t({.capacity = 4});
  Conn c(40011);
  open(t, c);
  t.apply(c.data(true, prop.data(), 30), 0);
  c.seq[0] -= 10;
  t.apply(c.data(true, prop.data() + 20, prop.size() - 20), 0);
  EXPECT_EQ(t.find(c.c)->state, State::kProposal);
}

TEST(SmcSession, GapAndShortCopy) {
  const Bytes prop = encode(proposal(1, Path::kR));
  {
    SessionTable t({.capacity = 4});
    Conn c(40020);
    open(t, c);
    t.apply(c.data(true, prop.data(), 40), 0);
    c.seq[0] += 8;  // 8 bytes lost
    t.apply(c.data(true, prop.data() + 48, prop.size() - 48), 0);
    const Session* s = t.find(c.c);
    EXPECT_EQ(s->state, State::kFallback);  // the bytes after the gap do not start a CLC message
    EXPECT_EQ(t.counters().clc_incomplete, 1u);
  }
  {
    // The largest Proposal (652 bytes) in one segment: only 256 bytes are copied.
    Message m = proposal(2, Path::kBoth, Path::kBoth);
    add_ipv6(m, 8);
    add_v2(m, 8, 8);
    const Bytes big = encode(m);
    SessionTable t({.capacity = 4});
    Conn c(40021);
    open(t, c);
    t.apply(c.data(true, big), 0);
    const Session* s = t.find(c.c);
    EXPECT_EQ(s->state, State::kSynAck);
    EXPECT_EQ(t.counters().clc_incomplete, 1u);
    EXPECT_STREQ(s->error, "clc: segment longer than the copied bytes");
  }
}

TEST(SmcSession, TwoMessagesInOneSegment) {
  SessionTable t({.capacity = 4});
  Conn c(40030);
  open(t, c);
  Bytes both = encode(proposal(1, Path::kR));
  const Bytes d = encode(decline(1, Path::kR, kDeclPeerDecl));
  both.insert(both.end(), d.begin(), d.end());
  t.apply(c.data(true, both), 0);
  const Session* s = t.find(c.c);
  EXPECT_EQ(s->state, State::kDeclined);
  EXPECT_EQ(s->decline_code, kDeclPeerDecl);
  EXPECT_FALSE(s->declined_by_server);
  EXPECT_EQ(s->clc_messages, 2u);
}

TEST(SmcSession, InvalidAndUnexpectedMessages) {
  SessionTable t({.capacity = 4});
  Conn c(40040);
  open(t, c);
  Bytes bad = encode(proposal(1, Path::kR));
  bad[bad.size() - 1] ^= 1;  // trailer
  t.apply(c.data(true, bad), 0);
  const Session* s = t.find(c.c);
  EXPECT_EQ(s->state, State::kSynAck);
  EXPECT_EQ(t.counters().clc_invalid, 1u);
  EXPECT_STREQ(s->error, "trailer.eyecatcher: neither SMCR nor SMCD");
  // An Accept from the client is out of place.
  t.apply(c.data(true, encode(accept_confirm(MsgType::kAccept, 1, Path::kR, false))), 0);
  EXPECT_EQ(s->state, State::kSynAck);
  EXPECT_EQ(t.counters().clc_unexpected, 1u);
  // A Confirm on the other path than the Accept.
  t.apply(c.data(true, encode(proposal(1, Path::kBoth))), 0);
  t.apply(c.data(false, encode(accept_confirm(MsgType::kAccept, 1, Path::kR, false))), 0);
  t.apply(c.data(true, encode(accept_confirm(MsgType::kConfirm, 1, Path::kD, false))), 0);
  EXPECT_EQ(s->state, State::kAccept);
  EXPECT_EQ(t.counters().clc_unexpected, 2u);
  EXPECT_STREQ(s->error, "clc: confirm on another path than the accept");
  // Events for connections the table does not track.
  Conn other(40041);
  t.apply(other.ev(EventKind::kSynAckOption, false), 0);
  t.apply(other.data(true, encode(proposal(1, Path::kR))), 0);
  EXPECT_EQ(t.counters().no_session, 2u);
  EXPECT_EQ(t.find(other.c), nullptr);
}

TEST(SmcSession, EndsOnFinRstAndIdle) {
  SessionTable t({.capacity = 8, .idle_timeout_ns = 10 * kSec});
  Conn a(40050), b(40051), c(40052);
  open(t, a, 0);
  open(t, b, 0);
  open(t, c, 0);
  EXPECT_EQ(t.size(), 3u);
  t.apply(a.ev(EventKind::kFin, true), 1);
  EXPECT_NE(t.find(a.c), nullptr);  // half closed
  t.apply(a.ev(EventKind::kFin, false), 1);
  EXPECT_EQ(t.find(a.c), nullptr);
  t.apply(b.ev(EventKind::kRst, false), 1);
  EXPECT_EQ(t.find(b.c), nullptr);
  EXPECT_EQ(t.counters().ended_fin, 1u);
  EXPECT_EQ(t.counters().ended_rst, 1u);
  t.apply(c.data(true, encode(proposal(1, Path::kR))), 5 * kSec);
  EXPECT_EQ(t.age(14 * kSec), 0u);  // idle 9 s
  EXPECT_EQ(t.age(16 * kSec), 1u);  // idle 11 s
  EXPECT_EQ(t.find(c.c), nullptr);
  EXPECT_EQ(t.size(), 0u);
  EXPECT_EQ(t.counters().aged, 1u);
}

TEST(SmcSession, BoundedWithOverflowAndChurn) {
  SessionTable t({.capacity = 4});
  std::vector<Conn> conns;
  for (uint16_t i = 0; i < 5; ++i) conns.emplace_back(static_cast<uint16_t>(41000 + i));
  for (const Conn& c : conns) t.apply(c.ev(EventKind::kSynOption, true), 0);
  EXPECT_EQ(t.size(), 4u);
  EXPECT_EQ(t.counters().overflow, 1u);
  EXPECT_EQ(t.find(conns[4].c), nullptr);
  t.apply(conns[0].ev(EventKind::kRst, true), 0);
  t.apply(conns[4].ev(EventKind::kSynOption, true), 0);
  EXPECT_NE(t.find(conns[4].c), nullptr);
  EXPECT_EQ(t.size(), 4u);
  // Churn: many connections through a small table (tombstones, index rebuilds); every live one is found.
  SessionTable u({.capacity = 8});
  std::vector<FiveTuple> live;
  for (uint32_t i = 0; i < 20000; ++i) {
    Event e;
    e.tuple = tuple(static_cast<uint16_t>(i), static_cast<uint8_t>(1 + i % 200));
    e.kind = EventKind::kSynOption;
    u.apply(e, i);
    live.push_back(e.tuple);
    if (live.size() > 6) {
      Event r;
      r.tuple = live.front();
      r.kind = EventKind::kRst;
      u.apply(r, i);
      ASSERT_EQ(u.find(live.front()), nullptr) << i;
      live.erase(live.begin());
    }
    for (const FiveTuple& l : live) ASSERT_NE(u.find(l), nullptr) << i;
  }
  EXPECT_EQ(u.size(), 6u);
  EXPECT_EQ(u.counters().overflow, 0u);
  size_t n = 0;
  u.for_each([&](const Session&) { ++n; });
  EXPECT_EQ(n, 6u);
}

TEST(SmcSession, TupleReuseStartsOver) {
  SessionTable t({.capacity = 4});
  Conn c(40070);
  open(t, c, 1);
  t.apply(c.ev(EventKind::kSynOption, true), 2);  // a retransmitted SYN changes nothing
  EXPECT_EQ(t.find(c.c)->state, State::kSynAck);
  EXPECT_EQ(t.counters().created, 1u);
  t.apply(c.data(true, encode(proposal(1, Path::kR))), 3);
  t.apply(c.data(false, encode(decline(1, Path::kR, kDeclNoSmcDev))), 4);
  EXPECT_EQ(t.find(c.c)->state, State::kDeclined);
  // The same tuple opens again (no FIN/RST seen for the first connection): a fresh session.
  t.apply(c.ev(EventKind::kSynOption, true), 10);
  const Session* s = t.find(c.c);
  EXPECT_EQ(s->state, State::kSyn);
  EXPECT_EQ(s->decline_code, 0u);
  EXPECT_EQ(s->clc_messages, 0u);
  EXPECT_EQ(s->first_ns, 10u);
  EXPECT_FALSE(s->stream[0].started);
  EXPECT_EQ(t.counters().created, 2u);
  EXPECT_EQ(t.size(), 1u);
}

TEST(SmcSession, Ipv6Tuple) {
  SessionTable t({.capacity = 4});
  FiveTuple c;
  c.family = 6;
  const uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  const uint8_t b[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  std::memcpy(c.src, a, 16);
  std::memcpy(c.dst, b, 16);
  c.sport = 40060;
  c.dport = 5000;
  Event e;
  e.tuple = c;
  e.kind = EventKind::kSynOption;
  t.apply(e, 0);
  FiveTuple v4 = c;
  v4.family = 4;
  EXPECT_NE(t.find(c.reversed()), nullptr);
  EXPECT_EQ(t.find(v4), nullptr);
  EXPECT_STREQ(to_string(t.find(c)->state), "syn");
}

// The worker refused a message (a foreign identity, dataplane/fastpath/smc_identity.h): the session is refused with
// the reason and side, is no longer active (no grants), ignores later CLC bytes and still ends on FIN/RST.
TEST(SmcSession, RefusedByTheWorker) {
  SessionTable t({.capacity = 16});
  Conn c(40100);
  open(t, c, 1);
  const Session* s = t.find(c.c);
  ASSERT_NE(s, nullptr);
  const Bytes prop = encode(proposal(1, Path::kR));
  t.apply(c.data(true, prop.data(), 40), 2);  // the first part passed the switch
  EXPECT_EQ(s->state, State::kSynAck);
  Event rest = c.data(true, prop.data() + 40, prop.size() - 40);
  rest.refused = Refusal::kForeignMac;  // the worker dropped the part that completed it
  t.apply(rest, 3);
  EXPECT_EQ(s->state, State::kRefused);
  EXPECT_EQ(s->refused, Refusal::kForeignMac);
  EXPECT_TRUE(s->refused_client);
  EXPECT_FALSE(s->smc_active());
  EXPECT_EQ(t.counters().refused, 1u);
  EXPECT_EQ(t.counters().clc_parsed, 0u) << "a refused message is not taken";
  EXPECT_STREQ(to_string(s->state), "refused");
  EXPECT_STREQ(to_string(s->refused), "foreign_mac");
  // Later CLC bytes change nothing (an Accept cannot grant after a refusal).
  t.apply(c.data(false, encode(accept_confirm(MsgType::kAccept, 1, Path::kR, true))), 4);
  EXPECT_EQ(s->state, State::kRefused);
  EXPECT_FALSE(s->server_id.has_qp);
  t.apply(c.ev(EventKind::kRst, false), 5);
  EXPECT_EQ(t.find(c.c), nullptr);
}

}  // namespace
}  // namespace esw::smc
