// frame_flood: sends one Ethernet/IPv4/UDP frame (60 bytes, source port varied) as fast as it can, or at a given
// rate, out of an interface through an AF_PACKET socket (sendmmsg, qdisc bypass), for a number of seconds; prints
// the frames sent. Used by bench/xdp_spoof.sh to flood a vport from inside a tenant namespace.
//
// usage: frame_flood IFACE DST_MAC SRC_MAC SRC_IPV4 DST_IPV4 SECONDS [PPS]
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <array>
#include <vector>

namespace {

bool parse_mac(const char* s, uint8_t* out) {
  unsigned b[6];
  if (std::sscanf(s, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6) return false;
  for (int i = 0; i < 6; ++i) out[i] = static_cast<uint8_t>(b[i]);
  return true;
}

uint16_t ip_checksum(const uint8_t* h, size_t n) {
  uint32_t sum = 0;
  for (size_t i = 0; i < n; i += 2) sum += uint32_t(h[i]) << 8 | h[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr, "usage: %s IFACE DST_MAC SRC_MAC SRC_IPV4 DST_IPV4 SECONDS [PPS]\n", argv[0]);
    return 2;
  }
  uint8_t frame[60] = {};
  in_addr src{}, dst{};
  if (!parse_mac(argv[2], frame) || !parse_mac(argv[3], frame + 6) || inet_pton(AF_INET, argv[4], &src) != 1 ||
      inet_pton(AF_INET, argv[5], &dst) != 1) {
    std::fprintf(stderr, "frame_flood: bad MAC or IPv4 address\n");
    return 2;
  }
  const double seconds = std::atof(argv[6]);
  const double pps = argc > 7 ? std::atof(argv[7]) : 0;
  frame[12] = 0x08;
  uint8_t* ip = frame + 14;
  ip[0] = 0x45;
  ip[3] = 46;  // total length: 20 + 8 + 18
  ip[8] = 64;
  ip[9] = 17;
  std::memcpy(ip + 12, &src, 4);
  std::memcpy(ip + 16, &dst, 4);
  const uint16_t ck = ip_checksum(ip, 20);
  ip[10] = static_cast<uint8_t>(ck >> 8);
  ip[11] = static_cast<uint8_t>(ck);
  uint8_t* udp = ip + 20;
  udp[2] = 0x00;
  udp[3] = 9;  // discard
  udp[5] = 26;

  const int fd = socket(AF_PACKET, SOCK_RAW, 0);
  if (fd < 0) {
    std::perror("frame_flood: socket");
    return 1;
  }
  const int one = 1;
  setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_ifindex = static_cast<int>(if_nametoindex(argv[1]));
  if (sll.sll_ifindex == 0 || bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) {
    std::perror("frame_flood: bind");
    return 1;
  }
  constexpr int kBatch = 32;
  std::vector<std::array<uint8_t, 60>> frames(kBatch);
  std::vector<iovec> iov(kBatch);
  std::vector<mmsghdr> msgs(kBatch);
  for (int i = 0; i < kBatch; ++i) {
    std::memcpy(frames[i].data(), frame, sizeof frame);
    iov[i] = {frames[i].data(), sizeof frame};
    msgs[i] = {};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  const auto end = t0 + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(seconds));
  uint64_t sent = 0;
  uint16_t sport = 1024;
  while (clock::now() < end) {
    for (int i = 0; i < kBatch; ++i) {
      frames[i][34] = static_cast<uint8_t>(sport >> 8);
      frames[i][35] = static_cast<uint8_t>(sport);
      sport = static_cast<uint16_t>(sport == 65535 ? 1024 : sport + 1);
    }
    const int n = sendmmsg(fd, msgs.data(), kBatch, 0);
    if (n > 0) sent += static_cast<uint64_t>(n);
    if (pps > 0) {
      const auto due = t0 + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(sent / pps));
      if (due > clock::now()) std::this_thread::sleep_until(due);
    }
  }
  const double took = std::chrono::duration<double>(clock::now() - t0).count();
  std::printf("%llu %.3f\n", static_cast<unsigned long long>(sent), took);
  close(fd);
  return 0;
}
