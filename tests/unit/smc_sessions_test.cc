// The main lcore's SMC session table (dataplane/daemon/smc_sessions.h) on event records as the workers send
// them: handshake states, CLC fields and their direction rules, grants, ending, ageing, untrusted lengths.
#include "dataplane/daemon/smc_sessions.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "dataplane/fastpath/proto.h"

namespace esw::dp {
namespace {

using Clock = SmcSessionTable::Clock;
constexpr uint16_t kClientPort = 3, kServerPort = 7;  // switch port indexes

std::string name_of(uint16_t i) { return i == kClientPort ? "vm1" : i == kServerPort ? "vm2" : ""; }

SmcEvent event(SmcEventType type, bool from_client) {
  SmcEvent e{};
  e.type = type;
  e.ip_version = 4;
  const uint8_t c[4] = {198, 18, 0, 1}, s[4] = {198, 18, 0, 2};
  std::memcpy(e.src, from_client ? c : s, 4);
  std::memcpy(e.dst, from_client ? s : c, 4);
  e.sport = to_be16(from_client ? 40000 : 5000);
  e.dport = to_be16(from_client ? 5000 : 40000);
  e.in_port = from_client ? kClientPort : kServerPort;
  return e;
}

// An SMC-R v1 Accept (2) / Confirm (3): 68 bytes, QPN at 38, rkey at 41, MAC at 32.
SmcEvent clc_r(uint8_t type, bool from_client, uint32_t qpn, uint32_t rkey, uint16_t length = 68) {
  SmcEvent e = event(SmcEventType::kClc, from_client);
  uint8_t* m = e.payload;
  std::memcpy(m, kClcEyecatcherR, 4);
  m[4] = type;
  m[5] = static_cast<uint8_t>(length >> 8);
  m[6] = static_cast<uint8_t>(length);
  m[7] = 0x18;  // v1, first contact, SMC-R
  const uint8_t mac[6] = {2, 0, 0xc6, 0x12, 0, static_cast<uint8_t>(from_client ? 1 : 2)};
  std::memcpy(m + 32, mac, 6);
  m[38] = static_cast<uint8_t>(qpn >> 16);
  m[39] = static_cast<uint8_t>(qpn >> 8);
  m[40] = static_cast<uint8_t>(qpn);
  for (int i = 0; i < 4; ++i) m[41 + i] = static_cast<uint8_t>(rkey >> (24 - 8 * i));
  if (length >= 4 && length <= kSmcEventPayload) std::memcpy(m + length - 4, kClcEyecatcherR, 4);
  e.payload_len = 68;
  e.segment_len = 68;
  return e;
}

const SmcSession& only(const SmcSessionTable& t) {
  EXPECT_EQ(t.sessions().size(), 1u);
  return t.sessions().begin()->second;
}

TEST(SmcSessions, HandshakeAndClcExchangeGrantBothDirections) {
  SmcSessionTable t(std::chrono::seconds(10));
  const auto now = Clock::now();
  t.on_event(event(SmcEventType::kSyn, true), now, name_of);
  EXPECT_EQ(only(t).state, SmcSession::State::kSyn);
  EXPECT_EQ(only(t).client.vport, "vm1");
  t.on_event(event(SmcEventType::kSynAck, false), now, name_of);
  EXPECT_EQ(only(t).state, SmcSession::State::kSynAck);
  EXPECT_EQ(only(t).server.vport, "vm2");
  t.on_event(clc_r(2, false, 0x111, 0xaabbccdd), now, name_of);
  EXPECT_FALSE(only(t).granted()) << "no grant before the Confirm";
  t.on_event(clc_r(3, true, 0x222, 0x11223344), now, name_of);
  const SmcSession& s = only(t);
  EXPECT_EQ(s.state, SmcSession::State::kConfirm);
  EXPECT_EQ(s.path, 'R');
  EXPECT_EQ(s.version, 1);
  EXPECT_EQ(s.server.qpn, 0x111u);
  EXPECT_EQ(s.server.rkey, 0xaabbccddu);
  EXPECT_EQ(s.client.qpn, 0x222u);
  EXPECT_TRUE(s.granted());
  SmcView v;
  t.build_view(v);
  EXPECT_TRUE(v.qps.contains(roce_qp_grant(kClientPort, kServerPort, 0x111)));
  EXPECT_TRUE(v.qps.contains(roce_qp_grant(kServerPort, kClientPort, 0x222)));
  EXPECT_FALSE(v.qps.contains(roce_qp_grant(kClientPort, kServerPort, 0x222)));
  EXPECT_TRUE(v.rkeys.contains(roce_rkey_grant(kClientPort, kServerPort, 0xaabbccdd)));
  EXPECT_FALSE(v.rkeys.contains(roce_rkey_grant(kServerPort, kClientPort, 0xaabbccdd)));
  EXPECT_EQ(v.flows.size(), 1u);

  // FIN ends the session: no flows, no grants.
  t.on_event(event(SmcEventType::kFin, true), now, name_of);
  EXPECT_EQ(only(t).state, SmcSession::State::kClosed);
  t.build_view(v);
  EXPECT_EQ(v.qps.size(), 0u);
  EXPECT_EQ(v.flows.size(), 0u);
}

TEST(SmcSessions, ClcFromTheWrongSideOrWithBadLengthsChangesNothing) {
  SmcSessionTable t;
  const auto now = Clock::now();
  t.on_event(event(SmcEventType::kSyn, true), now, name_of);
  t.on_event(clc_r(2, true, 0x1, 0x1), now, name_of);  // an Accept from the client
  t.on_event(clc_r(3, false, 0x1, 0x1), now, name_of);  // a Confirm from the server
  EXPECT_EQ(only(t).state, SmcSession::State::kSyn);
  EXPECT_EQ(t.counters().clc_invalid, 2u);
  for (uint16_t bad_len : {uint16_t{0}, uint16_t{11}, uint16_t{40}, uint16_t{69}, uint16_t{1000}}) {
    t.on_event(clc_r(2, false, 0x5, 0x5, bad_len), now, name_of);
  }
  SmcEvent no_trailer = clc_r(2, false, 0x5, 0x5);
  no_trailer.payload[64] = 0;
  t.on_event(no_trailer, now, name_of);
  SmcEvent short_copy = clc_r(2, false, 0x5, 0x5);
  short_copy.payload_len = 44;  // the rkey lies past the copied bytes
  t.on_event(short_copy, now, name_of);
  EXPECT_EQ(only(t).state, SmcSession::State::kSyn);
  EXPECT_FALSE(only(t).server.clc_seen);
  EXPECT_EQ(t.counters().clc_invalid, 9u);
  // A CLC message for a flow nobody opened is an orphan, not a session.
  SmcEvent other = clc_r(2, false, 1, 1);
  other.sport = to_be16(5001);
  t.on_event(other, now, name_of);
  EXPECT_EQ(t.sessions().size(), 1u);
  EXPECT_EQ(t.counters().clc_orphan, 1u);
}

TEST(SmcSessions, DeclineEndsIdleSessionsAgeOutPortsThatWentAwayEndSessions) {
  SmcSessionTable t(std::chrono::seconds(5), std::chrono::seconds(2));
  const auto t0 = Clock::now();
  t.on_event(event(SmcEventType::kSyn, true), t0, name_of);
  SmcEvent d = event(SmcEventType::kClc, false);
  std::memcpy(d.payload, kClcEyecatcherR, 4);
  d.payload[4] = 4;
  d.payload[6] = 28;
  d.payload[7] = 0x10;
  const uint8_t code[4] = {0x03, 0x03, 0x00, 0x00};
  std::memcpy(d.payload + 16, code, 4);
  std::memcpy(d.payload + 24, kClcEyecatcherR, 4);
  d.payload_len = d.segment_len = 28;
  t.on_event(d, t0, name_of);
  EXPECT_EQ(only(t).state, SmcSession::State::kDeclined);
  EXPECT_EQ(only(t).decline_code, 0x03030000u);
  t.expire(t0 + std::chrono::seconds(1));
  EXPECT_EQ(t.sessions().size(), 1u) << "an ended session lingers for show";
  t.expire(t0 + std::chrono::seconds(3));
  EXPECT_EQ(t.sessions().size(), 0u);

  t.on_event(event(SmcEventType::kSyn, true), t0, name_of);
  t.on_event(event(SmcEventType::kSynAck, false), t0 + std::chrono::seconds(3), name_of);
  EXPECT_FALSE(t.expire(t0 + std::chrono::seconds(7)));  // idle 4 s < 5 s
  EXPECT_TRUE(t.expire(t0 + std::chrono::seconds(8)));
  EXPECT_EQ(t.sessions().size(), 0u);
  EXPECT_EQ(t.counters().sessions_expired, 1u);

  t.on_event(event(SmcEventType::kSyn, true), t0, name_of);
  t.on_event(event(SmcEventType::kSynAck, false), t0, name_of);
  EXPECT_FALSE(t.forget_ports(name_of));
  EXPECT_TRUE(t.forget_ports([](uint16_t i) { return i == kClientPort ? std::string("vm9") : name_of(i); }));
  EXPECT_EQ(only(t).state, SmcSession::State::kClosed);
}

}  // namespace
}  // namespace esw::dp
