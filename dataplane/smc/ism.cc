#include "dataplane/smc/ism.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace esw::smc::ism {
namespace {

uint64_t random_u64() {
  uint64_t v = 0;
  // getrandom of <= 256 bytes from the urandom pool does not fail short once the pool is initialised.
  while (getrandom(&v, sizeof v, 0) != static_cast<ssize_t>(sizeof v)) {
  }
  return v;
}

constexpr size_t kPage = 4096;  // the first page holds the CDC header; DMBs are >= 16 KiB

// The CDC consumer cursor word (offset 16) holds the connection state flags in its top byte (little endian: byte
// 23). Tenants replace that word with a compare-exchange that keeps an abort flag (tenant/esw_smc.cc: publish),
// so the service sets the flag with an atomic operation on the same 8-byte word.
static_assert(kCdcConsFlagsOffset == 16 + 7);
std::atomic_ref<uint64_t> cons_word(uint8_t* map) {
  return std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(map + 16));
}
constexpr uint64_t kAbortBit = uint64_t{kCdcStateAbort} << 56;

Result fail(Err e, const char* reason, int sys_errno = 0) { return Result{e, reason, sys_errno}; }

bool valid_size(uint64_t size) {
  for (unsigned n = 0; n <= kDmbMaxShift; ++n)
    if (size == (kDmbMinSize << n)) return true;
  return false;
}

}  // namespace

const char* err_name(Err e) noexcept {
  switch (e) {
    case Err::kOk: return "ok";
    case Err::kInvalid: return "invalid";
    case Err::kNoVport: return "no-vport";
    case Err::kVportExists: return "vport-exists";
    case Err::kLimit: return "limit";
    case Err::kNoToken: return "no-token";
    case Err::kNotGranted: return "not-granted";
    case Err::kSystem: return "system";
  }
  return "?";
}

Service::Service(uint16_t chid) : chid_(chid) {}

Service::~Service() {
  while (!dmbs_.empty()) revoke(dmbs_.begin());
}

uint64_t Service::new_token() {
  for (;;) {
    uint64_t t = random_u64();
    if (t != 0 && !dmbs_.contains(t)) return t;
  }
}

void Service::raise(int event_fd) noexcept {
  uint64_t one = 1;
  // EAGAIN means the counter is saturated: the waiter is woken anyway.
  [[maybe_unused]] ssize_t n = ::write(event_fd, &one, sizeof one);
}

Result Service::add_vport(uint32_t vport, const Limits& limits) {
  if (!chid_ok()) return fail(Err::kInvalid, "ism: chid must be in 0xFF00-0xFFFE (emulated ISM)");
  if (vport == kNoVport) return fail(Err::kInvalid, "ism: add_vport: vport id 0xFFFFFFFF is reserved");
  if (vports_.contains(vport)) return fail(Err::kVportExists, "ism: add_vport: vport already registered");
  if (limits.max_dmbs == 0 || limits.max_bytes < kDmbMinSize)
    return fail(Err::kInvalid, "ism: add_vport: limits allow no DMB (max_dmbs 0 or max_bytes < 16 KiB)");
  Vport v;
  v.limits = limits;
  for (;;) {
    v.gid = Gid{random_u64(), random_u64()};
    if (v.gid.gid == 0 && v.gid.gid_ext == 0) continue;
    bool taken = std::any_of(vports_.begin(), vports_.end(), [&](const auto& kv) { return kv.second.gid == v.gid; });
    if (!taken) break;
  }
  vports_.emplace(vport, v);
  return {};
}

