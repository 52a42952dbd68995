#pragma once
// Whole-buffer send/recv on a stream socket (EINTR retried; false on error or end of stream). Shared by the
// tenant library's CLC exchange and the test tenant's own TCP traffic.

#include <sys/socket.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

namespace esw::smc::tenant {

inline bool write_all(int fd, const void* b, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(b);
  while (n) {
    ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    p += k, n -= static_cast<size_t>(k);
  }
  return true;
}

inline bool read_all(int fd, void* b, size_t n) {
  uint8_t* p = static_cast<uint8_t*>(b);
  while (n) {
    ssize_t k = ::recv(fd, p, n, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    p += k, n -= static_cast<size_t>(k);
  }
  return true;
}

}  // namespace esw::smc::tenant
