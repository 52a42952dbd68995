#include "dataplane/daemon/api_server.h"

#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <deque>
#include <cstring>
#include <filesystem>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "config/config.h"
#include "control/api_protocol.h"
#include "dataplane/daemon/api_methods.h"
#include "dataplane/daemon/switch.h"
#include "dataplane/error.h"

// The transport of the management API: the socket, framing, connection buffers and limits, and the queue that
// serialises writes. What each method does is in the api_methods_*.cc files (table: api_methods.h).

namespace esw::dp {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using api::kApiVersion;

constexpr size_t kReadChunk = size_t{64} << 10;
// Request lines this long or longer are parsed off the loop thread (nlohmann's parser: ~4 ms for 16 KiB here).
constexpr size_t kOffLoopBytes = size_t{16} << 10;
// Consecutive unparsable lines after which a connection is closed (it is not speaking this protocol).
constexpr int kMaxGarbageLines = 8;
// Applies and diffs of this much YAML or more print where their time went (eswitchd's stdout).
constexpr size_t kReportBytes = size_t{1} << 20;

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }
double ms_of(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }
double thread_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

json config_errors_json(const std::vector<cfg::Error>& errors) {
  json out = json::array();
  for (const auto& e : errors) {
    out.push_back({{"path", e.path}, {"line", e.line}, {"column", e.column}, {"message", e.message}});
  }
  return out;
}

const json* api_param(const json& params, const char* key) {
  auto it = params.find(key);
  return it == params.end() || it->is_null() ? nullptr : &*it;
}

std::string api_param_string(const json& params, const char* key, bool required, std::string def) {
  const json* v = api_param(params, key);
  if (v == nullptr) {
    if (required) throw ApiError{"bad_request", fmt::format("params.{} is required (a string)", key)};
    return def;
  }
  if (!v->is_string()) throw ApiError{"bad_request", fmt::format("params.{} must be a string", key)};
  return v->get<std::string>();
}

bool api_param_bool(const json& params, const char* key, bool def) {
  const json* v = api_param(params, key);
  if (v == nullptr) return def;
  if (!v->is_boolean()) throw ApiError{"bad_request", fmt::format("params.{} must be true or false", key)};
  return v->get<bool>();
}

uint64_t api_param_uint(const json& params, const char* key, uint64_t def) {
  const json* v = api_param(params, key);
  if (v == nullptr) return def;
  if (!v->is_number_unsigned()) {
    throw ApiError{"bad_request", fmt::format("params.{} must be a non-negative integer", key)};
  }
  return v->get<uint64_t>();
}

const ApiMethodTable& api_methods() {
  static const ApiMethodTable table = [] {
    ApiMethodTable t;
    add_show_methods(t);
    add_config_methods(t);
    add_rules_methods(t);
    add_vport_methods(t);
    // The order "unknown_method" lists them in.
    constexpr std::string_view kOrder[] = {"ping", "config", "apply", "diff", "show", "stats", "trace", "rules", "migrate"};
    auto rank = [&](const ApiMethod& m) {
      return static_cast<size_t>(std::find(std::begin(kOrder), std::end(kOrder), m.name) - std::begin(kOrder));
    };
    std::stable_sort(t.begin(), t.end(), [&](const ApiMethod& a, const ApiMethod& b) { return rank(a) < rank(b); });
    return t;
  }();
  return table;
}

