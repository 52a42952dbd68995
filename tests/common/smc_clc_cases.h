#pragma once
// CLC messages of every kind, version and path, built field by field: shared by tests/unit/smc_clc_test.cc
// (round trips, byte-exact layouts), tests/tools/smc_clc_pcap.cc (the tshark agreement test) and the fuzz seed
// corpus (tests/fuzz/clc_corpus, written by smc_clc_pcap --corpus).

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "dataplane/smc/clc.h"

namespace esw::smc::cases {

inline void fill(uint8_t* p, size_t n, uint8_t seed) {
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(seed + 7 * i + 1);
}
inline void eid(uint8_t* p, const char* s) {
  std::memset(p, ' ', kEidLen);
  std::memcpy(p, s, std::strlen(s));
}

inline Message proposal(uint8_t version, Path v1, Path v2 = Path::kNone) {
  Message m;
  m.hdr.type = MsgType::kProposal;
  m.hdr.version = version;
  m.hdr.typev1 = v1;
  m.hdr.typev2 = v2;
  Proposal& p = m.proposal;
  fill(p.peer_id, 8, 1);
  fill(p.smcr_gid, 16, 2);
  const uint8_t mac[6] = {0x02, 0x00, 0xc6, 0x12, 0x00, 0x01};
  std::memcpy(p.roce_mac, mac, 6);
  p.ism = GidChid{0x1122334455667788ull, 0x0102};
  p.ip.ipv4_subnet = 0xc6120000;  // 198.18.0.0/24
  p.ip.ipv4_prefix_len = 24;
  return m;
}

inline void add_ipv6(Message& m, uint8_t n) {
  m.proposal.ip.ipv6_count = n;
  for (uint8_t i = 0; i < n; ++i) {
    const uint8_t pfx[16] = {0x20, 0x01, 0x0d, 0xb8, 0, i};
    std::memcpy(m.proposal.ip.ipv6[i].prefix, pfx, 16);
    m.proposal.ip.ipv6[i].len = static_cast<uint8_t>(48 + i);
  }
}

inline void add_v2(Message& m, uint8_t eids, uint8_t ism) {
  ProposalV2Ext& x = m.proposal.v2;
  x.eid_count = eids;
  x.ism_count = ism;
  x.release = 1;
  x.seid_present = true;
  const uint8_t gid[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 1};  // ::ffff:198.18.0.1
  std::memcpy(x.rocev2_gid, gid, 16);
  x.max_conns = 255;
  x.max_links = 2;
  x.feature_mask = 1;
  for (uint8_t i = 0; i < eids; ++i) {
    const std::string s = "ESW-UEID-" + std::to_string(i);
    eid(x.ueids[i], s.c_str());
  }
  eid(m.proposal.smcd_v2.seid, "IBM-SYSZ-ISMSEID00000000");
  for (uint8_t i = 0; i < ism; ++i) m.proposal.smcd_v2.ism[i] = GidChid{0xa000000000000000ull + i, uint16_t(0x100 + i)};
}

inline Message accept_confirm(MsgType t, uint8_t version, Path path, bool first_contact) {
  Message m;
  m.hdr.type = t;
  m.hdr.version = version;
  m.hdr.typev1 = path;
  m.hdr.flag = first_contact;
  AcceptConfirm& a = m.accept_confirm;
  if (path == Path::kR) {
    fill(a.r.peer_id, 8, 3);
    fill(a.r.gid, 16, 4);
    const uint8_t mac[6] = {0x02, 0x00, 0xc6, 0x12, 0x00, 0x02};
    std::memcpy(a.r.mac, mac, 6);
    a.r.qpn = 0x00abcdef;
    a.r.rkey = 0xdeadbeef;
    a.r.rmbe_idx = 1;
    a.r.alert_token = 0x01020304;
    a.r.rmbe_size = 5;
    a.r.qp_mtu = 3;
    a.r.rmb_va = 0x00007f0012345000ull;
    a.r.psn = 0x00123456;
  } else {
    a.d.ism_gid = 0x0123456789abcdefull;
    a.d.dmb_token = 0xfedcba9876543210ull;
    a.d.dmbe_idx = 0;
    a.d.dmbe_size = 2;
    a.d.link_id = 0x11223344;
    if (version == 2) {
      a.d.chid = 0x0203;
    }
  }
  if (version == 2) eid(a.eid, "ESW-NEGOTIATED-EID");
  if (version == 2 && first_contact) {
    FirstContactExt& f = a.fce;
    f.v2_direct = path == Path::kR;
    f.os_type = kOsLinux;
    f.release = 1;
    f.v2x = true;
    std::memset(f.hostname, ' ', kHostnameLen);
    std::memcpy(f.hostname, "esw-host", 8);
    if (path == Path::kR) {
      f.max_conns = 255;
      f.max_links = 2;
    }
    f.feature_mask = 1;
    f.vendor_exp = 0;
    if (path == Path::kR && t == MsgType::kConfirm) {
      f.gid_count = 2;
      fill(f.gids[0], 16, 20);
      fill(f.gids[1], 16, 21);
    }
  }
  return m;
}

inline Message decline(uint8_t version, Path path, uint32_t code, bool out_of_sync = false) {
  Message m;
  m.hdr.type = MsgType::kDecline;
  m.hdr.version = version;
  m.hdr.typev1 = path;
  m.hdr.flag = out_of_sync;
  fill(m.decline.peer_id, 8, 5);
  m.decline.diag = code;
  m.decline.os_type = kOsLinux;
  if (version == 2) {
    m.decline.extra[0] = kDeclNoSmcdDev;
    m.decline.extra[1] = kDeclNoSmcrDev;
  }
  return m;
}

// Every message kind, version and path the codec builds, with a name.
struct Case {
  std::string name;
  Message msg;
  uint16_t len;  // expected wire length
};

inline std::vector<Case> all_cases() {
  std::vector<Case> c;
  c.push_back({"proposal_v1_R", proposal(1, Path::kR), 92});
  {
    Message m = proposal(1, Path::kR);
    m.proposal.smcd_area = false;
    m.proposal.ism = {};
    c.push_back({"proposal_v1_R_legacy", m, 52});
  }
  c.push_back({"proposal_v1_D", proposal(1, Path::kD), 92});
  {
    Message m = proposal(1, Path::kBoth);
    add_ipv6(m, 8);
    c.push_back({"proposal_v1_B_8_ipv6", m, 92 + 8 * 17});
  }
  {
    Message m = proposal(2, Path::kR, Path::kR);
    add_v2(m, 2, 0);
    m.proposal.smcd_v2 = {};
    c.push_back({"proposal_v2_R_R", m, 92 + 40 + 64});
  }
  {
    Message m = proposal(2, Path::kNone, Path::kD);
    m.proposal.ip = {};
    add_v2(m, 0, 3);
    m.proposal.smcd_v2.ism[1] = GidChid{0x1111, 0xffff};  // loopback-ism: gid then gid_ext
    m.proposal.smcd_v2.ism[2] = GidChid{0x2222, 0xffff};
    c.push_back({"proposal_v2_N_D_emulated", m, 84 + 40 + 48 + 30});
  }
  {
    // The largest Proposal: 8 IPv6 prefixes, 8 UEIDs, 8 ISM entries.
    Message m = proposal(2, Path::kBoth, Path::kBoth);
    add_ipv6(m, 8);
    add_v2(m, 8, 8);
    c.push_back({"proposal_v2_B_B_max", m, 652});
  }
  for (MsgType t : {MsgType::kAccept, MsgType::kConfirm}) {
    const std::string n = to_string(t);
    c.push_back({n + "_v1_R", accept_confirm(t, 1, Path::kR, false), 68});
    c.push_back({n + "_v1_R_fc", accept_confirm(t, 1, Path::kR, true), 68});
    c.push_back({n + "_v1_D", accept_confirm(t, 1, Path::kD, true), 48});
    c.push_back({n + "_v2_R", accept_confirm(t, 2, Path::kR, false), 108});
    c.push_back({n + "_v2_R_fc", accept_confirm(t, 2, Path::kR, true),
                 uint16_t(108 + 52 + (t == MsgType::kConfirm ? 4 + 32 : 0))});
    c.push_back({n + "_v2_D", accept_confirm(t, 2, Path::kD, false), 78});
    c.push_back({n + "_v2_D_fc_v2x", accept_confirm(t, 2, Path::kD, true), 78 + 52});
    {
      Message m = accept_confirm(t, 2, Path::kD, true);
      m.accept_confirm.fce.release = 0;  // SMC-D release 0: the 36-byte first-contact extension
      m.accept_confirm.fce.v2x = false;
      m.accept_confirm.fce.feature_mask = 0;
      c.push_back({n + "_v2_D_fc_rel0", m, 78 + 36});
    }
    {
      Message m = accept_confirm(t, 2, Path::kD, false);
      m.accept_confirm.d.chid = 0xffff;
      m.accept_confirm.d.gid_ext = 0x0badc0ffee0ddf00ull;
      c.push_back({n + "_v2_D_emulated", m, 78});
    }
  }
  c.push_back({"decline_v1_R", decline(1, Path::kR, kDeclPeerNoSmc), 28});
  c.push_back({"decline_v1_D_sync", decline(1, Path::kD, kDeclSyncErr, true), 28});
  c.push_back({"decline_v2_R", decline(2, Path::kR, kDeclNoSmcDev), 44});
  c.push_back({"decline_v2_D", decline(2, Path::kD, kDeclMaxDmb), 44});
  return c;
}

}  // namespace esw::smc::cases
