#pragma once
// SMC CLC codec: parse and build the Connection Layer Control messages that open an SMC connection (Proposal,
// Accept, Confirm, Decline; versions 1 and 2; SMC-R and SMC-D), plus the two helpers the worker's classifier
// needs (the SMC TCP option in a TCP options area, and "does this TCP payload start a CLC message, and how long
// is it").
//
// Wire facts: ../../shared/design/SMC-NOTES.md (Linux net/smc/smc_clc.h, Wireshark packet-smc.c). All wire
// fields are big-endian; the structs below hold host-order integers and raw byte arrays.
//
// Guarantees (fast-path safe)
//  - parse(), probe(), find_smc_option() and build() never allocate, throw, lock or log; they read only the span
//    they are given and write only `out`. Safe on any byte sequence (fuzzed: tests/fuzz/clc_fuzz.cc).
//  - parse() checks, in this order, before it reads a field: header eyecatcher, type, version, path bits, the
//    header length against the span and against the type's fixed sizes, the trailer eyecatcher, then every
//    offset and count inside the message against the bytes that are there. A failure returns a Result whose
//    `reason` is a string constant naming the field (and its wire offset where it is fixed) and whose `offset`
//    is the byte offset in the message of the field that failed.
//  - `out` is fully overwritten (zeroed first) by parse(), also on failure (then only `hdr` may be partly set).
//  - build() writes exactly Result::size bytes (the header's length field is computed, never taken from the
//    message), or returns an error and writes nothing meaningful.
//  - Links no DPDK library and includes nothing else of the project.
//
// Accepted layouts (what parse() takes; build() always writes the first form listed)
//  - Proposal v1: SMC-D area present (iparea_offset 40, as current Linux sends: 92 bytes with no IPv6 prefix) or
//    absent (iparea_offset 0: the legacy 52-byte SMC-R layout); iparea_offset 1..39 is rejected, > 40 skips the
//    reserved bytes between. Proposal v2: SMC-D area required; IP area iff typev1 != N; v2 extension iff typev2
//    != N (v2_ext_offset != 0, must start at or after the end of the IP area); SMC-Dv2 extension iff typev2 is D
//    or B (after the UEIDs). Gaps between areas are skipped; overlaps and areas past the trailer are rejected.
//    ISM GID/CHID entries: <= 8; an emulated-ISM entry (CHID >= 0xFF00) must be followed by its gid_ext entry
//    with the same CHID (Linux writes the pair).
//  - Accept/Confirm: typev1 R or D. v1: exactly 68 (R) / 48 (D) bytes. v2: >= 108 (R) / 78 (D); with the
//    first-contact flag, the first-contact extension follows: 52 bytes (v2.x form) from release 1; at release 0
//    36 bytes, or 52 for SMC-R (kernels with SMC v2.1 support write 52 for SMC-R at any release; build() does
//    when FirstContactExt::v2x is set, and always for an SMC-R Confirm). An SMC-R v2 Confirm with first contact
//    then carries a GID list (count <= 8, 16 bytes each) at 52 bytes into the extension (older kernels put 16
//    reserved bytes after the 36-byte form: the same offset). Bytes between the last known field and the
//    trailer are ignored (reserved).
//  - Decline: typev1 R or D; v1 exactly 28 bytes, v2 exactly 44 bytes.
//  - Eyecatchers: header and trailer each "SMCR" (E2D4C3D9) or "SMCD" (E2D4C3C4), as Linux accepts; build()
//    writes SMCD for SMC-D Accept/Confirm/Decline and SMCR otherwise.
//
// Threading: pure functions on caller-owned memory; call from any thread.

#include <cstddef>
#include <cstdint>
#include <span>