const ApiMethod* find_api_method(std::string_view name) {
  for (const ApiMethod& m : api_methods()) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

// The same hash eswitchctl computes of the file it applies (one implementation, in config/).
std::string text_hash(std::string_view text) { return cfg::text_hash(text); }

struct ApiServer::Client {
  int fd = -1;
  uint64_t serial = 0;
  EventLoop::Id handler = 0;  // its registration with the loop
  uint32_t interest = 0;
  std::string in;        // received bytes not yet consumed as requests
  size_t scanned = 0;    // prefix of `in` already searched for a newline
  std::string out;       // reply bytes not yet written
  // Lines waiting for a durability ticket (ApiServer::on_applied), in order; they go to `out` once durable.
  std::deque<std::pair<uint64_t, std::string>> held;
  size_t held_bytes = 0;
  size_t out_off = 0;
  bool eof = false;      // the peer will send nothing more
  bool closing = false;  // close once `out` is written
  bool dead = false;     // close now
  bool busy = false;     // a request of this client waits in the queue or is being parsed: its next lines wait
  bool backlog = false;  // complete requests wait for the next round (its per-round budget was spent)
  int garbage = 0;
  Clock::time_point last_input = Clock::now();
  Clock::time_point request_start = Clock::now();  // first byte of the request in `in`
  // Idle since: accept, the last byte received or the last reply byte the peer took.
  Clock::time_point last_activity = Clock::now();
  Clock::time_point last_output = Clock::now();  // the last time the peer took reply bytes

  size_t pending_output() const { return out.size() - out_off + held_bytes; }

  ~Client() {
    if (fd >= 0) ::close(fd);
  }
};

struct ApiServer::Parsed {
  ApiEnvelope env;
  json id;
  const ApiMethod* method = nullptr;
  std::optional<ApiError> error;
  // Lines parsed off the loop thread: when the line was complete, and the JSON parse's wall and CPU time.
  std::optional<Clock::time_point> complete;
  double json_ms = 0;
  double json_cpu_ms = 0;
};

struct ApiServer::Job {
  const ApiMethod* method = nullptr;
  uint64_t client = 0;  // Client::serial; 0 for the synchronous handle()
  json id;
  json params;
  bool progress = false;
  std::string yaml;    // parses_yaml methods: params.yaml (moved out of params)
  size_t yaml_bytes = 0;  // its size (the handler may take the text)
  std::string source;  // params.source or "<api>"
  Clock::time_point received = Clock::now();  // when the request was complete
  Clock::duration receive_time{};             // first byte to complete request
  double json_ms = 0, json_cpu_ms = 0;        // the request line's JSON parse (off the loop for big lines)
  // Written by the parse thread, read after `done` (and the join).
  double queue_ms = 0;  // complete (and JSON-parsed) request to the parse thread's start
  cfg::LoadResult loaded;
  double parse_ms = 0, parse_cpu_ms = 0, hash_ms = 0, plan_cpu_ms = 0;
  // diff, or apply with params.dry_run: decided once, in make_job (the plan, the handler and the log use it).
  bool dry_run = false;
  // Planned on the same thread once the YAML is a config (Switch::prepare_apply): the loop thread only executes.
  std::shared_ptr<Switch::PreparedApply> prepared;
  double plan_ms = 0;
  std::string yaml_hash;
  std::vector<DiffItem> diff;  // the handler's, freed with the job
  std::thread thread;
  std::atomic<bool> done{false};
};

namespace {

// Replaces a stale socket (nobody accepting on it), refuses a live one or anything that is not a socket.
void clear_socket_path(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    throw Error(fmt::format("api socket {}: {}", path, errno_text(errno)));
  }
  if (!S_ISSOCK(st.st_mode)) {
    throw Error(fmt::format("api socket {}: exists and is not a socket (remove it or set dataplane.api_socket)", path));
  }
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw Error(fmt::format("api socket {}: socket(): {}", path, errno_text(errno)));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  const int err = errno;
  ::close(fd);
  if (rc == 0) {
    throw Error(fmt::format("api socket {}: in use by a running process (another eswitchd?); stop it or set "
                            "dataplane.api_socket",
                            path));
  }
  if (err != ECONNREFUSED) throw Error(fmt::format("api socket {}: cannot probe it: {}", path, errno_text(err)));
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    throw Error(fmt::format("api socket {}: cannot remove the stale socket: {}", path, errno_text(errno)));
  }
}

gid_t lookup_group(const std::string& path, const std::string& group) {
  std::vector<char> buf(16384);
  struct group gr {};
  struct group* res = nullptr;
  int rc;
  while ((rc = getgrnam_r(group.c_str(), &gr, buf.data(), buf.size(), &res)) == ERANGE && buf.size() < (1u << 20)) {
    buf.resize(buf.size() * 4);
  }
  if (res != nullptr) return res->gr_gid;
  // A numeric group id is accepted too.
  char* end = nullptr;
  const unsigned long id = std::strtoul(group.c_str(), &end, 10);
  if (!group.empty() && end != nullptr && *end == '\0') return static_cast<gid_t>(id);
  throw Error(fmt::format("api socket {}: dataplane.api_socket_group \"{}\": no such group{}", path, group,
                          rc != 0 ? ": " + errno_text(rc) : ""));
}

// A peer that closed its socket entirely (killed, crashed) shows POLLHUP; one that only half-closed after its
// request (as eswitchctl does) does not, and still reads the reply.
bool peer_gone(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR)) != 0;
}

std::string make_reply(const json& id, bool ok, json body) {
  json reply = {{"api", kApiVersion}, {"id", id}, {"ok", ok}, {ok ? "result" : "error", std::move(body)}};
  // Replies carry user strings (rule names, YAML paths): never let invalid UTF-8 make dump() throw.
  return reply.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string progress_line(const json& id, json progress) {
  return json{{"api", kApiVersion}, {"id", id}, {"progress", std::move(progress)}}.dump(
      -1, ' ', false, json::error_handler_t::replace);
}

// An error line that is not the reply to a request (limits of the connection itself): id null.
std::string connection_error(const std::string& code, const std::string& message) {
  return make_reply(nullptr, false, error_json({code, message}));
}

}  // namespace

