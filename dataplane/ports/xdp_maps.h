#pragma once
// Map helpers shared by eswitch's XDP programs' loaders (xdp_guard.cc, xdp_uplink.cc): control path only.

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>

namespace esw::dp {

// BPF_MAP_TYPE_LPM_TRIE key for IPv4 (the programs' layout).
struct XdpLpm4 {
  uint32_t prefixlen;
  uint8_t addr[4];
};

// Makes the map's key set `want` (value 1): inserts every wanted key first, then deletes every other key, so a
// wanted key is never missing in between. Returns an error naming the map, or "".
template <typename Key>
std::string xdp_sync_set(int fd, std::vector<Key> want, const char* map_name) {
  const uint8_t one = 1;
  for (const Key& k : want) {
    if (bpf_map_update_elem(fd, &k, &one, BPF_ANY) != 0) {
      return fmt::format("cannot update the XDP program's {} map: {}", map_name, std::strerror(errno));
    }
  }
  auto less = [](const Key& a, const Key& b) { return std::memcmp(&a, &b, sizeof(Key)) < 0; };
  std::sort(want.begin(), want.end(), less);
  std::vector<Key> stale;
  Key cur{}, next{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    if (!std::binary_search(want.begin(), want.end(), next, less)) stale.push_back(next);
    cur = next;
    prev = &cur;
  }
  for (const Key& k : stale) bpf_map_delete_elem(fd, &k);
  return "";
}

// The sum over CPUs of a per-CPU array map's u64 at `key` (0 if it cannot be read).
inline uint64_t xdp_sum_per_cpu(int fd, uint32_t key) {
  const int ncpu = libbpf_num_possible_cpus();
  if (fd < 0 || ncpu <= 0) return 0;
  std::vector<uint64_t> per_cpu(static_cast<size_t>(ncpu));
  if (bpf_map_lookup_elem(fd, &key, per_cpu.data()) != 0) return 0;
  uint64_t sum = 0;
  for (uint64_t n : per_cpu) sum += n;
  return sum;
}

}  // namespace esw::dp
