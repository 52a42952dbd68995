#include "vdpa/vhost_wake.h"

#include <rte_vhost.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <fmt/format.h>

namespace esw::vdpa {

namespace {

// No callback is ever called (nothing is negotiated on the throwaway connection), but rte_vhost dereferences the
// ops of every connection it adds (vhost_user_add_connection: notify_ops->new_connection).
const rte_vhost_device_ops kNoOps = {};

}  // namespace

std::string wake_vhost_event_thread() {
  const char* tmp = ::getenv("TMPDIR");
  std::string dir = fmt::format("{}/esw-vhost-wake.XXXXXX", tmp != nullptr && tmp[0] == '/' ? tmp : "/tmp");
  if (::mkdtemp(dir.data()) == nullptr) return fmt::format("mkdtemp {}: {}", dir, strerror(errno));
  const std::string path = dir + "/s";
  std::string err;
  const int lfd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  if (lfd < 0) {
    err = fmt::format("socket: {}", strerror(errno));
  } else if (path.size() >= sizeof(un.sun_path)) {
    err = fmt::format("{}: path too long", path);
  } else {
    std::memcpy(un.sun_path, path.c_str(), path.size() + 1);
    if (::bind(lfd, reinterpret_cast<sockaddr*>(&un), sizeof(un)) != 0) {
      err = fmt::format("bind {}: {}", path, strerror(errno));
    } else if (::chmod(path.c_str(), 0600) != 0 || ::listen(lfd, 4) != 0) {
      err = fmt::format("listen {}: {}", path, strerror(errno));
    } else if (rte_vhost_driver_register(path.c_str(), RTE_VHOST_USER_CLIENT | RTE_VHOST_USER_NO_RECONNECT) != 0) {
      err = "rte_vhost_driver_register (client) failed";
    } else {
      if (rte_vhost_driver_callback_register(path.c_str(), &kNoOps) != 0) {
        err = "rte_vhost_driver_callback_register failed";
      } else if (rte_vhost_driver_start(path.c_str()) != 0) {
        err = fmt::format("rte_vhost_driver_start (connect to {}) failed", path);
      }
      // Closes the connection and frees its device. Refused only while the event thread runs a callback for
      // the connection (none: the listener never writes), so a short retry is plenty.
      bool gone = false;
      for (int attempt = 0; attempt < 100 && !gone; ++attempt) {
        gone = rte_vhost_driver_unregister(path.c_str()) == 0;
        if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      if (!gone && err.empty()) err = "rte_vhost_driver_unregister failed";
    }
  }
  if (lfd >= 0) ::close(lfd);
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
  return err;
}

}  // namespace esw::vdpa
