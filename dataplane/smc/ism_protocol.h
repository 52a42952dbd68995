#pragma once
// The ISM endpoint protocol (one unix SOCK_SEQPACKET socket per vport, see ism_server.h): fixed-layout binary
// messages in host byte order (the socket is local), one request -> one reply, matched by id. The server accepts
// only messages of exactly sizeof(Request) with version kVersion and no file descriptors; it answers with
// exactly sizeof(Reply) and, for register/attach, two fds by SCM_RIGHTS: the DMB memfd and its eventfd.
// Shared by the server and the tenant library (tenant/); header-only, C++ and C-compatible layout.

#include <cstdint>

namespace esw::smc::ism::proto {

inline constexpr uint16_t kVersion = 1;

enum Op : uint16_t {
  kHello = 1,       // -> a = gid, b = gid_ext, c = chid | vport << 32
  kRegister = 2,    // a = size, b = writer's gid, c = writer's gid_ext -> a = token, b = size; fds: memfd (O_RDONLY), eventfd
  kUnregister = 3,  // a = token
  kAttach = 4,      // a = token -> a = token, b = size; fds: memfd (O_RDWR for the writer), eventfd
  kDetach = 5,      // a = token
  kSignal = 6,      // a = token: raise the DMB's eventfd
  kQueryGid = 7,    // a = gid, b = gid_ext -> status 0 when a local vport has it
  kBindFlow = 8,    // a = token of an own DMB, b = local IPv4 << 32 | remote IPv4 (host order),
                    // c = local port << 16 | remote port: the TCP connection the DMB serves (the owner's view).
                    // eswitchd revokes the DMB when a change makes the switch drop that flow.
  // Capability announcements for transparent use (esw-smc-run, which cannot set the SMC TCP option): the service
  // knows both local ends, so it answers "is the peer an SMC endpoint" for local peers. Entries belong to the
  // announcing client (dropped when it disconnects). IPv4 addresses and ports in host order.
  kListen = 9,      // a = IPv4 (0: any) << 16 | port: this client listens there with SMC-D enabled
  kUnlisten = 10,   // a = as kListen
  kConnectIntent = 11,  // a = dst IPv4 << 32 | dst port << 16 | src port: status 0 when an SMC-enabled listener is
                        // announced for dst (its IPv4 or any); then the intent is recorded: the client will send a
                        // CLC Proposal on that connection. -ENOENT: no listener (the client stays plain TCP).
  kTakeIntent = 12, // a = local IPv4 << 32 | local port << 16 | peer port (the accepting server's view): status 0
                    // (and the intent is removed) when a client announced it will send a Proposal on that
                    // connection; -ENOENT: a plain client, nothing to wait for.
};

struct Request {
  uint16_t version;
  uint16_t op;
  uint32_t id;
  uint64_t a, b, c;
};
static_assert(sizeof(Request) == 32);

struct Reply {
  uint16_t version;
  uint16_t op;
  uint32_t id;
  int32_t status;  // 0 or -errno: EPROTO bad request, EINVAL field, ENODEV vport, ENOSPC limit, ENOENT token,
                   // EACCES not granted, other: system error
  uint8_t err;     // esw::smc::ism::Err
  uint8_t nfds;
  uint16_t reserved;
  uint64_t a, b, c;
  char reason[96];  // NUL-terminated
};
static_assert(sizeof(Reply) == 136);

}  // namespace esw::smc::ism::proto