ApiServer::ApiServer(Switch& sw, EventLoop& loop, ApiServerOptions options, RunningSource initial)
    : sw_(sw), loop_(loop), options_(std::move(options)), running_(std::move(initial)), started_(Clock::now()) {
  running_.hash = text_hash(running_.yaml);
  applied_ = [this] {
    if (on_applied_) hold_ticket_ = std::max(hold_ticket_, on_applied_());
  };
  const std::string& path = options_.socket_path;
  sockaddr_un addr{};
  if (path.empty()) throw Error("api socket: empty path");
  if (path.size() >= sizeof(addr.sun_path)) {
    throw Error(fmt::format("api socket {}: path longer than {} bytes", path, sizeof(addr.sun_path) - 1));
  }
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) throw Error(fmt::format("api socket {}: cannot create {}: {}", path, parent.string(), ec.message()));
  }
  const gid_t gid = options_.group.empty() ? static_cast<gid_t>(-1) : lookup_group(path, options_.group);
  clear_socket_path(path);

  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw Error(fmt::format("api socket {}: socket(): {}", path, errno_text(errno)));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  // The socket file must never exist with wider permissions than 0660, not even between bind() and chmod().
  const mode_t old_mask = umask(0117);
  const int rc = bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  const int bind_errno = errno;
  umask(old_mask);
  auto fail = [&](const std::string& what, int err) {
    ::close(listen_fd_);
    if (what != "bind") unlink(path.c_str());
    throw Error(fmt::format("api socket {}: {}: {}", path, what, errno_text(err)));
  };
  if (rc != 0) fail("bind", bind_errno);
  if (chmod(path.c_str(), 0660) != 0) fail("chmod 0660", errno);
  if (gid != static_cast<gid_t>(-1) && chown(path.c_str(), static_cast<uid_t>(-1), gid) != 0) {
    fail(fmt::format("chown to group {}", options_.group), errno);
  }
  if (listen(listen_fd_, 64) != 0) fail("listen", errno);
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) fail("stat", errno);
  sock_dev_ = st.st_dev;
  sock_ino_ = st.st_ino;
  try {
    listen_id_ = loop_.add_fd(listen_fd_, EventLoop::kRead, [this](uint32_t) { on_listen_ready(); },
                              fmt::format("api listening socket {}", path));
    parse_done_ = loop_.add_notifier([this] { on_parse_done(); }, fmt::format("api {}: config parse done", path));
    // Stalled partial requests are found by a sweep: a quarter of the timeout late at most.
    const auto shortest = std::min({options_.stall_timeout, options_.request_timeout, options_.idle_timeout});
    const auto period = std::clamp<std::chrono::milliseconds>(shortest / 4, std::chrono::milliseconds(10),
                                                              std::chrono::milliseconds(1000));
    sweep_id_ = loop_.add_timer(period, [this] { sweep_stalled(); }, fmt::format("api {}: stalled requests", path));
  } catch (const Error&) {
    if (listen_id_ != 0) loop_.remove(listen_id_);
    if (parse_done_ != nullptr) loop_.remove(parse_done_->id());
    ::close(listen_fd_);
    unlink(path.c_str());
    throw;
  }
}

ApiServer::~ApiServer() {
  // A parse in flight reads only its own job: wait for it (it cannot be interrupted), then drop it uncommitted.
  if (job_ != nullptr && job_->thread.joinable()) job_->thread.join();
  if (reaper_.joinable()) reaper_.join();
  alive_->store(false);  // closures the JSON threads posted find the server gone
  for (auto& [token, t] : json_threads_) t.join();
  job_.reset();
  queue_.clear();
  loop_.remove(sweep_id_);
  if (resume_id_ != 0) loop_.remove(resume_id_);
  loop_.remove(parse_done_->id());
  for (auto& c : clients_) loop_.remove(c->handler);
  clients_.clear();
  loop_.remove(listen_id_);
  if (listen_fd_ >= 0) ::close(listen_fd_);
  // Only our own socket: a newer eswitchd may have replaced it (after we were declared stale).
  struct stat st {};
  if (stat(options_.socket_path.c_str(), &st) == 0 && st.st_dev == sock_dev_ && st.st_ino == sock_ino_) {
    unlink(options_.socket_path.c_str());
  }
}

void ApiServer::check_socket_path(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) {
    throw Error(fmt::format("api socket {}: path longer than {} bytes", path, sizeof(addr.sun_path) - 1));
  }
  clear_socket_path(path);
}

ApiServer::Client* ApiServer::find_client(uint64_t serial) {
  for (auto& c : clients_) {
    if (c->serial == serial && !c->dead) return c.get();
  }
  return nullptr;
}

void ApiServer::on_listen_ready() {
  for (;;) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) break;  // EAGAIN, or a peer that left before we accepted it
    auto c = std::make_unique<Client>();
    c->fd = fd;
    c->serial = next_serial_++;
    if (clients_.size() >= options_.max_clients && !evict_idle()) {
      c->closing = true;
      send_line(*c,
                make_reply(nullptr, false,
                           error_json({"busy", fmt::format("too many API connections (at most {}, none of them "
                                                           "idle); try again later",
                                                           options_.max_clients)})),
                true);
      continue;  // closed when `c` goes out of scope: best effort
    }
    const uint64_t serial = c->serial;
    c->interest = EventLoop::kRead;
    c->handler = loop_.add_fd(fd, c->interest, [this, serial](uint32_t ev) { on_client_event(serial, ev); },
                              fmt::format("api connection {} on {}", serial, options_.socket_path));
    clients_.push_back(std::move(c));
  }
  reap();
}

