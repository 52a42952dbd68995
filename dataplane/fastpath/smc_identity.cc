#include "dataplane/fastpath/smc_identity.h"

#include <cstring>

#include "dataplane/fastpath/binding.h"
#include "dataplane/smc/session_table.h"

namespace esw::dp {

namespace {

bool gid_ok(const Binding& b, const uint8_t* gid) noexcept {
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  static constexpr uint8_t kZero[16] = {};
  if (std::memcmp(gid, kMapped, 12) == 0) {
    uint32_t a;
    std::memcpy(&a, gid + 12, 4);
    return v4_bound(b, a);
  }
  // The binding's own check (bound prefixes, link-local); "::" is no GID (a vport without a MAC has a zero
  // link-local address).
  return std::memcmp(gid, kZero, 16) != 0 && v6_bound(b, gid);
}

// Two prefixes overlap iff they agree under the shorter mask (then one contains the other).
bool v4_prefix_ok(const Binding& b, uint32_t subnet_host, uint8_t len) noexcept {
  const uint32_t cm_host = len == 0 ? 0 : ~uint32_t{0} << (32 - len);
  const uint32_t cm = __builtin_bswap32(cm_host);
  const uint32_t claimed = __builtin_bswap32(subnet_host);
  for (const Prefix4& p : b.ipv4) {
    const uint32_t m = cm & p.mask;
    if ((claimed & m) == (p.addr & m)) return true;
  }
  return false;
}

bool v6_prefix_ok(const Binding& b, const smc::Ipv6Prefix& c) noexcept {
  uint8_t cm[16];
  for (int i = 0; i < 16; ++i) {
    const int bits = static_cast<int>(c.len) - 8 * i;
    cm[i] = bits >= 8 ? 0xff : bits <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - bits));
  }
  for (const Prefix6& p : b.ipv6) {
    bool same = true;
    for (int i = 0; i < 16 && same; ++i) {
      const uint8_t m = cm[i] & p.mask[i];
      same = (c.prefix[i] & m) == (p.addr[i] & m);
    }
    if (same) return true;
  }
  return false;
}

}  // namespace

DropReason smc_identity_verdict(const Binding& b, const smc::Message& m) noexcept {
  const smc::Identity id = smc::identity(m);
  if (id.has_roce && b.has_mac && std::memcmp(id.roce_mac, b.mac.data(), 6) != 0) return DropReason::kSmcForeignMac;
  if (id.has_roce && !gid_ok(b, id.smcr_gid)) return DropReason::kSmcForeignGid;
  if (id.has_rocev2_gid && !gid_ok(b, id.rocev2_gid)) return DropReason::kSmcForeignGid;
  if ((m.hdr.type == smc::MsgType::kAccept || m.hdr.type == smc::MsgType::kConfirm) &&
      m.accept_confirm.fce.present) {
    const smc::FirstContactExt& f = m.accept_confirm.fce;
    for (unsigned i = 0; i < f.gid_count && i < smc::kMaxFceGids; ++i) {
      if (!gid_ok(b, f.gids[i])) return DropReason::kSmcForeignGid;
    }
  }
  if (id.ip != nullptr) {
    const smc::IpArea& ip = *id.ip;
    if ((ip.ipv4_subnet != 0 || ip.ipv4_prefix_len != 0) && !v4_prefix_ok(b, ip.ipv4_subnet, ip.ipv4_prefix_len)) {
      return DropReason::kSmcForeignPrefix;
    }
    for (unsigned i = 0; i < ip.ipv6_count && i < smc::kMaxIpv6Prefixes; ++i) {
      if (!v6_prefix_ok(b, ip.ipv6[i])) return DropReason::kSmcForeignPrefix;
    }
  }
  return DropReason::kCount;
}

uint8_t smc_refusal_of(DropReason r) noexcept {
  switch (r) {
    case DropReason::kSmcForeignMac: return static_cast<uint8_t>(smc::Refusal::kForeignMac);
    case DropReason::kSmcForeignGid: return static_cast<uint8_t>(smc::Refusal::kForeignGid);
    case DropReason::kSmcForeignPrefix: return static_cast<uint8_t>(smc::Refusal::kForeignPrefix);
    default: return 0;
  }
}

}  // namespace esw::dp
