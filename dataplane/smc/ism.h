#pragma once
// Emulated ISM service core (SMC-D between local vports): pure logic, no sockets. ism_server.h puts a unix socket
// per vport in front of it.
//
// What it enforces (the memory-exposure lesson of SMC-R 2017, see shared/design/SMC-NOTES.md):
//  - every vport has a host-unique 128-bit GID (random gid + gid_ext) under one CHID in 0xFF00-0xFFFE;
//  - a DMB (shared buffer) is a sealed memfd (no shrink, no grow) with a 64-bit random token unique on the host;
//    it has exactly one owner vport and one writer vport, fixed at registration; attach() hands it only to the
//    writer (or the owner itself); any other vport, or an unknown token, gets an error naming the reason;
//  - the owner's view is read-only (the fd is reopened O_RDONLY), the writer's is read-write;
//  - unregister, the end of the registering client (tenant death), or removal of either vport revokes the
//    grants and zeroes the buffer (all but the CDC abort flag, which it sets); a writer whose owner ended is told through the CDC header it writes (abort
//    flag set in the peer's DMB by the service) and the DMB's eventfd is signalled so nobody waits forever;
//  - per-vport limits on DMB count and bytes.
// Revocation cannot unmap what a tenant already mapped: a revoked tenant keeps its mapping of a zeroed buffer
// that nobody reads any more (a memfd is never reused for another DMB).
//
// Threading: one owner (the main lcore's event loop); not thread-safe. Allocates (control path).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <unordered_map>
#include <vector>

namespace esw::smc::ism {

inline constexpr uint16_t kChidMin = 0xFF00;  // emulated ISM (0xFFFF is Linux's loopback-ism)
inline constexpr uint16_t kChidMax = 0xFFFE;
inline constexpr uint64_t kDmbMinSize = 16 * 1024;      // SMC-D DMBE sizes: 16 KiB << n
inline constexpr unsigned kDmbMaxShift = 6;              // .. 1 MiB, as Linux's SMC-D
inline constexpr uint64_t kDmbMaxSize = kDmbMinSize << kDmbMaxShift;
inline constexpr size_t kCdcHeaderSize = 32;             // SMC-D CDC message at the start of every DMB
inline constexpr size_t kCdcConsFlagsOffset = 16 + 7;    // conn state flags byte (consumer cursor, as Linux)
inline constexpr uint8_t kCdcStateAbort = 0x20;
inline constexpr uint32_t kNoVport = 0xFFFFFFFF;  // a DMB whose writer vport was removed

enum class Err : uint8_t {
  kOk = 0,
  kInvalid,       // a request field out of range
  kNoVport,       // vport not registered with the service
  kVportExists,
  kLimit,         // per-vport DMB count or byte limit
  kNoToken,       // no DMB with that token
  kNotGranted,    // the DMB exists but is not granted to the requester
  kSystem,        // memfd/eventfd/mmap failed (errno in Result::sys_errno)
};
const char* err_name(Err e) noexcept;

struct Result {
  Err err = Err::kOk;
  const char* reason = "";  // static string naming the check that failed
  int sys_errno = 0;
  bool ok() const noexcept { return err == Err::kOk; }
};

struct Gid {
  uint64_t gid = 0;
  uint64_t gid_ext = 0;
  bool operator==(const Gid&) const = default;
};

struct Limits {
  uint32_t max_dmbs = 64;
  uint64_t max_bytes = 64ull << 20;
};

// Who asks: the vport of the endpoint the request came through, and the client (connection) on it. A client's
// DMBs and attachments end when release_client() is called for it (its socket closed: tenant exit or death).
struct Requester {
  uint32_t vport = 0;
  uint64_t client = 0;
};

// File descriptors stay owned by the service (valid until the DMB is revoked); a server dups them into the
// tenant with SCM_RIGHTS.
struct DmbGrant {
  uint64_t token = 0;
  uint64_t size = 0;   // whole buffer incl. the 32-byte CDC header
  int mem_fd = -1;     // owner: O_RDONLY view; writer: O_RDWR
  int event_fd = -1;   // the DMB's eventfd: the owner waits on it, the writer signals it
};

// The TCP connection (IPv4) a DMB serves, as its owner sees it.
struct Flow {
  uint32_t local_ip = 0, remote_ip = 0;  // host order
  uint16_t local_port = 0, remote_port = 0;
  bool operator==(const Flow&) const = default;
};

// One DMB as show/telemetry report it. `produced`: what the writer has put into the ring so far, from the
// producer cursor of the CDC header it writes (wrap * ring + count; a tenant-written value, so only a report).
struct DmbInfo {
  uint64_t token = 0;
  uint64_t size = 0;
  uint32_t owner_vport = 0;
  uint32_t writer_vport = 0;  // kNoVport: the writer vport was removed
  uint32_t writers = 0;       // writer clients attached now
  uint64_t produced = 0;
  bool aborted = false;       // the CDC abort flag is set (by the service or a tenant)
  bool has_flow = false;      // bind_flow() was called
  Flow flow;
};

struct Counters {
  uint64_t dmbs_registered = 0, dmbs_unregistered = 0, dmbs_revoked = 0;
  uint64_t attaches = 0, attach_refused = 0, signals = 0, writes = 0, write_refused = 0;
  uint64_t bytes_zeroed = 0;
};

class Service {
 public:
  explicit Service(uint16_t chid);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // chid outside 0xFF00-0xFFFE makes the service refuse everything (Result kInvalid) : check chid_ok().
  bool chid_ok() const noexcept { return chid_ >= kChidMin && chid_ <= kChidMax; }
  uint16_t chid() const noexcept { return chid_; }

