// libFuzzer target for the SMC CLC codec (dataplane/smc/clc.h): parse, probe, find_smc_option, identity and
// build. Built and run by run_clc_fuzz.sh (clang, -fsanitize=fuzzer,address,undefined) from the seed corpus in
// tests/fuzz/clc_corpus (one file per message kind, written by tests/tools/smc_clc_pcap --corpus). ASan catches
// any read outside the input (libFuzzer passes an exactly sized heap copy); the checks below catch results that
// break the codec's documented guarantees.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>

#include "dataplane/smc/clc.h"

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

  const TcpOptScan s = find_smc_option(in);
  if (s.smc) {
    check(s.offset + 6u <= size && data[s.offset] == kTcpOptKind && data[s.offset + 1] == kTcpOptLen &&
              std::memcmp(data + s.offset + 2, kEyecatcherR, 4) == 0,
          "SMC option where reported");
    check(!s.malformed, "found means not malformed");
  }
  return 0;
}
