#include "vdpa/offload.h"

#include <rte_byteorder.h>
#include <rte_ip.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include <cstring>

namespace esw::vdpa {

namespace {

constexpr uint64_t kTxFlags = RTE_MBUF_F_TX_L4_MASK | RTE_MBUF_F_TX_TCP_SEG | RTE_MBUF_F_TX_IP_CKSUM |
                              RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IPV6;
constexpr uint8_t kTcpFin = 0x01, kTcpPsh = 0x08, kTcpCwr = 0x80;

bool is_v4(const uint8_t* l3) { return (l3[0] >> 4) == 4; }

// The L4 checksum of a contiguous frame whose headers start at l3 (the checksum field zeroed first).
void l4_checksum(uint8_t* l3, uint8_t* l4, bool tcp) {
  uint16_t* field = reinterpret_cast<uint16_t*>(l4 + (tcp ? 16 : 6));
  *field = 0;
  uint16_t sum;
  if (is_v4(l3)) {
    sum = rte_ipv4_udptcp_cksum(reinterpret_cast<const rte_ipv4_hdr*>(l3), l4);
  } else {
    sum = rte_ipv6_udptcp_cksum(reinterpret_cast<const rte_ipv6_hdr*>(l3), l4);
  }
  *field = sum;
}

uint16_t drop(rte_mbuf* m, OffloadCounters& c) {
  rte_pktmbuf_free(m);
  ++c.errors;
  return 0;
}

}  // namespace

uint16_t complete_offloads(rte_mbuf* m, rte_mempool* pool, rte_mbuf** out, OffloadCounters& c) noexcept {
  const uint32_t l2 = m->l2_len, l3 = m->l3_len;
  const bool gso = (m->ol_flags & RTE_MBUF_F_TX_TCP_SEG) != 0;
  const uint64_t l4kind = m->ol_flags & RTE_MBUF_F_TX_L4_MASK;
  const bool tcp = gso || l4kind == RTE_MBUF_F_TX_TCP_CKSUM;
  if (!gso && l4kind != RTE_MBUF_F_TX_TCP_CKSUM && l4kind != RTE_MBUF_F_TX_UDP_CKSUM) {
    // SCTP: rte_vhost computes what it does not map to a flag; nothing of ours to do.
    m->ol_flags &= ~kTxFlags;
    out[0] = m;
    return 1;
  }
  const uint32_t l4min = tcp ? sizeof(rte_tcp_hdr) : sizeof(rte_udp_hdr);
  if (l2 < 14 || (l3 != 20 && l3 < 40) || l2 + l3 + l4min > m->pkt_len) return drop(m, c);

  if (!gso) {
    if (m->nb_segs > 1 && rte_pktmbuf_linearize(m) != 0) return drop(m, c);
    uint8_t* p = rte_pktmbuf_mtod(m, uint8_t*);
    uint8_t* ip = p + l2;
    // The IP header's own length must agree with the frame (the checksum helpers take the L4 length from it).
    const uint32_t l4len = is_v4(ip) ? rte_be_to_cpu_16(reinterpret_cast<rte_ipv4_hdr*>(ip)->total_length) - l3
                                     : rte_be_to_cpu_16(reinterpret_cast<rte_ipv6_hdr*>(ip)->payload_len) - (l3 - 40);
    if ((is_v4(ip) ? l3 != 20 : l3 != 40) || l4len < l4min || l2 + l3 + l4len > m->pkt_len) return drop(m, c);
    l4_checksum(ip, ip + l3, tcp);
    m->ol_flags &= ~kTxFlags;
    ++c.csum_completed;
    out[0] = m;
    return 1;
  }

  // TCP segmentation.
  const uint32_t l4 = m->l4_len;
  const uint32_t hdr = l2 + l3 + l4;
  const uint32_t mss = m->tso_segsz;
  const uint32_t room = rte_pktmbuf_data_room_size(pool) - RTE_PKTMBUF_HEADROOM;
  if (l4 < sizeof(rte_tcp_hdr) || l4 > 60 || mss == 0 || hdr + mss > room || hdr > m->pkt_len) return drop(m, c);
  const uint32_t payload = m->pkt_len - hdr;
  const uint32_t nseg = payload == 0 ? 1 : (payload + mss - 1) / mss;
  if (nseg > kMaxSegments) return drop(m, c);
  uint8_t h[14 + 60 + 60 + 64];  // l2 (with VLANs) + IPv6 with extension headers + TCP with options
  if (hdr > sizeof(h)) return drop(m, c);
  const auto* hp = static_cast<const uint8_t*>(rte_pktmbuf_read(m, 0, hdr, h));
  if (hp == nullptr) return drop(m, c);
  if (hp != h) std::memcpy(h, hp, hdr);
  const bool v4 = is_v4(h + l2);
  if (v4 ? l3 != 20 : l3 != 40) return drop(m, c);
  const rte_tcp_hdr* th0 = reinterpret_cast<const rte_tcp_hdr*>(h + l2 + l3);
  const uint32_t seq0 = rte_be_to_cpu_32(th0->sent_seq);
  const uint8_t flags0 = th0->tcp_flags;
  const uint16_t id0 = v4 ? rte_be_to_cpu_16(reinterpret_cast<const rte_ipv4_hdr*>(h + l2)->packet_id) : 0;

  uint16_t made = 0;
  for (uint32_t i = 0; i < nseg; ++i) {
    const uint32_t off = i * mss;
    const uint32_t len = payload - off < mss ? payload - off : mss;
    rte_mbuf* s = rte_pktmbuf_alloc(pool);
    uint8_t* d = s != nullptr ? reinterpret_cast<uint8_t*>(rte_pktmbuf_append(s, static_cast<uint16_t>(hdr + len)))
                              : nullptr;
    if (d == nullptr) {
      rte_pktmbuf_free(s);
      for (uint16_t k = 0; k < made; ++k) rte_pktmbuf_free(out[k]);
      return drop(m, c);
    }
    std::memcpy(d, h, hdr);
    if (len > 0) {
      const void* src = rte_pktmbuf_read(m, hdr + off, len, d + hdr);
      if (src != d + hdr) std::memcpy(d + hdr, src, len);
    }
    uint8_t* ip = d + l2;
    if (v4) {
      auto* ih = reinterpret_cast<rte_ipv4_hdr*>(ip);
      ih->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(l3 + l4 + len));
      ih->packet_id = rte_cpu_to_be_16(static_cast<uint16_t>(id0 + i));
      ih->hdr_checksum = 0;
      ih->hdr_checksum = rte_ipv4_cksum(ih);
    } else {
      reinterpret_cast<rte_ipv6_hdr*>(ip)->payload_len = rte_cpu_to_be_16(static_cast<uint16_t>(l4 + len));
    }
    auto* th = reinterpret_cast<rte_tcp_hdr*>(ip + l3);
    th->sent_seq = rte_cpu_to_be_32(seq0 + off);
    uint8_t f = flags0;
    if (i + 1 < nseg) f = static_cast<uint8_t>(f & ~(kTcpFin | kTcpPsh));
    if (i > 0) f = static_cast<uint8_t>(f & ~kTcpCwr);
    th->tcp_flags = f;
    l4_checksum(ip, ip + l3, true);
    s->port = m->port;
    out[made++] = s;
  }
  rte_pktmbuf_free(m);
  ++c.gso_frames;
  c.gso_segments += made;
  return made;
}

}  // namespace esw::vdpa