  // vport ids: any value but kNoVport.
  Result add_vport(uint32_t vport, const Limits& limits);
  // Revokes and zeroes every DMB the vport owns or writes to (signalling the other side).
  Result remove_vport(uint32_t vport);
  const Gid* gid(uint32_t vport) const noexcept;
  // The vport a GID belongs to (query_remote_gid); false when no local vport has it.
  bool vport_of(const Gid& g, uint32_t* vport) const noexcept;

  // A new DMB owned by req.vport, writable by writer_vport only. size: 16 KiB << n, n <= 6.
  Result register_dmb(const Requester& req, uint32_t writer_vport, uint64_t size, DmbGrant* out);
  // Only the owner vport may unregister; zeroes the buffer and revokes the writer's grant.
  Result unregister_dmb(const Requester& req, uint64_t token);
  // The writer vport (or the owner vport) gets the DMB. Every refusal is counted.
  Result attach(const Requester& req, uint64_t token, DmbGrant* out);
  Result detach(const Requester& req, uint64_t token);
  // Raises the DMB's eventfd (writer or owner).
  Result signal(const Requester& req, uint64_t token);
  // move_data: the service copies into the DMB for the writer; refuses anything past the end.
  Result write(const Requester& req, uint64_t token, uint64_t offset, std::span<const uint8_t> data);
  // The client's connection ended: its DMBs are unregistered (zeroed, writer told) and its attachments dropped
  // (the owner of each DMB it wrote to is told through the abort flag in that DMB's CDC header + eventfd).
  void release_client(uint64_t client);
  // The owner vport names the TCP connection its DMB serves (once; a second bind is refused).
  Result bind_flow(const Requester& req, uint64_t token, const Flow& flow);
  // Who may bind: a validator (eswitchd: does the switch forward this TCP flow both ways between exactly these two
  // vports, their own addresses) returning nullptr when the flow is acceptable, else the reason. None: any flow.
  using FlowValidator = std::function<const char*(uint32_t owner_vport, uint32_t writer_vport, const Flow& flow)>;
  void set_flow_validator(FlowValidator v) { flow_validator_ = std::move(v); }
  // Control plane (the switch would now drop the DMB's TCP flow): zero and revoke it like an unregister, the
  // writer told through the abort flag. False when the token is unknown.
  bool revoke_dmb(uint64_t token);

  size_t dmb_count() const noexcept { return dmbs_.size(); }
  size_t dmb_count(uint32_t vport) const noexcept;
  uint64_t dmb_bytes(uint32_t vport) const noexcept;
  const Counters& counters() const noexcept { return counters_; }
  // Every DMB, by token (allocates: control path).
  std::vector<DmbInfo> dmbs() const;
  // For tests: the service's own mapping of a DMB (nullptr when the token is unknown).
  const uint8_t* debug_view(uint64_t token, uint64_t* size) const noexcept;

 private:
  struct Dmb {
    uint64_t token = 0;
    uint32_t owner_vport = 0;
    uint32_t writer_vport = 0;
    uint64_t owner_client = 0;
    std::vector<uint64_t> writer_clients;  // clients that attached as writer
    bool has_flow = false;
    Flow flow;
    uint64_t size = 0;
    int rw_fd = -1;
    int ro_fd = -1;
    int event_fd = -1;
    uint8_t* map = nullptr;
  };
  struct Vport {
    Gid gid;
    Limits limits;
    uint32_t dmbs = 0;
    uint64_t bytes = 0;
  };
  uint64_t new_token();
  void revoke(std::map<uint64_t, Dmb>::iterator it);  // zero, close, account, erase
  static void raise(int event_fd) noexcept;

  uint16_t chid_;
  FlowValidator flow_validator_;
  std::unordered_map<uint32_t, Vport> vports_;
  std::map<uint64_t, Dmb> dmbs_;  // by token
  Counters counters_;
};

}  // namespace esw::smc::ism
