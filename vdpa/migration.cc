#include "vdpa/migration.h"

#include "dataplane/fastpath/checksum.h"

#include <linux/virtio_config.h>  // VIRTIO_F_RING_PACKED

#include <algorithm>
#include <cctype>
#include <cstring>

#include <fmt/format.h>

namespace esw::vdpa {

namespace {

constexpr const char* kNames[] = {"RUNNING", "RUNNING_P2P", "STOP", "STOP_COPY", "RESUMING", "PRE_COPY",
                                  "PRE_COPY_P2P"};

// The arcs of include/uapi/linux/vfio.h (v2 protocol with P2P and PRE_COPY), nothing else.
constexpr std::pair<MigState, MigState> kArcs[] = {
    {MigState::kRunningP2P, MigState::kStop},        {MigState::kStopCopy, MigState::kStop},
    {MigState::kResuming, MigState::kStop},          {MigState::kRunningP2P, MigState::kRunning},
    {MigState::kRunning, MigState::kRunningP2P},     {MigState::kStop, MigState::kRunningP2P},
    {MigState::kRunning, MigState::kPreCopy},        {MigState::kRunningP2P, MigState::kPreCopyP2P},
    {MigState::kStop, MigState::kStopCopy},          {MigState::kPreCopy, MigState::kRunning},
    {MigState::kPreCopyP2P, MigState::kRunningP2P},  {MigState::kPreCopy, MigState::kPreCopyP2P},
    {MigState::kPreCopyP2P, MigState::kPreCopy},     {MigState::kPreCopyP2P, MigState::kStopCopy},
    {MigState::kStop, MigState::kResuming},
};

constexpr char kMagic[8] = {'E', 'S', 'W', 'V', 'M', 'I', 'G', '\0'};


struct Writer {
  std::vector<uint8_t> b;
  void u8(uint8_t v) { b.push_back(v); }
  void u16(uint16_t v) { for (int i = 0; i < 2; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i))); }
  void u32(uint32_t v) { for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i))); }
  void u64(uint64_t v) { for (int i = 0; i < 8; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i))); }
  void str(const std::string& s) {
    u16(static_cast<uint16_t>(s.size()));
    b.insert(b.end(), s.begin(), s.end());
  }
};

// Reads little-endian fields; the first failure is kept (with its offset and field) and every later read is a
// no-op returning zeros, so decode reads straight through and checks `ok` at the end of each section.
struct Reader {
  const uint8_t* p;
  size_t len;
  size_t off = 0;
  std::string error;
  bool ok() const { return error.empty(); }
  void fail(size_t at, const std::string& what) {
    if (error.empty()) error = fmt::format("migration stream byte {}: {}", at, what);
  }
  bool need(size_t n, const char* field) {
    if (!ok()) return false;
    if (len - off < n) {
      fail(off, fmt::format("{}: truncated ({} byte(s) left, {} needed)", field, len - off, n));
      return false;
    }
    return true;
  }
  uint64_t le(size_t n, const char* field) {
    if (!need(n, field)) return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[off + i]) << (8 * i);
    off += n;
    return v;
  }
  uint8_t u8(const char* f) { return static_cast<uint8_t>(le(1, f)); }
  uint16_t u16(const char* f) { return static_cast<uint16_t>(le(2, f)); }
  uint32_t u32(const char* f) { return static_cast<uint32_t>(le(4, f)); }
  uint64_t u64(const char* f) { return le(8, f); }
  // A length-prefixed printable string of at most `max` bytes.
  std::string str(const std::string& field, size_t max) {
    const size_t at = off;
    const uint16_t n = u16(field.c_str());
    if (!ok()) return {};
    if (n > max) {
      fail(at, fmt::format("{}: length {} is above the limit {}", field, n, max));
      return {};
    }
    if (!need(n, field.c_str())) return {};
    std::string s(reinterpret_cast<const char*>(p + off), n);
    for (size_t i = 0; i < s.size(); ++i) {
      if (!std::isprint(static_cast<unsigned char>(s[i]))) {
        fail(off + i, fmt::format("{}: byte 0x{:02x} is not printable text", field, static_cast<uint8_t>(s[i])));
        return {};
      }
    }
    off += n;
    return s;
  }
  // A count bounded by `max`.
  size_t count(const std::string& field, size_t width, size_t max) {
    const size_t at = off;
    const uint64_t n = width == 1 ? u8(field.c_str()) : u16(field.c_str());
    if (ok() && n > max) fail(at, fmt::format("{}: {} is above the limit {}", field, n, max));
    return ok() ? static_cast<size_t>(n) : 0;
  }
};

}  // namespace

MigVring MigVring::from_vhost_base(uint16_t avail, uint16_t used, bool packed) {
  MigVring v;
  if (packed) {
    v.last_avail = avail & 0x7fff;
    v.avail_wrap = (avail >> 15) & 1;
    v.last_used = used & 0x7fff;
    v.used_wrap = (used >> 15) & 1;
  } else {
    v.last_avail = avail;
    v.last_used = used;
  }
  return v;
}

