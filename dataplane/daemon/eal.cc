#include "dataplane/daemon/eal.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_log.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <cctype>
#include <sstream>

#include <fmt/format.h>

#include "dataplane/daemon/instance_lock.h"
#include "dataplane/error.h"
#include "dataplane/ports/dpdk_log.h"

namespace esw::dp {
namespace {

struct EalState {
  bool initialised = false;
  bool hugepages = false;
  std::string file_prefix;
  std::string runtime_dir;  // removed at cleanup
};

EalState& state() {
  static EalState s;
  return s;
}

std::string runtime_dir_for(const std::string& prefix) {
  // Mirrors EAL's choice: /var/run/dpdk for root, $XDG_RUNTIME_DIR/dpdk (or /tmp/dpdk) otherwise.
  std::string base = "/var/run";
  if (geteuid() != 0) {
    const char* xdg = getenv("XDG_RUNTIME_DIR");
    base = xdg != nullptr ? xdg : "/tmp";
  }
  return base + "/dpdk/" + prefix;
}

void remove_runtime_dir(const std::string& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  // Leave the shared parent (/var/run/dpdk) alone unless we emptied it.
  std::filesystem::remove(std::filesystem::path(dir).parent_path(), ec);
}

// The pid of the DPDK primary process that holds `dir`/config locked (EAL keeps a write lock on it for its
// lifetime), 0 when none does.
int config_lock_owner(const std::string& dir) {
  const int fd = open((dir + "/config").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  int pid = 0;
  if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) pid = fl.l_pid > 0 ? fl.l_pid : -1;
  close(fd);
  return pid;
}

std::vector<std::string> hugetlbfs_mounts() {
  std::vector<std::string> out;
  std::ifstream mounts("/proc/mounts");
  std::string dev, dir, type, rest;
  while (mounts >> dev >> dir >> type && std::getline(mounts, rest)) {
    if (type == "hugetlbfs") out.push_back(dir);
  }
  return out;
}

bool pid_alive(int pid) { return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM); }

constexpr const char* kMarker = "eswitchd.pid";  // written into the runtime directory of every eswitchd

}  // namespace

std::string default_file_prefix(const cfg::DataplaneConfig& dp) {
  return dp.file_prefix.empty() ? std::string(kDefaultFilePrefix) : dp.file_prefix;
}

std::vector<std::string> clean_stale_runtime_dirs() {
  std::vector<std::string> removed;
  const std::filesystem::path base = std::filesystem::path(runtime_dir_for("x")).parent_path();
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(base, ec)) {
    if (!entry.is_directory(ec)) continue;
    const std::string name = entry.path().filename().string();
    const std::string dir = entry.path().string();
    // Only eswitchd's own directories: those with its marker, and the esw-<pid> ones older builds made.
    int pid = 0;
    if (std::ifstream marker(dir + "/" + kMarker); marker) {
      marker >> pid;
    } else if (name.size() > 4 && name.compare(0, 4, "esw-") == 0 &&
               name.find_first_not_of("0123456789", 4) == std::string::npos) {
      pid = std::atoi(name.c_str() + 4);
    } else {
      continue;
    }
    if (pid_alive(pid) || config_lock_owner(dir) != 0) continue;
    std::filesystem::remove_all(dir, ec);
    if (ec) continue;
    removed.push_back(dir);
    // Its hugepage files (<hugetlbfs>/<prefix>map_N) hold pages until removed; EAL holds a shared flock on
    // every one in use.
    for (const auto& mount : hugetlbfs_mounts()) {
      for (const auto& f : std::filesystem::directory_iterator(mount, ec)) {
        const std::string fname = f.path().filename().string();
        if (fname.compare(0, name.size() + 3, name + "map") != 0) continue;
        const int fd = open(f.path().c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
          unlink(f.path().c_str());
          removed.push_back(f.path().string());
        }
        close(fd);
      }
    }
  }
  return removed;
}

bool hugepages_available() {
  std::ifstream mounts("/proc/mounts");
  std::string dev, dir, type, rest;
  bool mounted = false;
  while (mounts >> dev >> dir >> type && std::getline(mounts, rest)) {
    if (type == "hugetlbfs") {
      mounted = true;
      break;
    }
  }
  if (!mounted) return false;
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  long value = 0;
  while (meminfo >> key >> value) {
    if (key == "HugePages_Free:") return value > 0;
    meminfo.ignore(256, '\n');
  }
  return false;
}

