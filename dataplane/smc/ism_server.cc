#include "dataplane/smc/ism_server.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace esw::smc::ism {
namespace {

int status_of(Err e, int sys_errno) {
  switch (e) {
    case Err::kOk: return 0;
    case Err::kInvalid: return -EINVAL;
    case Err::kNoVport: return -ENODEV;
    case Err::kVportExists: return -EEXIST;
    case Err::kLimit: return -ENOSPC;
    case Err::kNoToken: return -ENOENT;
    case Err::kNotGranted: return -EACCES;
    case Err::kSystem: return sys_errno ? -sys_errno : -EIO;
  }
  return -EIO;
}

}  // namespace

Server::Server(Service& service) : svc_(service) { epoll_fd_ = epoll_create1(EPOLL_CLOEXEC); }

Server::~Server() {
  while (!listeners_.empty()) remove_endpoint(listeners_.begin()->second.cfg.vport);
  for (auto& [k, c] : clients_) {
    close(c.fd);
    svc_.release_client(k);
  }
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

bool Server::add_endpoint(const EndpointConfig& cfg, std::string* error) {
  auto fail = [&](const std::string& what, int fd) {
    *error = "ism endpoint " + cfg.path + ": " + what + (errno ? std::string(": ") + std::strerror(errno) : "");
    if (fd >= 0) close(fd);
    return false;
  };
  errno = 0;
  if (epoll_fd_ < 0) return fail("epoll_create1 failed", -1);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (cfg.path.empty() || cfg.path.size() >= sizeof sa.sun_path) return fail("path empty or too long", -1);
  for (auto& [k, l] : listeners_)
    if (l.cfg.vport == cfg.vport) return fail("vport already has an endpoint", -1);
  std::memcpy(sa.sun_path, cfg.path.c_str(), cfg.path.size() + 1);
  struct stat st{};
  if (lstat(cfg.path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return fail("path exists and is not a socket", -1);
    unlink(cfg.path.c_str());
  }
  errno = 0;
  Result r = svc_.add_vport(cfg.vport, cfg.limits);
  if (!r.ok()) return fail(r.reason, -1);
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    svc_.remove_vport(cfg.vport);
    return fail("socket failed", -1);
  }
  // Owner and mode are set before listen(): nobody can connect in between.
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  const char* step = "bind failed";
  if (ok && chmod(cfg.path.c_str(), cfg.mode) != 0) ok = false, step = "chmod failed";
  if (ok && (cfg.uid != static_cast<uid_t>(-1) || cfg.gid != static_cast<gid_t>(-1)) &&
      chown(cfg.path.c_str(), cfg.uid, cfg.gid) != 0)
    ok = false, step = "chown failed";
  if (ok && listen(fd, 64) != 0) ok = false, step = "listen failed";
  uint64_t key = next_key_++;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = key;
  if (ok && epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) ok = false, step = "epoll_ctl failed";
  if (!ok) {
    int e = errno;
    svc_.remove_vport(cfg.vport);
    unlink(cfg.path.c_str());
    errno = e;
    return fail(step, fd);
  }
  listeners_.emplace(key, Listener{fd, cfg, 0});
  return true;
}

bool Server::remove_endpoint(uint32_t vport) {
  for (auto it = listeners_.begin(); it != listeners_.end(); ++it) {
    if (it->second.cfg.vport != vport) continue;
    for (auto c = clients_.begin(); c != clients_.end();) {
      auto next = std::next(c);
      if (c->second.vport == vport) close_client(c->first);
      c = next;
    }
    close(it->second.fd);
    unlink(it->second.cfg.path.c_str());
    listeners_.erase(it);
    svc_.remove_vport(vport);
    return true;
  }
  return false;
}

int Server::service() {
  epoll_event evs[64];
  int n = epoll_wait(epoll_fd_, evs, 64, 0);
  for (int i = 0; i < n; ++i) {
    uint64_t key = evs[i].data.u64;
    if (listeners_.contains(key)) {
      accept_on(key);
    } else if (clients_.contains(key)) {
      if (evs[i].events & EPOLLIN) read_from(key);
      if (clients_.contains(key) && (evs[i].events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP))) {
        // Requests sent before the hangup were answered above (read_from drains); now the client is gone.
        close_client(key);
      }
    }
  }
  return n < 0 ? 0 : n;
}