const char* mig_state_name(MigState s) { return kNames[static_cast<size_t>(s)]; }

std::optional<MigState> parse_mig_state(std::string_view name) {
  std::string up(name);
  for (char& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::replace(up.begin(), up.end(), '-', '_');
  for (size_t i = 0; i < std::size(kNames); ++i) {
    if (up == kNames[i]) return static_cast<MigState>(i);
  }
  return std::nullopt;
}

bool mig_arc_legal(MigState from, MigState to) {
  return std::find(std::begin(kArcs), std::end(kArcs), std::make_pair(from, to)) != std::end(kArcs);
}

std::string mig_arc_error(MigState from, MigState to) {
  if (mig_arc_legal(from, to)) return {};
  std::string legal;
  for (const auto& [a, b] : kArcs) {
    if (a == from) legal += fmt::format("{}{}", legal.empty() ? "" : ", ", mig_state_name(b));
  }
  return fmt::format("illegal migration arc {} -> {} (legal from {}: {})", mig_state_name(from), mig_state_name(to),
                     mig_state_name(from), legal);
}

bool mig_rx_allowed(MigState s) { return s == MigState::kRunning || s == MigState::kPreCopy; }
bool mig_tx_allowed(MigState s) {
  return s == MigState::kRunning || s == MigState::kPreCopy || s == MigState::kRunningP2P ||
         s == MigState::kPreCopyP2P;
}

std::vector<uint8_t> encode_mig_stream(const MigStream& s) {
  Writer w;
  w.b.insert(w.b.end(), std::begin(kMagic), std::end(kMagic));
  w.u32(kMigStreamVersion);
  w.u32(0);  // body length, patched below
  const size_t body = w.b.size();
  w.str(s.vport);
  w.u64(s.features);
  w.u8(s.packed ? 1 : 0);
  w.u16(s.queue_pairs);
  w.u16(static_cast<uint16_t>(s.vrings.size()));
  for (const MigVring& v : s.vrings) {
    w.u16(v.last_avail);
    w.u8(v.avail_wrap ? 1 : 0);
    w.u16(v.last_used);
    w.u8(v.used_wrap ? 1 : 0);
    w.u16(v.inflight);
    w.u8(v.enabled ? 1 : 0);
  }
  w.str(s.hw_addr);
  for (const auto* list : {&s.ipv4, &s.ipv6}) {
    w.u8(static_cast<uint8_t>(list->size()));
    for (const auto& a : *list) w.str(a);
  }
  const MigCounters& c = s.counters;
  for (uint64_t v : {c.rx_packets, c.rx_bytes, c.tx_packets, c.tx_bytes, c.tx_dropped}) w.u64(v);
  w.u8(static_cast<uint8_t>(c.dropped.size()));
  for (uint64_t v : c.dropped) w.u64(v);
  for (uint64_t v : {c.engine_rx, c.engine_tx, c.engine_tx_refused}) w.u64(v);
  w.u16(static_cast<uint16_t>(s.rules.size()));
  for (const auto& r : s.rules) w.str(r);
  const uint32_t body_len = static_cast<uint32_t>(w.b.size() - body);
  for (int i = 0; i < 4; ++i) w.b[body - 4 + i] = static_cast<uint8_t>(body_len >> (8 * i));
  w.u32(esw::dp::crc32_ieee(w.b.data(), w.b.size()));
  return w.b;
}

bool decode_mig_stream(const uint8_t* data, size_t len, MigStream& out, std::string& error) {
  out = MigStream{};
  Reader r{data, len};
  if (len > kMigMaxStreamBytes) {
    error = fmt::format("migration stream: {} bytes is above the limit {}", len, kMigMaxStreamBytes);
    return false;
  }
  if (!r.need(sizeof(kMagic), "magic") || std::memcmp(data, kMagic, sizeof(kMagic)) != 0) {
    r.fail(0, "magic: not an eswitch vport migration stream");
    error = r.error;
    return false;
  }
  r.off = sizeof(kMagic);
  const uint32_t version = r.u32("version");
  if (r.ok() && version != kMigStreamVersion) {
    r.fail(8, fmt::format("version: {} is not {} (this eswitchd reads version {} only)", version, kMigStreamVersion,
                          kMigStreamVersion));
  }
  const size_t len_at = r.off;
  const uint32_t body_len = r.u32("body length");
  if (r.ok() && (body_len > len || len - r.off < 4 || body_len != len - r.off - 4)) {
    r.fail(len_at, fmt::format("body length: {} does not match the {} byte(s) that follow less the 4-byte checksum",
                               body_len, len - r.off));
  }
  if (r.ok()) {
    const uint32_t want = esw::dp::crc32_ieee(data, len - 4);
    uint32_t got = 0;
    for (int i = 0; i < 4; ++i) got |= static_cast<uint32_t>(data[len - 4 + i]) << (8 * i);
    if (got != want) r.fail(len - 4, fmt::format("checksum: 0x{:08x}, the content sums to 0x{:08x}", got, want));
  }
  if (!r.ok()) {
    error = r.error;
    return false;
  }
  r.len = len - 4;  // the checksum is not a field
  out.vport = r.str("vport name", 64);
  out.features = r.u64("features");
  size_t at = r.off;
  const uint8_t layout = r.u8("ring layout");
  if (r.ok() && layout > 1) r.fail(at, fmt::format("ring layout: {} is not 0 (split) or 1 (packed)", layout));
  out.packed = layout == 1;
  if (r.ok() && out.packed != ((out.features >> VIRTIO_F_RING_PACKED) & 1)) {
    r.fail(at, fmt::format("ring layout: {} but the features 0x{:x} {} RING_PACKED", out.packed ? "packed" : "split",
                           out.features, out.packed ? "lack" : "have"));
  }
  at = r.off;
  out.queue_pairs = r.u16("queue pairs");
  if (r.ok() && (out.queue_pairs < 1 || out.queue_pairs > kMigMaxQueuePairs)) {
    r.fail(at, fmt::format("queue pairs: {} is not in 1..{}", out.queue_pairs, kMigMaxQueuePairs));
  }
  at = r.off;
  const uint16_t nvrings = r.u16("vring count");
  if (r.ok() && nvrings != 2 * out.queue_pairs) {
    r.fail(at, fmt::format("vring count: {} is not twice the {} queue pair(s)", nvrings, out.queue_pairs));
  }
  for (uint16_t i = 0; r.ok() && i < nvrings; ++i) {
    MigVring v;
    const std::string f = fmt::format("vring {}", i);
    // A packed ring's indices are descriptor slots (15 bits) with a wrap counter each; a split ring's are
    // free-running 16-bit counters without one.
    auto wrap = [&](const std::string& field) {
      const size_t w_at = r.off;
      const uint8_t w = r.u8(field.c_str());
      if (r.ok() && w > (out.packed ? 1 : 0)) {
        r.fail(w_at, out.packed ? fmt::format("{}: {} is not 0 or 1", field, w)
                                : fmt::format("{}: {} on a split ring (which has no wrap counter)", field, w));
      }
      return w == 1;
    };
    auto index = [&](const std::string& field) {
      const size_t i_at = r.off;
      const uint16_t i = r.u16(field.c_str());
      if (r.ok() && out.packed && i > 0x7fff) {
        r.fail(i_at, fmt::format("{}: {} is not a packed ring slot (0..32767)", field, i));
      }
      return i;
    };
    v.last_avail = index(f + " last_avail");
    v.avail_wrap = wrap(f + " avail_wrap");
    v.last_used = index(f + " last_used");
    v.used_wrap = wrap(f + " used_wrap");
    at = r.off;
    v.inflight = r.u16((f + " inflight").c_str());
    if (r.ok() && v.inflight > 32768) r.fail(at, fmt::format("{} inflight: {} is above a vring's 32768", f, v.inflight));
    at = r.off;
    const uint8_t en = r.u8((f + " enabled").c_str());
    if (r.ok() && en > 1) r.fail(at, fmt::format("{} enabled: {} is not 0 or 1", f, en));
    v.enabled = en == 1;
    out.vrings.push_back(v);
  }
  out.hw_addr = r.str("hw_addr", 17);
  for (auto [list, name] : {std::pair{&out.ipv4, "ipv4"}, std::pair{&out.ipv6, "ipv6"}}) {
    const size_t n = r.count(fmt::format("{} count", name), 1, kMigMaxAddrs);
    for (size_t i = 0; r.ok() && i < n; ++i) list->push_back(r.str(fmt::format("{}[{}]", name, i), kMigMaxAddrLen));
  }
  MigCounters& c = out.counters;
  c.rx_packets = r.u64("rx_packets");
  c.rx_bytes = r.u64("rx_bytes");
  c.tx_packets = r.u64("tx_packets");
  c.tx_bytes = r.u64("tx_bytes");
  c.tx_dropped = r.u64("tx_dropped");
  const size_t nd = r.count("drop reason count", 1, kMigMaxDropReasons);
  for (size_t i = 0; r.ok() && i < nd; ++i) c.dropped.push_back(r.u64("drop counter"));
  c.engine_rx = r.u64("engine rx");
  c.engine_tx = r.u64("engine tx");
  c.engine_tx_refused = r.u64("engine tx refused");
  const size_t nr = r.count("rule count", 2, kMigMaxRules);
  for (size_t i = 0; r.ok() && i < nr; ++i) out.rules.push_back(r.str(fmt::format("rule {}", i), kMigMaxRuleLen));
  if (r.ok() && r.off != r.len) r.fail(r.off, fmt::format("{} byte(s) left after the last field", r.len - r.off));
  if (!r.ok()) {
    error = r.error;
    out = MigStream{};
    return false;
  }
  return true;
}

}  // namespace esw::vdpa
