#include "vdpa/inflight.h"

namespace esw::vdpa {

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
