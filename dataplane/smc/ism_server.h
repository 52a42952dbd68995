#pragma once
// The ISM service's endpoints: one unix SOCK_SEQPACKET socket per vport (its own path, owner and mode, so a
// container tenant gets only its vport's socket bind-mounted), speaking ism_protocol.h. The vport of a request
// is the endpoint it came through, never a field of the request. The peer's SO_PEERCRED is recorded per client.
//
// Event-loop hook: fd() is an epoll fd that is readable whenever service() has work; service() never blocks.
// In eswitchd (main lcore):
//   loop.add_fd(server.fd(), EventLoop::kRead, [&](uint32_t) { server.service(); }, "ism service");
//
// A client that closes (tenant exit or death) has its DMBs unregistered and zeroed and its grants dropped
// (Service::release_client). A client that does not read its replies (send would block) is disconnected.
//
// Threading: one owner thread; not thread-safe.

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <unordered_map>

#include "dataplane/smc/ism.h"
#include "dataplane/smc/ism_protocol.h"

namespace esw::smc::ism {

struct EndpointConfig {
  uint32_t vport = 0;
  std::string path;         // the socket's path; an existing socket there is replaced, anything else refused
  uid_t uid = static_cast<uid_t>(-1);  // -1: leave
  gid_t gid = static_cast<gid_t>(-1);
  mode_t mode = 0600;
  Limits limits;
  uint32_t max_clients = 64;
};

struct ClientInfo {
  uint64_t id = 0;
  uint32_t vport = 0;
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

struct ServerCounters {
  uint64_t accepted = 0, refused_clients = 0, closed = 0, requests = 0, bad_requests = 0, dropped_slow = 0;
  uint64_t intents = 0, intents_taken = 0, intents_refused = 0;  // esw-smc-run: connect intents recorded / taken / no listener
};

class Server {
 public:
  explicit Server(Service& service);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int fd() const noexcept { return epoll_fd_; }
  // Registers the vport with the service and listens on its path. On failure: false, *error names the step.
  bool add_endpoint(const EndpointConfig& cfg, std::string* error);
  // Disconnects the vport's clients, removes the vport from the service (revoking its grants), unlinks the path.
  bool remove_endpoint(uint32_t vport);
  // Accepts, reads and answers whatever is ready; returns the number of events handled.
  int service();

  size_t client_count() const noexcept { return clients_.size(); }
  const ServerCounters& counters() const noexcept { return counters_; }
  const std::unordered_map<uint64_t, ClientInfo>& clients() const noexcept { return client_info_; }

 private:
  struct Listener {
    int fd = -1;
    EndpointConfig cfg;
    uint32_t clients = 0;
  };
  struct Client {
    int fd = -1;
    uint32_t vport = 0;
  };
  void accept_on(uint64_t key);
  void read_from(uint64_t key);
  void close_client(uint64_t key);
  bool handle(uint64_t key, const proto::Request& rq, int bad_status, const char* bad_reason);

  Service& svc_;
  int epoll_fd_ = -1;
  uint64_t next_key_ = 1;
  std::unordered_map<uint64_t, Listener> listeners_;  // key -> listener
  std::unordered_map<uint64_t, Client> clients_;      // key (= Requester::client) -> client
  std::unordered_map<uint64_t, ClientInfo> client_info_;
  // esw-smc-run capability announcements (proto::kListen / kConnectIntent): key -> announcing client key.
  // Bounded (kMaxAnnounce each); a client's entries go when it disconnects.
  static constexpr size_t kMaxAnnounce = 65536;
  std::unordered_map<uint64_t, uint64_t> listens_;  // IPv4 << 16 | port
  std::unordered_map<uint64_t, uint64_t> intents_;  // dst IPv4 << 32 | dst port << 16 | src port
  ServerCounters counters_;
};

}  // namespace esw::smc::ism