std::string pci_address_of(const std::string& devargs) {
  // [DDDD:]BB:DD.F at the start of the devargs.
  const std::string head = devargs.substr(0, devargs.find(','));
  auto hex = [](const std::string& s, size_t from, size_t n) {
    if (from + n > s.size()) return false;
    for (size_t i = from; i < from + n; ++i) {
      if (!std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
    }
    return true;
  };
  auto bdf = [&](size_t at) {
    return hex(head, at, 2) && head.size() == at + 7 && head[at + 2] == ':' && hex(head, at + 3, 2) &&
           head[at + 5] == '.' && head[at + 6] >= '0' && head[at + 6] <= '7';
  };
  if (bdf(0)) return head;
  if (hex(head, 0, 4) && head.size() > 4 && head[4] == ':' && bdf(5)) return head;
  return {};
}

std::vector<std::string> eal_args(const cfg::DataplaneConfig& dp, bool use_hugepages,
                                  const std::vector<std::string>& pci_allow, const std::string& file_prefix) {
  std::vector<std::string> args{"eswitchd"};
  std::string lcores = fmt::format("{}", dp.main_core);
  for (int c : dp.worker_cores) lcores += fmt::format(",{}", c);
  args.insert(args.end(), {"-l", lcores, "--main-lcore", fmt::format("{}", dp.main_core)});
  args.insert(args.end(), {"-m", fmt::format("{}", dp.memory_mb)});
  if (!use_hugepages) args.push_back("--no-huge");
  args.insert(args.end(), {"--file-prefix", file_prefix});
  if (pci_allow.empty()) {
    args.push_back("--no-pci");
  } else {
    for (const auto& a : pci_allow) args.insert(args.end(), {"-a", a});
  }
  // Telemetry stays on (dpdk-telemetry.py); multi-process stays on (dpdk-dumpcap).
  args.insert(args.end(), dp.eal_extra.begin(), dp.eal_extra.end());
  return args;
}

void Eal::init(const cfg::Config& config, const std::vector<std::string>& extra_args) {
  EalState& s = state();
  if (s.initialised) throw Error("EAL: already initialised in this process");
  const cfg::DataplaneConfig& dp = config.dataplane;

  bool huge = false;
  switch (dp.hugepages) {
    case cfg::HugepageMode::kOn:
      if (!hugepages_available()) {
        throw Error("dataplane.hugepages: 'on' but no hugetlbfs with free pages is mounted (use 'auto' or 'off')");
      }
      huge = true;
      break;
    case cfg::HugepageMode::kOff: huge = false; break;
    case cfg::HugepageMode::kAuto: huge = hugepages_available(); break;
  }
  s.hugepages = huge;
  s.file_prefix = default_file_prefix(dp);
  s.runtime_dir = runtime_dir_for(s.file_prefix);
  // Another DPDK primary on this prefix (eswitchd's own instances are refused earlier, by their prefix lock):
  // EAL would only say "Cannot init config".
  if (const int owner = config_lock_owner(s.runtime_dir); owner != 0 && owner != getpid()) {
    s.runtime_dir.clear();
    throw InUseError(fmt::format("DPDK file prefix '{}' is in use by {} (dataplane.file_prefix)", s.file_prefix,
                                 describe_owner(owner)));
  }

  std::vector<std::string> pci;
  auto add_pci = [&](const cfg::Attachment& a) {
    std::string p = pci_address_of(a.devargs);
    if (!p.empty()) pci.push_back(a.devargs);
  };
  for (const auto& u : config.uplinks) add_pci(u.attach);
  for (const auto& v : config.vports) add_pci(v.attach);

  std::vector<std::string> args = eal_args(dp, huge, pci, s.file_prefix);
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  install_dpdk_log_capture();
  clear_dpdk_errors();
  const bool existed = std::filesystem::exists(s.runtime_dir);
  int rc = rte_eal_init(static_cast<int>(argv.size() - 1), argv.data());
  if (rc < 0) {
    const int err = rte_errno;
    std::string cause = last_dpdk_error();
    // A prefix that belongs to a running process must not be deleted under it, now or by cleanup().
    if (!existed) remove_runtime_dir(s.runtime_dir);
    s.runtime_dir.clear();
    std::string hint;
    if (err == EACCES || err == EPERM || geteuid() != 0) hint = " (eswitchd needs root: run it with sudo)";
    else if (err == ENOMEM) hint = fmt::format(" (dataplane.memory_mb is {})", dp.memory_mb);
    else if (err == EALREADY) hint = " (EAL already initialised)";
    // EAL does not always set rte_errno ("Cannot init config" left it 0: "EAL init failed: Success").
    std::string what = err != 0 ? std::string(rte_strerror(err)) : std::string();
    if (!cause.empty()) what += (what.empty() ? "" : ": ") + cause;
    if (what.empty()) what = "no cause reported by DPDK";
    throw Error(fmt::format("EAL init failed: {}{}", what, hint));
  }
  s.initialised = true;
  std::ofstream(s.runtime_dir + "/" + kMarker) << getpid() << "\n";
}

void Eal::cleanup() {
  EalState& s = state();
  if (s.initialised) {
    rte_eal_cleanup();
    s.initialised = false;
  }
  remove_runtime_dir(s.runtime_dir);
  s.runtime_dir.clear();
}

bool Eal::initialised() { return state().initialised; }
bool Eal::using_hugepages() { return state().hugepages; }
const std::string& Eal::file_prefix() { return state().file_prefix; }

std::string Eal::last_dpdk_error() { return dp::last_dpdk_error(); }
void Eal::clear_dpdk_errors() { dp::clear_dpdk_errors(); }

}  // namespace esw::dp
