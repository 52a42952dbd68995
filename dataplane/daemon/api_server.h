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
// diff, show, stats, trace, rules (see control/README.md for their params and results); the method table and
// which of them read or write is dataplane/daemon/api_methods.h. The version and the default socket path are
// control/api_protocol.h's.
//
// Guarantees:
//  - Requests are transactions. `apply` carries the whole desired YAML text, so a request is either received
//    completely and applied as one Switch::apply (all or nothing), or rejected. A peer that disconnects before
//    its request is complete, sends garbage, a truncated or oversized request, changes nothing.
//  - Requests are serialised: the server runs on eswitchd's main thread as handlers of its event loop
//    (dataplane/daemon/event_loop.h: the listening socket, one handler per connection, a notifier the YAML
//    parse thread fires, a timer for stalled requests) and handles one request at a time; request lines of 16 KiB
//    or more are JSON-parsed on a helper thread first (their client waits, the others do not). Reads are answered at
//    once; writes (and diffs) commit one after another in arrival order. Workers keep forwarding throughout;
//    nothing here touches the fast path except through Switch's control methods.
//  - The socket is created mode 0660 (group from the config, else the process's), its parent directory is
//    created if missing, a stale socket left by a dead eswitchd is replaced, a live one is refused, and the
//    socket is removed when the server is destroyed (if it is still ours).
//
// Threading: the event loop's thread only (the parse helper thread touches only its own job).

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "dataplane/daemon/api_request.h"
#include "dataplane/daemon/event_loop.h"

namespace esw::dp {

class Switch;
struct ApiMethod;

// The limits that keep one client from breaking or starving the others (documented in control/README.md,
// "Limits"; each is answered with its error code before the connection is closed). eswitchd takes
// max_request_bytes, max_clients, idle_timeout and request_timeout from the config (dataplane.api_*).
struct ApiServerOptions {
  std::string socket_path;
  std::string group;                              // "" = the process's group
  // A request line longer than this is refused ("too_large") as soon as that many bytes of it arrived - it is
  // never buffered whole - and the connection closed.
  size_t max_request_bytes = size_t{64} << 20;
  // Concurrent connections. At the limit a new connection evicts the connection idle longest (it gets
  // "idle_timeout"); when none is idle the new one gets "busy".
  size_t max_clients = 64;
  // A connection with no request in progress (from accept, or from its last reply) for this long: "idle_timeout".
  std::chrono::milliseconds idle_timeout{60000};
  // A request not complete this long after its first byte arrived (a slow writer): "timeout".
  std::chrono::milliseconds request_timeout{30000};
  // A partial request making no progress this long: "timeout".
  std::chrono::milliseconds stall_timeout{10000};
  // A client whose replies wait unread beyond this many bytes is neither read from nor served until it reads
  // (pipelining without reading stalls only itself); replies left unread for idle_timeout close it.
  size_t max_pending_output = size_t{1} << 20;
  // Fairness per event-loop round and client: at most this many requests handled and this many bytes read; the
  // rest waits for the next round, after the other clients had theirs.
  size_t requests_per_round = 16;
  size_t read_bytes_per_round = size_t{256} << 10;
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
  // Creates and listens on the socket and registers with `loop`, which must outlive the server. Throws
  // esw::dp::Error naming the socket and the cause.
  ApiServer(Switch& sw, EventLoop& loop, ApiServerOptions options, RunningSource initial);
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;
  // Waits for a config being parsed, unregisters from the loop, closes every connection, removes the socket.
  ~ApiServer();

  // Throws esw::dp::Error when `path` cannot become this server's socket: a live server answers on it, or it is
  // not a socket. eswitchd checks before it initialises the EAL and opens ports.
  static void check_socket_path(const std::string& path);

  // Handles one complete request line synchronously (an apply parses its YAML on the calling thread) and
  // returns the reply line (without the newline); `progress` receives progress lines when the request asked
  // for them. For tests and in-process use; the socket path goes through the event loop.
  std::string handle(std::string_view request, const std::function<void(const std::string&)>& progress = {});

  const std::string& socket_path() const { return options_.socket_path; }
  const RunningSource& running() const { return running_; }
  size_t clients() const { return clients_.size(); }
  uint64_t requests_handled() const { return requests_; }
  bool apply_in_progress() const { return job_ != nullptr || !queue_.empty(); }

