// libFuzzer target for the SMC CLC codec (dataplane/smc/clc.h): parse, probe, find_smc_option, identity and
// build; and the session table's reassembly (dataplane/smc/session_table.h): the input is sent as a client's
// first data on a fresh connection, cut into two segments at a point the input chooses, and must end in the
// same state as the codec says (Proposal -> proposal, Decline -> declined, anything else no progress).
// Built and run by run_clc_fuzz.sh (clang, -fsanitize=fuzzer,address,undefined) from the seed corpus in
// tests/fuzz/clc_corpus (one file per message kind, written by tests/tools/smc_clc_pcap --corpus). ASan catches
// any read outside the input (libFuzzer passes an exactly sized heap copy); the checks below catch results that
// break the documented guarantees.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>

#include "dataplane/smc/clc.h"
#include "dataplane/smc/session_table.h"

namespace {

using namespace esw::smc;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "clc invariant violated: %s\n", what);
    std::abort();
  }
}

Message a;
Message b;
Message c;
uint8_t out[kMaxMsgLen];
uint8_t again[kMaxMsgLen];

// The input as the client's first bytes on a fresh connection, in two segments cut at `cut`.
const Session* feed_session(const uint8_t* data, size_t size, size_t cut) {
  static SessionTable table({.capacity = 2});
  static Event ev;
  FiveTuple c;
  c.src[0] = 198;
  c.src[1] = 18;
  c.src[3] = 1;
  c.dst[0] = 198;
  c.dst[1] = 18;
  c.dst[3] = 2;
  c.sport = 40000;
  c.dport = 5000;
  ev.tuple = c;
  ev.kind = EventKind::kRst;
  table.apply(ev, 0);
  check(table.size() == 0, "RST ends the session");
  ev.kind = EventKind::kSynOption;
  table.apply(ev, 0);
  ev.tuple = c.reversed();
  ev.kind = EventKind::kSynAckOption;
  table.apply(ev, 0);
  ev.tuple = c;
  ev.kind = EventKind::kClc;
  const size_t parts[2][2] = {{0, cut}, {cut, size}};
  for (const auto& part : parts) {
    const size_t n = part[1] - part[0];
    if (n == 0) continue;
    ev.seq = 1000 + static_cast<uint32_t>(part[0]);
    ev.payload_len = static_cast<uint16_t>(n);
    ev.copied = static_cast<uint16_t>(n < kEventClcBytes ? n : kEventClcBytes);
    std::memcpy(ev.clc, data + part[0], ev.copied);
    table.apply(ev, 1);
  }
  check(table.size() == 1, "one session");
  return table.find(c);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  // Different garbage in the output: the result must not depend on it.
  std::memset(static_cast<void*>(&a), 0x00, sizeof a);
  std::memset(static_cast<void*>(&b), 0xa5, sizeof b);
  const Result ra = parse(in, a);
  const Result rb = parse(in, b);
  check(ra.status == rb.status && ra.size == rb.size && ra.offset == rb.offset && ra.reason == rb.reason,
        "parse result deterministic");
  check(ra.reason != nullptr, "a reason always");
  check(ra.ok() == (ra.status == Status::kOk), "ok() matches status");
  check(ra.ok() || ra.status == Status::kTruncated || ra.status == Status::kInvalid, "parse statuses");
  check(ra.offset <= size || ra.status == Status::kTruncated, "failure offset inside the input");

  const Probe pr = probe(in);
  check(pr.kind != ProbeKind::kClc || (pr.msg_len >= kHeaderLen && pr.msg_len <= kMaxMsgLen), "probe length");
  if (ra.status == Status::kTruncated && size >= kHeaderLen) check(pr.kind != ProbeKind::kNeedMore, "8 bytes decide");

  if (ra.ok()) {
    check(a == b, "parse output independent of the previous contents");
    check(ra.size == size && a.hdr.length == size, "ok consumes exactly the input");
    check(pr.kind == ProbeKind::kClc && pr.msg_len == size && pr.type == a.hdr.type, "probe agrees with parse");
    const Identity id = identity(a);
    check(id.ism_count <= 1 + kMaxIsmEntries, "identity ISM count");
    check(id.type == a.hdr.type && id.version == a.hdr.version, "identity header");
    check(a.hdr.type != MsgType::kProposal || a.proposal.ip.ipv6_count <= kMaxIpv6Prefixes, "prefix count");
    check(a.accept_confirm.fce.gid_count <= kMaxFceGids, "fce gid count");
    // Whatever parse accepted, build can encode, and that parses to the same fields and rebuilds identically.
    const Result wb = build(a, out);
    check(wb.ok(), "build accepts what parse accepted");
    check(wb.size <= size, "canonical encoding is not longer (gaps and reserved tails are dropped)");
    const Result rc = parse(std::span<const uint8_t>(out, wb.size), c);
    check(rc.ok(), "parse accepts what build wrote");
    const Result wc = build(c, again);
    check(wc.ok() && wc.size == wb.size && std::memcmp(out, again, wb.size) == 0, "build(parse(build)) stable");
    const Identity id2 = identity(c);
    check(id2.path == id.path && id2.qpn == id.qpn && id2.rkey == id.rkey && id2.dmb_token == id.dmb_token &&
              id2.decline_code == id.decline_code && id2.ism_count == id.ism_count &&
              std::memcmp(id2.roce_mac, id.roce_mac, 6) == 0 && std::memcmp(id2.smcr_gid, id.smcr_gid, 16) == 0,
          "identity survives re-encoding");
  }

  if (size <= 0xffff) {
    const size_t cut = size == 0 ? 0 : (size * 7919 + (size > 0 ? data[size - 1] : 0)) % (size + 1);
    const Session* ses = feed_session(data, size, cut);
    check(ses != nullptr, "session tracked");
    // A single valid message that fits in the copies: the table reaches the state the codec implies.
    const bool fits = cut <= kEventClcBytes && size - cut <= kEventClcBytes;
    if (ra.ok() && fits) {
      check(ses->clc_messages == 1, "one message parsed");
      switch (a.hdr.type) {
        case MsgType::kProposal:
          check(ses->state == State::kProposal, "proposal -> proposal state");
          check(ses->version == a.hdr.version, "version");
          check(ses->client_id.has_roce == identity(a).has_roce, "client identity");
          break;
        case MsgType::kDecline:
          check(ses->state == State::kDeclined && ses->decline_code == a.decline.diag, "decline -> declined");
          break;
        default:
          check(ses->state == State::kSynAck, "an accept/confirm from the client changes nothing");
      }
    }
    // One invalid message filling the input (no second message after it): the table must not progress.
    if (ra.status == Status::kInvalid && pr.kind == ProbeKind::kClc && pr.msg_len == size && fits)
      check(ses->state == State::kSynAck || ses->state == State::kFallback, "invalid message: no progress");
  }

  const TcpOptScan o = find_smc_option(in);
  if (o.smc) {
    check(o.offset + 6u <= size && data[o.offset] == kTcpOptKind && data[o.offset + 1] == kTcpOptLen &&
              std::memcmp(data + o.offset + 2, kEyecatcherR, 4) == 0,
          "SMC option where reported");
    check(!o.malformed, "found means not malformed");
  }
  return 0;
}
