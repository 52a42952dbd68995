// SMC CLC codec (clc.h). Every read is preceded by a bounds check against the message end (the trailer's start),
// which itself was checked against the span; offsets from the wire are widened to 32 bits before adding.

#include "dataplane/smc/clc.h"

#include <algorithm>
#include <cstring>

namespace esw::smc {
namespace {

// ---- byte order ---------------------------------------------------------------------------------------------
uint16_t rd16(const uint8_t* p) noexcept { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t rd24(const uint8_t* p) noexcept { return uint32_t{p[0]} << 16 | uint32_t{p[1]} << 8 | p[2]; }
uint32_t rd32(const uint8_t* p) noexcept { return uint32_t{rd16(p)} << 16 | rd16(p + 2); }
uint64_t rd64(const uint8_t* p) noexcept { return uint64_t{rd32(p)} << 32 | rd32(p + 4); }
void wr16(uint8_t* p, uint16_t v) noexcept {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void wr24(uint8_t* p, uint32_t v) noexcept {
  p[0] = static_cast<uint8_t>(v >> 16);
  p[1] = static_cast<uint8_t>(v >> 8);
  p[2] = static_cast<uint8_t>(v);
}
void wr32(uint8_t* p, uint32_t v) noexcept {
  wr16(p, static_cast<uint16_t>(v >> 16));
  wr16(p + 2, static_cast<uint16_t>(v));
}
void wr64(uint8_t* p, uint64_t v) noexcept {
  wr32(p, static_cast<uint32_t>(v >> 32));
  wr32(p + 4, static_cast<uint32_t>(v));
}

constexpr Result fail(Status s, uint32_t offset, const char* reason) noexcept {
  return Result{s, 0, static_cast<uint16_t>(offset), reason};
}
constexpr Result invalid(uint32_t offset, const char* reason) noexcept {
  return fail(Status::kInvalid, offset, reason);
}

bool is_eyecatcher(const uint8_t* p) noexcept {
  return std::memcmp(p, kEyecatcherR, 4) == 0 || std::memcmp(p, kEyecatcherD, 4) == 0;
}
bool offers_r(Path p) noexcept { return p == Path::kR || p == Path::kBoth; }
bool offers_d(Path p) noexcept { return p == Path::kD || p == Path::kBoth; }

// Proposal layout constants (offsets from the message start).
constexpr uint32_t kPropIpareaOff = 38;
constexpr uint32_t kPropBaseLen = 40;      // header + peer id + GID + MAC + iparea_offset
constexpr uint32_t kSmcdAreaLen = 40;      // ISM GID, CHID, v2_ext_offset, vendor OUI/options, reserved
constexpr uint32_t kV2ExtOffField = 50;    // v2_ext_offset; the v2 extension starts at 52 + its value
constexpr uint32_t kIpAreaLen = 8;
constexpr uint32_t kIpv6PrefixLen = 17;
constexpr uint32_t kV2ExtLen = 40;         // without the UEIDs
constexpr uint32_t kSmcdV2ExtLen = 48;     // SEID + reserved, without the GID/CHID entries
constexpr uint32_t kGidChidLen = 10;
constexpr uint32_t kFceLen = 36;
constexpr uint32_t kFceV2xLen = 52;
constexpr uint32_t kFceGidListHdr = 4;
constexpr uint32_t kSmcrFixedEndV2 = 104;  // after EID + 8 reserved
constexpr uint32_t kSmcdFixedEndV2 = 74;   // after gid_ext

// ---- parse --------------------------------------------------------------------------------------------------

Result parse_proposal(const uint8_t* p, uint32_t end, Message& out) noexcept {
  const Header& h = out.hdr;
  Proposal& m = out.proposal;
  if (h.version == 1 && h.typev1 == Path::kNone) return invalid(7, "header.typev1 (7): N in a v1 proposal");
  if (h.version >= 2 && h.typev1 == Path::kNone && h.typev2 == Path::kNone)
    return invalid(7, "header.typev1/typev2 (7): a v2 proposal that offers no path");
  std::memcpy(m.peer_id, p + 8, 8);
  std::memcpy(m.smcr_gid, p + 16, 16);
  std::memcpy(m.roce_mac, p + 32, 6);
  m.iparea_offset = rd16(p + kPropIpareaOff);
  uint32_t pos = kPropBaseLen;  // end of what is parsed so far
  if (m.iparea_offset == 0) {
    if (h.version >= 2) return invalid(kPropIpareaOff, "proposal.iparea_offset (38): 0 in a v2 proposal");
    if (offers_d(h.typev1)) return invalid(kPropIpareaOff, "proposal.iparea_offset (38): 0 but SMC-D offered");
    m.smcd_area = false;
  } else {
    if (m.iparea_offset < kSmcdAreaLen)
      return invalid(kPropIpareaOff, "proposal.iparea_offset (38): 1-39 cuts the SMC-D area");
    if (kPropBaseLen + kSmcdAreaLen > end)
      return invalid(kPropIpareaOff, "proposal: SMC-D area (40-79) runs past the trailer");
    m.smcd_area = true;
    m.ism.gid = rd64(p + 40);
    m.ism.chid = rd16(p + 48);
    std::memcpy(m.vendor_oui, p + 52, 3);
    std::memcpy(m.vendor_exp, p + 55, 5);
    pos = kPropBaseLen + kSmcdAreaLen;
  }
  m.has_ip_area = h.version == 1 || h.typev1 != Path::kNone;
  if (m.has_ip_area) {
    const uint32_t ip = kPropBaseLen + m.iparea_offset;
    if (ip + kIpAreaLen > end) return invalid(kPropIpareaOff, "proposal.iparea_offset (38): IP area past the trailer");
    m.ip.ipv4_subnet = rd32(p + ip);
    m.ip.ipv4_prefix_len = p[ip + 4];
    if (m.ip.ipv4_prefix_len > 32) return invalid(ip + 4, "proposal.ip_area.ipv4_prefix_len > 32");
    const uint8_t n6 = p[ip + 7];
    if (n6 > kMaxIpv6Prefixes) return invalid(ip + 7, "proposal.ip_area.ipv6_prefix_count > 8");
    if (ip + kIpAreaLen + n6 * kIpv6PrefixLen > end)
      return invalid(ip + 7, "proposal.ip_area.ipv6_prefix_count: prefixes run past the trailer");
    m.ip.ipv6_count = n6;
    for (uint32_t i = 0; i < n6; ++i) {
      const uint8_t* e = p + ip + kIpAreaLen + i * kIpv6PrefixLen;
      std::memcpy(m.ip.ipv6[i].prefix, e, 16);
      m.ip.ipv6[i].len = e[16];
      if (e[16] > 128)
        return invalid(static_cast<uint32_t>(e + 16 - p), "proposal.ip_area.ipv6_prefix.len > 128");
    }
    pos = ip + kIpAreaLen + n6 * kIpv6PrefixLen;
  }
  if (h.version == 1) {
    // Linux: a v1 Proposal's length is exactly base + iparea_offset + IP area + trailer.
    if (pos != end) return invalid(pos, "proposal v1: bytes between the IP area and the trailer");
    return Result{};
  }

  m.has_v2_ext = h.typev2 != Path::kNone;
  m.has_smcd_v2_ext = offers_d(h.typev2);
  if (!m.has_v2_ext) return Result{};
  const uint16_t v2_off = rd16(p + kV2ExtOffField);
  if (v2_off == 0) return invalid(kV2ExtOffField, "proposal.v2_ext_offset (50): 0 while typev2 offers a v2 path");
  const uint32_t v2 = kV2ExtOffField + 2 + uint32_t{v2_off};
  if (v2 < pos) return invalid(kV2ExtOffField, "proposal.v2_ext_offset (50): v2 extension overlaps the IP area");
  if (v2 + kV2ExtLen > end)
    return invalid(kV2ExtOffField, "proposal.v2_ext_offset (50): v2 extension past the trailer");
  ProposalV2Ext& x = m.v2;
  x.eid_count = p[v2];
  x.ism_count = p[v2 + 1];
  x.release = p[v2 + 3] >> 4;
  x.seid_present = (p[v2 + 3] & 0x01) != 0;
  std::memcpy(x.rocev2_gid, p + v2 + 8, 16);
  x.max_conns = p[v2 + 24];
  x.max_links = p[v2 + 25];
  x.feature_mask = rd16(p + v2 + 26);
  if (x.eid_count > kMaxUeids) return invalid(v2, "proposal.v2_ext.eid_count > 8");
  if (x.ism_count > kMaxIsmEntries) return invalid(v2 + 1, "proposal.v2_ext.ism_gid_count > 8");
  const uint32_t ueids = v2 + kV2ExtLen;
  if (ueids + x.eid_count * kEidLen > end)
    return invalid(v2, "proposal.v2_ext.eid_count: UEIDs run past the trailer");
  for (uint32_t i = 0; i < x.eid_count; ++i) std::memcpy(x.ueids[i], p + ueids + i * kEidLen, kEidLen);
  pos = ueids + x.eid_count * kEidLen;
  if (!m.has_smcd_v2_ext) {
    if (x.ism_count != 0) return invalid(v2 + 1, "proposal.v2_ext.ism_gid_count: nonzero but typev2 offers no SMC-D");
    return Result{};
  }
  const uint16_t d_off = rd16(p + v2 + 6);
  if (d_off == 0) return invalid(v2 + 6, "proposal.v2_ext.smcd_v2_ext_offset: 0 while typev2 offers SMC-Dv2");
  const uint32_t sd = v2 + 8 + uint32_t{d_off};
  if (sd < pos) return invalid(v2 + 6, "proposal.v2_ext.smcd_v2_ext_offset: SMC-Dv2 extension overlaps the UEIDs");
  if (sd + kSmcdV2ExtLen > end)
    return invalid(v2 + 6, "proposal.v2_ext.smcd_v2_ext_offset: SMC-Dv2 extension past the trailer");
  std::memcpy(m.smcd_v2.seid, p + sd, kEidLen);
  const uint32_t ents = sd + kSmcdV2ExtLen;
  if (ents + x.ism_count * kGidChidLen > end)
    return invalid(v2 + 1, "proposal.v2_ext.ism_gid_count: GID/CHID entries run past the trailer");
  for (uint32_t i = 0; i < x.ism_count; ++i) {
    m.smcd_v2.ism[i].gid = rd64(p + ents + i * kGidChidLen);
    m.smcd_v2.ism[i].chid = rd16(p + ents + i * kGidChidLen + 8);
  }
  for (uint32_t i = 0; i < x.ism_count; ++i) {
    if (!is_emulated_ism_chid(m.smcd_v2.ism[i].chid)) continue;
    if (i + 1 >= x.ism_count || m.smcd_v2.ism[i + 1].chid != m.smcd_v2.ism[i].chid)
      return invalid(ents + i * kGidChidLen + 8,
                     "proposal.smcd_v2_ext.gidchid: emulated-ISM entry without its gid_ext entry");
    ++i;  // the gid_ext entry
  }
  return Result{};
}

Result parse_accept_confirm(const uint8_t* p, uint32_t end, Message& out) noexcept {
  const Header& h = out.hdr;
  AcceptConfirm& m = out.accept_confirm;
  const bool r = h.typev1 == Path::kR;
  if (!r && h.typev1 != Path::kD) return invalid(7, "header.typev1 (7): accept/confirm neither SMC-R nor SMC-D");
  const uint32_t len = end + kTrailerLen;
  if (h.version == 1) {
    if (r && len != kSmcrAcceptV1Len) return invalid(5, "header.length (5): SMC-R v1 accept/confirm is not 68 bytes");
    if (!r && len != kSmcdAcceptV1Len) return invalid(5, "header.length (5): SMC-D v1 accept/confirm is not 48 bytes");
  } else {
    if (r && len < kSmcrAcceptV2MinLen)
      return invalid(5, "header.length (5): SMC-R v2 accept/confirm shorter than 108 bytes");
    if (!r && len < kSmcdAcceptV2MinLen)
      return invalid(5, "header.length (5): SMC-D v2 accept/confirm shorter than 78 bytes");
  }
  uint32_t fixed_end;
  if (r) {
    SmcrAcceptConfirm& a = m.r;
    std::memcpy(a.peer_id, p + 8, 8);
    std::memcpy(a.gid, p + 16, 16);
    std::memcpy(a.mac, p + 32, 6);
    a.qpn = rd24(p + 38);
    a.rkey = rd32(p + 41);
    a.rmbe_idx = p[45];
    a.alert_token = rd32(p + 46);
    a.rmbe_size = p[50] >> 4;
    a.qp_mtu = p[50] & 0x0f;
    a.rmb_va = rd64(p + 52);
    a.psn = rd24(p + 61);
    if (h.version >= 2) std::memcpy(m.eid, p + 64, kEidLen);
    fixed_end = kSmcrFixedEndV2;
  } else {
    SmcdAcceptConfirm& a = m.d;
    a.ism_gid = rd64(p + 8);
    a.dmb_token = rd64(p + 16);
    a.dmbe_idx = p[24];
    a.dmbe_size = p[25] >> 4;
    a.link_id = rd32(p + 28);
    if (h.version >= 2) {
      a.chid = rd16(p + 32);
      std::memcpy(m.eid, p + 34, kEidLen);
      a.gid_ext = rd64(p + 66);
    }
    fixed_end = kSmcdFixedEndV2;
  }
  if (h.version == 1 || !h.flag) return Result{};

  FirstContactExt& f = m.fce;
  if (fixed_end + kFceLen > end) return invalid(fixed_end, "first_contact_ext: shorter than 36 bytes");
  const uint8_t* e = p + fixed_end;
  f.present = true;
  f.v2_direct = (e[0] & 0x80) != 0;
  f.os_type = e[1] >> 4;
  f.release = e[1] & 0x0f;
  std::memcpy(f.hostname, e + 4, kHostnameLen);
  // Release >= 1 needs the 52-byte v2.x form. At release 0 SMC-D sends 36 bytes; SMC-R 52 (kernels with SMC
  // v2.1) or 36 (older kernels, whose SMC-R Confirm then has 16 reserved bytes before the GID list count: the
  // same offset).
  if (f.release >= 1 && fixed_end + kFceV2xLen > end)
    return invalid(fixed_end, "first_contact_ext: v2.x form (release >= 1) shorter than 52 bytes");
  f.v2x = f.release >= 1 || (r && fixed_end + kFceV2xLen <= end);
  if (!f.v2x) {
    if (r && h.type == MsgType::kConfirm)
      return invalid(fixed_end + kFceLen, "first_contact_ext.gid_list: missing in an SMC-Rv2 confirm");
    return Result{};
  }
  f.max_conns = e[36];
  f.max_links = e[37];
  f.feature_mask = rd16(e + 38);
  f.vendor_exp = rd32(e + 40);
  if (!(r && h.type == MsgType::kConfirm)) return Result{};
  const uint32_t gl = fixed_end + kFceV2xLen;
  if (gl + kFceGidListHdr > end) return invalid(gl, "first_contact_ext.gid_list: missing in an SMC-Rv2 confirm");
  f.gid_count = p[gl];
  if (f.gid_count > kMaxFceGids) return invalid(gl, "first_contact_ext.gid_list.count > 8");
  if (gl + kFceGidListHdr + f.gid_count * 16u > end)
    return invalid(gl, "first_contact_ext.gid_list.count: GIDs run past the trailer");
  for (uint32_t i = 0; i < f.gid_count; ++i) std::memcpy(f.gids[i], p + gl + kFceGidListHdr + i * 16, 16);
  return Result{};
}

Result parse_decline(const uint8_t* p, uint32_t end, Message& out) noexcept {
  const Header& h = out.hdr;
  Decline& m = out.decline;
  if (h.typev1 != Path::kR && h.typev1 != Path::kD)
    return invalid(7, "header.typev1 (7): decline neither SMC-R nor SMC-D");
  const uint32_t len = end + kTrailerLen;
  if (h.version == 1 && len != kDeclineV1Len) return invalid(5, "header.length (5): v1 decline is not 28 bytes");
  if (h.version >= 2 && len != kDeclineV2Len) return invalid(5, "header.length (5): v2 decline is not 44 bytes");
  std::memcpy(m.peer_id, p + 8, 8);
  m.diag = rd32(p + 16);
  m.os_type = p[20] >> 4;
  if (h.version >= 2)
    for (uint32_t i = 0; i < kMaxDeclineExtra; ++i) m.extra[i] = rd32(p + 24 + 4 * i);
  return Result{};
}

uint16_t min_len(MsgType t) noexcept {
  switch (t) {
    case MsgType::kProposal: return kProposalMinLen;
    case MsgType::kAccept:
    case MsgType::kConfirm: return kSmcdAcceptV1Len;
    case MsgType::kDecline: return kDeclineV1Len;
  }
  return kHeaderLen;
}

// ---- build --------------------------------------------------------------------------------------------------

struct PropLayout {
  uint32_t ip = 0;        // IP area start (0: none)
  uint32_t v2 = 0;        // v2 extension start (0: none)
  uint32_t sd = 0;        // SMC-Dv2 extension start (0: none)
  uint32_t len = 0;
};

Result bad(const char* reason) noexcept { return fail(Status::kBadInput, 0, reason); }

Result check_header(const Message& msg) noexcept {
  const Header& h = msg.hdr;
  if (h.version != 1 && h.version != 2) return bad("header.version: not 1 or 2");
  if (static_cast<uint8_t>(h.typev1) > 3 || static_cast<uint8_t>(h.typev2) > 3)
    return bad("header.typev1/typev2: not 0-3");
  return Result{};
}

Result proposal_layout(const Message& msg, PropLayout& l) noexcept {
  const Header& h = msg.hdr;
  const Proposal& m = msg.proposal;
  if (h.version == 1 && h.typev1 == Path::kNone) return bad("proposal v1: typev1 N");
  if (h.version == 2 && h.typev1 == Path::kNone && h.typev2 == Path::kNone) return bad("proposal v2: offers no path");
  if (!m.smcd_area && (h.version == 2 || offers_d(h.typev1))) return bad("proposal: SMC-D area required");
  if (m.ip.ipv6_count > kMaxIpv6Prefixes) return bad("proposal.ip_area.ipv6_count > 8");
  uint32_t pos = kPropBaseLen + (m.smcd_area ? kSmcdAreaLen : 0);
  if (h.version == 1 || h.typev1 != Path::kNone) {
    l.ip = pos;
    pos += kIpAreaLen + m.ip.ipv6_count * kIpv6PrefixLen;
  }
  if (h.version == 2 && h.typev2 != Path::kNone) {
    if (m.v2.eid_count > kMaxUeids) return bad("proposal.v2_ext.eid_count > 8");
    if (m.v2.ism_count > kMaxIsmEntries) return bad("proposal.v2_ext.ism_count > 8");
    if (!offers_d(h.typev2) && m.v2.ism_count != 0) return bad("proposal.v2_ext.ism_count: nonzero without SMC-Dv2");
    l.v2 = pos;
    pos += kV2ExtLen + m.v2.eid_count * kEidLen;
    if (offers_d(h.typev2)) {
      for (uint32_t i = 0; i < m.v2.ism_count; ++i) {
        if (!is_emulated_ism_chid(m.smcd_v2.ism[i].chid)) continue;
        if (i + 1 >= m.v2.ism_count || m.smcd_v2.ism[i + 1].chid != m.smcd_v2.ism[i].chid)
          return bad("proposal.smcd_v2.ism: emulated-ISM entry without its gid_ext entry");
        ++i;
      }
      l.sd = pos;
      pos += kSmcdV2ExtLen + m.v2.ism_count * kGidChidLen;
    }
  }
  l.len = pos + kTrailerLen;
  return Result{};
}

// Whether build() writes the 52-byte first-contact form: from release 1, when asked (v2x), and always for an
// SMC-R Confirm (its GID list sits 52 bytes into the extension).
bool fce_v2x_form(bool r, MsgType t, const FirstContactExt& f) noexcept {
  return f.release >= 1 || f.v2x || (r && t == MsgType::kConfirm);
}

uint32_t accept_confirm_len(const Message& msg) noexcept {
  const Header& h = msg.hdr;
  const bool r = h.typev1 == Path::kR;
  if (h.version == 1) return r ? kSmcrAcceptV1Len : kSmcdAcceptV1Len;
  uint32_t len = r ? kSmcrAcceptV2MinLen : kSmcdAcceptV2MinLen;
  if (h.flag) {
    const FirstContactExt& f = msg.accept_confirm.fce;
    len += fce_v2x_form(r, h.type, f) ? kFceV2xLen : kFceLen;
    if (r && h.type == MsgType::kConfirm) len += kFceGidListHdr + f.gid_count * 16u;
  }
  return len;
}

Result layout(const Message& msg, PropLayout& l) noexcept {
  if (Result c = check_header(msg); !c.ok()) return c;
  const Header& h = msg.hdr;
  switch (h.type) {
    case MsgType::kProposal: return proposal_layout(msg, l);
    case MsgType::kAccept:
    case MsgType::kConfirm:
      if (h.typev1 != Path::kR && h.typev1 != Path::kD) return bad("accept/confirm: typev1 neither R nor D");
      if (h.typev1 == Path::kR && h.type == MsgType::kConfirm && h.version == 2 && h.flag &&
          msg.accept_confirm.fce.gid_count > kMaxFceGids)
        return bad("first_contact_ext.gid_count > 8");
      if (h.version == 2 && h.flag && msg.accept_confirm.fce.release > 15) return bad("first_contact_ext.release > 15");
      l.len = accept_confirm_len(msg);
      return Result{};
    case MsgType::kDecline:
      if (h.typev1 != Path::kR && h.typev1 != Path::kD) return bad("decline: typev1 neither R nor D");
      l.len = h.version == 1 ? kDeclineV1Len : kDeclineV2Len;
      return Result{};
  }
  return bad("header.type: not 1-4");
}

void build_proposal(const Message& msg, const PropLayout& l, uint8_t* p) noexcept {
  const Header& h = msg.hdr;
  const Proposal& m = msg.proposal;
  std::memcpy(p + 8, m.peer_id, 8);
  std::memcpy(p + 16, m.smcr_gid, 16);
  std::memcpy(p + 32, m.roce_mac, 6);
  wr16(p + kPropIpareaOff, static_cast<uint16_t>(m.smcd_area ? kSmcdAreaLen : 0));
  if (m.smcd_area) {
    wr64(p + 40, m.ism.gid);
    wr16(p + 48, m.ism.chid);
    if (l.v2 != 0) wr16(p + kV2ExtOffField, static_cast<uint16_t>(l.v2 - (kV2ExtOffField + 2)));
    std::memcpy(p + 52, m.vendor_oui, 3);
    std::memcpy(p + 55, m.vendor_exp, 5);
  }
  if (l.ip != 0) {
    uint8_t* ip = p + l.ip;
    wr32(ip, m.ip.ipv4_subnet);
    ip[4] = m.ip.ipv4_prefix_len;
    ip[7] = m.ip.ipv6_count;
    for (uint32_t i = 0; i < m.ip.ipv6_count; ++i) {
      std::memcpy(ip + kIpAreaLen + i * kIpv6PrefixLen, m.ip.ipv6[i].prefix, 16);
      ip[kIpAreaLen + i * kIpv6PrefixLen + 16] = m.ip.ipv6[i].len;
    }
  }
  if (l.v2 != 0) {
    uint8_t* x = p + l.v2;
    x[0] = m.v2.eid_count;
    x[1] = l.sd != 0 ? m.v2.ism_count : 0;
    x[3] = static_cast<uint8_t>((m.v2.release & 0x0f) << 4 | (m.v2.seid_present ? 1 : 0));
    if (l.sd != 0) wr16(x + 6, static_cast<uint16_t>(l.sd - (l.v2 + 8)));
    std::memcpy(x + 8, m.v2.rocev2_gid, 16);
    x[24] = m.v2.max_conns;
    x[25] = m.v2.max_links;
    wr16(x + 26, m.v2.feature_mask);
    for (uint32_t i = 0; i < m.v2.eid_count; ++i) std::memcpy(x + kV2ExtLen + i * kEidLen, m.v2.ueids[i], kEidLen);
  }
  if (l.sd != 0) {
    uint8_t* d = p + l.sd;
    std::memcpy(d, m.smcd_v2.seid, kEidLen);
    for (uint32_t i = 0; i < m.v2.ism_count; ++i) {
      wr64(d + kSmcdV2ExtLen + i * kGidChidLen, m.smcd_v2.ism[i].gid);
      wr16(d + kSmcdV2ExtLen + i * kGidChidLen + 8, m.smcd_v2.ism[i].chid);
    }
  }
  (void)h;
}

void build_accept_confirm(const Message& msg, uint8_t* p) noexcept {
  const Header& h = msg.hdr;
  const AcceptConfirm& m = msg.accept_confirm;
  const bool r = h.typev1 == Path::kR;
  uint32_t fixed_end;
  if (r) {
    const SmcrAcceptConfirm& a = m.r;
    std::memcpy(p + 8, a.peer_id, 8);
    std::memcpy(p + 16, a.gid, 16);
    std::memcpy(p + 32, a.mac, 6);
    wr24(p + 38, a.qpn & 0xffffff);
    wr32(p + 41, a.rkey);
    p[45] = a.rmbe_idx;
    wr32(p + 46, a.alert_token);
    p[50] = static_cast<uint8_t>((a.rmbe_size & 0x0f) << 4 | (a.qp_mtu & 0x0f));
    wr64(p + 52, a.rmb_va);
    wr24(p + 61, a.psn & 0xffffff);
    if (h.version == 2) std::memcpy(p + 64, m.eid, kEidLen);
    fixed_end = kSmcrFixedEndV2;
  } else {
    const SmcdAcceptConfirm& a = m.d;
    wr64(p + 8, a.ism_gid);
    wr64(p + 16, a.dmb_token);
    p[24] = a.dmbe_idx;
    p[25] = static_cast<uint8_t>((a.dmbe_size & 0x0f) << 4);
    wr32(p + 28, a.link_id);
    if (h.version == 2) {
      wr16(p + 32, a.chid);
      std::memcpy(p + 34, m.eid, kEidLen);
      wr64(p + 66, a.gid_ext);
    }
    fixed_end = kSmcdFixedEndV2;
  }
  if (h.version == 1 || !h.flag) return;
  const FirstContactExt& f = m.fce;
  uint8_t* e = p + fixed_end;
  e[0] = f.v2_direct ? 0x80 : 0;
  e[1] = static_cast<uint8_t>((f.os_type & 0x0f) << 4 | (f.release & 0x0f));
  std::memcpy(e + 4, f.hostname, kHostnameLen);
  if (!fce_v2x_form(r, h.type, f)) return;
  e[36] = f.max_conns;
  e[37] = f.max_links;
  wr16(e + 38, f.feature_mask);
  wr32(e + 40, f.vendor_exp);
  if (!(r && h.type == MsgType::kConfirm)) return;
  uint8_t* gl = e + kFceV2xLen;
  gl[0] = f.gid_count;
  for (uint32_t i = 0; i < f.gid_count; ++i) std::memcpy(gl + kFceGidListHdr + i * 16, f.gids[i], 16);
}

void build_decline(const Message& msg, uint8_t* p) noexcept {
  const Decline& m = msg.decline;
  std::memcpy(p + 8, m.peer_id, 8);
  wr32(p + 16, m.diag);
  p[20] = static_cast<uint8_t>((m.os_type & 0x0f) << 4);
  if (msg.hdr.version == 2)
    for (uint32_t i = 0; i < kMaxDeclineExtra; ++i) wr32(p + 24 + 4 * i, m.extra[i]);
}

constexpr DeclineCodeName kDeclineNames[] = {
    {kDeclMem, "MEM"},
    {kDeclTimeoutCl, "TIMEOUT_CL"},
    {kDeclTimeoutAl, "TIMEOUT_AL"},
    {kDeclCnfErr, "CNFERR"},
    {kDeclPeerNoSmc, "PEERNOSMC"},
    {kDeclIpsec, "IPSEC"},
    {kDeclNoSmcDev, "NOSMCDEV"},
    {kDeclNoSmcdDev, "NOSMCDDEV"},
    {kDeclNoSmcrDev, "NOSMCRDEV"},
    {kDeclNoIsm2Supp, "NOISM2SUPP"},
    {kDeclNoV2Ext, "NOV2EXT"},
    {kDeclNoV2DExt, "NOV2DEXT"},
    {kDeclNoSeid, "NOSEID"},
    {kDeclNoSmcd2Dev, "NOSMCD2DEV"},
    {kDeclNoUeid, "NOUEID"},
    {kDeclReleaseErr, "RELEASEERR"},
    {kDeclMaxConnErr, "MAXCONNERR"},
    {kDeclMaxLinkErr, "MAXLINKERR"},
    {kDeclModeUnsupp, "MODEUNSUPP"},
    {kDeclRmbeEc, "RMBE_EC"},
    {kDeclOptUnsupp, "OPTUNSUPP"},
    {kDeclDiffPrefix, "DIFFPREFIX"},
    {kDeclGetVlanErr, "GETVLANERR"},
    {kDeclIsmVlanErr, "ISMVLANERR"},
    {kDeclNoActLink, "NOACTLINK"},
    {kDeclNoSrvLink, "NOSRVLINK"},
    {kDeclVersMismat, "VERSMISMAT"},
    {kDeclMaxDmb, "MAX_DMB"},
    {kDeclNoRoute, "NOROUTE"},
    {kDeclNoIndirect, "NOINDIRECT"},
    {kDeclSyncErr, "SYNCERR"},
    {kDeclPeerDecl, "PEERDECL"},
    {kDeclInterr, "INTERR"},
    {kDeclErrRtok, "ERR_RTOK"},
    {kDeclErrRdyLnk, "ERR_RDYLNK"},
    {kDeclErrRegBuf, "ERR_REGBUF"},
};

}  // namespace

std::span<const DeclineCodeName> decline_codes() noexcept { return kDeclineNames; }

const char* decline_code_name(uint32_t code) noexcept {
  for (const DeclineCodeName& d : kDeclineNames)
    if (d.code == code) return d.name;
  return nullptr;
}

const char* to_string(MsgType t) noexcept {
  switch (t) {
    case MsgType::kProposal: return "proposal";
    case MsgType::kAccept: return "accept";
    case MsgType::kConfirm: return "confirm";
    case MsgType::kDecline: return "decline";
  }
  return "unknown";
}

const char* to_string(Path p) noexcept {
  switch (p) {
    case Path::kR: return "R";
    case Path::kD: return "D";
    case Path::kNone: return "N";
    case Path::kBoth: return "B";
  }
  return "?";
}

Result parse(std::span<const uint8_t> in, Message& out) noexcept {
  out = Message{};
  const uint8_t* p = in.data();
  const size_t n = in.size();
  if (n < kHeaderLen) return fail(Status::kTruncated, 0, "header: fewer than 8 bytes");
  if (!is_eyecatcher(p)) return invalid(0, "header.eyecatcher (0): neither SMCR nor SMCD");
  Header& h = out.hdr;
  h.smcd_eyecatcher = std::memcmp(p, kEyecatcherD, 4) == 0;
  if (p[4] < 1 || p[4] > 4) return invalid(4, "header.type (4): not 1-4");
  h.type = static_cast<MsgType>(p[4]);
  h.length = rd16(p + 5);
  h.version = p[7] >> 4;
  h.typev1 = static_cast<Path>(p[7] & 0x03);
  if (h.type == MsgType::kProposal) {
    if (h.version >= 2) h.typev2 = static_cast<Path>(p[7] >> 2 & 0x03);  // reserved in v1
  } else {
    h.flag = (p[7] & 0x08) != 0;
  }
  if (h.version != 1 && h.version != 2) return invalid(7, "header.version (7): not 1 or 2");
  if (h.length < min_len(h.type)) return invalid(5, "header.length (5): below the minimum for the type");
  if (h.length > n) return fail(Status::kTruncated, 5, "header.length (5): more than the bytes given");
  if (h.length < n) return invalid(h.length, "trailing bytes after the message (header.length < span)");
  const uint32_t end = h.length - kTrailerLen;
  if (!is_eyecatcher(p + end)) return invalid(end, "trailer.eyecatcher: neither SMCR nor SMCD");
  h.smcd_trailer = std::memcmp(p + end, kEyecatcherD, 4) == 0;
  Result r;
  switch (h.type) {
    case MsgType::kProposal: r = parse_proposal(p, end, out); break;
    case MsgType::kAccept:
    case MsgType::kConfirm: r = parse_accept_confirm(p, end, out); break;
    case MsgType::kDecline: r = parse_decline(p, end, out); break;
  }
  if (r.ok()) r.size = h.length;
  return r;
}

uint16_t encoded_size(const Message& msg) noexcept {
  PropLayout l;
  if (!layout(msg, l).ok()) return 0;
  return static_cast<uint16_t>(l.len);
}

Result build(const Message& msg, std::span<uint8_t> out) noexcept {
  PropLayout l;
  if (Result r = layout(msg, l); !r.ok()) return r;
  if (out.size() < l.len) {
    Result r = fail(Status::kNoRoom, 0, "output span shorter than the message");
    r.size = static_cast<uint16_t>(l.len);
    return r;
  }
  uint8_t* p = out.data();
  std::memset(p, 0, l.len);
  const Header& h = msg.hdr;
  const bool d_catcher = h.type != MsgType::kProposal && h.typev1 == Path::kD;
  const uint8_t* ec = d_catcher ? kEyecatcherD : kEyecatcherR;
  std::memcpy(p, ec, 4);
  p[4] = static_cast<uint8_t>(h.type);
  wr16(p + 5, static_cast<uint16_t>(l.len));
  uint8_t b7 = static_cast<uint8_t>(h.version << 4 | static_cast<uint8_t>(h.typev1));
  if (h.type == MsgType::kProposal) {
    if (h.version == 2) b7 = static_cast<uint8_t>(b7 | static_cast<uint8_t>(h.typev2) << 2);
  } else if (h.flag) {
    b7 |= 0x08;
  }
  p[7] = b7;
  switch (h.type) {
    case MsgType::kProposal: build_proposal(msg, l, p); break;
    case MsgType::kAccept:
    case MsgType::kConfirm: build_accept_confirm(msg, p); break;
    case MsgType::kDecline: build_decline(msg, p); break;
  }
  std::memcpy(p + l.len - kTrailerLen, ec, 4);
  return Result{Status::kOk, static_cast<uint16_t>(l.len), 0, "ok"};
}

Identity identity(const Message& msg) noexcept {
  Identity id;
  const Header& h = msg.hdr;
  id.type = h.type;
  id.version = h.version;
  switch (h.type) {
    case MsgType::kProposal: {
      const Proposal& m = msg.proposal;
      uint8_t paths = static_cast<uint8_t>(h.typev1);
      const bool r1 = offers_r(h.typev1);
      const bool d1 = offers_d(h.typev1);
      const bool r2 = h.version == 2 && offers_r(h.typev2);
      const bool d2 = h.version == 2 && offers_d(h.typev2);
      const bool any_r = r1 || r2;
      const bool any_d = d1 || d2;
      paths = static_cast<uint8_t>(any_r && any_d ? Path::kBoth : any_r ? Path::kR : any_d ? Path::kD : Path::kNone);
      id.path = static_cast<Path>(paths);
      if (r1) {
        id.has_roce = true;
        std::memcpy(id.roce_mac, m.roce_mac, 6);
        std::memcpy(id.smcr_gid, m.smcr_gid, 16);
      }
      if (r2) {
        id.has_rocev2_gid = true;
        std::memcpy(id.rocev2_gid, m.v2.rocev2_gid, 16);
      }
      if (m.has_ip_area) id.ip = &m.ip;
      if (m.smcd_area && (d1 || d2) && (m.ism.gid != 0 || d1)) {
        id.ism[id.ism_count++] = IsmGid{m.ism.gid, 0, m.ism.chid, is_emulated_ism_chid(m.ism.chid)};
      }
      if (d2) {
        for (uint32_t i = 0; i < m.v2.ism_count && i < kMaxIsmEntries; ++i) {
          IsmGid g{m.smcd_v2.ism[i].gid, 0, m.smcd_v2.ism[i].chid, false};
          if (is_emulated_ism_chid(g.chid) && i + 1 < m.v2.ism_count) {
            g.emulated = true;
            g.gid_ext = m.smcd_v2.ism[++i].gid;
          }
          id.ism[id.ism_count++] = g;
        }
      }
      break;
    }
    case MsgType::kAccept:
    case MsgType::kConfirm: {
      const AcceptConfirm& m = msg.accept_confirm;
      id.path = h.typev1;
      id.first_contact = h.flag;
      if (h.typev1 == Path::kR) {
        id.has_roce = true;
        std::memcpy(id.roce_mac, m.r.mac, 6);
        std::memcpy(id.smcr_gid, m.r.gid, 16);
        id.has_qp = true;
        id.qpn = m.r.qpn;
        id.rkey = m.r.rkey;
        id.rmb_va = m.r.rmb_va;
      } else {
        id.has_dmb = true;
        id.dmb_token = m.d.dmb_token;
        const bool emu = h.version == 2 && is_emulated_ism_chid(m.d.chid);
        id.ism[id.ism_count++] = IsmGid{m.d.ism_gid, emu ? m.d.gid_ext : 0, m.d.chid, emu};
      }
      break;
    }
    case MsgType::kDecline:
      id.path = h.typev1;
      id.decline_code = msg.decline.diag;
      break;
  }
  return id;
}

TcpOptScan find_smc_option(std::span<const uint8_t> options) noexcept {
  TcpOptScan s;
  const uint8_t* o = options.data();
  const size_t n = std::min<size_t>(options.size(), 255);
  size_t i = 0;
  while (i < n) {
    const uint8_t kind = o[i];
    if (kind == 0) break;  // End of Option List
    if (kind == 1) {       // NOP
      ++i;
      continue;
    }
    if (i + 1 >= n || o[i + 1] < 2 || i + o[i + 1] > n) {
      s.malformed = true;
      break;
    }
    const uint8_t len = o[i + 1];
    if (kind == kTcpOptKind && len == kTcpOptLen && std::memcmp(o + i + 2, kEyecatcherR, 4) == 0) {
      s.smc = true;
      s.offset = static_cast<uint8_t>(i);
      return s;
    }
    i += len;
  }
  return s;
}

Probe probe(std::span<const uint8_t> payload) noexcept {
  Probe pr;
  const uint8_t* p = payload.data();
  const size_t n = payload.size();
  if (n == 0) {
    pr.kind = ProbeKind::kNeedMore;
    pr.msg_len = kHeaderLen;
    return pr;
  }
  const size_t m = std::min<size_t>(n, 4);
  if (std::memcmp(p, kEyecatcherR, m) != 0 && std::memcmp(p, kEyecatcherD, m) != 0) return pr;
  if (n >= 5 && (p[4] < 1 || p[4] > 4)) return pr;
  if (n < kHeaderLen) {
    pr.kind = ProbeKind::kNeedMore;
    pr.msg_len = kHeaderLen;
    return pr;
  }
  const uint8_t version = p[7] >> 4;
  if (version != 1 && version != 2) return pr;
  const auto type = static_cast<MsgType>(p[4]);
  const uint16_t len = rd16(p + 5);
  if (len < min_len(type) || len > kMaxMsgLen) return pr;
  pr.kind = ProbeKind::kClc;
  pr.msg_len = len;
  pr.type = type;
  return pr;
}

}  // namespace esw::smc
