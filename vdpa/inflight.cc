#include "vdpa/inflight.h"

#include <fmt/format.h>

namespace esw::vdpa {

uint64_t inflight_vring_bytes(uint16_t queue_size, bool packed) {
  // 22.11: sizeof(desc) x queue_size + the header's fields (8 + 2 x 4 split; 8 + 2 x 6 + 9 packed), to 64 bytes.
  const uint64_t raw = packed ? sizeof(rte_vhost_inflight_desc_packed) * queue_size + 8 + 2 * 6 + 9
                              : sizeof(rte_vhost_inflight_desc_split) * queue_size + 8 + 2 * 4;
  return (raw + 63) / 64 * 64;
}

std::string check_inflight_msg(bool set, const InflightMsg& m, bool packed, unsigned max_vrings, bool running,
                               int64_t fd_bytes) {
  const char* what = set ? "SET_INFLIGHT_FD" : "GET_INFLIGHT_FD";
  if (running) return fmt::format("{} while the device runs (it would unmap the area in use)", what);
  if (m.num_queues == 0 || m.num_queues > max_vrings) {
    return fmt::format("{}: num_queues {} is not 1..{} (the vport's vrings)", what, m.num_queues, max_vrings);
  }
  if (m.queue_size == 0 || m.queue_size > 32768) {
    return fmt::format("{}: queue_size {} is not 1..32768", what, m.queue_size);
  }
  if (!set) return "";
  const uint64_t need = m.num_queues * inflight_vring_bytes(m.queue_size, packed);
  if (m.mmap_size < need) {
    return fmt::format("SET_INFLIGHT_FD: mmap_size {} is below {} vrings of {} {} descriptors ({} bytes)", m.mmap_size,
                       m.num_queues, m.queue_size, packed ? "packed" : "split", need);
  }
  if (m.mmap_offset > UINT64_MAX - m.mmap_size) return "SET_INFLIGHT_FD: mmap_offset + mmap_size overflows";
  if (fd_bytes < 0) return "SET_INFLIGHT_FD without a file descriptor";
  if (m.mmap_offset + m.mmap_size > static_cast<uint64_t>(fd_bytes)) {
    return fmt::format("SET_INFLIGHT_FD: mmap_offset {} + mmap_size {} is beyond the end of its file ({} bytes)",
                       m.mmap_offset, m.mmap_size, fd_bytes);
  }
  return "";
}

bool offer_inflight(const char* socket) {
  uint64_t proto = 0;
  if (rte_vhost_driver_get_protocol_features(socket, &proto) != 0) return false;
  return rte_vhost_driver_set_protocol_features(socket, proto | 1ULL << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD) == 0;
}

uint64_t* inflight_position_word(int vid, uint16_t vring, uint16_t& size) {
  rte_vhost_vring vr{};
  if (rte_vhost_get_vhost_vring(vid, vring, &vr) != 0 || vr.size == 0) return nullptr;
  size = vr.size;
  rte_vhost_ring_inflight ri{};
  // Fails for a vring without an area; for a split ring the pointer is inflight_split: not used here.
  if (rte_vhost_get_vhost_ring_inflight(vid, vring, &ri) != 0 || ri.inflight_packed == nullptr) return nullptr;
  uint64_t features = 0;
  if (rte_vhost_get_negotiated_features(vid, &features) != 0 || !((features >> 34) & 1)) return nullptr;  // RING_PACKED
  return &ri.inflight_packed->features;
}

InflightRestore restore_from_inflight(int vid, uint16_t vring, uint64_t* word, uint16_t size) {
  const uint64_t v = __atomic_load_n(word, __ATOMIC_ACQUIRE);
  if (v >> 32 != kInflightMarker) return InflightRestore::kNone;  // a fresh area: nothing recorded yet
  const auto avail = static_cast<uint16_t>(v >> 16), used = static_cast<uint16_t>(v);
  // The area is the front-end's memory: a slot beyond the ring would have rte_vhost read descriptors past it.
  if ((avail & 0x7fff) >= size || (used & 0x7fff) >= size) return InflightRestore::kRefused;
  uint16_t a = 0, u = 0;
  if (rte_vhost_get_vring_base(vid, vring, &a, &u) != 0) return InflightRestore::kFailed;
  if (a == avail && u == used) return InflightRestore::kSame;
  return rte_vhost_set_vring_base(vid, vring, avail, used) == 0 ? InflightRestore::kSet : InflightRestore::kFailed;
}

}  // namespace esw::vdpa
