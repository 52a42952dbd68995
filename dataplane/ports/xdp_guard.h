#pragma once
// eswitch's own XDP program on an af_xdp vport (dataplane/xdp/guard.bpf.c, compiled with clang at build time):
// the af_xdp PMD loads and attaches it (devarg xdp_prog=, it fills the program's xsks_map), this class finds the
// program on the interface afterwards, keeps its maps in step with the vport's binding (every apply) and reads
// its per-CPU drop counters, which the switch adds to the vport's drops under the same reasons the binding
// stage uses. Frames dropped there never reach a worker (the worker's rx counters do not see them).
//
// Threading: main lcore only.

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/fastpath/binding.h"
#include "dataplane/fastpath/stats.h"
#include "dataplane/offload/xdp_drop_rule.h"

namespace esw::dp {

// Where eswitchd finds the compiled program: $ESWITCH_XDP_OBJ, else the build tree's, else the installed one.
std::string xdp_guard_object_path();

// The same for the uplink program (dataplane/xdp/uplink.bpf.c): $ESWITCH_XDP_UPLINK_OBJ, build tree, installed.
std::string xdp_uplink_object_path();

// Finds the XDP program attached to IFACE (checking its mode against want_mode: auto, native or generic) and
// opens the maps named in `maps` (name -> where to put the fd). Returns "" or the cause; on error no fd is left
// open. `mode` gets the mode the program runs in, `prog_id` (when given) the program's id.
std::string xdp_find_program_maps(const std::string& iface, const std::string& want_mode,
                                  const std::vector<std::pair<std::string, int*>>& maps, std::string& mode,
                                  uint32_t* prog_id = nullptr);

// The id of the XDP program attached to IFACE now (0: none, or the interface is gone).
uint32_t xdp_attached_program_id(const std::string& iface);

// Loads the program once on its own (then unloads it) so that a program the kernel refuses is reported with the
// cause: "" or e.g. "the kernel's verifier refused guard.bpf.o: BPF program is too large. Processed 1000001 insn".
std::string xdp_guard_preflight(const std::string& object_path);

class XdpGuard {
 public:
  XdpGuard() = default;
  XdpGuard(const XdpGuard&) = delete;
  XdpGuard& operator=(const XdpGuard&) = delete;
  ~XdpGuard();

  // Finds eswitch's program attached to IFACE and its maps. Returns "" or the cause ("no XDP program on ...").
  // want_mode: "auto", "native" or "generic"; a program attached in another mode is an error naming both.
  std::string attach(const std::string& iface, const std::string& want_mode);
  // The port asked for eswitch's program on an interface (attach was called), whether or not its maps are open.
  bool managed() const { return !iface_.empty(); }
  bool attached() const { return cfg_fd_ >= 0; }
  const std::string& mode() const { return mode_; }
  uint32_t program_id() const { return prog_id_; }
  // Is the program whose maps are open still the one attached to the interface? (Someone may have detached or
  // replaced it from outside: `ip link set dev X xdp off`, another loader. Then writing the maps does nothing.)
  bool program_current() const;
  // Makes the open maps those of the program attached now: "" when they already are, or eswitch's program is
  // attached again (a new program: its maps are found again, `changed` set); else the cause, and no map is
  // open (attached() false) until a later refresh finds eswitch's program. Drop counts of a program left behind
  // are kept (add_drops goes on counting them).
  std::string refresh(bool& changed);
  // Refreshes, then mirrors the binding into the maps (enabled only for an active, spoof-checked vport with a
  // MAC). Returns "" or the cause.
  std::string set(const Binding& b);
  // Adds the program's drops (summed over CPUs) to `dropped` by reason.
  void add_drops(std::array<uint64_t, static_cast<size_t>(DropReason::kCount)>& dropped) const;
  // The XDP offload tier's drop and steer rules (offload/xdp_tier.h), in slot order; `tx_ifindex[s]` is the
  // interface behind devmap slot s (a steer rule's tx_slot). The program stops using its rules while they are
  // rewritten (those frames go to the worker, which holds every rule). `old` gets each old slot's counts
  // (summed over CPUs, then zeroed). Returns how many of `rules` are installed (a prefix); when not all, `err`
  // says why (e.g. the map is full, a destination the devmap refused).
  size_t set_rules(const std::vector<offload::XdpDropRule>& rules, const std::vector<uint32_t>& tx_ifindex,
                   std::vector<offload::XdpSlotCount>& old, std::string& err);
  // Frames and bytes per installed slot so far (summed over CPUs).
  void rule_hits(std::vector<offload::XdpSlotCount>& per_slot) const;
  void release() noexcept;

 private:
  // The program's maps, by name, with where their fds go; and closing them all.
  std::vector<std::pair<std::string, int*>> map_fds();
  void close_maps() noexcept;

  int cfg_fd_ = -1, v4_fd_ = -1, v6_fd_ = -1, drops_fd_ = -1;
  int rules_fd_ = -1, nrules_fd_ = -1, hits_fd_ = -1, tx_fd_ = -1, bytes_fd_ = -1;
  size_t nrules_ = 0;
  std::string mode_;
  std::string iface_, want_mode_;
  uint32_t prog_id_ = 0;
  std::array<uint64_t, 2> drops_base_{};  // drops of programs replaced since (spoofed_mac, spoofed_ip)
};

}  // namespace esw::dp
