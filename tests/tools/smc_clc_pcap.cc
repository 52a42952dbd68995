// Writes every CLC message the codec builds (tests/common/smc_clc_cases.h) into a pcap, each in its own TCP
// connection (SYN and SYN-ACK carrying the SMC option, then the message; one Proposal split over two segments),
// between 198.18.0.1 (client) and 198.18.0.2 (server), and writes what the codec decodes from those same bytes as
// JSON, so tests/e2e/smc_tshark.sh can compare tshark's SMC dissector with the codec field by field.
//
//   smc_clc_pcap OUT.pcap EXPECTED.json [--corpus DIR]   (--corpus: also each message as DIR/<case>.bin)

#include <arpa/inet.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "common/smc_clc_cases.h"
#include "dataplane/smc/clc.h"

namespace {

using namespace esw::smc;  // NOLINT: tool
using Bytes = std::vector<uint8_t>;

void put16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
void put32(Bytes& b, uint32_t v) {
  put16(b, static_cast<uint16_t>(v >> 16));
  put16(b, static_cast<uint16_t>(v));
}
uint16_t csum(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(p[i] << 8 | p[i + 1]);
  if (n % 2) sum += uint32_t(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

struct Pcap {
  FILE* f = nullptr;
  uint32_t frames = 0;
  void open(const char* path) {
    f = std::fopen(path, "wb");
    if (f == nullptr) {
      std::perror(path);
      std::exit(2);
    }
    const uint32_t hdr[6] = {0xa1b2c3d4, 0x00040002, 0, 0, 65535, 1};  // v2.4, snaplen, LINKTYPE_ETHERNET
    std::fwrite(hdr, sizeof hdr, 1, f);
  }
  void frame(const Bytes& b) {
    ++frames;
    const uint32_t rec[4] = {1700000000u + frames, 0, uint32_t(b.size()), uint32_t(b.size())};
    std::fwrite(rec, sizeof rec, 1, f);
    std::fwrite(b.data(), 1, b.size(), f);
  }
};

// One Ethernet/IPv4/TCP frame; client = 198.18.0.1:cport, server = 198.18.0.2:5000.
Bytes tcp_frame(bool from_client, uint16_t cport, uint32_t seq, uint32_t ack, uint8_t flags, const Bytes& opts,
                const uint8_t* payload, size_t plen) {
  const uint8_t cmac[6] = {0x02, 0, 0xc6, 0x12, 0, 1}, smac[6] = {0x02, 0, 0xc6, 0x12, 0, 2};
  const uint8_t cip[4] = {198, 18, 0, 1}, sip[4] = {198, 18, 0, 2};
  Bytes b;
  b.insert(b.end(), from_client ? smac : cmac, (from_client ? smac : cmac) + 6);
  b.insert(b.end(), from_client ? cmac : smac, (from_client ? cmac : smac) + 6);
  put16(b, 0x0800);
  const size_t ip = b.size();
  const size_t tcp_len = 20 + opts.size() + plen;
  b.push_back(0x45);
  b.push_back(0);
  put16(b, static_cast<uint16_t>(20 + tcp_len));
  put16(b, 1);
  put16(b, 0x4000);
  b.push_back(64);
  b.push_back(6);
  put16(b, 0);
  b.insert(b.end(), from_client ? cip : sip, (from_client ? cip : sip) + 4);
  b.insert(b.end(), from_client ? sip : cip, (from_client ? sip : cip) + 4);
  const uint16_t ipc = csum(b.data() + ip, 20);
  b[ip + 10] = static_cast<uint8_t>(ipc >> 8);
  b[ip + 11] = static_cast<uint8_t>(ipc);
  const size_t tcp = b.size();
  put16(b, from_client ? cport : 5000);
  put16(b, from_client ? 5000 : cport);
  put32(b, seq);
  put32(b, ack);
  b.push_back(static_cast<uint8_t>((20 + opts.size()) / 4 << 4));
  b.push_back(flags);
  put16(b, 65535);
  put16(b, 0);
  put16(b, 0);
  b.insert(b.end(), opts.begin(), opts.end());
  b.insert(b.end(), payload, payload + plen);
  uint32_t pseudo = 0;
  for (int i = 0; i < 8; i += 2) pseudo += uint32_t(b[ip + 12 + i] << 8 | b[ip + 13 + i]);
  pseudo += 6 + uint32_t(tcp_len);
  const uint16_t tc = csum(b.data() + tcp, tcp_len, pseudo);
  b[tcp + 16] = static_cast<uint8_t>(tc >> 8);
  b[tcp + 17] = static_cast<uint8_t>(tc);
  return b;
}

// ---- expected fields, as JSON: {"name": ["v", ...]} with canonical values (see smc_tshark.sh) ----------------

struct Fields {
  std::string s;
  void add(const std::string& name, const std::string& kind, const std::vector<std::string>& values) {
    s += s.empty() ? "" : ", ";
    s += "\"" + name + "\": [\"" + kind + "\"";
    for (const std::string& v : values) s += ", \"" + v + "\"";
    s += "]";
  }
  void num(const std::string& name, uint64_t v) { add(name, "int", {std::to_string(v)}); }
  void nums(const std::string& name, const std::vector<uint64_t>& v) {
    std::vector<std::string> out;
    for (uint64_t x : v) out.push_back(std::to_string(x));
    add(name, "int", out);
  }
  static std::string hex(const uint8_t* p, size_t n) {
    std::string h;
    char t[3];
    for (size_t i = 0; i < n; ++i) {
      std::snprintf(t, sizeof t, "%02x", p[i]);
      h += t;
    }
    return h;
  }
  void ipv6(const std::string& name, const std::vector<const uint8_t*>& v) {
    std::vector<std::string> out;
    for (const uint8_t* p : v) out.push_back(hex(p, 16));
    add(name, "ipv6", out);
  }
  void mac(const std::string& name, const uint8_t* p) { add(name, "mac", {hex(p, 6)}); }
  void str(const std::string& name, const uint8_t* p, size_t n) {
    std::string v(reinterpret_cast<const char*>(p), n);
    while (!v.empty() && (v.back() == ' ' || v.back() == '\0')) v.pop_back();
    add(name, "str", {v});
  }
};

uint64_t u64(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = v << 8 | p[i];
  return v;
}

uint8_t flags_byte(const Header& h) {
  uint8_t b = static_cast<uint8_t>(h.version << 4 | static_cast<uint8_t>(h.typev1));
  if (h.type == MsgType::kProposal) {
    if (h.version == 2) b = static_cast<uint8_t>(b | static_cast<uint8_t>(h.typev2) << 2);
  } else if (h.flag) {
    b |= 0x08;
  }
  return b;
}

std::string dotted(const uint8_t* p) {
  return std::to_string(p[0]) + "." + std::to_string(p[1]) + "." + std::to_string(p[2]) + "." + std::to_string(p[3]);
}

bool offers_d(Path p) { return p == Path::kD || p == Path::kBoth; }
bool offers_r(Path p) { return p == Path::kR || p == Path::kBoth; }

// The fields tshark 4.0's SMC dissector shows for a message, with the values the codec decoded. Fields tshark
// does not decode are not listed: max_conns/max_links/feature_mask (v2 extension and first-contact v2.x form,
// shown as reserved), the SMC-D v2 gid_ext at 66, vendor options, the first 12 bytes of the RoCEv2 GID (on an
// IPv4 connection tshark shows its last 4 bytes as an IPv4 address).
std::string expected(const Message& m) {
  Fields f;
  const Header& h = m.hdr;
  f.num("smc.clc_msg", static_cast<uint8_t>(h.type));
  f.num("smc.length", h.length);
  switch (h.type) {
    case MsgType::kProposal: {
      const Proposal& p = m.proposal;
      f.num("smc.proposal.flags", flags_byte(h));
      if (offers_r(h.typev1)) {  // tshark shows the peer id, GID and MAC for SMC-R (v1) proposals only
        f.num("smc.proposal.sender.client.peer.id", u64(p.peer_id, 8));
        f.ipv6("smc.proposal.client.preferred.gid", {p.smcr_gid});
        f.mac("smc.proposal.client.preferred.mac", p.roce_mac);
      }
      if (h.typev1 != Path::kNone) f.num("smc.proposal.smcv1_subnet_ext_offset", p.iparea_offset);
      if (p.has_ip_area) {
        f.add("smc.outgoing.interface.subnet.mask", "ipv4", {std::to_string(p.ip.ipv4_subnet)});
        f.num("smc.outgoing.interface.subnet.mask.number.of.significant.bits", p.ip.ipv4_prefix_len);
        f.num("smc.proposal.ipv6.prefix.count", p.ip.ipv6_count);
        std::vector<const uint8_t*> pfx;
        std::vector<uint64_t> lens;
        for (int i = 0; i < p.ip.ipv6_count; ++i) {
          pfx.push_back(p.ip.ipv6[i].prefix);
          lens.push_back(p.ip.ipv6[i].len);
        }
        if (!pfx.empty()) {
          f.ipv6("smc.proposal.ipv6.prefix.value", pfx);
          f.nums("smc.proposal.ipv6.prefix.length", lens);
        }
      }
      std::vector<uint64_t> gids, chids;
      if (p.smcd_area && (offers_d(h.typev1) || p.has_smcd_v2_ext)) gids.push_back(p.ism.gid);
      if (p.has_v2_ext) {
        f.num("smc.proposal.eid.count", p.v2.eid_count);
        f.num("smc.proposal.ismv2_gid_count", p.v2.ism_count);
        f.num("smc.proposal.smc.version.relnum", p.v2.release);
        f.num("smc.proposal.smc.seid", p.v2.seid_present ? 1 : 0);
        if (offers_r(h.typev2)) f.add("smc.proposal.rocev2.gid.ipv4", "ipv4dotted", {dotted(p.v2.rocev2_gid + 12)});
        std::vector<std::string> eids;
        for (int i = 0; i < p.v2.eid_count; ++i) {
          std::string e(reinterpret_cast<const char*>(p.v2.ueids[i]), kEidLen);
          while (!e.empty() && e.back() == ' ') e.pop_back();
          eids.push_back(e);
        }
        if (!eids.empty()) f.add("smc.proposal.eid", "str", eids);
      }
      if (p.has_smcd_v2_ext) {
        f.str("smc.proposal.system.eid", p.smcd_v2.seid, kEidLen);
        chids.push_back(p.ism.chid);
        for (int i = 0; i < p.v2.ism_count; ++i) {
          gids.push_back(p.smcd_v2.ism[i].gid);
          chids.push_back(p.smcd_v2.ism[i].chid);
        }
        f.nums("smc.proposal.smc.chid", chids);
      }
      if (!gids.empty()) f.nums("smc.proposal.ism.gid", gids);
      break;
    }
    case MsgType::kAccept:
    case MsgType::kConfirm: {
      const AcceptConfirm& a = m.accept_confirm;
      const bool acc = h.type == MsgType::kAccept;
      const std::string t = acc ? "accept" : "confirm";
      f.num("smc." + t + ".flags", flags_byte(h));
      if (h.typev1 == Path::kR) {
        f.num(acc ? "smc.accept.sender.server.peer.id" : "smc.confirm.sender.client.peer.id", u64(a.r.peer_id, 8));
        f.ipv6(acc ? "smc.accept.server.preferred.gid" : "smc.client.gid", {a.r.gid});
        f.mac(acc ? "smc.accept.server.preferred.mac" : "smc.confirm.client.mac", a.r.mac);
        f.num(acc ? "smc.accept.server.qp.number" : "smc.confirm.client.qp.number", a.r.qpn);
        f.num(acc ? "smc.accept.server.rmb.rkey" : "smc.confirm.client.rmb.rkey", a.r.rkey);
        f.num(acc ? "smc.accept.server.tcp.conn.index" : "smc.confirm.client.tcp.conn.index", a.r.rmbe_idx);
        f.num(acc ? "smc.accept.server.rmb.element.alert.token" : "smc.client.rmb.element.alert.token",
              a.r.alert_token);
        f.num("smc." + t + ".rmb.buffer.size", a.r.rmbe_size);
        f.num("smc." + t + ".qp.mtu.value", a.r.qp_mtu);
        f.num(acc ? "smc.accept.server.rmb.virtual.address" : "smc.client.rmb.virtual.address", a.r.rmb_va);
        f.num(acc ? "smc.accept.initial.psn" : "smc.initial.psn", a.r.psn);
      } else {
        f.num("smc." + t + ".sender." + (acc ? "server" : "client") + ".ism.gid", a.d.ism_gid);
        f.num("smc." + t + ".dmb.token", a.d.dmb_token);
        f.num("smc." + t + ".dmbe.conn.index", a.d.dmbe_idx);
        f.num("smc." + t + ".dmbe.buffer.size", a.d.dmbe_size);
        f.num(acc ? "smc.accept.server.linkid" : "smc.confirm.client.linkid", a.d.link_id);
        if (h.version == 2) f.num("smc." + t + ".smc.chid", a.d.chid);
      }
      if (h.version == 2) f.str("smc." + t + ".eid", a.eid, kEidLen);
      if (a.fce.present) {
        f.num("smc." + t + ".os.type", a.fce.os_type);
        f.num("smc." + t + ".smc.version.relnum", a.fce.release);
        f.str("smc." + t + ".peer.host.name", a.fce.hostname, kHostnameLen);
        if (h.typev1 == Path::kR && !acc) {
          f.num("smc.confirm.gid.list.entry_count", a.fce.gid_count);
          std::vector<const uint8_t*> g;
          for (int i = 0; i < a.fce.gid_count; ++i) g.push_back(a.fce.gids[i]);
          if (!g.empty()) f.ipv6("smc.confirm.gid.list.entry", g);
        }
      }
      break;
    }
    case MsgType::kDecline: {
      const Decline& d = m.decline;
      f.num("smc.decline.flags", flags_byte(h));
      f.num("smc.sender.peer.id", u64(d.peer_id, 8));
      std::vector<uint64_t> diag = {d.diag};
      if (h.version == 2) {
        for (uint32_t x : d.extra) diag.push_back(x);
        f.num("smc.decline.os.type", d.os_type);
      }
      f.nums("smc.peer.diag.info", diag);
      f.num("smc.decline.smc.version", h.version);
      f.num("smc.decline.osync", h.flag ? 1 : 0);
      break;
    }
  }
  return "{" + f.s + "}";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 && !(argc == 5 && std::string(argv[3]) == "--corpus")) {
    std::fprintf(stderr, "usage: %s OUT.pcap EXPECTED.json [--corpus DIR]\n", argv[0]);
    return 2;
  }
  Pcap pcap;
  pcap.open(argv[1]);
  FILE* json = std::fopen(argv[2], "w");
  if (json == nullptr) {
    std::perror(argv[2]);
    return 2;
  }
  std::fprintf(json, "[\n");
  const Bytes smc_opt = {1, 1, kTcpOptKind, kTcpOptLen, 0xe2, 0xd4, 0xc3, 0xd9};
  if (argc == 5) {  // TCP options areas for find_smc_option: Linux's SYN, and the bpf_store_hdr_opt form
    const Bytes linux_syn = {2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
                             1, 1, kTcpOptKind, kTcpOptLen, 0xe2, 0xd4, 0xc3, 0xd9};
    const Bytes bpf = {kTcpOptKind, kTcpOptLen, 0xe2, 0xd4, 0xc3, 0xd9, 1, 1};
    for (const auto& [name, b] : {std::pair{"tcpopt_linux_syn", linux_syn}, std::pair{"tcpopt_bpf", bpf}}) {
      const std::string path = std::string(argv[4]) + "/" + name + ".bin";
      FILE* f = std::fopen(path.c_str(), "wb");
      if (f == nullptr || std::fwrite(b.data(), 1, b.size(), f) != b.size()) {
        std::perror(path.c_str());
        return 2;
      }
      std::fclose(f);
    }
  }
  std::vector<cases::Case> all = cases::all_cases();
  uint16_t cport = 40000;
  bool first = true;
  int split_done = 0;
  for (const cases::Case& c : all) {
    Bytes msg(kMaxMsgLen);
    const Result r = build(c.msg, msg);
    if (!r.ok()) {
      std::fprintf(stderr, "%s: build failed: %s\n", c.name.c_str(), r.reason);
      return 1;
    }
    msg.resize(r.size);
    Message decoded;
    const Result p = parse(msg, decoded);
    if (!p.ok()) {
      std::fprintf(stderr, "%s: parse failed: %s at %u\n", c.name.c_str(), p.reason, p.offset);
      return 1;
    }
    if (argc == 5) {
      const std::string path = std::string(argv[4]) + "/" + c.name + ".bin";
      FILE* f = std::fopen(path.c_str(), "wb");
      if (f == nullptr || std::fwrite(msg.data(), 1, msg.size(), f) != msg.size()) {
        std::perror(path.c_str());
        return 2;
      }
      std::fclose(f);
    }
    // The legacy 52-byte v1 Proposal (no SMC-D area) is parse-only compatibility: tshark 4.0 expects the SMC-D
    // area and shows no IP area for it.
    if (c.name == "proposal_v1_R_legacy") continue;
    // Accept comes from the server; Proposal, Confirm and Decline from the client.
    const bool from_client = c.msg.hdr.type != MsgType::kAccept;
    ++cport;
    const uint32_t cseq = 1000, sseq = 5000;
    pcap.frame(tcp_frame(true, cport, cseq, 0, 0x02, smc_opt, nullptr, 0));
    pcap.frame(tcp_frame(false, cport, sseq, cseq + 1, 0x12, smc_opt, nullptr, 0));
    pcap.frame(tcp_frame(true, cport, cseq + 1, sseq + 1, 0x10, {}, nullptr, 0));
    const uint32_t seq = from_client ? cseq + 1 : sseq + 1;
    const uint32_t ack = from_client ? sseq + 1 : cseq + 1;
    // The largest Proposal also goes split over two segments (the second case of it in the file).
    const bool split = c.name == "proposal_v2_B_B_max";
    uint32_t frame_of_msg;
    if (!split) {
      pcap.frame(tcp_frame(from_client, cport, seq, ack, 0x18, {}, msg.data(), msg.size()));
      frame_of_msg = pcap.frames;
    } else {
      pcap.frame(tcp_frame(from_client, cport, seq, ack, 0x18, {}, msg.data(), msg.size()));
      const uint32_t whole = pcap.frames;
      std::fprintf(json, "%s  {\"frame\": %u, \"case\": \"%s\", \"malformed_ok\": false, \"fields\": %s}",
                   first ? "" : ",\n", whole, c.name.c_str(), expected(decoded).c_str());
      first = false;
      ++cport;
      pcap.frame(tcp_frame(true, cport, cseq, 0, 0x02, smc_opt, nullptr, 0));
      pcap.frame(tcp_frame(false, cport, sseq, cseq + 1, 0x12, smc_opt, nullptr, 0));
      pcap.frame(tcp_frame(true, cport, cseq + 1, sseq + 1, 0x10, {}, nullptr, 0));
      const size_t cut = 100;
      pcap.frame(tcp_frame(from_client, cport, seq, ack, 0x10, {}, msg.data(), cut));
      pcap.frame(tcp_frame(from_client, cport, seq + cut, ack, 0x18, {}, msg.data() + cut, msg.size() - cut));
      frame_of_msg = pcap.frames;  // tshark shows the reassembled message on the last segment
      split_done = 1;
    }
    // tshark 4.0 reads an SMC-D v2 first-contact extension as the 52-byte v2.x form even for release 0, where
    // Linux (smc_clc_fill_fce) sends 36 bytes: it decodes every field, then reports an exception at the end.
    const bool malformed_ok = c.name.ends_with("_v2_D_fc_rel0");
    std::fprintf(json, "%s  {\"frame\": %u, \"case\": \"%s%s\", \"malformed_ok\": %s, \"fields\": %s}",
                 first ? "" : ",\n", frame_of_msg, c.name.c_str(), split ? "_split" : "",
                 malformed_ok ? "true" : "false", expected(decoded).c_str());
    first = false;
  }
  std::fprintf(json, "\n]\n");
  std::fclose(json);
  std::fclose(pcap.f);
  std::fprintf(stderr, "smc_clc_pcap: %zu cases (%d split) in %u frames\n", all.size(), split_done, pcap.frames);
  return 0;
}