Result Service::remove_vport(uint32_t vport) {
  if (!vports_.contains(vport)) return fail(Err::kNoVport, "ism: remove_vport: vport not registered");
  for (auto it = dmbs_.begin(); it != dmbs_.end();) {
    auto next = std::next(it);
    if (it->second.owner_vport == vport) {
      revoke(it);
    } else if (it->second.writer_vport == vport) {
      // The owner survives: the grant ends (no vport can attach it any more) and the owner is told through
      // the abort flag; it unregisters (zeroes) the DMB when it closes. Zeroing now would wipe that flag.
      it->second.writer_vport = kNoVport;
      it->second.writer_clients.clear();
      cons_word(it->second.map).fetch_or(kAbortBit);
      raise(it->second.event_fd);
    }
    it = next;
  }
  vports_.erase(vport);
  return {};
}

const Gid* Service::gid(uint32_t vport) const noexcept {
  auto it = vports_.find(vport);
  return it == vports_.end() ? nullptr : &it->second.gid;
}

bool Service::vport_of(const Gid& g, uint32_t* vport) const noexcept {
  for (const auto& [id, v] : vports_)
    if (v.gid == g) {
      *vport = id;
      return true;
    }
  return false;
}

size_t Service::dmb_count(uint32_t vport) const noexcept {
  auto it = vports_.find(vport);
  return it == vports_.end() ? 0 : it->second.dmbs;
}

uint64_t Service::dmb_bytes(uint32_t vport) const noexcept {
  auto it = vports_.find(vport);
  return it == vports_.end() ? 0 : it->second.bytes;
}