void Server::accept_on(uint64_t key) {
  Listener& l = listeners_.at(key);
  for (;;) {
    int fd = accept4(l.fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or a client that gave up
    if (l.clients >= l.cfg.max_clients) {
      counters_.refused_clients++;
      close(fd);
      continue;
    }
    ucred cred{};
    socklen_t len = sizeof cred;
    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len);
    uint64_t ck = next_key_++;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = ck;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      close(fd);
      continue;
    }
    l.clients++;
    counters_.accepted++;
    clients_.emplace(ck, Client{fd, l.cfg.vport});
    client_info_.emplace(ck, ClientInfo{ck, l.cfg.vport, cred.pid, cred.uid, cred.gid});
  }
}

void Server::close_client(uint64_t key) {
  auto it = clients_.find(key);
  if (it == clients_.end()) return;
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->second.fd, nullptr);
  close(it->second.fd);
  for (auto& [k, l] : listeners_)
    if (l.cfg.vport == it->second.vport && l.clients > 0) l.clients--;
  clients_.erase(it);
  client_info_.erase(key);
  std::erase_if(listens_, [key](const auto& e) { return e.second == key; });
  std::erase_if(intents_, [key](const auto& e) { return e.second == key; });
  counters_.closed++;
  svc_.release_client(key);
}

void Server::read_from(uint64_t key) {
  // Bounded per call so one busy client cannot starve the loop; level-triggered epoll brings us back.
  for (int round = 0; round < 32; ++round) {
    auto it = clients_.find(key);
    if (it == clients_.end()) return;
    alignas(proto::Request) uint8_t buf[sizeof(proto::Request) + 1];
    alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * 8)];
    iovec iov{buf, sizeof buf};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof cbuf;
    ssize_t n = recvmsg(it->second.fd, &mh, MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      close_client(key);
      return;
    }
    if (n == 0) {
      close_client(key);
      return;
    }
    // Tenants send no fds: close whatever came.
    bool had_fds = (mh.msg_flags & MSG_CTRUNC) != 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        had_fds = true;
        size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < nfd; ++i) {
          int fd;
          std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
          close(fd);
        }
      }
    }
    proto::Request rq{};
    std::memcpy(&rq, buf, std::min<size_t>(static_cast<size_t>(n), sizeof rq));
    int bad = 0;
    const char* why = "";
    if (static_cast<size_t>(n) != sizeof(proto::Request)) {
      bad = -EPROTO, why = "ism: request: length is not 32 bytes";
    } else if (rq.version != proto::kVersion) {
      bad = -EPROTO, why = "ism: request: unsupported protocol version (this server speaks 1)";
    } else if (had_fds) {
      bad = -EPROTO, why = "ism: request: file descriptors are not accepted from tenants";
    }
    counters_.requests++;
    if (bad) counters_.bad_requests++;
    if (!handle(key, rq, bad, why)) return;
  }
}

