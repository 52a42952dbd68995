// SMC CLC codec tests: build -> parse -> equal for every message kind, version and path; byte-exact layouts
// against the offsets in shared/design/SMC-NOTES.md; every prefix of every message (exact-size heap copies, so
// the ASan build catches any overread); bad eyecatchers, counts, offsets and lengths give their reason; the
// classifier helpers (probe across two segments, the TCP option).

#include "dataplane/smc/clc.h"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/smc_clc_cases.h"

namespace esw::smc {
namespace {

using Bytes = std::vector<uint8_t>;
using namespace esw::smc::cases;  // NOLINT: test vocabulary

// ---- helpers ------------------------------------------------------------------------------------------------

Bytes encode(const Message& m) {
  Bytes b(kMaxMsgLen);
  const Result r = build(m, b);
  EXPECT_TRUE(r.ok()) << r.reason;
  b.resize(r.size);
  EXPECT_EQ(r.size, encoded_size(m));
  return b;
}

// Parses bytes [0, len) from a heap block of exactly len bytes into a Message pre-filled with garbage.
Result decode(const Bytes& b, size_t len, Message& out) {
  std::unique_ptr<uint8_t[]> buf(new uint8_t[len == 0 ? 1 : len]);
  if (len != 0) std::memcpy(buf.get(), b.data(), len);
  std::memset(static_cast<void*>(&out), 0x5a, sizeof out);
  return parse(std::span<const uint8_t>(buf.get(), len), out);
}
Result decode(const Bytes& b, Message& out) { return decode(b, b.size(), out); }

// What parse() reports beyond what build() takes: the derived fields.
Message expected_after_parse(Message m, uint16_t len) {
  m.hdr.length = len;
  const bool d_catcher = m.hdr.type != MsgType::kProposal && m.hdr.typev1 == Path::kD;
  m.hdr.smcd_eyecatcher = m.hdr.smcd_trailer = d_catcher;
  if (m.hdr.type == MsgType::kProposal) {
    m.hdr.flag = false;
    if (m.hdr.version == 1) m.hdr.typev2 = Path::kNone;
    Proposal& p = m.proposal;
    p.iparea_offset = p.smcd_area ? 40 : 0;
    p.has_ip_area = m.hdr.version == 1 || m.hdr.typev1 != Path::kNone;
    p.has_v2_ext = m.hdr.version == 2 && m.hdr.typev2 != Path::kNone;
    p.has_smcd_v2_ext = m.hdr.version == 2 && (m.hdr.typev2 == Path::kD || m.hdr.typev2 == Path::kBoth);
  } else {
    m.hdr.typev2 = Path::kNone;  // only a v2 Proposal has typev2
    if (m.hdr.type != MsgType::kDecline) {
      FirstContactExt& f = m.accept_confirm.fce;
      f.present = m.hdr.version == 2 && m.hdr.flag;
      const bool r = m.hdr.typev1 == Path::kR;
      f.v2x = f.present && (f.release >= 1 || (r && (f.v2x || m.hdr.type == MsgType::kConfirm)));
    }
  }
  return m;
}

// ---- round trips --------------------------------------------------------------------------------------------

TEST(SmcClc, RoundTripEveryKind) {
  std::set<std::string> kinds;
  for (const Case& c : all_cases()) {
    SCOPED_TRACE(c.name);
    const Bytes b = encode(c.msg);
    ASSERT_EQ(b.size(), c.len);
    Message out;
    const Result r = decode(b, out);
    ASSERT_TRUE(r.ok()) << r.reason << " at " << r.offset;
    EXPECT_EQ(r.size, c.len);
    const Message want = expected_after_parse(c.msg, c.len);
    EXPECT_TRUE(out.hdr == want.hdr);
    switch (c.msg.hdr.type) {
      case MsgType::kProposal: EXPECT_TRUE(out.proposal == want.proposal); break;
      case MsgType::kAccept:
      case MsgType::kConfirm: EXPECT_TRUE(out.accept_confirm == want.accept_confirm); break;
      case MsgType::kDecline: EXPECT_TRUE(out.decline == want.decline); break;
    }
    EXPECT_TRUE(out == want);  // and nothing else was written
    EXPECT_EQ(encode(out), b);  // parse -> build gives the same bytes
    const Probe pr = probe(b);
    EXPECT_EQ(pr.kind, ProbeKind::kClc);
    EXPECT_EQ(pr.msg_len, c.len);
    EXPECT_EQ(pr.type, c.msg.hdr.type);
    kinds.insert(std::string(to_string(c.msg.hdr.type)) + std::to_string(c.msg.hdr.version) +
                 to_string(c.msg.hdr.typev1));
  }
  // Every type x version x {R, D} is covered (Proposals also B and N).
  for (const char* t : {"proposal", "accept", "confirm", "decline"})
    for (const char* v : {"1", "2"})
      for (const char* p : {"R", "D"}) {
        if (std::string(t) == "proposal" && std::string(v) == "2" && std::string(p) == "D") continue;  // N/D
        EXPECT_TRUE(kinds.count(std::string(t) + v + p)) << t << v << p;
      }
}

// Random messages of every kind: build -> parse -> build is the identity on bytes.
TEST(SmcClc, RandomRoundTrip) {
  std::mt19937 rng(12345);
  auto byte = [&] { return static_cast<uint8_t>(rng()); };
  int built = 0;
  for (int i = 0; i < 20000; ++i) {
    Message m;
    m.hdr.type = static_cast<MsgType>(1 + rng() % 4);
    m.hdr.version = static_cast<uint8_t>(1 + rng() % 2);
    m.hdr.typev1 = static_cast<Path>(rng() % 4);
    m.hdr.typev2 = static_cast<Path>(rng() % 4);
    m.hdr.flag = rng() % 2;
    auto* raw = reinterpret_cast<uint8_t*>(&m.proposal);
    for (size_t k = 0; k < sizeof m.proposal; ++k) raw[k] = byte();
    m.proposal.smcd_area = rng() % 4 != 0;
    m.proposal.ip.ipv4_prefix_len = static_cast<uint8_t>(rng() % 33);
    m.proposal.ip.ipv6_count = static_cast<uint8_t>(rng() % 9);
    for (auto& p : m.proposal.ip.ipv6) p.len = static_cast<uint8_t>(rng() % 129);
    m.proposal.v2.eid_count = static_cast<uint8_t>(rng() % 9);
    m.proposal.v2.ism_count = static_cast<uint8_t>(rng() % 9);
    m.proposal.v2.release &= 0x0f;
    m.proposal.v2.seid_present = rng() % 2;  // bools must hold 0/1 (random bytes would be UB)
    m.proposal.has_ip_area = m.proposal.has_v2_ext = m.proposal.has_smcd_v2_ext = false;
    for (auto& g : m.proposal.smcd_v2.ism) g.chid &= 0xfeff;  // no emulated CHIDs (pairs are tested above)
    auto* ac = reinterpret_cast<uint8_t*>(&m.accept_confirm);
    for (size_t k = 0; k < sizeof m.accept_confirm; ++k) ac[k] = byte();
    m.accept_confirm.fce.gid_count = static_cast<uint8_t>(rng() % 9);
    m.accept_confirm.fce.release &= 0x0f;
    m.accept_confirm.fce.v2_direct = rng() % 2;
    m.accept_confirm.fce.present = m.accept_confirm.fce.v2x = false;
    m.accept_confirm.fce.os_type &= 0x0f;
    m.accept_confirm.r.qpn &= 0xffffff;
    m.accept_confirm.r.psn &= 0xffffff;
    m.accept_confirm.r.rmbe_size &= 0x0f;
    m.accept_confirm.r.qp_mtu &= 0x0f;
    m.accept_confirm.d.dmbe_size &= 0x0f;
    m.decline.os_type = static_cast<uint8_t>(rng() % 16);
    m.decline.diag = rng();
    Bytes b(kMaxMsgLen);
    const Result r = build(m, b);
    if (!r.ok()) {
      ASSERT_EQ(r.status, Status::kBadInput) << r.reason;
      continue;
    }
    ++built;
    b.resize(r.size);
    Message out;
    const Result p = decode(b, out);
    ASSERT_TRUE(p.ok()) << "iteration " << i << ": " << p.reason << " at " << p.offset;
    const Bytes again = encode(out);
    ASSERT_EQ(again.size(), b.size()) << "iteration " << i;
    for (size_t k = 0; k < b.size(); ++k) ASSERT_EQ(again[k], b[k]) << "iteration " << i << " byte " << k;
  }
  EXPECT_GT(built, 10000);
}

// ---- byte-exact layouts (SMC-NOTES.md offsets) ----------------------------------------------------------------

TEST(SmcClc, ProposalV1Bytes) {
  const Bytes b = encode(proposal(1, Path::kR));
  ASSERT_EQ(b.size(), 92u);  // "92-byte v1 message as current Linux sends"
  EXPECT_EQ(Bytes(b.begin(), b.begin() + 8), (Bytes{0xe2, 0xd4, 0xc3, 0xd9, 1, 0, 92, 0x10}));
  EXPECT_EQ(b[8], 2);                                    // peer id at 8 (fill seed 1: 1 + 0 + 1)
  EXPECT_EQ(b[32], 0x02);                                // RoCE MAC at 32
  EXPECT_EQ(b[37], 0x01);
  EXPECT_EQ(b[38], 0);                                   // iparea_offset 40 at 38
  EXPECT_EQ(b[39], 40);
  EXPECT_EQ(Bytes(b.begin() + 40, b.begin() + 50),       // ISM GID at 40, CHID at 48
            (Bytes{0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x01, 0x02}));
  EXPECT_EQ(Bytes(b.begin() + 80, b.begin() + 88), (Bytes{198, 18, 0, 0, 24, 0, 0, 0}));  // IP area at 80
  EXPECT_EQ(Bytes(b.begin() + 88, b.end()), (Bytes{0xe2, 0xd4, 0xc3, 0xd9}));
}

TEST(SmcClc, ProposalV2Offsets) {
  Message m = proposal(2, Path::kBoth, Path::kBoth);
  add_ipv6(m, 1);
  add_v2(m, 1, 2);
  const Bytes b = encode(m);
  EXPECT_EQ(b[7], 0x2f);                                 // version 2, typev2 B, typev1 B
  // v2 extension right after the IP area (80 + 8 + 17 = 105): v2_ext_offset = 105 - 52.
  EXPECT_EQ(b[50] << 8 | b[51], 105 - 52);
  EXPECT_EQ(b[105], 1);                                  // eid_cnt
  EXPECT_EQ(b[106], 2);                                  // ism_gid_cnt
  EXPECT_EQ(b[108], 0x11);                               // release 1, SEID present
  // SMC-Dv2 extension after the UEID: 105 + 40 + 32 = 177 = 105 + 8 + smcd_v2_ext_offset.
  EXPECT_EQ(b[111] << 8 | b[112], 177 - 113);
  EXPECT_EQ(std::string(b.begin() + 177, b.begin() + 177 + 4), "IBM-");
  EXPECT_EQ(b[177 + 48], 0xa0);                          // first GID/CHID entry after SEID + 16 reserved
  EXPECT_EQ(b.size(), 177u + 48 + 20 + 4);
}

TEST(SmcClc, SmcrAcceptV1Bytes) {
  const Bytes b = encode(accept_confirm(MsgType::kAccept, 1, Path::kR, true));
  ASSERT_EQ(b.size(), 68u);
  EXPECT_EQ(Bytes(b.begin(), b.begin() + 8), (Bytes{0xe2, 0xd4, 0xc3, 0xd9, 2, 0, 68, 0x18}));
  EXPECT_EQ(Bytes(b.begin() + 32, b.begin() + 38), (Bytes{0x02, 0x00, 0xc6, 0x12, 0x00, 0x02}));  // MAC
  EXPECT_EQ(Bytes(b.begin() + 38, b.begin() + 41), (Bytes{0xab, 0xcd, 0xef}));                    // QPN
  EXPECT_EQ(Bytes(b.begin() + 41, b.begin() + 45), (Bytes{0xde, 0xad, 0xbe, 0xef}));              // rkey
  EXPECT_EQ(b[45], 1);                                                                             // RMBE idx
  EXPECT_EQ(Bytes(b.begin() + 46, b.begin() + 50), (Bytes{1, 2, 3, 4}));                          // alert token
  EXPECT_EQ(b[50], 0x53);                                            // RMBE size hi nibble, MTU lo nibble
  EXPECT_EQ(Bytes(b.begin() + 52, b.begin() + 60), (Bytes{0, 0, 0x7f, 0, 0x12, 0x34, 0x50, 0}));  // VA
  EXPECT_EQ(Bytes(b.begin() + 61, b.begin() + 64), (Bytes{0x12, 0x34, 0x56}));                    // PSN
  EXPECT_EQ(Bytes(b.begin() + 64, b.end()), (Bytes{0xe2, 0xd4, 0xc3, 0xd9}));
}

TEST(SmcClc, SmcdAcceptV2Bytes) {
  Message m = accept_confirm(MsgType::kConfirm, 2, Path::kD, false);
  m.accept_confirm.d.chid = 0xffff;
  m.accept_confirm.d.gid_ext = 0x0102030405060708ull;
  const Bytes b = encode(m);
  ASSERT_EQ(b.size(), 78u);
  EXPECT_EQ(Bytes(b.begin(), b.begin() + 8), (Bytes{0xe2, 0xd4, 0xc3, 0xc4, 3, 0, 78, 0x21}));  // SMCD
  EXPECT_EQ(b[8], 0x01);                                             // ISM GID at 8
  EXPECT_EQ(Bytes(b.begin() + 16, b.begin() + 24), (Bytes{0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10}));
  EXPECT_EQ(b[25], 0x20);                                            // DMBE size hi nibble
  EXPECT_EQ(Bytes(b.begin() + 28, b.begin() + 32), (Bytes{0x11, 0x22, 0x33, 0x44}));  // link id
  EXPECT_EQ(Bytes(b.begin() + 32, b.begin() + 34), (Bytes{0xff, 0xff}));              // CHID
  EXPECT_EQ(std::string(b.begin() + 34, b.begin() + 37), "ESW");                     // EID at 34
  EXPECT_EQ(Bytes(b.begin() + 66, b.begin() + 74), (Bytes{1, 2, 3, 4, 5, 6, 7, 8}));  // gid_ext at 66
  EXPECT_EQ(Bytes(b.begin() + 74, b.end()), (Bytes{0xe2, 0xd4, 0xc3, 0xc4}));
}

TEST(SmcClc, DeclineBytes) {
  Bytes b = encode(decline(1, Path::kR, kDeclPeerNoSmc, true));
  ASSERT_EQ(b.size(), 28u);
  EXPECT_EQ(Bytes(b.begin(), b.begin() + 8), (Bytes{0xe2, 0xd4, 0xc3, 0xd9, 4, 0, 28, 0x18}));
  EXPECT_EQ(Bytes(b.begin() + 16, b.begin() + 21), (Bytes{0x03, 0x01, 0, 0, 0x20}));  // diag, OS type
  b = encode(decline(2, Path::kD, kDeclMaxDmb));
  ASSERT_EQ(b.size(), 44u);
  EXPECT_EQ(Bytes(b.begin() + 24, b.begin() + 32), (Bytes{3, 3, 0, 1, 3, 3, 0, 2}));  // extra codes at 24
  EXPECT_EQ(Bytes(b.begin() + 40, b.end()), (Bytes{0xe2, 0xd4, 0xc3, 0xc4}));
}

// ---- bad input ----------------------------------------------------------------------------------------------

// Every strict prefix of every message is kTruncated (never a crash, never a read past the copy).
TEST(SmcClc, EveryPrefixIsTruncated) {
  for (const Case& c : all_cases()) {
    SCOPED_TRACE(c.name);
    const Bytes b = encode(c.msg);
    for (size_t len = 0; len < b.size(); ++len) {
      Message out;
      const Result r = decode(b, len, out);
      ASSERT_EQ(r.status, Status::kTruncated) << "len " << len << ": " << r.reason;
      const Probe pr = probe(std::span<const uint8_t>(b.data(), len));
      if (len < kHeaderLen) {
        ASSERT_EQ(pr.kind, ProbeKind::kNeedMore) << len;
      } else {
        ASSERT_EQ(pr.kind, ProbeKind::kClc);
        ASSERT_EQ(pr.msg_len, b.size());
      }
    }
  }
}

// The result for a message with one byte changed.
Result mutated(const Bytes& good, size_t at, uint8_t value, Message& out) {
  Bytes b = good;
  b.at(at) = value;
  return decode(b, out);
}

void expect_invalid(const Result& r, uint16_t offset, const char* reason_part) {
  EXPECT_EQ(r.status, Status::kInvalid) << r.reason;
  EXPECT_EQ(r.offset, offset) << r.reason;
  EXPECT_NE(std::string(r.reason).find(reason_part), std::string::npos) << r.reason;
}

TEST(SmcClc, BadHeader) {
  const Bytes good = encode(accept_confirm(MsgType::kAccept, 1, Path::kR, false));
  Message out;
  expect_invalid(mutated(good, 0, 0x00, out), 0, "header.eyecatcher");
  expect_invalid(mutated(good, 3, 0xc5, out), 0, "header.eyecatcher");
  expect_invalid(mutated(good, 4, 5, out), 4, "header.type");
  expect_invalid(mutated(good, 4, 0, out), 4, "header.type");
  expect_invalid(mutated(good, 7, 0x30, out), 7, "header.version");
  expect_invalid(mutated(good, 7, 0x02, out), 7, "header.version");
  expect_invalid(mutated(good, 7, 0x12, out), 7, "neither SMC-R nor SMC-D");  // typev1 N
  expect_invalid(mutated(good, 64, 0xe3, out), 64, "trailer.eyecatcher");
  expect_invalid(mutated(good, 67, 0xd9 ^ 1, out), 64, "trailer.eyecatcher");
  // Length field against the buffer: longer -> truncated; shorter -> trailing bytes; below the type's minimum.
  Result r = mutated(good, 6, 69, out);
  EXPECT_EQ(r.status, Status::kTruncated);
  EXPECT_EQ(r.offset, 5);
  expect_invalid(mutated(good, 6, 64, out), 64, "trailing bytes");
  expect_invalid(mutated(good, 6, 20, out), 5, "below the minimum");
  // Oversized: the same message with bytes appended.
  Bytes big = good;
  big.insert(big.end(), {0xe2, 0xd4, 0xc3, 0xd9});
  expect_invalid(decode(big, out), 68, "trailing bytes");
  // A v1 SMC-R accept must be 68 bytes: one with a v2 length is refused even with a good trailer.
  Message m = accept_confirm(MsgType::kAccept, 2, Path::kR, false);
  Bytes v2 = encode(m);
  v2[7] = 0x10;
  expect_invalid(decode(v2, out), 5, "not 68 bytes");
  v2 = encode(accept_confirm(MsgType::kAccept, 2, Path::kD, false));
  v2[7] = 0x11;
  expect_invalid(decode(v2, out), 5, "not 48 bytes");
}

TEST(SmcClc, BadAcceptConfirmLengths) {
  Message out;
  // SMC-R v2 shorter than 108 (a v1 body with version 2).
  Bytes b = encode(accept_confirm(MsgType::kAccept, 1, Path::kR, false));
  b[7] = 0x20;
  expect_invalid(decode(b, out), 5, "shorter than 108");
  b = encode(accept_confirm(MsgType::kAccept, 1, Path::kD, false));
  b[7] = 0x21;
  expect_invalid(decode(b, out), 5, "shorter than 78");
  // First-contact flag without the extension's bytes.
  b = encode(accept_confirm(MsgType::kAccept, 2, Path::kD, false));
  b[7] |= 0x08;
  expect_invalid(decode(b, out), 74, "first_contact_ext: shorter than 36");
  b = encode(accept_confirm(MsgType::kAccept, 2, Path::kR, false));
  b[7] |= 0x08;
  expect_invalid(decode(b, out), 104, "first_contact_ext: shorter than 36");
  // SMC-D release 1 needs the 52-byte form: cut to 36.
  Message m = accept_confirm(MsgType::kAccept, 2, Path::kD, true);
  m.accept_confirm.fce.release = 0;
  m.accept_confirm.fce.v2x = false;
  b = encode(m);
  ASSERT_EQ(b.size(), 78u + 36);
  b[74 + 1] = static_cast<uint8_t>(kOsLinux << 4 | 1);
  expect_invalid(decode(b, out), 74, "v2.x form (release >= 1) shorter than 52");
  // SMC-Rv2 Confirm: GID list count over 8, and GIDs past the trailer.
  b = encode(accept_confirm(MsgType::kConfirm, 2, Path::kR, true));
  const size_t gl = 104 + 52;
  expect_invalid(mutated(b, gl, 9, out), gl, "gid_list.count > 8");
  expect_invalid(mutated(b, gl, 3, out), gl, "GIDs run past the trailer");
  // ... and the list missing altogether.
  m = accept_confirm(MsgType::kAccept, 2, Path::kR, true);
  b = encode(m);
  b[4] = 3;  // an SMC-R v2 Accept's bytes relabelled Confirm
  expect_invalid(decode(b, out), gl, "gid_list: missing");
  // Declines have fixed lengths.
  b = encode(decline(2, Path::kR, kDeclMem));
  b[7] = 0x10;
  expect_invalid(decode(b, out), 5, "v1 decline is not 28");
  b = encode(decline(1, Path::kR, kDeclMem));
  b[7] = 0x20;
  expect_invalid(decode(b, out), 5, "v2 decline is not 44");
  expect_invalid(mutated(b, 7, 0x13, out), 7, "decline neither");
}

TEST(SmcClc, BadProposalOffsetsAndCounts) {
  Message out;
  Message base = proposal(2, Path::kBoth, Path::kBoth);
  add_ipv6(base, 1);
  add_v2(base, 1, 2);
  const Bytes good = encode(base);
  ASSERT_TRUE(decode(good, out).ok());
  const size_t ip = 80, v2 = 105, sd = 177;
  // iparea_offset
  expect_invalid(mutated(good, 39, 20, out), 38, "1-39 cuts the SMC-D area");
  expect_invalid(mutated(good, 39, 0, out), 38, "0 in a v2 proposal");
  expect_invalid(mutated(good, 38, 0x04, out), 38, "IP area past the trailer");
  // IP area counts
  expect_invalid(mutated(good, ip + 7, 9, out), ip + 7, "ipv6_prefix_count > 8");
  // 8 prefixes would run into the v2 extension: its offset is what is wrong then.
  expect_invalid(mutated(good, ip + 7, 8, out), 50, "overlaps the IP area");
  expect_invalid(mutated(encode(proposal(1, Path::kR)), ip + 7, 1, out), ip + 7, "prefixes run past the trailer");
  expect_invalid(mutated(good, ip + 4, 33, out), ip + 4, "ipv4_prefix_len > 32");
  expect_invalid(mutated(good, ip + 8 + 16, 129, out), ip + 8 + 16, "ipv6_prefix.len > 128");
  // v2_ext_offset: 0, into the IP area, past the trailer
  Bytes b = good;
  b[50] = b[51] = 0;
  expect_invalid(decode(b, out), 50, "v2_ext_offset (50): 0");
  expect_invalid(mutated(good, 51, 40, out), 50, "overlaps the IP area");
  expect_invalid(mutated(good, 50, 0x02, out), 50, "v2 extension past the trailer");
  // v2 extension counts
  expect_invalid(mutated(good, v2, 9, out), v2, "eid_count > 8");
  expect_invalid(mutated(good, v2, 8, out), v2, "UEIDs run past the trailer");
  expect_invalid(mutated(good, v2 + 1, 9, out), v2 + 1, "ism_gid_count > 8");
  expect_invalid(mutated(good, v2 + 1, 5, out), v2 + 1, "entries run past the trailer");
  // smcd_v2_ext_offset: 0, overlapping the UEIDs, past the trailer
  expect_invalid(mutated(good, v2 + 7, 0, out), v2 + 6, "smcd_v2_ext_offset: 0");
  expect_invalid(mutated(good, v2 + 7, 40, out), v2 + 6, "overlaps the UEIDs");
  expect_invalid(mutated(good, v2 + 6, 1, out), v2 + 6, "SMC-Dv2 extension past the trailer");
  // An emulated-ISM entry needs its gid_ext partner with the same CHID.
  const size_t e1 = sd + 48 + 10 + 8;  // CHID of the second entry (the last)
  expect_invalid(mutated(good, e1, 0xff, out), e1, "without its gid_ext entry");
  // v1: nothing may sit between the IP area and the trailer; typev1 N is refused.
  Bytes v1 = encode(proposal(1, Path::kR));
  expect_invalid(mutated(v1, 7, 0x12, out), 7, "N in a v1 proposal");
  v1 = encode(proposal(1, Path::kR));
  v1.insert(v1.end() - 4, 4, 0);
  v1[6] = static_cast<uint8_t>(v1.size());
  expect_invalid(decode(v1, out), 88, "bytes between the IP area and the trailer");
  // v1 with SMC-D offered but no SMC-D area.
  Message legacy = proposal(1, Path::kR);
  legacy.proposal.smcd_area = false;
  b = encode(legacy);
  expect_invalid(mutated(b, 7, 0x11, out), 38, "0 but SMC-D offered");
  // A v2 proposal offering nothing.
  expect_invalid(mutated(good, 7, 0x2a, out), 7, "offers no path");
  // ISM entries claimed while typev2 offers only R.
  Message r2 = proposal(2, Path::kR, Path::kR);
  add_v2(r2, 0, 0);
  r2.proposal.smcd_v2 = {};
  b = encode(r2);
  expect_invalid(mutated(b, 80 + 8 + 1, 1, out), 80 + 8 + 1, "nonzero but typev2 offers no SMC-D");
}

// Kernels before the v2.x first-contact form (no SMC v2.1) send SMC-R v2 release 0 with the 36-byte extension;
// their Confirm puts 16 reserved bytes before the GID list, whose count lands at the same offset as today's.
TEST(SmcClc, OldSmcrFirstContactLayout) {
  Message m = accept_confirm(MsgType::kAccept, 2, Path::kR, true);
  m.accept_confirm.fce.release = 0;
  m.accept_confirm.fce.v2x = false;
  Bytes b = encode(m);
  ASSERT_EQ(b.size(), 108u + 36);  // 36-byte extension: 144 bytes
  Message out;
  Result r = decode(b, out);
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_TRUE(out.accept_confirm.fce.present);
  EXPECT_FALSE(out.accept_confirm.fce.v2x);
  EXPECT_EQ(0, std::memcmp(out.accept_confirm.fce.hostname, "esw-host", 8));
  // Confirm: 36-byte extension + 16 reserved + count + 3 reserved + GIDs.
  Message c = accept_confirm(MsgType::kConfirm, 2, Path::kR, true);
  c.accept_confirm.fce.release = 0;
  c.accept_confirm.fce.v2x = false;  // a Confirm still gets 52 bytes (the GID list's offset)
  c.accept_confirm.fce.max_conns = c.accept_confirm.fce.max_links = 0;
  c.accept_confirm.fce.feature_mask = 0;
  b = encode(c);
  Message old_out;
  ASSERT_EQ(b.size(), 108u + 52 + 4 + 32);
  r = decode(b, old_out);
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_EQ(old_out.accept_confirm.fce.gid_count, 2);
  EXPECT_EQ(0, std::memcmp(old_out.accept_confirm.fce.gids[1], c.accept_confirm.fce.gids[1], 16));
  // Release 0 Confirm with only the 36-byte extension: the GID list is missing.
  b.resize(104 + 36);
  b.insert(b.end(), kEyecatcherR, kEyecatcherR + 4);
  b[6] = static_cast<uint8_t>(b.size());
  expect_invalid(decode(b, out), 104 + 36, "gid_list: missing");
}

TEST(SmcClc, GapsBetweenAreasAreSkipped) {
  // A sender may leave reserved bytes between areas (offsets point further): parse follows the offsets.
  Message m = proposal(2, Path::kR, Path::kD);
  add_v2(m, 0, 1);
  Bytes b = encode(m);
  Message ref;
  ASSERT_TRUE(decode(b, ref).ok());
  const size_t v2 = 80 + 8;
  b.insert(b.begin() + static_cast<long>(v2), 4, 0xee);  // 4 bytes of padding before the v2 extension
  b[51] = static_cast<uint8_t>(b[51] + 4);
  b[6] = static_cast<uint8_t>(b[6] + 4);
  Message out;
  const Result r = decode(b, out);
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_TRUE(out.proposal.v2 == ref.proposal.v2);
  EXPECT_TRUE(out.proposal.smcd_v2 == ref.proposal.smcd_v2);
}

TEST(SmcClc, BuildErrors) {
  Message m = proposal(2, Path::kR, Path::kD);
  add_v2(m, 9, 0);
  Bytes b(kMaxMsgLen);
  EXPECT_EQ(build(m, b).status, Status::kBadInput);
  EXPECT_EQ(encoded_size(m), 0);
  m.proposal.v2.eid_count = 0;
  m.proposal.v2.ism_count = 9;
  EXPECT_EQ(build(m, b).status, Status::kBadInput);
  m.proposal.v2.ism_count = 1;
  m.proposal.smcd_v2.ism[0].chid = 0xffff;  // emulated without its pair
  EXPECT_EQ(build(m, b).status, Status::kBadInput);
  m.proposal.smcd_v2.ism[0].chid = 1;
  m.proposal.ip.ipv6_count = 9;
  EXPECT_EQ(build(m, b).status, Status::kBadInput);
  m.proposal.ip.ipv6_count = 0;
  m.hdr.version = 3;
  EXPECT_EQ(build(m, b).status, Status::kBadInput);
  m.hdr.version = 2;
  m.proposal.smcd_area = false;
  EXPECT_EQ(build(m, b).status, Status::kBadInput);
  m.proposal.smcd_area = true;
  const uint16_t need = encoded_size(m);
  ASSERT_GT(need, 0);
  Result r = build(m, std::span<uint8_t>(b.data(), need - 1));
  EXPECT_EQ(r.status, Status::kNoRoom);
  EXPECT_EQ(r.size, need);
  EXPECT_TRUE(build(m, std::span<uint8_t>(b.data(), need)).ok());
  Message a = accept_confirm(MsgType::kAccept, 1, Path::kBoth, false);
  EXPECT_EQ(build(a, b).status, Status::kBadInput);
  Message c = accept_confirm(MsgType::kConfirm, 2, Path::kR, true);
  c.accept_confirm.fce.gid_count = 9;
  EXPECT_EQ(build(c, b).status, Status::kBadInput);
  Message d = decline(1, Path::kNone, kDeclMem);
  EXPECT_EQ(build(d, b).status, Status::kBadInput);
}

// ---- identity -----------------------------------------------------------------------------------------------

TEST(SmcClc, Identity) {
  Message m = proposal(2, Path::kR, Path::kBoth);
  add_v2(m, 0, 3);
  m.proposal.smcd_v2.ism[1] = GidChid{0x1111, 0xffff};
  m.proposal.smcd_v2.ism[2] = GidChid{0x2222, 0xffff};
  Message out;
  ASSERT_TRUE(decode(encode(m), out).ok());
  Identity id = identity(out);
  EXPECT_EQ(id.type, MsgType::kProposal);
  EXPECT_EQ(id.version, 2);
  EXPECT_EQ(id.path, Path::kBoth);
  EXPECT_TRUE(id.has_roce);
  EXPECT_EQ(0, std::memcmp(id.roce_mac, m.proposal.roce_mac, 6));
  EXPECT_EQ(0, std::memcmp(id.smcr_gid, m.proposal.smcr_gid, 16));
  EXPECT_TRUE(id.has_rocev2_gid);
  ASSERT_NE(id.ip, nullptr);
  EXPECT_EQ(id.ip->ipv4_subnet, 0xc6120000u);
  EXPECT_EQ(id.ip->ipv4_prefix_len, 24);
  // The SMC-D area's native GID + the v2 entries, the emulated pair merged into one 128-bit GID.
  ASSERT_EQ(id.ism_count, 3);
  EXPECT_EQ(id.ism[0].gid, 0x1122334455667788ull);
  EXPECT_EQ(id.ism[1].gid, 0xa000000000000000ull);
  EXPECT_FALSE(id.ism[1].emulated);
  EXPECT_TRUE(id.ism[2].emulated);
  EXPECT_EQ(id.ism[2].gid, 0x1111u);
  EXPECT_EQ(id.ism[2].gid_ext, 0x2222u);
  EXPECT_EQ(id.ism[2].chid, 0xffff);

  ASSERT_TRUE(decode(encode(accept_confirm(MsgType::kConfirm, 2, Path::kR, true)), out).ok());
  id = identity(out);
  EXPECT_EQ(id.path, Path::kR);
  EXPECT_TRUE(id.first_contact);
  EXPECT_TRUE(id.has_qp);
  EXPECT_EQ(id.qpn, 0xabcdefu);
  EXPECT_EQ(id.rkey, 0xdeadbeefu);
  EXPECT_FALSE(id.has_dmb);
  EXPECT_EQ(id.ip, nullptr);

  Message d = accept_confirm(MsgType::kAccept, 2, Path::kD, false);
  d.accept_confirm.d.chid = 0xffff;
  d.accept_confirm.d.gid_ext = 77;
  ASSERT_TRUE(decode(encode(d), out).ok());
  id = identity(out);
  EXPECT_EQ(id.path, Path::kD);
  EXPECT_TRUE(id.has_dmb);
  EXPECT_EQ(id.dmb_token, 0xfedcba9876543210ull);
  ASSERT_EQ(id.ism_count, 1);
  EXPECT_EQ(id.ism[0].gid, 0x0123456789abcdefull);
  EXPECT_EQ(id.ism[0].gid_ext, 77u);
  EXPECT_FALSE(id.has_roce);

  ASSERT_TRUE(decode(encode(decline(2, Path::kD, kDeclVersMismat)), out).ok());
  id = identity(out);
  EXPECT_EQ(id.decline_code, kDeclVersMismat);
  EXPECT_STREQ(decline_code_name(id.decline_code), "VERSMISMAT");
}

TEST(SmcClc, DeclineCodeTable) {
  EXPECT_STREQ(decline_code_name(0x03010000), "PEERNOSMC");
  EXPECT_STREQ(decline_code_name(0x09990000), "INTERR");
  EXPECT_STREQ(decline_code_name(0x01010000), "MEM");
  EXPECT_EQ(decline_code_name(0x12345678), nullptr);
  uint32_t prev = 0;
  for (const DeclineCodeName& d : decline_codes()) {
    EXPECT_GT(d.code, prev) << d.name;  // sorted, unique
    prev = d.code;
  }
  EXPECT_GE(decline_codes().size(), 30u);
}

// ---- classifier helpers -------------------------------------------------------------------------------------

TEST(SmcClc, ProbeAcrossTwoSegments) {
  const Bytes msg = encode(accept_confirm(MsgType::kConfirm, 2, Path::kR, true));
  for (size_t cut = 1; cut < msg.size(); ++cut) {
    const std::span<const uint8_t> first(msg.data(), cut);
    const Probe p = probe(first);
    ASSERT_NE(p.kind, ProbeKind::kNotClc) << cut;
    // The first segment says how much to keep; the second completes it.
    Bytes joined(msg.begin(), msg.begin() + static_cast<long>(cut));
    joined.insert(joined.end(), msg.begin() + static_cast<long>(cut), msg.end());
    const Probe q = probe(joined);
    ASSERT_EQ(q.kind, ProbeKind::kClc);
    ASSERT_EQ(q.msg_len, msg.size());
    Message out;
    ASSERT_TRUE(decode(joined, out).ok());
  }
  // Two messages back to back in one payload: probe gives the first one's length.
  Bytes two = encode(proposal(1, Path::kR));
  const Bytes second = encode(decline(1, Path::kR, kDeclPeerDecl));
  two.insert(two.end(), second.begin(), second.end());
  const Probe p = probe(two);
  ASSERT_EQ(p.kind, ProbeKind::kClc);
  ASSERT_EQ(p.msg_len, 92);
  Message out;
  EXPECT_TRUE(parse(std::span<const uint8_t>(two.data(), p.msg_len), out).ok());
  EXPECT_TRUE(parse(std::span<const uint8_t>(two.data() + p.msg_len, two.size() - p.msg_len), out).ok());
  EXPECT_EQ(out.decline.diag, kDeclPeerDecl);
}

TEST(SmcClc, ProbeRejects) {
  const std::string http = "GET / HTTP/1.1\r\n";
  EXPECT_EQ(probe(std::span(reinterpret_cast<const uint8_t*>(http.data()), http.size())).kind, ProbeKind::kNotClc);
  const uint8_t partial[] = {0xe2, 0xd4};
  EXPECT_EQ(probe(partial).kind, ProbeKind::kNeedMore);
  const uint8_t wrong[] = {0xe2, 0xd4, 0x00};
  EXPECT_EQ(probe(wrong).kind, ProbeKind::kNotClc);
  Bytes b = encode(decline(1, Path::kR, kDeclMem));
  b[4] = 9;
  EXPECT_EQ(probe(std::span(b.data(), 5)).kind, ProbeKind::kNotClc);  // bad type already in 5 bytes
  b[4] = 4;
  b[7] = 0x30;
  EXPECT_EQ(probe(b).kind, ProbeKind::kNotClc);  // version 3
  b[7] = 0x10;
  b[5] = 0x04;  // 1052 > kMaxMsgLen
  EXPECT_EQ(probe(b).kind, ProbeKind::kNotClc);
  b[5] = 0;
  b[6] = 27;  // below a decline's 28
  EXPECT_EQ(probe(b).kind, ProbeKind::kNotClc);
  EXPECT_EQ(probe({}).kind, ProbeKind::kNeedMore);
}

TEST(SmcClc, TcpOption) {
  // Linux: NOP NOP 254 6 E2D4C3D9 after MSS.
  const uint8_t linux_syn[] = {2, 4, 0x05, 0xb4, 1, 1, 254, 6, 0xe2, 0xd4, 0xc3, 0xd9};
  TcpOptScan s = find_smc_option(linux_syn);
  EXPECT_TRUE(s.smc);
  EXPECT_EQ(s.offset, 6);
  EXPECT_FALSE(s.malformed);
  // bpf_store_hdr_opt: the option first, NOPs after.
  const uint8_t bpf[] = {254, 6, 0xe2, 0xd4, 0xc3, 0xd9, 1, 1};
  s = find_smc_option(bpf);
  EXPECT_TRUE(s.smc);
  EXPECT_EQ(s.offset, 0);
  // RFC 7413 experimental TFO (ExID F989) is not SMC; nor a length-8 254 option carrying the magic.
  const uint8_t tfo[] = {254, 6, 0xf9, 0x89, 0, 0, 254, 8, 0xe2, 0xd4, 0xc3, 0xd9, 0, 0};
  EXPECT_FALSE(find_smc_option(tfo).smc);
  // After End-of-Option-List nothing counts.
  const uint8_t eol[] = {0, 254, 6, 0xe2, 0xd4, 0xc3, 0xd9, 0};
  s = find_smc_option(eol);
  EXPECT_FALSE(s.smc);
  EXPECT_FALSE(s.malformed);
  // A length running past the area, a length below 2, a kind with no length byte.
  const uint8_t past[] = {2, 8, 0x05, 0xb4};
  EXPECT_TRUE(find_smc_option(past).malformed);
  const uint8_t zero[] = {3, 0, 254, 6, 0xe2, 0xd4, 0xc3, 0xd9};
  s = find_smc_option(zero);
  EXPECT_TRUE(s.malformed);
  EXPECT_FALSE(s.smc);
  const uint8_t lone[] = {1, 1, 254};
  EXPECT_TRUE(find_smc_option(lone).malformed);
  // The option cut short by the area's end.
  const uint8_t cut[] = {254, 6, 0xe2, 0xd4, 0xc3};
  s = find_smc_option(cut);
  EXPECT_FALSE(s.smc);
  EXPECT_TRUE(s.malformed);
  EXPECT_FALSE(find_smc_option({}).smc);
}

}  // namespace
}  // namespace esw::smc