void ApiServer::on_client_event(uint64_t serial, uint32_t events) {
  Client* c = find_client(serial);
  if (c == nullptr) return;
  if (events & (EventLoop::kRead | EventLoop::kHangup | EventLoop::kError)) read_client(*c);
  if (!c->dead) handle_complete_requests(*c);
  if (!c->dead && c->out_off < c->out.size()) write_client(*c);
  // Gone both ways (killed, crashed): nothing it asked for can be answered, and a queued apply of it is dropped.
  if (events & (EventLoop::kHangup | EventLoop::kError)) c->dead = true;
  settle(*c);
  reap();
}

void ApiServer::settle(Client& c) {
  if (!c.dead && c.closing && c.out_off >= c.out.size() && c.held.empty()) c.dead = true;
  if (c.dead || c.handler == 0) return;
  uint32_t want = 0;
  // Not read from: a client with requests waiting for the next round, or with more unread replies than the
  // bound (it stalls itself only; its socket buffer fills and its writes block).
  if (!c.eof && !c.closing && !c.backlog && c.pending_output() < options_.max_pending_output) {
    want |= EventLoop::kRead;
  }
  if (c.out_off < c.out.size()) want |= EventLoop::kWrite;
  if (want != c.interest) {
    loop_.modify_fd(c.handler, want);
    c.interest = want;
  }
}

void ApiServer::reap() {
  for (auto& c : clients_) {
    if (c->dead && c->handler != 0) {
      loop_.remove(c->handler);  // before the fd closes
      c->handler = 0;
    }
  }
  std::erase_if(clients_, [](const std::unique_ptr<Client>& c) { return c->dead; });
}

void ApiServer::sweep_stalled() {
  const auto now = Clock::now();
  auto drop = [&](Client& c, const char* code, const std::string& message) {
    // Best effort: the error line goes out if the peer's socket has room, then the connection is closed.
    send_line(c, connection_error(code, message), true);
    c.dead = true;
  };
  for (auto& cp : clients_) {
    Client& c = *cp;
    if (c.dead || c.busy) continue;  // a queued request of it is the server's to finish
    // A partial request: bytes without a newline after the last request taken (complete requests waiting for
    // their turn or for the client to read its replies are not partial).
    const bool partial = !c.in.empty() && !c.backlog && !c.eof && !c.closing &&
                         c.in.find('\n', std::min(c.scanned, c.in.size())) == std::string::npos;
    if (partial && now - c.last_input > options_.stall_timeout) {
      // A partial request that stopped arriving: the peer is stuck or gone. It changes nothing.
      drop(c, "timeout", fmt::format("request incomplete and no bytes for {} ms; nothing was done",
                                     options_.stall_timeout.count()));
    } else if (partial && now - c.request_start > options_.request_timeout) {
      // A slow writer: bytes trickle in, the request never completes.
      drop(c, "timeout", fmt::format("request not complete {} ms after its first byte ({} bytes so far); nothing "
                                     "was done",
                                     options_.request_timeout.count(), c.in.size()));
    } else if (c.pending_output() > 0 && now - c.last_output > options_.idle_timeout) {
      c.dead = true;  // replies unread for that long: nobody is reading them (no room to say so either)
    } else if (c.in.empty() && c.pending_output() == 0 && now - c.last_activity > options_.idle_timeout) {
      drop(c, "idle_timeout", fmt::format("no request for {} ms; connection closed", options_.idle_timeout.count()));
    }
  }
  reap();
}

bool ApiServer::evict_idle() {
  Client* oldest = nullptr;
  for (auto& c : clients_) {
    if (c->dead || c->busy || c->backlog || !c->in.empty() || c->pending_output() > 0) continue;
    if (oldest == nullptr || c->last_activity < oldest->last_activity) oldest = c.get();
  }
  if (oldest == nullptr) return false;
  send_line(*oldest,
            connection_error("idle_timeout", fmt::format("closed to make room: {} connections is the limit and this "
                                                         "one was idle longest",
                                                         options_.max_clients)),
            true);
  oldest->dead = true;
  reap();
  return true;
}

void ApiServer::schedule_resume() {
  if (resume_id_ != 0) return;
  // Due now, but run in the next round: the other clients' events of this round come first.
  resume_id_ = loop_.add_oneshot(std::chrono::nanoseconds(0), [this] { resume_backlog(); },
                                 fmt::format("api {}: pipelined requests", options_.socket_path));
}

void ApiServer::resume_backlog() {
  resume_id_ = 0;
  for (size_t i = 0; i < clients_.size(); ++i) {
    Client& c = *clients_[i];
    if (c.dead || !c.backlog) continue;
    c.backlog = false;
    handle_complete_requests(c);
    if (!c.dead && c.pending_output() > 0) write_client(c);
    settle(c);
  }
  reap();
}

void ApiServer::read_client(Client& c) {
  size_t got_total = 0;
  while (!c.eof && !c.dead) {
    const size_t old = c.in.size();
    c.in.resize(old + kReadChunk);
    const ssize_t got = recv(c.fd, c.in.data() + old, kReadChunk, 0);
    c.in.resize(old + (got > 0 ? static_cast<size_t>(got) : 0));
    if (got > 0) {
      if (old == 0) c.request_start = Clock::now();
      c.last_input = c.last_activity = Clock::now();
      got_total += static_cast<size_t>(got);
      // Fairness: a bounded amount per round and client (level-triggered: the rest comes next round), and a
      // request beyond the size limit is refused as soon as that much of it is here (handle_complete_requests).
      if (got_total >= options_.read_bytes_per_round || c.in.size() > options_.max_request_bytes) break;
      continue;
    }
    if (got == 0) {
      c.eof = true;
    } else if (errno == EINTR) {
      continue;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
      c.dead = true;  // ECONNRESET: the peer is gone; whatever it sent of a request is dropped
    }
    break;
  }
}