namespace esw::smc {

// ---- constants ----------------------------------------------------------------------------------------------

inline constexpr uint8_t kEyecatcherR[4] = {0xe2, 0xd4, 0xc3, 0xd9};  // "SMCR" in EBCDIC; also the TCP ExID
inline constexpr uint8_t kEyecatcherD[4] = {0xe2, 0xd4, 0xc3, 0xc4};  // "SMCD" in EBCDIC
inline constexpr uint8_t kTcpOptKind = 254;                           // RFC 6994 experimental option
inline constexpr uint8_t kTcpOptLen = 6;

inline constexpr size_t kHeaderLen = 8;
inline constexpr size_t kTrailerLen = 4;
inline constexpr size_t kMaxIpv6Prefixes = 8;
inline constexpr size_t kMaxUeids = 8;
inline constexpr size_t kMaxIsmEntries = 8;      // GID/CHID entries in the SMC-Dv2 extension
inline constexpr size_t kMaxFceGids = 8;         // GIDs in an SMC-Rv2 Confirm's first-contact GID list
inline constexpr size_t kEidLen = 32;
inline constexpr size_t kHostnameLen = 32;
inline constexpr size_t kMaxDeclineExtra = 4;    // v2 Decline: extra diagnosis codes

// Fixed message lengths (Linux smc_clc.c).
inline constexpr uint16_t kSmcrAcceptV1Len = 68;
inline constexpr uint16_t kSmcdAcceptV1Len = 48;
inline constexpr uint16_t kSmcrAcceptV2MinLen = 108;
inline constexpr uint16_t kSmcdAcceptV2MinLen = 78;
inline constexpr uint16_t kDeclineV1Len = 28;
inline constexpr uint16_t kDeclineV2Len = 44;
inline constexpr uint16_t kProposalMinLen = 52;   // legacy v1 SMC-R, no SMC-D area, no IPv6 prefix
// The largest legal message: a v2 Proposal with 8 IPv6 prefixes, 8 UEIDs and 8 ISM entries (652 bytes).
// probe() treats a header announcing more than kMaxMsgLen as not CLC.
inline constexpr uint16_t kMaxMsgLen = 1024;

// CHIDs from 0xFF00 are emulated ISM devices (0xFFFF loopback-ism, 0xFF00-0xFFFE virtio-ism): their 128-bit GID
// is (gid, gid_ext).
inline constexpr uint16_t kEmulatedIsmChidMin = 0xff00;
constexpr bool is_emulated_ism_chid(uint16_t chid) noexcept { return chid >= kEmulatedIsmChidMin; }

enum class MsgType : uint8_t { kProposal = 1, kAccept = 2, kConfirm = 3, kDecline = 4 };

// SMC_TYPE_* of the header's typev1/typev2 bits: which paths a Proposal offers / which path the others use.
enum class Path : uint8_t { kR = 0, kD = 1, kNone = 2, kBoth = 3 };

// OS types of the first-contact extension and of a Decline.
inline constexpr uint8_t kOsZos = 1;
inline constexpr uint8_t kOsLinux = 2;
inline constexpr uint8_t kOsAix = 3;

// ---- Decline diagnosis codes (Linux smc_clc.h SMC_CLC_DECL_*) -------------------------------------------------
inline constexpr uint32_t kDeclMem = 0x01010000;
inline constexpr uint32_t kDeclTimeoutCl = 0x02010000;
inline constexpr uint32_t kDeclTimeoutAl = 0x02020000;
inline constexpr uint32_t kDeclCnfErr = 0x03000000;
inline constexpr uint32_t kDeclPeerNoSmc = 0x03010000;
inline constexpr uint32_t kDeclIpsec = 0x03020000;
inline constexpr uint32_t kDeclNoSmcDev = 0x03030000;
inline constexpr uint32_t kDeclNoSmcdDev = 0x03030001;
inline constexpr uint32_t kDeclNoSmcrDev = 0x03030002;
inline constexpr uint32_t kDeclNoIsm2Supp = 0x03030003;
inline constexpr uint32_t kDeclNoV2Ext = 0x03030004;
inline constexpr uint32_t kDeclNoV2DExt = 0x03030005;
inline constexpr uint32_t kDeclNoSeid = 0x03030006;
inline constexpr uint32_t kDeclNoSmcd2Dev = 0x03030007;
inline constexpr uint32_t kDeclNoUeid = 0x03030008;
inline constexpr uint32_t kDeclReleaseErr = 0x03030009;
inline constexpr uint32_t kDeclMaxConnErr = 0x0303000a;
inline constexpr uint32_t kDeclMaxLinkErr = 0x0303000b;
inline constexpr uint32_t kDeclModeUnsupp = 0x03040000;
inline constexpr uint32_t kDeclRmbeEc = 0x03050000;
inline constexpr uint32_t kDeclOptUnsupp = 0x03060000;
inline constexpr uint32_t kDeclDiffPrefix = 0x03070000;
inline constexpr uint32_t kDeclGetVlanErr = 0x03080000;
inline constexpr uint32_t kDeclIsmVlanErr = 0x03090000;
inline constexpr uint32_t kDeclNoActLink = 0x030a0000;
inline constexpr uint32_t kDeclNoSrvLink = 0x030b0000;
inline constexpr uint32_t kDeclVersMismat = 0x030c0000;
inline constexpr uint32_t kDeclMaxDmb = 0x030d0000;
inline constexpr uint32_t kDeclNoRoute = 0x030e0000;
inline constexpr uint32_t kDeclNoIndirect = 0x030f0000;
inline constexpr uint32_t kDeclSyncErr = 0x04000000;
inline constexpr uint32_t kDeclPeerDecl = 0x05000000;
inline constexpr uint32_t kDeclInterr = 0x09990000;
inline constexpr uint32_t kDeclErrRtok = 0x09990001;
inline constexpr uint32_t kDeclErrRdyLnk = 0x09990002;
inline constexpr uint32_t kDeclErrRegBuf = 0x09990003;

struct DeclineCodeName {
  uint32_t code;
  const char* name;  // "MEM", "PEERNOSMC", ... (the SMC_CLC_DECL_ suffix)
};
// The table above, in code order (for show/telemetry and tests).
std::span<const DeclineCodeName> decline_codes() noexcept;
// The name of a known code, else nullptr.
const char* decline_code_name(uint32_t code) noexcept;

const char* to_string(MsgType t) noexcept;  // "proposal", "accept", "confirm", "decline", "unknown"
const char* to_string(Path p) noexcept;     // "R", "D", "N", "B"

// ---- message model ------------------------------------------------------------------------------------------

struct Header {
  MsgType type = MsgType::kProposal;
  uint16_t length = 0;        // parse: the wire value; build: ignored (computed)
  uint8_t version = 1;        // 1 or 2
  Path typev1 = Path::kR;     // byte 7 bits 1-0
  Path typev2 = Path::kNone;  // byte 7 bits 3-2 without the flag: Proposal v2 only (v2 paths offered)
  bool flag = false;          // byte 7 bit 3: first contact (Accept/Confirm), out of sync (Decline)
  bool smcd_eyecatcher = false;          // parse: the header said "SMCD"; build: ignored (chosen by path)
  bool smcd_trailer = false;             // parse: the trailer said "SMCD"; build: ignored
  bool operator==(const Header&) const = default;
};

struct GidChid {
  uint64_t gid = 0;
  uint16_t chid = 0;
  bool operator==(const GidChid&) const = default;
};

struct Ipv6Prefix {
  uint8_t prefix[16] = {};
  uint8_t len = 0;
  bool operator==(const Ipv6Prefix&) const = default;
};

// The Proposal's IP area: the IPv4 subnet of the interface, or (IPv6 connections) up to 8 IPv6 prefixes.
struct IpArea {
  uint32_t ipv4_subnet = 0;  // host order (198.18.0.0 = 0xc6120000)
  uint8_t ipv4_prefix_len = 0;
  uint8_t ipv6_count = 0;
  Ipv6Prefix ipv6[kMaxIpv6Prefixes];
  bool operator==(const IpArea&) const = default;
};

struct ProposalV2Ext {
  uint8_t eid_count = 0;      // UEIDs that follow (<= 8)
  uint8_t ism_count = 0;      // GID/CHID entries in the SMC-Dv2 extension (<= 8)
  uint8_t release = 0;        // flag byte, high nibble
  bool seid_present = false;  // flag byte, bit 0
  uint8_t rocev2_gid[16] = {};
  uint8_t max_conns = 0;
  uint8_t max_links = 0;
  uint16_t feature_mask = 0;  // bit 0: emulated ISM supported
  uint8_t ueids[kMaxUeids][kEidLen] = {};
  bool operator==(const ProposalV2Ext&) const = default;
};

struct ProposalSmcdV2Ext {
  uint8_t seid[kEidLen] = {};
  GidChid ism[kMaxIsmEntries];  // ProposalV2Ext::ism_count entries; emulated ISM uses two (gid, then gid_ext)
  bool operator==(const ProposalSmcdV2Ext&) const = default;
};

struct Proposal {
  uint8_t peer_id[8] = {};
  uint8_t smcr_gid[16] = {};   // SMC-Rv1 GID (RoCE GID of the offered port)
  uint8_t roce_mac[6] = {};
  bool smcd_area = true;       // parse: iparea_offset >= 40; build v1: false writes the legacy layout (v2 needs it)
  uint16_t iparea_offset = 0;  // parse: the wire value; build: computed
  GidChid ism;                 // SMC-D area: native ISM GID + CHID (v1 SMC-D, or the first v2 device)
  uint8_t vendor_oui[3] = {};
  uint8_t vendor_exp[5] = {};
  bool has_ip_area = true;     // v1 always; v2 iff typev1 != N (build derives it the same way)
  IpArea ip;
  bool has_v2_ext = false;     // v2 and typev2 != N
  ProposalV2Ext v2;
  bool has_smcd_v2_ext = false;  // v2 and typev2 in {D, B}
  ProposalSmcdV2Ext smcd_v2;
  bool operator==(const Proposal&) const = default;
};

// First-contact extension of a v2 Accept/Confirm (hdr.flag set).
struct FirstContactExt {
  bool present = false;
  bool v2x = false;            // the 52-byte v2.x form (parse: seen; build: written if set or release >= 1 or
                               // an SMC-R Confirm; kernels with SMC v2.1 write it for every SMC-R message)
  bool v2_direct = false;
  uint8_t os_type = 0;         // high nibble of byte 1
  uint8_t release = 0;         // low nibble of byte 1
  uint8_t hostname[kHostnameLen] = {};
  uint8_t max_conns = 0;       // v2x, SMC-R
  uint8_t max_links = 0;       // v2x, SMC-R
  uint16_t feature_mask = 0;   // v2x
  uint32_t vendor_exp = 0;     // v2x
  uint8_t gid_count = 0;       // SMC-Rv2 Confirm: RoCEv2 GIDs of the client's link group (<= 8)
  uint8_t gids[kMaxFceGids][16] = {};
  bool operator==(const FirstContactExt&) const = default;
};

struct SmcrAcceptConfirm {
  uint8_t peer_id[8] = {};
  uint8_t gid[16] = {};
  uint8_t mac[6] = {};
  uint32_t qpn = 0;          // 24 bits
  uint32_t rkey = 0;
  uint8_t rmbe_idx = 0;
  uint32_t alert_token = 0;
  uint8_t rmbe_size = 0;     // 4 bits, compressed (16 KiB << n)
  uint8_t qp_mtu = 0;        // 4 bits
  uint64_t rmb_va = 0;
  uint32_t psn = 0;          // 24 bits
  bool operator==(const SmcrAcceptConfirm&) const = default;
};

struct SmcdAcceptConfirm {
  uint64_t ism_gid = 0;
  uint64_t dmb_token = 0;
  uint8_t dmbe_idx = 0;
  uint8_t dmbe_size = 0;     // 4 bits, compressed (16 KiB << n)
  uint32_t link_id = 0;
  uint16_t chid = 0;         // v2
  uint64_t gid_ext = 0;      // v2 (emulated ISM: the GID's second half)
  bool operator==(const SmcdAcceptConfirm&) const = default;
};

struct AcceptConfirm {
  SmcrAcceptConfirm r;       // hdr.typev1 == R
  SmcdAcceptConfirm d;       // hdr.typev1 == D
  uint8_t eid[kEidLen] = {}; // v2: the negotiated EID
  FirstContactExt fce;       // v2 with hdr.flag
  bool operator==(const AcceptConfirm&) const = default;
};

struct Decline {
  uint8_t peer_id[8] = {};
  uint32_t diag = 0;         // the Decline code (kDecl*)
  uint8_t os_type = 0;       // high nibble of byte 20
  uint32_t extra[kMaxDeclineExtra] = {};  // v2 only
  bool operator==(const Decline&) const = default;
};

// One CLC message. Only the member for hdr.type is meaningful (accept_confirm for Accept and Confirm).
struct Message {
  Header hdr;
  Proposal proposal;
  AcceptConfirm accept_confirm;
  Decline decline;
  bool operator==(const Message&) const = default;
};

// ---- results ------------------------------------------------------------------------------------------------

enum class Status : uint8_t {
  kOk = 0,
  kTruncated,  // parse: the span is shorter than the header's length (or than a header): need more bytes
  kInvalid,    // parse: the message is not a valid CLC message (see reason)
  kNoRoom,     // build: the output span is too small
  kBadInput,   // build: the Message cannot be encoded (count over a maximum, wrong path for the type, ...)
};

struct Result {
  Status status = Status::kOk;
  uint16_t size = 0;           // parse: the message length consumed; build: bytes written
  uint16_t offset = 0;         // failure: byte offset of the offending field in the message
  const char* reason = "ok";   // static string naming the field, e.g. "proposal.ipv6_prefix_count > 8"
  constexpr bool ok() const noexcept { return status == Status::kOk; }
};

// Parses exactly one CLC message that fills `in` (in.size() must equal the header's length: more bytes is
// kInvalid "trailing bytes after the message", fewer is kTruncated). Use probe() first to learn the length.
Result parse(std::span<const uint8_t> in, Message& out) noexcept;

// Encodes msg into out (layout above). Counts over their maxima, a path the type cannot have, or a version
// other than 1/2 give kBadInput; a short `out` gives kNoRoom (with size = the bytes needed).
Result build(const Message& msg, std::span<uint8_t> out) noexcept;

// The length build() would write for msg (0 if it cannot be encoded).
uint16_t encoded_size(const Message& msg) noexcept;

// ---- what the switch polices ----------------------------------------------------------------------------

struct IsmGid {
  uint64_t gid = 0;
  uint64_t gid_ext = 0;  // emulated ISM only
  uint16_t chid = 0;
  bool emulated = false;
  bool operator==(const IsmGid&) const = default;
};

// The identity fields a decoded message claims, in one flat POD (copyable into an event record).
struct Identity {
  MsgType type = MsgType::kProposal;
  uint8_t version = 0;
  Path path = Path::kNone;          // Accept/Confirm/Decline: R or D; Proposal: typev1 (v1) or the union of
                                    // typev1 and typev2 (v2)
  bool first_contact = false;
  bool has_roce = false;            // MAC + SMC-R GID (Proposal offering R, SMC-R Accept/Confirm)
  uint8_t roce_mac[6] = {};
  uint8_t smcr_gid[16] = {};
  bool has_rocev2_gid = false;      // Proposal v2 extension offering SMC-Rv2
  uint8_t rocev2_gid[16] = {};
  const IpArea* ip = nullptr;       // Proposal only: points into the Message
  uint8_t ism_count = 0;            // ISM GIDs claimed: Proposal (SMC-D area + v2 entries, pairs merged),
  IsmGid ism[1 + kMaxIsmEntries];   // SMC-D Accept/Confirm (one)
  bool has_qp = false;              // SMC-R Accept/Confirm
  uint32_t qpn = 0;
  uint32_t rkey = 0;
  uint64_t rmb_va = 0;
  bool has_dmb = false;             // SMC-D Accept/Confirm
  uint64_t dmb_token = 0;
  uint32_t decline_code = 0;        // Decline only
};

// The identity of a message parse() accepted (or build() could encode).
Identity identity(const Message& msg) noexcept;

// ---- classifier helpers (worker fast path) ----------------------------------------------------------------

struct TcpOptScan {
  bool smc = false;        // kind 254, len 6, ExID E2D4C3D9 found
  bool malformed = false;  // an option's length runs past the area or is < 2 (the walk stopped there)
  uint8_t offset = 0;      // smc: offset of the option's kind byte within the options area
};
// Walks a TCP options area (the bytes after the 20-byte fixed header, data offset bound). Stops at EOL.
TcpOptScan find_smc_option(std::span<const uint8_t> options) noexcept;

enum class ProbeKind : uint8_t {
  kNotClc,    // the bytes cannot start a CLC message
  kNeedMore,  // fewer than 8 bytes, all consistent with a CLC header so far
  kClc,       // a plausible header: msg_len known (complete iff payload.size() >= msg_len)
};
struct Probe {
  ProbeKind kind = ProbeKind::kNotClc;
  uint16_t msg_len = 0;  // kClc: the header's length (kHeaderLen for kNeedMore: what a decision needs)
  MsgType type = MsgType::kProposal;  // kClc only
};
// Looks at the first bytes of a TCP payload (a segment's, or the first bytes of a stream): eyecatcher, type
// 1-4, version 1-2, length between the type's minimum and kMaxMsgLen. Does not validate the body (parse() does).
Probe probe(std::span<const uint8_t> payload) noexcept;

}  // namespace esw::smc
