#pragma once
// EAL lifecycle: argument construction from the config, hugepage detection, DPDK log capture (so errors can
// name their cause in one line), and cleanup that leaves no runtime files behind.
//
// Threading: init() and cleanup() run on the main thread only, once per process.

#include <string>
#include <vector>

#include "config/config.h"

namespace esw::dp {

// The EAL file prefix when dataplane.file_prefix is empty: fixed, so a restarted eswitchd reuses its runtime
// directory instead of leaving one per pid behind; a second instance on it is refused (instance_lock.h).
inline constexpr const char* kDefaultFilePrefix = "eswitch";
std::string default_file_prefix(const cfg::DataplaneConfig& dp);

// Removes the DPDK runtime directories (/var/run/dpdk/<prefix>) of eswitchd instances that are gone: those
// holding eswitchd's marker file or named esw-<pid> (older builds' default), whose pid is dead and whose EAL
// config file no process holds locked, and their hugepage files that no process holds. Other programs'
// directories are never touched. Returns what it removed.
std::vector<std::string> clean_stale_runtime_dirs();

// True when a hugetlbfs is mounted and has free pages.
bool hugepages_available();

// The EAL argv eswitchd passes for this config (argv[0] included). Exposed for tests and `--print-eal-args`.
// `need_pci` lists PCI addresses to allow; when empty, --no-pci is passed.
std::vector<std::string> eal_args(const cfg::DataplaneConfig& dp, bool use_hugepages,
                                  const std::vector<std::string>& pci_allow, const std::string& file_prefix);

// The PCI address in devargs ("0000:03:00.0,representor=vf[0-1]"), or "" for a vdev.
std::string pci_address_of(const std::string& devargs);

class Eal {
 public:
  // Initialises the EAL for `config`. Throws Error with a one-line message on failure, after removing any
  // runtime files it created (InUseError when another DPDK primary holds the file prefix). `extra_args` are appended (tests add --vdev etc.).
  static void init(const cfg::Config& config, const std::vector<std::string>& extra_args = {});
  // rte_eal_cleanup() and removal of this process's runtime directory. Safe to call when init failed.
  static void cleanup();
  static bool initialised();
  static bool using_hugepages();
  static const std::string& file_prefix();

  // The last DPDK log lines at WARNING or worse (most recent last), for error messages.
  static std::string last_dpdk_error();
  // Drops remembered DPDK errors (call before an operation whose failure you want to explain).
  static void clear_dpdk_errors();
};

}  // namespace esw::dp
