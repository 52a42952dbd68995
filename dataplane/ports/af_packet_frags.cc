#include "dataplane/ports/af_packet_frags.h"

#include <dlfcn.h>
#include <linux/if_packet.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <mutex>

namespace {
// Sockets seen at PACKET_FANOUT, not yet taken (probing happens on the main lcore; the lock is for safety).
std::mutex g_mu;
std::vector<int> g_fanout_fds;
}  // namespace

// See af_packet_frags.h. Same contract as the C library's setsockopt (returns -1 and sets errno on failure).
extern "C" int setsockopt(int fd, int level, int optname, const void* optval, socklen_t optlen) noexcept {
  if (level == SOL_PACKET && optname == PACKET_FANOUT && optval != nullptr && optlen >= sizeof(uint32_t) &&
      optlen <= 16) {
    // int (id | type_flags << 16) or struct fanout_args {u16 id; u16 type_flags; ...}: the same first 4 bytes.
    unsigned char buf[16];
    std::memcpy(buf, optval, optlen);
    uint32_t arg;
    std::memcpy(&arg, buf, sizeof arg);
    arg &= ~(static_cast<uint32_t>(PACKET_FANOUT_FLAG_DEFRAG) << 16);
    std::memcpy(buf, &arg, sizeof arg);
    {
      std::lock_guard<std::mutex> lock(g_mu);
      g_fanout_fds.push_back(fd);
    }
    return static_cast<int>(syscall(SYS_setsockopt, fd, level, optname, buf, optlen));
  }
  return static_cast<int>(syscall(SYS_setsockopt, fd, level, optname, optval, optlen));
}

namespace esw::dp {

bool af_packet_keeps_fragments() noexcept {
  // What a plugin calling setsockopt() gets: the first definition in the global scope.
  return dlsym(RTLD_DEFAULT, "setsockopt") == reinterpret_cast<void*>(&::setsockopt);
}

std::vector<int> take_af_packet_sockets() {
  std::lock_guard<std::mutex> lock(g_mu);
  std::vector<int> out;
  out.swap(g_fanout_fds);
  return out;
}

uint64_t af_packet_kernel_drops(const std::vector<int>& fds) noexcept {
  uint64_t drops = 0;
  for (int fd : fds) {
    tpacket_stats st{};
    socklen_t len = sizeof st;
    if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) drops += st.tp_drops;
  }
  return drops;
}

}  // namespace esw::dp