bool Server::handle(uint64_t key, const proto::Request& rq, int bad_status, const char* bad_reason) {
  Client& c = clients_.at(key);
  Requester who{c.vport, key};
  proto::Reply rp{};
  rp.version = proto::kVersion;
  rp.op = rq.op;
  rp.id = rq.id;
  int fds[2] = {-1, -1};
  Result r;
  if (bad_status) {
    rp.status = bad_status;
    std::strncpy(rp.reason, bad_reason, sizeof rp.reason - 1);
  } else {
    switch (rq.op) {
      case proto::kHello: {
        const Gid* g = svc_.gid(c.vport);
        if (!g) {
          r = Result{Err::kNoVport, "ism: hello: vport no longer registered", 0};
          break;
        }
        rp.a = g->gid, rp.b = g->gid_ext, rp.c = svc_.chid() | (static_cast<uint64_t>(c.vport) << 32);
        break;
      }
      case proto::kRegister: {
        uint32_t writer = 0;
        if (!svc_.vport_of(Gid{rq.b, rq.c}, &writer)) {
          r = Result{Err::kNoVport, "ism: register: the writer's GID belongs to no local vport", 0};
          break;
        }
        DmbGrant g;
        r = svc_.register_dmb(who, writer, rq.a, &g);
        if (r.ok()) rp.a = g.token, rp.b = g.size, fds[0] = g.mem_fd, fds[1] = g.event_fd;
        break;
      }
      case proto::kUnregister: r = svc_.unregister_dmb(who, rq.a); break;
      case proto::kAttach: {
        DmbGrant g;
        r = svc_.attach(who, rq.a, &g);
        if (r.ok()) rp.a = g.token, rp.b = g.size, fds[0] = g.mem_fd, fds[1] = g.event_fd;
        break;
      }
      case proto::kDetach: r = svc_.detach(who, rq.a); break;
      case proto::kSignal: r = svc_.signal(who, rq.a); break;
      case proto::kBindFlow: {
        const Flow f{static_cast<uint32_t>(rq.b >> 32), static_cast<uint32_t>(rq.b), static_cast<uint16_t>(rq.c >> 16),
                     static_cast<uint16_t>(rq.c)};
        r = (rq.c >> 32) ? Result{Err::kInvalid, "ism: bind_flow: ports field has bits above 32", 0}
                         : svc_.bind_flow(who, rq.a, f);
        break;
      }
      case proto::kQueryGid: {
        uint32_t v = 0;
        if (!svc_.vport_of(Gid{rq.a, rq.b}, &v)) r = Result{Err::kNoVport, "ism: query_gid: no local vport has it", 0};
        break;
      }
      case proto::kListen:
      case proto::kUnlisten:
        if (rq.a >> 48) {
          r = Result{Err::kInvalid, "ism: listen: address field has bits above 48", 0};
        } else if (rq.op == proto::kUnlisten) {
          auto it = listens_.find(rq.a);
          if (it != listens_.end() && it->second == key) listens_.erase(it);
        } else if (listens_.size() >= kMaxAnnounce && !listens_.contains(rq.a)) {
          r = Result{Err::kLimit, "ism: listen: too many announced listeners on this host", 0};
        } else {
          listens_[rq.a] = key;
        }
        break;
      case proto::kConnectIntent: {
        const uint64_t port = rq.a >> 16 & 0xFFFF, ip = rq.a >> 32;
        if (!listens_.contains(ip << 16 | port) && !listens_.contains(port)) {
          counters_.intents_refused++;
          r = Result{Err::kNoToken, "ism: connect_intent: no SMC-enabled listener announced there", 0};
        } else if (intents_.size() >= kMaxAnnounce && !intents_.contains(rq.a)) {
          r = Result{Err::kLimit, "ism: connect_intent: too many pending intents on this host", 0};
        } else {
          intents_[rq.a] = key;
          counters_.intents++;
        }
        break;
      }
      case proto::kTakeIntent: {
        auto it = intents_.find(rq.a);
        if (it == intents_.end()) {
          r = Result{Err::kNoToken, "ism: take_intent: no client announced SMC-D on this connection", 0};
        } else {
          intents_.erase(it);
          counters_.intents_taken++;
        }
        break;
      }
      default:
        counters_.bad_requests++;
        r = Result{Err::kInvalid, "ism: request: unknown op", 0};
        rp.status = -EPROTO;
    }
    if (rp.status == 0) rp.status = status_of(r.err, r.sys_errno);
    rp.err = static_cast<uint8_t>(r.err);
    std::strncpy(rp.reason, r.reason, sizeof rp.reason - 1);
  }
  iovec iov{&rp, sizeof rp};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof fds)];
  if (rp.status == 0 && fds[0] >= 0) {
    rp.nfds = 2;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof cbuf;
    cmsghdr* cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof fds);
    std::memcpy(CMSG_DATA(cm), fds, sizeof fds);
  }
  if (sendmsg(c.fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof rp)) {
    if (errno == EAGAIN) counters_.dropped_slow++;
    close_client(key);
    return false;
  }
  return true;
}

}  // namespace esw::smc::ism