  // Called after every write that changed the switch (an apply, a runtime-rules change); it returns a
  // durability ticket (0: nothing to wait for). The reply to that write, and every later line to the same
  // client, is held until mark_durable() reports a ticket at least as high (eswitchd: when the state writer has
  // the change on disk, state_writer.h); other clients are served meanwhile. The in-process handle() holds
  // nothing.
  void on_applied(std::function<uint64_t()> fn) { on_applied_ = std::move(fn); }
  void mark_durable(uint64_t ticket);

 private:
  struct Client;
  struct Job;
  struct Parsed;

  void on_listen_ready();
  void on_client_event(uint64_t serial, uint32_t events);
  void settle(Client& c);  // after any change to a client: close when done, update its loop interest
  void reap();             // unregisters and closes the clients marked dead
  void sweep_stalled();
  void schedule_resume();  // a client left requests for the next round: come back to it
  void resume_backlog();
  bool evict_idle();       // at the connection limit: closes the connection idle longest, if any
  void read_client(Client& c);
  void write_client(Client& c);
  void handle_complete_requests(Client& c);
  void handle_line(Client& c, std::string_view line);
  // A request line's parsed envelope (or its error) -> its reply now, or a queued job.
  void dispatch(Client& c, Parsed p, std::chrono::steady_clock::duration receive_time);
  // Lines of kOffLoopBytes or more are parsed on a helper thread (a 10 MB apply line takes seconds in the JSON
  // parser): the client waits (busy), the others are served meanwhile.
  void parse_off_loop(Client& c, std::string text, bool at_eof);
  void on_parsed(uint64_t token, uint64_t serial, Parsed p, std::chrono::steady_clock::duration receive_time);
  // ticket: the line waits until that ticket is durable (and always behind lines already held for the client).
  void send_line(Client& c, const std::string& line, bool flush_now, uint64_t ticket = 0);
  Client* find_client(uint64_t serial);

  // Writes and YAML-parsing methods wait in one queue, in arrival order. A YAML parse runs on a helper thread
  // (it touches no switch state; a 100k-rule file takes seconds); every handler runs on the loop thread.
  std::unique_ptr<Job> make_job(const ApiMethod& method, ApiEnvelope env);
  void start_next_job();
  void on_parse_done();
  void finish_job();
  nlohmann::json run_method(const ApiMethod& m, Job* job, const nlohmann::json& params,
                            const std::function<void(nlohmann::json)>& progress);


  Switch& sw_;
  EventLoop& loop_;
  ApiServerOptions options_;
  RunningSource running_;
  int listen_fd_ = -1;
  EventLoop::Id listen_id_ = 0;
  EventLoop::Id sweep_id_ = 0;
  EventLoop::Id resume_id_ = 0;  // the one-shot that serves backlogs, when one is scheduled
  std::shared_ptr<EventLoop::Notifier> parse_done_;  // the parse thread signals completion here
  dev_t sock_dev_ = 0;
  ino_t sock_ino_ = 0;
  std::vector<std::unique_ptr<Client>> clients_;
  uint64_t next_serial_ = 1;
  std::map<uint64_t, std::thread> json_threads_;  // off-loop JSON parses, by token
  uint64_t next_token_ = 1;
  std::shared_ptr<std::atomic<bool>> alive_ = std::make_shared<std::atomic<bool>>(true);
  std::unique_ptr<Job> job_;                 // being parsed
  std::thread reaper_;                       // frees the last finished job
  std::vector<std::unique_ptr<Job>> queue_;  // waiting for job_, in arrival order
  uint64_t requests_ = 0;
  std::chrono::steady_clock::time_point started_;
  std::function<uint64_t()> on_applied_;
  std::function<void()> applied_;  // what handlers call: on_applied_, keeping its ticket in hold_ticket_
  uint64_t hold_ticket_ = 0;       // of the handler that ran last; taken by the reply's send_line
  uint64_t durable_ = 0;           // the highest ticket mark_durable() reported
  std::string last_error_code_;  // of the last handled request; "" when it succeeded
  // The timing line of the last big apply (kReportBytes), printed when its ticket is durable.
  struct Report {
    uint64_t ticket = 0;
    std::chrono::steady_clock::time_point committed;
    std::string text;
  };
  std::optional<Report> report_;
  void print_report();
};

// The config hash the API reports (FNV-1a 64 of the source text, 16 hex digits): equal texts, equal hashes.
std::string text_hash(std::string_view text);

}  // namespace esw::dp