void ApiServer::send_line(Client& c, const std::string& line, bool flush_now, uint64_t ticket) {
  if (c.pending_output() == 0) c.last_output = Clock::now();  // unread-reply time counts from the first one
  if (!c.held.empty()) ticket = std::max(ticket, c.held.back().first);
  if (ticket > durable_) {
    c.held.emplace_back(ticket, line);
    c.held_bytes += line.size() + 1;
    return;
  }
  if (c.out_off > 0 && c.out_off == c.out.size()) {
    c.out.clear();
    c.out_off = 0;
  }
  c.out += line;
  c.out += '\n';
  if (flush_now) write_client(c);
}

void ApiServer::print_report() {
  fmt::print("{}; durable {:.0f} ms later\n", report_->text, ms_since(report_->committed));
  fflush(stdout);
  report_.reset();
}

void ApiServer::mark_durable(uint64_t ticket) {
  if (ticket <= durable_) return;
  durable_ = ticket;
  if (report_ && report_->ticket <= durable_) print_report();
  std::vector<uint64_t> serials;
  for (auto& c : clients_) {
    if (!c->held.empty() && c->held.front().first <= durable_) serials.push_back(c->serial);
  }
  for (uint64_t serial : serials) {
    Client* cp = find_client(serial);
    if (cp == nullptr) continue;
    Client& c = *cp;
    if (c.held.empty() || c.held.front().first > durable_) continue;
    if (c.out_off > 0 && c.out_off == c.out.size()) {
      c.out.clear();
      c.out_off = 0;
    }
    while (!c.held.empty() && c.held.front().first <= durable_) {
      c.held_bytes -= c.held.front().second.size() + 1;
      c.out += c.held.front().second;
      c.out += '\n';
      c.held.pop_front();
    }
    if (!c.dead) write_client(c);
    if (!c.dead) handle_complete_requests(c);  // lines it sent while its pending output was over the bound
    settle(c);
  }
  reap();
}

