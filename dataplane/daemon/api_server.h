#pragma once
// eswitchd's management API: a local unix stream socket speaking versioned, newline-delimited JSON.
//
//   request  {"api": 1, "id": <any>, "method": "apply", "params": {...}}\n
//   reply    {"api": 1, "id": <same>, "ok": true, "result": {...}}\n
//            {"api": 1, "id": <same>, "ok": false, "error": {"code": "...", "message": "...", "errors": [...]}}\n
//   progress {"api": 1, "id": <same>, "progress": {"phase": "...", ...}}\n   (only when params.progress is true)
//
// A connection may carry any number of requests, one per line; a request that ends at end-of-file instead of a
// newline (the peer half-closed) is accepted if it is one complete JSON value. Methods: ping, config, apply,
// diff, show, stats, trace (see dataplane/README.md or control/README.md for their params and results).
//
// Guarantees:
//  - Requests are transactions. `apply` carries the whole desired YAML text, so a request is either received
//    completely and applied as one Switch::apply (all or nothing), or rejected. A peer that disconnects before
//    its request is complete, sends garbage, a truncated or oversized request, changes nothing.
//  - Requests are serialised: the server runs on eswitchd's main thread, polled from its main loop, and handles
//    one request at a time. Workers keep forwarding throughout; nothing here touches the fast path except
//    through Switch's control methods.
//  - The socket is created mode 0660 (group from the config, else the process's), its parent directory is
//    created if missing, a stale socket left by a dead eswitchd is replaced, a live one is refused, and the
//    socket is removed when the server is destroyed (if it is still ours).
//
// Threading: main thread only.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace esw::dp {

class Switch;

inline constexpr int kApiVersion = 1;

struct ApiServerOptions {
  std::string socket_path;
  std::string group;                              // "" = the process's group
  size_t max_request_bytes = size_t{256} << 20;   // a longer request is refused (and the connection closed)
  size_t max_clients = 64;                        // more concurrent connections are refused with an error
  std::chrono::milliseconds stall_timeout{60000};  // a partial request making no progress this long is dropped
};

// What the config method reports and what each successful apply replaces.
struct RunningSource {
  std::string yaml;    // the source text the running config was loaded from
  std::string source;  // where it came from: a file name, "default.yaml (embedded)", or the apply's source
  uint64_t generation = 1;  // 1 at start, +1 for every apply that changed something
  bool restart_required = false;  // the last apply had a dataplane change only a restart applies
  std::string hash;               // text_hash(yaml), kept up to date by the server
};

class ApiServer {
 public:
  // Creates and listens on the socket. Throws esw::dp::Error naming the socket and the cause.
  ApiServer(Switch& sw, ApiServerOptions options, RunningSource initial);
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;
  ~ApiServer();  // waits for a config being parsed, closes every connection, removes the socket

  // Throws esw::dp::Error when `path` cannot become this server's socket: a live server answers on it, or it is
  // not a socket. eswitchd checks before it initialises the EAL and opens ports.
  static void check_socket_path(const std::string& path);

  // Waits up to `timeout_ms` for socket activity and handles whatever arrived: new connections, request bytes,
  // complete requests, a finished config parse (then commits that apply), pending replies.
  void poll(int timeout_ms);

  // Handles one complete request line synchronously (an apply parses its YAML on the calling thread) and
  // returns the reply line (without the newline); `progress` receives progress lines when the request asked
  // for them. For tests and in-process use; the socket path goes through poll().
  std::string handle(std::string_view request, const std::function<void(const std::string&)>& progress = {});

  const std::string& socket_path() const { return options_.socket_path; }
  const RunningSource& running() const { return running_; }
  size_t clients() const { return clients_.size(); }
  uint64_t requests_handled() const { return requests_; }
  bool apply_in_progress() const { return job_ != nullptr || !queue_.empty(); }

  // Called after every apply that changed the switch (eswitchd refreshes its telemetry snapshot).
  void on_applied(std::function<void()> fn) { on_applied_ = std::move(fn); }

 private:
  struct Client;
  struct ApplyJob;
  struct Envelope;

  void accept_clients();
  void read_client(Client& c);
  void write_client(Client& c);
  void handle_complete_requests(Client& c);
  void handle_line(Client& c, std::string_view line);
  void send_line(Client& c, const std::string& line, bool flush_now);
  Client* find_client(uint64_t serial);

  // apply/diff: the YAML is parsed on a helper thread (it touches no switch state and a 100k-rule file takes
  // seconds), one request at a time in arrival order; the commit (Switch::apply) runs on this thread.
  std::unique_ptr<ApplyJob> make_job(const Envelope& env);
  void start_next_job();
  void finish_job();
  std::string commit(ApplyJob& job, const std::function<void(nlohmann::json)>& progress);

  Envelope parse_envelope(std::string_view request, nlohmann::json& id);
  nlohmann::json dispatch_read(const Envelope& env);
  nlohmann::json do_ping();
  nlohmann::json do_config();
  nlohmann::json do_show(const nlohmann::json& params);
  nlohmann::json do_stats(const nlohmann::json& params);
  nlohmann::json do_trace(const nlohmann::json& params);
  nlohmann::json do_rules(const nlohmann::json& params);

  Switch& sw_;
  ApiServerOptions options_;
  RunningSource running_;
  int listen_fd_ = -1;
  int event_fd_ = -1;  // the parse thread signals completion here
  dev_t sock_dev_ = 0;
  ino_t sock_ino_ = 0;
  std::vector<std::unique_ptr<Client>> clients_;
  uint64_t next_serial_ = 1;
  std::unique_ptr<ApplyJob> job_;               // being parsed
  std::vector<std::unique_ptr<ApplyJob>> queue_;  // waiting for job_, in arrival order
  uint64_t requests_ = 0;
  std::chrono::steady_clock::time_point started_;
  std::function<void()> on_applied_;
  std::string last_error_code_;  // of the last handled request; "" when it succeeded
};

// A request error: the reply's "error" object. Thrown inside the handlers, turned into {"ok": false, ...}.
struct ApiError {
  std::string code;     // parse_error, bad_request, unsupported_api, unknown_method, too_large, truncated,
                        // invalid_config, apply_failed, not_found, internal
  std::string message;
  nlohmann::json errors = nlohmann::json::array();  // located config errors: {path, line, column, message}
};

nlohmann::json error_json(const ApiError& e);

// The config hash the API reports (FNV-1a 64 of the source text, 16 hex digits): equal texts, equal hashes.
std::string text_hash(std::string_view text);

}  // namespace esw::dp
