#include "dataplane/ports/xdp_redirect.h"

#include <linux/ethtool.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>

namespace esw::dp {
namespace {

// include/uapi/linux/netdev.h (Linux 6.3; Debian 12's headers predate it).
constexpr uint8_t kNetdevCmdDevGet = 1;
constexpr uint16_t kNetdevAttrIfindex = 1;
constexpr uint16_t kNetdevAttrXdpFeatures = 3;
constexpr uint64_t kXdpActNdoXmit = 1u << 2;

std::string driver_of(const std::string& iface) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "?";
  ethtool_drvinfo info{};
  info.cmd = ETHTOOL_GDRVINFO;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, iface.c_str(), IFNAMSIZ - 1);
  ifr.ifr_data = reinterpret_cast<char*>(&info);
  const int rc = ::ioctl(fd, SIOCETHTOOL, &ifr);
  ::close(fd);
  return rc == 0 ? std::string(info.driver) : std::string("?");
}

// A generic-netlink socket with a short receive timeout (the kernel answers at once or not at all).
class Genl {
 public:
  Genl() {
    fd_ = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
    if (fd_ >= 0) {
      timeval tv{1, 0};
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
  }
  ~Genl() {
    if (fd_ >= 0) ::close(fd_);
  }
  Genl(const Genl&) = delete;
  Genl& operator=(const Genl&) = delete;
  bool ok() const { return fd_ >= 0; }

  // Sends one request (family, cmd, one attribute) and returns the reply's payload attributes, or an errno.
  int request(uint16_t family, uint8_t cmd, uint16_t attr, const void* val, uint16_t len, std::vector<uint8_t>& attrs) {
    std::vector<uint8_t> msg(NLMSG_SPACE(GENL_HDRLEN) + NLA_ALIGN(NLA_HDRLEN + len), 0);
    auto* nh = reinterpret_cast<nlmsghdr*>(msg.data());
    nh->nlmsg_len = static_cast<uint32_t>(msg.size());
    nh->nlmsg_type = family;
    nh->nlmsg_flags = NLM_F_REQUEST;
    nh->nlmsg_seq = ++seq_;
    auto* gh = reinterpret_cast<genlmsghdr*>(NLMSG_DATA(nh));
    gh->cmd = cmd;
    gh->version = 1;
    auto* na = reinterpret_cast<nlattr*>(reinterpret_cast<uint8_t*>(gh) + GENL_HDRLEN);
    na->nla_type = attr;
    na->nla_len = static_cast<uint16_t>(NLA_HDRLEN + len);
    std::memcpy(reinterpret_cast<uint8_t*>(na) + NLA_HDRLEN, val, len);
    sockaddr_nl to{};
    to.nl_family = AF_NETLINK;
    if (::sendto(fd_, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) return errno;
    std::vector<uint8_t> buf(16384);
    const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
    if (n < 0) return errno;
    auto* rh = reinterpret_cast<nlmsghdr*>(buf.data());
    if (!NLMSG_OK(rh, static_cast<uint32_t>(n))) return EPROTO;
    if (rh->nlmsg_type == NLMSG_ERROR) {
      const auto* e = reinterpret_cast<const nlmsgerr*>(NLMSG_DATA(rh));
      return e->error != 0 ? -e->error : EPROTO;
    }
    const size_t off = NLMSG_HDRLEN + GENL_HDRLEN;
    if (rh->nlmsg_len < off) return EPROTO;
    attrs.assign(buf.begin() + static_cast<long>(off), buf.begin() + static_cast<long>(rh->nlmsg_len));
    return 0;
  }

 private:
  int fd_ = -1;
  uint32_t seq_ = 0;
};

// The attribute `type` of a flat attribute list, or nullptr.
const nlattr* find_attr(const std::vector<uint8_t>& attrs, uint16_t type) {
  size_t pos = 0;
  while (pos + NLA_HDRLEN <= attrs.size()) {
    const auto* a = reinterpret_cast<const nlattr*>(attrs.data() + pos);
    if (a->nla_len < NLA_HDRLEN || pos + a->nla_len > attrs.size()) return nullptr;
    if ((a->nla_type & NLA_TYPE_MASK) == type) return a;
    pos += NLA_ALIGN(a->nla_len);
  }
  return nullptr;
}

}  // namespace

std::string xdp_redirect_target(const std::string& iface, uint32_t& ifindex) {
  ifindex = if_nametoindex(iface.c_str());
  if (ifindex == 0) return fmt::format("no interface {}", iface);
  Genl g;
  if (!g.ok()) return fmt::format("cannot open a generic netlink socket: {}", std::strerror(errno));
  std::vector<uint8_t> attrs;
  const char family_name[] = "netdev";
  if (int e = g.request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_NAME, family_name, sizeof family_name, attrs);
      e != 0) {
    return fmt::format("cannot read {}'s XDP features (no netdev netlink family: Linux < 6.3?): {}", iface,
                       std::strerror(e));
  }
  const nlattr* fid = find_attr(attrs, CTRL_ATTR_FAMILY_ID);
  if (fid == nullptr || fid->nla_len < NLA_HDRLEN + 2) return "netdev netlink family: no id";
  uint16_t family = 0;
  std::memcpy(&family, reinterpret_cast<const uint8_t*>(fid) + NLA_HDRLEN, 2);
  if (int e = g.request(family, kNetdevCmdDevGet, kNetdevAttrIfindex, &ifindex, 4, attrs); e != 0) {
    return fmt::format("cannot read {}'s XDP features: {}", iface, std::strerror(e));
  }
  const nlattr* f = find_attr(attrs, kNetdevAttrXdpFeatures);
  if (f == nullptr || f->nla_len < NLA_HDRLEN + 8) return fmt::format("the kernel reports no XDP features for {}", iface);
  uint64_t features = 0;
  std::memcpy(&features, reinterpret_cast<const uint8_t*>(f) + NLA_HDRLEN, 8);
  if (features & kXdpActNdoXmit) return "";
  const std::string driver = driver_of(iface);
  if (driver == "veth") {
    return fmt::format("{} (veth) does not take XDP redirects: its peer runs no XDP program and has GRO off "
                       "(the kernel would drop the frames)", iface);
  }
  return fmt::format("{} (driver {}) does not take XDP redirects (no ndo_xdp_xmit)", iface, driver);
}

}  // namespace esw::dp