void ApiServer::write_client(Client& c) {
  while (c.out_off < c.out.size()) {
    const ssize_t n = send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
    if (n > 0) {
      c.out_off += static_cast<size_t>(n);
      c.last_output = c.last_activity = Clock::now();
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    c.dead = true;  // EPIPE/ECONNRESET: the peer left; what it asked for was done (or not) regardless
    return;
  }
  c.out.clear();
  c.out_off = 0;
}

void ApiServer::handle_complete_requests(Client& c) {
  auto reply_error = [&](const ApiError& e) { send_line(c, make_reply(nullptr, false, error_json(e)), false); };
  size_t start = 0;
  size_t handled = 0;
  while (!c.dead && !c.closing && !c.busy) {
    if (handled == options_.requests_per_round || c.pending_output() >= options_.max_pending_output) {
      // Its share of this round is spent, or it does not read its replies: the rest waits (a write event of
      // this client resumes the second case).
      if (handled == options_.requests_per_round && c.in.find('\n', c.scanned) != std::string::npos) {
        c.backlog = true;
        schedule_resume();
      }
      break;
    }
    const size_t nl = c.in.find('\n', c.scanned);
    if (nl == std::string::npos) {
      c.scanned = c.in.size();  // a long request arrives in pieces: never search the same bytes twice
      break;
    }
    std::string_view line(c.in.data() + start, nl - start);
    start = nl + 1;
    c.scanned = start;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    ++handled;
    handle_line(c, line);
    c.request_start = Clock::now();
    c.garbage = last_error_code_ == "parse_error" ? c.garbage + 1 : 0;
    if (c.garbage >= kMaxGarbageLines) {
      reply_error({"parse_error", fmt::format("{} unparsable requests in a row; closing the connection",
                                              kMaxGarbageLines)});
      c.closing = true;
    }
  }
  if (start > 0) {
    c.in.erase(0, start);
    c.scanned -= start;
  }
  if (c.closing || c.dead || c.busy || c.backlog) return;
  if (c.in.size() > options_.max_request_bytes) {
    // Refuse without reading the rest: the connection cannot be resynchronised, so it is closed.
    reply_error({"too_large", fmt::format("request exceeds {} bytes (the limit, dataplane."
                                          "api_max_request_bytes); nothing was done",
                                          options_.max_request_bytes)});
    c.in.clear();
    c.closing = true;
    return;
  }
  if (c.eof) {
    // The peer half-closed (or left). Whatever is left is one last request if it is complete JSON; a request
    // cut short by a disconnect is never acted on.
    std::string rest = std::move(c.in);
    c.in.clear();
    c.scanned = 0;
    if (rest.find_first_not_of(" \t\r\n") != std::string::npos) {
      if (rest.size() >= kOffLoopBytes) {
        parse_off_loop(c, std::move(rest), true);
      } else if (json::accept(rest)) {
        handle_line(c, rest);
      } else {
        reply_error({"truncated", fmt::format("connection closed in the middle of a request ({} bytes, not a "
                                              "complete JSON value); nothing was done",
                                              rest.size())});
      }
    }
    // A queued apply still owes this client its reply: it closes after that.
    if (!c.busy) c.closing = true;
  }
}

namespace {

// The envelope (api_request.cc: bounds, JSON, version, method and params types), then the method's entry.
// `id` is the request's id as soon as it is known (an error after that echoes it).
const ApiMethod& parse_request(std::string_view request, ApiEnvelope& env, json& id) {
  try {
    parse_envelope(request, env);
  } catch (const ApiError&) {
    id = env.id;
    throw;
  }
  id = env.id;
  const ApiMethod* m = find_api_method(env.method);
  if (m == nullptr) {
    std::string names;
    for (const ApiMethod& am : api_methods()) names += fmt::format("{}{}", names.empty() ? "" : ", ", am.name);
    throw ApiError{"unknown_method", fmt::format("unknown method {}; methods: {}", quoted_text(env.method), names)};
  }
  return *m;
}

}  // namespace

std::unique_ptr<ApiServer::Job> ApiServer::make_job(const ApiMethod& method, ApiEnvelope env) {
  if (method.check != nullptr) method.check(env.params);
  auto job = std::make_unique<Job>();
  job->method = &method;
  job->progress = env.progress;
  if (method.parses_yaml) {
    job->source = api_param_string(env.params, "source", false, "<api>");
    auto it = env.params.find("yaml");
    if (it == env.params.end() || !it->is_string()) {
      throw ApiError{"bad_request", "params.yaml is required (a string)"};
    }
    job->yaml = std::move(it->get_ref<std::string&>());  // it can be 100 MB: moved, not copied
    job->yaml_bytes = job->yaml.size();
    env.params.erase(it);
    job->dry_run = method.name == "diff" || api_param_bool(env.params, "dry_run", false);
  }
  job->params = std::move(env.params);
  return job;
}

json ApiServer::run_method(const ApiMethod& m, Job* job, const json& params,
                           const std::function<void(json)>& progress) {
  hold_ticket_ = 0;
  ApiContext ctx{sw_, running_, applied_, clients_.size(), apply_in_progress(), requests_, started_};
  ApiCall call{params};
  if (job != nullptr && m.parses_yaml) {
    call.yaml = job->yaml;
    call.source = job->source;
    call.loaded = &job->loaded;
    call.parse_ms = job->parse_ms;
    call.prepared = job->prepared;
    call.plan_ms = job->plan_ms;
    call.yaml_hash = job->yaml_hash;
    call.yaml_owned = &job->yaml;
    call.dry_run = job->dry_run;
    call.dispose_diff = &job->diff;
    call.receive_time = job->receive_time;
    call.received = job->received;
    call.timing = {{"json_ms", job->json_ms},         {"json_cpu_ms", job->json_cpu_ms},
                   {"queue_ms", job->queue_ms},       {"parse_cpu_ms", job->parse_cpu_ms},
                   {"hash_ms", job->hash_ms},         {"plan_cpu_ms", job->plan_cpu_ms}};
  }
  call.progress = [&progress](json p) {
    if (progress) progress(std::move(p));
  };
  return m.run(ctx, call);
}

std::string ApiServer::handle(std::string_view request, const std::function<void(const std::string&)>& progress) {
  ++requests_;
  last_error_code_.clear();
  ApiEnvelope env;
  json id;
  try {
    const ApiMethod& m = parse_request(request, env, id);
    std::unique_ptr<Job> job = make_job(m, std::move(env));
    job->id = id;
    if (m.parses_yaml) {
      const auto t = Clock::now();
      job->loaded = cfg::load_config_string(job->yaml, job->source);
      job->parse_ms = ms_since(t);
    }
    std::string reply = make_reply(id, true, run_method(m, job.get(), job->params, [&](json p) {
                                     if (job->progress && progress) progress(progress_line(id, std::move(p)));
                                   }));
    hold_ticket_ = 0;  // nothing is held here: the caller has the reply now
    return reply;
  } catch (const ApiError& e) {
    last_error_code_ = e.code;
    return make_reply(id, false, error_json(e));
  } catch (const std::exception& e) {
    last_error_code_ = "internal";
    return make_reply(id, false, error_json({"internal", e.what()}));
  }
}

void ApiServer::handle_line(Client& c, std::string_view line) {
  last_error_code_.clear();
  if (line.size() >= kOffLoopBytes) {
    parse_off_loop(c, std::string(line), false);
    return;
  }
  Parsed p;
  try {
    p.method = &parse_request(line, p.env, p.id);
  } catch (const ApiError& e) {
    p.error = e;
  }
  dispatch(c, std::move(p), Clock::now() - c.request_start);
}

void ApiServer::parse_off_loop(Client& c, std::string text, bool at_eof) {
  c.busy = true;  // its next lines wait; no timeout applies meanwhile
  const uint64_t token = next_token_++;
  const uint64_t serial = c.serial;
  const Clock::time_point complete = Clock::now();
  const Clock::duration receive_time = complete - c.request_start;
  json_threads_.emplace(token, std::thread([this, token, serial, receive_time, complete, at_eof,
                                            text = std::move(text), alive = alive_]() mutable {
    // Inherits the main lcore's CPU affinity: it never competes with a worker core.
    pthread_setname_np(pthread_self(), "esw-api-json");
    auto p = std::make_shared<Parsed>();
    p->complete = complete;
    const auto t_json = Clock::now();
    const double cpu_json = thread_cpu_ms();
    try {
      p->method = &parse_request(text, p->env, p->id);
    } catch (const ApiError& e) {
      p->error = e;
      if (at_eof && e.code == "parse_error") {
        p->error = ApiError{"truncated", fmt::format("connection closed in the middle of a request ({} bytes, not a "
                                                     "complete JSON value); nothing was done",
                                                     text.size())};
      }
    } catch (const std::exception& e) {
      p->error = ApiError{"internal", e.what()};
    }
    std::string().swap(text);
    p->json_ms = ms_since(t_json);
    p->json_cpu_ms = thread_cpu_ms() - cpu_json;
    auto done = [this, token, serial, receive_time, p, alive] {
      if (alive->load()) on_parsed(token, serial, std::move(*p), receive_time);
    };
    while (alive->load() && !loop_.post(done)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }));
}

void ApiServer::on_parsed(uint64_t token, uint64_t serial, Parsed p, Clock::duration receive_time) {
  if (auto it = json_threads_.find(token); it != json_threads_.end()) {
    it->second.join();
    json_threads_.erase(it);
  }
  Client* c = find_client(serial);
  if (c == nullptr) {
    reap();
    return;  // it left while its request was parsed: nothing was done
  }
  c->busy = false;
  dispatch(*c, std::move(p), receive_time);
  c = find_client(serial);
  if (c != nullptr) {
    if (!c->busy) handle_complete_requests(*c);  // lines it sent meanwhile, or its EOF
    if (!c->dead && c->pending_output() > 0) write_client(*c);
    settle(*c);
  }
  reap();
}

void ApiServer::dispatch(Client& c, Parsed p, Clock::duration receive_time) {
  hold_ticket_ = 0;
  ++requests_;
  last_error_code_.clear();
  const json& id = p.id;
  std::string reply;
  try {
    if (p.error) throw *p.error;
    const ApiMethod& m = *p.method;
    ApiEnvelope env = std::move(p.env);
    // Reads are answered now; writes wait for the writes received before them, and a YAML parse always queues.
    const bool queued = m.parses_yaml || (m.access == ApiAccess::kWrite && apply_in_progress());
    std::unique_ptr<Job> job = make_job(m, std::move(env));
    job->id = id;
    if (queued) {
      job->client = c.serial;
      job->receive_time = receive_time;
      if (p.complete) job->received = *p.complete;  // the JSON parse counts in the request's time
      job->json_ms = p.json_ms;
      job->json_cpu_ms = p.json_cpu_ms;
      c.busy = true;
      queue_.push_back(std::move(job));
      start_next_job();
      return;  // the reply comes when the commit is done
    }
    const uint64_t serial = c.serial;
    reply = make_reply(id, true, run_method(m, job.get(), job->params, [&](json prog) {
                         Client* cc = find_client(serial);
                         if (job->progress && cc != nullptr) send_line(*cc, progress_line(id, std::move(prog)), true);
                       }));
  } catch (const ApiError& e) {
    last_error_code_ = e.code;
    reply = make_reply(id, false, error_json(e));
  } catch (const std::exception& e) {
    last_error_code_ = "internal";
    reply = make_reply(id, false, error_json({"internal", e.what()}));
  }
  send_line(c, reply, false, std::exchange(hold_ticket_, 0));
}

void ApiServer::start_next_job() {
  // A queued write runs its handler from here, in the middle of another client's request handling: the garbage
  // count of that client must see its own request's result.
  const std::string saved_error = last_error_code_;
  while (job_ == nullptr && !queue_.empty()) {
    std::unique_ptr<Job> next = std::move(queue_.front());
    queue_.erase(queue_.begin());
    Client* c = find_client(next->client);
    if (!next->method->parses_yaml) {
      // A write that parses nothing (rules), queued behind earlier writes: its turn. It was received whole, so
      // it runs even if its client has left since, as it would have on arrival.
      std::string reply;
      try {
        reply = make_reply(next->id, true, run_method(*next->method, next.get(), next->params, {}));
      } catch (const ApiError& e) {
        reply = make_reply(next->id, false, error_json(e));
      } catch (const std::exception& e) {
        reply = make_reply(next->id, false, error_json({"internal", e.what()}));
      }
      if (c != nullptr) {
        send_line(*c, reply, true, std::exchange(hold_ticket_, 0));
        c->busy = false;
        if (!c->dead) handle_complete_requests(*c);  // lines it sent meanwhile, or its EOF
        settle(*c);
      }
      continue;
    }
    if (c == nullptr || peer_gone(c->fd)) {
      // Its client left while it waited: nobody wants it any more, and it changes nothing.
      if (c != nullptr) c->dead = true;
      continue;
    }
    job_ = std::move(next);
    if (job_->progress) {
      send_line(*c,
                progress_line(job_->id, {{"phase", "received"},
                                         {"bytes", job_->yaml.size()},
                                         {"receive_ms", ms_of(job_->receive_time)}}),
                true);
      settle(*c);
    }
    Job* j = job_.get();
    std::shared_ptr<EventLoop::Notifier> done = parse_done_;
    // The queue guarantees what prepare_apply needs: no other write or plan runs until this job is finished.
    j->thread = std::thread([j, done, sw = &sw_] {
      // Inherits the main lcore's CPU affinity: it never competes with a worker core.
      pthread_setname_np(pthread_self(), "esw-api-parse");
      const auto t = Clock::now();
      j->queue_ms = ms_of(t - j->received) - j->json_ms;
      double cpu = thread_cpu_ms();
      j->loaded = cfg::load_config_string(j->yaml, j->source);
      j->parse_ms = ms_since(t);
      j->parse_cpu_ms = thread_cpu_ms() - cpu;
      const auto th = Clock::now();
      j->yaml_hash = text_hash(j->yaml);
      j->hash_ms = ms_since(th);
      if (j->loaded.config) {
        const auto tp = Clock::now();
        cpu = thread_cpu_ms();
        j->prepared = sw->prepare_apply(*j->loaded.config, j->dry_run);
        j->plan_ms = ms_since(tp);
        j->plan_cpu_ms = thread_cpu_ms() - cpu;
      }
      j->done.store(true, std::memory_order_release);
      done->notify();
    });
  }
  last_error_code_ = saved_error;
}

void ApiServer::on_parse_done() {
  if (job_ != nullptr && job_->done.load(std::memory_order_acquire)) finish_job();
  reap();
}

void ApiServer::finish_job() {
  std::unique_ptr<Job> job = std::move(job_);
  job->thread.join();
  Client* c = find_client(job->client);
  if (c == nullptr || peer_gone(c->fd)) {
    // The client was killed or gave up while its config was parsed: commit nothing nobody is waiting for.
    fmt::print("eswitchd: api: {} from {} dropped: its client disconnected before the commit\n",
               job->dry_run ? "diff" : "apply", job->source);
    fflush(stdout);
    if (c != nullptr) c->dead = true;
  } else {
    const uint64_t serial = c->serial;
    std::string reply;
    const auto t_commit = Clock::now();
    const double cpu_commit = thread_cpu_ms();
    try {
      reply = make_reply(job->id, true, run_method(*job->method, job.get(), job->params, [&](json p) {
                           Client* cc = find_client(serial);
                           if (job->progress && cc != nullptr) {
                             send_line(*cc, progress_line(job->id, std::move(p)), true);
                           }
                         }));
      last_error_code_.clear();
    } catch (const ApiError& e) {
      last_error_code_ = e.code;
      reply = make_reply(job->id, false, error_json(e));
    } catch (const std::exception& e) {
      last_error_code_ = "internal";
      reply = make_reply(job->id, false, error_json({"internal", e.what()}));
    }
    if (job->yaml_bytes >= kReportBytes) {
      // A big apply: where its time went, printed once it is durable (its reply is sent then).
      report_ = Report{hold_ticket_, Clock::now(),
                       fmt::format("eswitchd: api: {} of {} ({:.1f} MB): {} ms to the reply: receive {:.0f}, json {:.0f} "
                                   "(cpu {:.0f}), queue {:.0f}, parse {:.0f} (cpu {:.0f}), hash {:.0f}, plan {:.0f} (cpu "
                                   "{:.0f}) on the helper thread, commit {:.0f} (cpu {:.0f}) on the main thread",
                                   job->dry_run ? "diff" : "apply", job->source, job->yaml_bytes / 1e6,
                                   static_cast<int64_t>(ms_of(job->receive_time) + ms_since(job->received)),
                                   ms_of(job->receive_time), job->json_ms, job->json_cpu_ms, job->queue_ms,
                                   job->parse_ms, job->parse_cpu_ms, job->hash_ms, job->plan_ms, job->plan_cpu_ms,
                                   ms_since(t_commit), thread_cpu_ms() - cpu_commit)};
      if (report_->ticket <= durable_) print_report();
    }
    c = find_client(serial);
    if (c != nullptr) {
      send_line(*c, reply, true, std::exchange(hold_ticket_, 0));
      c->busy = false;
      handle_complete_requests(*c);  // lines it sent meanwhile, or its EOF
      settle(*c);
    }
  }
  // A big job's leftovers (a 100k-rule config model, its plan and diff) take tens of milliseconds of free():
  // not on the loop thread.
  if (reaper_.joinable()) reaper_.join();
  reaper_ = std::thread([j = std::move(job)]() mutable {
    pthread_setname_np(pthread_self(), "esw-api-free");
    j.reset();
  });
  start_next_job();
}

}  // namespace esw::dp