Result Service::register_dmb(const Requester& req, uint32_t writer_vport, uint64_t size, DmbGrant* out) {
  auto vit = vports_.find(req.vport);
  if (vit == vports_.end()) return fail(Err::kNoVport, "ism: register_dmb: requesting vport not registered");
  if (!vports_.contains(writer_vport)) return fail(Err::kNoVport, "ism: register_dmb: writer vport not registered");
  if (!valid_size(size)) return fail(Err::kInvalid, "ism: register_dmb: size must be 16 KiB << n, n <= 6");
  Vport& v = vit->second;
  if (v.dmbs + 1 > v.limits.max_dmbs) return fail(Err::kLimit, "ism: register_dmb: vport DMB count limit reached");
  if (v.bytes + size > v.limits.max_bytes)
    return fail(Err::kLimit, "ism: register_dmb: vport DMB byte limit reached");

  Dmb d;
  d.token = new_token();
  d.owner_vport = req.vport;
  d.writer_vport = writer_vport;
  d.owner_client = req.client;
  d.size = size;
  auto cleanup = [&](const char* reason) {
    int e = errno;
    if (d.map) munmap(d.map, d.size);
    for (int fd : {d.rw_fd, d.ro_fd, d.event_fd})
      if (fd >= 0) close(fd);
    return fail(Err::kSystem, reason, e);
  };
  d.rw_fd = memfd_create("esw-dmb", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (d.rw_fd < 0) return cleanup("ism: register_dmb: memfd_create failed");
  if (ftruncate(d.rw_fd, static_cast<off_t>(size)) != 0) return cleanup("ism: register_dmb: ftruncate failed");
  if (fcntl(d.rw_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
    return cleanup("ism: register_dmb: sealing the memfd failed");
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/fd/%d", d.rw_fd);
  d.ro_fd = open(path, O_RDONLY | O_CLOEXEC);
  if (d.ro_fd < 0) return cleanup("ism: register_dmb: read-only reopen of the memfd failed");
  d.event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (d.event_fd < 0) return cleanup("ism: register_dmb: eventfd failed");
  void* m = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, d.rw_fd, 0);
  if (m == MAP_FAILED) return cleanup("ism: register_dmb: mmap failed");
  d.map = static_cast<uint8_t*>(m);

  v.dmbs++;
  v.bytes += size;
  counters_.dmbs_registered++;
  *out = DmbGrant{d.token, size, d.ro_fd, d.event_fd};
  dmbs_.emplace(d.token, std::move(d));
  return {};
}

void Service::revoke(std::map<uint64_t, Dmb>::iterator it) {
  Dmb& d = it->second;
  // Zero what the tenants shared (and free the pages): mappings that survive see zeros, the data does not. The
  // abort flag is set first and kept, so a tenant still reading sees "connection aborted", never a zeroed
  // cursor that would look like a protocol violation.
  // The whole consumer word is replaced (cursor zero, abort flag) in one store; a writer's later cursor update
  // fails on the flag (its compare-exchange) instead of wiping it.
  cons_word(d.map).store(kAbortBit);
  std::memset(d.map, 0, 16);
  std::memset(d.map + 24, 0, kPage - 24);
  if (fallocate(d.rw_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, kPage, static_cast<off_t>(d.size - kPage)) != 0)
    std::memset(d.map + kPage, 0, d.size - kPage);
  counters_.bytes_zeroed += d.size;
  raise(d.event_fd);  // whoever waits on it (the owner's other threads, a writer) wakes and sees the end
  munmap(d.map, d.size);
  close(d.rw_fd);
  close(d.ro_fd);
  close(d.event_fd);
  if (auto v = vports_.find(d.owner_vport); v != vports_.end()) {
    v->second.dmbs--;
    v->second.bytes -= d.size;
  }
  counters_.dmbs_revoked++;
  dmbs_.erase(it);
}

Result Service::unregister_dmb(const Requester& req, uint64_t token) {
  auto it = dmbs_.find(token);
  if (it == dmbs_.end()) return fail(Err::kNoToken, "ism: unregister_dmb: no DMB with this token");
  if (it->second.owner_vport != req.vport)
    return fail(Err::kNotGranted, "ism: unregister_dmb: only the owner vport may unregister a DMB");
  counters_.dmbs_unregistered++;
  revoke(it);
  return {};
}

Result Service::attach(const Requester& req, uint64_t token, DmbGrant* out) {
  if (!vports_.contains(req.vport)) {
    counters_.attach_refused++;
    return fail(Err::kNoVport, "ism: attach: requesting vport not registered");
  }
  auto it = dmbs_.find(token);
  if (it == dmbs_.end()) {
    counters_.attach_refused++;
    return fail(Err::kNoToken, "ism: attach: no DMB with this token");
  }
  Dmb& d = it->second;
  if (req.vport != d.writer_vport && req.vport != d.owner_vport) {
    counters_.attach_refused++;
    return fail(Err::kNotGranted, "ism: attach: DMB not granted to this vport (neither its writer nor its owner)");
  }
  const bool writer = req.vport == d.writer_vport;
  if (writer && std::find(d.writer_clients.begin(), d.writer_clients.end(), req.client) == d.writer_clients.end())
    d.writer_clients.push_back(req.client);
  counters_.attaches++;
  *out = DmbGrant{d.token, d.size, writer ? d.rw_fd : d.ro_fd, d.event_fd};
  return {};
}

Result Service::bind_flow(const Requester& req, uint64_t token, const Flow& flow) {
  auto it = dmbs_.find(token);
  if (it == dmbs_.end()) return fail(Err::kNoToken, "ism: bind_flow: no DMB with this token");
  if (it->second.owner_vport != req.vport)
    return fail(Err::kNotGranted, "ism: bind_flow: only the owner vport may bind its DMB to a flow");
  if (it->second.has_flow) return fail(Err::kInvalid, "ism: bind_flow: the DMB is already bound to a flow");
  if (flow.local_port == 0 || flow.remote_port == 0 || flow.local_ip == 0 || flow.remote_ip == 0)
    return fail(Err::kInvalid, "ism: bind_flow: address or port 0");
  if (flow_validator_) {
    if (const char* why = flow_validator_(it->second.owner_vport, it->second.writer_vport, flow))
      return fail(Err::kNotGranted, why);
  }
  it->second.has_flow = true;
  it->second.flow = flow;
  return {};
}

bool Service::revoke_dmb(uint64_t token) {
  auto it = dmbs_.find(token);
  if (it == dmbs_.end()) return false;
  revoke(it);
  return true;
}

Result Service::detach(const Requester& req, uint64_t token) {
  auto it = dmbs_.find(token);
  if (it == dmbs_.end()) return fail(Err::kNoToken, "ism: detach: no DMB with this token");
  auto& wc = it->second.writer_clients;
  auto c = std::find(wc.begin(), wc.end(), req.client);
  if (c == wc.end() || it->second.writer_vport != req.vport)
    return fail(Err::kNotGranted, "ism: detach: this client has not attached the DMB");
  wc.erase(c);
  return {};
}

Result Service::signal(const Requester& req, uint64_t token) {
  auto it = dmbs_.find(token);
  if (it == dmbs_.end()) return fail(Err::kNoToken, "ism: signal: no DMB with this token");
  if (req.vport != it->second.writer_vport && req.vport != it->second.owner_vport)
    return fail(Err::kNotGranted, "ism: signal: DMB not granted to this vport");
  counters_.signals++;
  raise(it->second.event_fd);
  return {};
}

Result Service::write(const Requester& req, uint64_t token, uint64_t offset, std::span<const uint8_t> data) {
  auto it = dmbs_.find(token);
  if (it == dmbs_.end()) {
    counters_.write_refused++;
    return fail(Err::kNoToken, "ism: write: no DMB with this token");
  }
  Dmb& d = it->second;
  if (req.vport != d.writer_vport) {
    counters_.write_refused++;
    return fail(Err::kNotGranted, "ism: write: only the DMB's writer vport may write");
  }
  if (offset > d.size || data.size() > d.size - offset) {
    counters_.write_refused++;
    return fail(Err::kInvalid, "ism: write: offset + length past the end of the DMB");
  }
  std::memcpy(d.map + offset, data.data(), data.size());
  counters_.writes++;
  return {};
}

void Service::release_client(uint64_t client) {
  for (auto it = dmbs_.begin(); it != dmbs_.end();) {
    auto next = std::next(it);
    Dmb& d = it->second;
    if (d.owner_client == client) {
      revoke(it);
    } else {
      auto c = std::find(d.writer_clients.begin(), d.writer_clients.end(), client);
      if (c != d.writer_clients.end()) {
        d.writer_clients.erase(c);
        // The owner's peer is gone mid-connection: abort flag where the peer's CDC state lives, then wake it.
        cons_word(d.map).fetch_or(kAbortBit);
        raise(d.event_fd);
      }
    }
    it = next;
  }
}

const uint8_t* Service::debug_view(uint64_t token, uint64_t* size) const noexcept {
  auto it = dmbs_.find(token);
  if (it == dmbs_.end()) return nullptr;
  *size = it->second.size;
  return it->second.map;
}

std::vector<DmbInfo> Service::dmbs() const {
  std::vector<DmbInfo> out;
  out.reserve(dmbs_.size());
  for (const auto& [token, d] : dmbs_) {
    DmbInfo i;
    i.token = token;
    i.size = d.size;
    i.owner_vport = d.owner_vport;
    i.writer_vport = d.writer_vport;
    i.writers = static_cast<uint32_t>(d.writer_clients.size());
    // The producer cursor the writer keeps at offset 8: {u16 wrap, u32 count, u8 flags, u8 flags}, read once.
    const uint64_t word = std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(d.map + 8)).load(std::memory_order_relaxed);
    const uint64_t ring = d.size - kCdcHeaderSize;
    const uint64_t count = (word >> 16) & 0xFFFFFFFF;
    i.produced = (word & 0xFFFF) * ring + std::min(count, ring);
    i.aborted = (cons_word(d.map).load(std::memory_order_relaxed) & kAbortBit) != 0;
    i.has_flow = d.has_flow;
    i.flow = d.flow;
    out.push_back(i);
  }
  return out;
}

}  // namespace esw::smc::ism
