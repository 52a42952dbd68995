#include "dataplane/daemon/instance_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>

#include "dataplane/daemon/eal.h"
#include "dataplane/error.h"

namespace esw::dp {
namespace {

// Lock file names: letters, digits and ".-_:" as they are, anything else %XX; long names become a hash.
std::string escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '.' || c == '-' || c == '_' || c == ':') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  if (out.size() > 180) out = out.substr(0, 100) + "~" + cfg::text_hash(s);
  return out;
}

int read_pid(int fd) {
  char buf[32] = {};
  const ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  return atoi(buf);
}

// The devargs' "key=value" items after the driver name.
std::vector<std::pair<std::string, std::string>> devargs_kv(const std::string& devargs, std::string& driver) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t at = devargs.find(',');
  driver = devargs.substr(0, at);
  while (at != std::string::npos) {
    const size_t next = devargs.find(',', at + 1);
    const std::string item = devargs.substr(at + 1, next == std::string::npos ? std::string::npos : next - at - 1);
    const size_t eq = item.find('=');
    if (eq != std::string::npos) out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
    at = next;
  }
  return out;
}

bool starts_with(const std::string& s, std::string_view p) { return s.compare(0, p.size(), p) == 0; }

}  // namespace

std::string lock_dir() {
  std::string dir = "/run/eswitch/locks";
  if (geteuid() != 0) {
    const char* xdg = getenv("XDG_RUNTIME_DIR");
    dir = xdg != nullptr ? std::string(xdg) + "/eswitch/locks" : "/tmp/eswitch-locks";
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  return dir;
}

std::vector<std::string> clean_stale_lock_files() {
  std::vector<std::string> removed;
  const std::string dir = lock_dir();
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string path = e.path().string();
    if (path.size() < 5 || path.compare(path.size() - 5, 5, ".lock") != 0) continue;
    const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) continue;
    // Nobody holds it (its owner died): remove it the way an owner does, holding the lock.
    struct stat a {}, b {};
    if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &a) == 0 && stat(path.c_str(), &b) == 0 &&
        a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
      unlink(path.c_str());
      removed.push_back(path);
    }
    ::close(fd);
  }
  return removed;
}

std::string describe_owner(int pid) {
  if (pid <= 0) return "another process";
  std::ifstream comm(fmt::format("/proc/{}/comm", pid));
  std::string name;
  if (comm && std::getline(comm, name) && !name.empty()) {
    if (name == "eswitchd") return fmt::format("eswitchd pid {}", pid);
    return fmt::format("pid {} ({})", pid, name);
  }
  return fmt::format("pid {}", pid);
}

InstanceLock::InstanceLock(const std::string& path, const std::string& what) : path_(path) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw Error(fmt::format("{}: cannot open lock file {}: {}", what, path, strerror(errno)));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      const int pid = read_pid(fd);
      ::close(fd);
      if (err == EWOULDBLOCK) {
        throw InUseError(fmt::format("{} is in use by {} (lock {})", what, describe_owner(pid), path));
      }
      throw Error(fmt::format("{}: cannot lock {}: {}", what, path, strerror(err)));
    }
    // The previous owner may have removed the file between our open() and flock(): then what we hold is not
    // the file at `path` any more; try again.
    struct stat a {}, b {};
    if (fstat(fd, &a) != 0 || stat(path.c_str(), &b) != 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
      ::close(fd);
      continue;
    }
    const std::string pid = fmt::format("{}\n", getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
      const int err = errno;
      ::close(fd);
      throw Error(fmt::format("{}: cannot write lock file {}: {}", what, path, strerror(err)));
    }
    fd_ = fd;
    return;
  }
  throw Error(fmt::format("{}: lock file {} keeps being replaced", what, path));
}

InstanceLock::InstanceLock(InstanceLock&& o) noexcept : path_(std::move(o.path_)), fd_(o.fd_) { o.fd_ = -1; }

InstanceLock& InstanceLock::operator=(InstanceLock&& o) noexcept {
  if (this != &o) {
    release();
    path_ = std::move(o.path_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

InstanceLock::~InstanceLock() { release(); }

void InstanceLock::release() noexcept {
  if (fd_ < 0) return;
  // Removed while still held: a process waiting on the old inode re-checks and retries (see the constructor).
  unlink(path_.c_str());
  ::close(fd_);
  fd_ = -1;
}

std::vector<Resource> exclusive_resources(const cfg::Config& config, const std::string& file_prefix,
                                          const std::string& api_socket) {
  std::vector<Resource> out;
  auto add = [&](const std::string& kind, const std::string& name, const std::string& what) {
    const std::string key = kind + "." + escape(name);
    for (const auto& r : out) {
      if (r.key == key) return;
    }
    out.push_back({key, what});
  };
  add("prefix", file_prefix, fmt::format("DPDK file prefix '{}'", file_prefix));
  if (!api_socket.empty()) add("path", api_socket, fmt::format("API socket {}", api_socket));
  auto attachment = [&](const cfg::Attachment& a) {
    if (a.vhost_user) {
      // A client-mode socket belongs to the guest (it listens and takes one session at a time): two eswitchds
      // may both point at it, which is how a vport migrates between them (vdpa/migration.h).
      if (!a.vhost_user->client) {
        add("path", a.vhost_user->socket, fmt::format("vhost-user socket {}", a.vhost_user->socket));
      }
      return;
    }
    const std::string pci = pci_address_of(a.devargs);
    if (!pci.empty()) {
      add("pci", pci, fmt::format("PCI device {}", pci));
      return;
    }
    std::string driver;
    const auto kv = devargs_kv(a.devargs, driver);
    const bool vhost = starts_with(driver, "net_vhost") || starts_with(driver, "eth_vhost");
    const bool ifaces = starts_with(driver, "net_af_packet") || starts_with(driver, "eth_af_packet") ||
                        starts_with(driver, "net_af_xdp") || starts_with(driver, "net_tap") ||
                        starts_with(driver, "net_tun") || starts_with(driver, "net_pcap") ||
                        starts_with(driver, "eth_pcap");
    for (const auto& [k, v] : kv) {
      if (v.empty()) continue;
      if (vhost && k == "iface") add("path", v, fmt::format("vhost-user socket {}", v));
      if (ifaces && (k == "iface" || k == "rx_iface" || k == "rx_iface_in" || k == "tx_iface")) {
        add("iface", v, fmt::format("interface {}", v));
      }
    }
  };
  for (const auto& u : config.uplinks) attachment(u.attach);
  for (const auto& v : config.vports) {
    attachment(v.attach);
    if (config.representors.kind == cfg::RepresentorKind::kTap) {
      add("iface", "rep-" + v.name, fmt::format("representor interface rep-{}", v.name));
    }
  }
  return out;
}

void InstanceLocks::claim(const std::vector<Resource>& resources) {
  std::map<std::string, InstanceLock> taken;  // released again if a later one fails
  const std::string dir = lock_dir();
  for (const auto& r : resources) {
    if (locks_.count(r.key) != 0 || taken.count(r.key) != 0) continue;
    taken.emplace(r.key, InstanceLock(dir + "/" + r.key + ".lock", r.what));
  }
  locks_.merge(taken);
}

void InstanceLocks::retain_only(const std::vector<Resource>& resources) {
  std::set<std::string> keep;
  for (const auto& r : resources) keep.insert(r.key);
  std::erase_if(locks_, [&](const auto& kv) { return keep.count(kv.first) == 0; });
}

}  // namespace esw::dp
