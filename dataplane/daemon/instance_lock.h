#pragma once
// Exclusive ownership between eswitchd instances: whatever two switches must not share (a DPDK file prefix, the
// API socket, the state directory, a kernel interface opened by af_packet/af_xdp/tap/pcap, a tap representor's
// name, a vhost-user socket, a PCI device) is claimed with flock(2) on a lock file before it is used. The lock
// file holds the owner's pid, so a second eswitchd fails with one line naming the first; the kernel releases the
// lock when the owner dies (kill -9 included), so nothing stale can block a restart.
//
// Lock files live in /run/eswitch/locks (root; else $XDG_RUNTIME_DIR/eswitch/locks or /tmp/eswitch-locks), one
// per resource, and are removed by their owner when released. Acquiring checks that the locked file is still
// the one at the path (an owner may remove it between our open and flock), so removal is safe.
//
// Threading: main thread only.

#include <map>
#include <string>
#include <vector>

#include "config/config.h"
#include "dataplane/error.h"

namespace esw::dp {

// Exit status of eswitchd when something it needs is owned by another running instance.
inline constexpr int kExitInUse = 4;

// Thrown when a resource is owned by another process (message: one line naming it and the owner's pid).
class InUseError : public Error {
 public:
  using Error::Error;
};

class InstanceLock {
 public:
  InstanceLock() = default;
  // Takes the lock at `path` for `what` ("interface eswup0p"). Throws Error (InUseError when another process holds
  // it: "interface eswup0p is in use by eswitchd pid 1234 (lock /run/eswitch/locks/...)").
  InstanceLock(const std::string& path, const std::string& what);
  InstanceLock(InstanceLock&& o) noexcept;
  InstanceLock& operator=(InstanceLock&& o) noexcept;
  InstanceLock(const InstanceLock&) = delete;
  InstanceLock& operator=(const InstanceLock&) = delete;
  ~InstanceLock();  // removes the lock file and releases the lock

  const std::string& path() const { return path_; }

 private:
  void release() noexcept;
  std::string path_;
  int fd_ = -1;
};

// A resource a config makes eswitchd use exclusively.
struct Resource {
  std::string key;   // lock file name: "iface.eswup0p", "prefix.eswitch", "path.%2Frun%2Feswitch%2Fvm3.sock"
  std::string what;  // for messages: "interface eswup0p", "DPDK file prefix 'eswitch'", ...
};

// Everything `config` would use exclusively, with the DPDK file prefix `file_prefix` and API socket
// `api_socket` ("" = none). Kernel interfaces come from the devargs' iface/rx_iface/tx_iface keys of af_packet,
// af_xdp, tap/tun and pcap vdevs and from tap representors (rep-<vport>); vhost sockets from vhost_user
// attachments and net_vhost's iface; PCI devices from PCI devargs.
std::vector<Resource> exclusive_resources(const cfg::Config& config, const std::string& file_prefix,
                                          const std::string& api_socket);

// The directory lock files go to (created when missing).
std::string lock_dir();

// Removes the lock files in lock_dir() that nobody holds (left by instances that died). Returns them.
std::vector<std::string> clean_stale_lock_files();

// The resources one instance holds, by key.
class InstanceLocks {
 public:
  // Takes every resource not held yet, all or nothing: throws the first conflict's Error (InUseError when
  // another process owns it) and then holds nothing more than before.
  void claim(const std::vector<Resource>& resources);
  // Releases whatever is held and not in `resources`.
  void retain_only(const std::vector<Resource>& resources);
  size_t size() const { return locks_.size(); }

 private:
  std::map<std::string, InstanceLock> locks_;
};

// "eswitchd pid 1234" / "pid 1234 (dpdk-testpmd)" / "another process" for a pid read from a lock.
std::string describe_owner(int pid);

}  // namespace esw::dp
