#include "dataplane/daemon/api_server.h"

#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "config/config.h"
#include "dataplane/daemon/eal.h"
#include "dataplane/error.h"
#include "dataplane/ports/port.h"
#include "dataplane/fastpath/stats.h"
#include "dataplane/daemon/switch.h"

namespace esw::dp {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr size_t kReadChunk = size_t{1} << 20;
// A client that does not read its replies stops being read from once this much output is pending.
constexpr size_t kMaxPendingOutput = size_t{256} << 20;
// Consecutive unparsable lines after which a connection is closed (it is not speaking this protocol).
constexpr int kMaxGarbageLines = 8;

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }
double ms_of(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

std::string errno_text(int err) { return std::strerror(err); }

json config_errors_json(const std::vector<cfg::Error>& errors) {
  json out = json::array();
  for (const auto& e : errors) {
    out.push_back({{"path", e.path}, {"line", e.line}, {"column", e.column}, {"message", e.message}});
  }
  return out;
}

uint64_t fnv1a64(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

json drops_json(const PortCounters& c) {
  json d = json::object();
  for (size_t i = 0; i < c.dropped.size(); ++i) d[drop_reason_name(static_cast<DropReason>(i))] = c.dropped[i];
  return d;
}

const cfg::Attachment* attachment_of(const cfg::Config& c, const std::string& name) {
  for (const auto& u : c.uplinks) {
    if (u.name == name) return &u.attach;
  }
  for (const auto& v : c.vports) {
    if (v.name == name) return &v.attach;
  }
  return nullptr;
}

std::string action_text(const std::vector<cfg::ActionConfig>& actions) {
  std::string out;
  for (const auto& a : actions) {
    if (!out.empty()) out += ",";
    out += a.arg.empty() ? a.name : fmt::format("{}:{}", a.name, a.arg);
  }
  return out;
}

// Request params accessors: a wrong type is the client's mistake, reported as bad_request naming the param.
const json* param(const json& params, const char* key) {
  auto it = params.find(key);
  return it == params.end() || it->is_null() ? nullptr : &*it;
}

std::string param_string(const json& params, const char* key, bool required, std::string def = {}) {
  const json* v = param(params, key);
  if (v == nullptr) {
    if (required) throw ApiError{"bad_request", fmt::format("params.{} is required (a string)", key)};
    return def;
  }
  if (!v->is_string()) throw ApiError{"bad_request", fmt::format("params.{} must be a string", key)};
  return v->get<std::string>();
}

bool param_bool(const json& params, const char* key, bool def) {
  const json* v = param(params, key);
  if (v == nullptr) return def;
  if (!v->is_boolean()) throw ApiError{"bad_request", fmt::format("params.{} must be true or false", key)};
  return v->get<bool>();
}

uint64_t param_uint(const json& params, const char* key, uint64_t def) {
  const json* v = param(params, key);
  if (v == nullptr) return def;
  if (!v->is_number_unsigned()) {
    throw ApiError{"bad_request", fmt::format("params.{} must be a non-negative integer", key)};
  }
  return v->get<uint64_t>();
}

}  // namespace

std::string text_hash(std::string_view text) { return fmt::format("{:016x}", fnv1a64(text)); }

json error_json(const ApiError& e) {
  json j = {{"code", e.code}, {"message", e.message}};
  if (!e.errors.empty()) j["errors"] = e.errors;
  return j;
}

struct ApiServer::Client {
  int fd = -1;
  uint64_t serial = 0;
  std::string in;        // received bytes not yet consumed as requests
  size_t scanned = 0;    // prefix of `in` already searched for a newline
  std::string out;       // reply bytes not yet written
  size_t out_off = 0;
  bool eof = false;      // the peer will send nothing more
  bool closing = false;  // close once `out` is written
  bool dead = false;     // close now
  bool busy = false;     // an apply/diff of this client is queued or being parsed: its next lines wait
  int garbage = 0;
  Clock::time_point last_input = Clock::now();
  Clock::time_point request_start = Clock::now();  // first byte of the request in `in`

  ~Client() {
    if (fd >= 0) ::close(fd);
  }
};

struct ApiServer::Envelope {
  std::string method;
  json params = json::object();
  bool progress = false;
};

struct ApiServer::ApplyJob {
  uint64_t client = 0;  // Client::serial; 0 for the synchronous handle()
  json id;
  bool dry_run = false;
  bool progress = false;
  std::string yaml;
  std::string source;
  uint64_t diff_limit = 0;
  Clock::time_point received = Clock::now();  // when the request was complete
  Clock::duration receive_time{};             // first byte to complete request
  // Written by the parse thread, read after `done` (and the join).
  cfg::LoadResult loaded;
  double parse_ms = 0;
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

}  // namespace

ApiServer::ApiServer(Switch& sw, ApiServerOptions options, RunningSource initial)
    : sw_(sw), options_(std::move(options)), running_(std::move(initial)), started_(Clock::now()) {
  running_.hash = text_hash(running_.yaml);
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

  event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0) throw Error(fmt::format("api socket {}: eventfd(): {}", path, errno_text(errno)));
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) {
    ::close(event_fd_);
    throw Error(fmt::format("api socket {}: socket(): {}", path, errno_text(errno)));
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  // The socket file must never exist with wider permissions than 0660, not even between bind() and chmod().
  const mode_t old_mask = umask(0117);
  const int rc = bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  const int bind_errno = errno;
  umask(old_mask);
  auto fail = [&](const std::string& what, int err) {
    ::close(listen_fd_);
    ::close(event_fd_);
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
}

ApiServer::~ApiServer() {
  // A parse in flight reads only its own job: wait for it (it cannot be interrupted), then drop it uncommitted.
  if (job_ != nullptr && job_->thread.joinable()) job_->thread.join();
  job_.reset();
  queue_.clear();
  clients_.clear();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (event_fd_ >= 0) ::close(event_fd_);
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

void ApiServer::poll(int timeout_ms) {
  std::vector<pollfd> fds;
  fds.reserve(clients_.size() + 2);
  fds.push_back({listen_fd_, POLLIN, 0});
  fds.push_back({event_fd_, POLLIN, 0});
  for (const auto& c : clients_) {
    short ev = 0;
    if (!c->eof && !c->closing && c->out.size() - c->out_off < kMaxPendingOutput) ev |= POLLIN;
    if (c->out_off < c->out.size()) ev |= POLLOUT;
    fds.push_back({c->fd, ev, 0});
  }
  const int n = ::poll(fds.data(), fds.size(), timeout_ms);
  if (n < 0) return;  // EINTR: the main loop checks its signal flag and calls again

  // Clients first (the vector is stable until the sweep below), then a finished parse, then new connections.
  const size_t nb = clients_.size();
  for (size_t i = 0; i < nb; ++i) {
    Client& c = *clients_[i];
    const short re = fds[i + 2].revents;
    if (re & (POLLIN | POLLHUP | POLLERR)) read_client(c);
    if (!c.dead) handle_complete_requests(c);
    if (!c.dead && c.out_off < c.out.size()) write_client(c);
    if (!c.dead && c.closing && c.out_off >= c.out.size()) c.dead = true;
    if (!c.dead && !c.busy && !c.in.empty() && !c.eof && Clock::now() - c.last_input > options_.stall_timeout) {
      // A partial request that stopped arriving: the peer is stuck or gone. It changes nothing.
      c.dead = true;
    }
  }
  if (job_ != nullptr && job_->done.load(std::memory_order_acquire)) {
    uint64_t v;
    (void)!read(event_fd_, &v, sizeof(v));
    finish_job();
  }
  if (fds[0].revents & POLLIN) accept_clients();
  std::erase_if(clients_, [](const std::unique_ptr<Client>& c) { return c->dead; });
}

void ApiServer::accept_clients() {
  for (;;) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or a peer that left before we accepted it
    auto c = std::make_unique<Client>();
    c->fd = fd;
    c->serial = next_serial_++;
    if (clients_.size() >= options_.max_clients) {
      c->closing = true;
      send_line(*c,
                make_reply(nullptr, false,
                           error_json({"busy", fmt::format("too many API connections (at most {}); try again later",
                                                           options_.max_clients)})),
                true);
      continue;  // closed when `c` goes out of scope: best effort
    }
    clients_.push_back(std::move(c));
  }
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
      c.last_input = Clock::now();
      got_total += static_cast<size_t>(got);
      // Keep the main loop responsive: at most 64 MiB per poll round per client.
      if (got_total >= (size_t{64} << 20)) break;
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

void ApiServer::send_line(Client& c, const std::string& line, bool flush_now) {
  if (c.out_off > 0 && c.out_off == c.out.size()) {
    c.out.clear();
    c.out_off = 0;
  }
  c.out += line;
  c.out += '\n';
  if (flush_now) write_client(c);
}

void ApiServer::write_client(Client& c) {
  while (c.out_off < c.out.size()) {
    const ssize_t n = send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
    if (n > 0) {
      c.out_off += static_cast<size_t>(n);
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
  while (!c.dead && !c.closing && !c.busy) {
    const size_t nl = c.in.find('\n', c.scanned);
    if (nl == std::string::npos) {
      c.scanned = c.in.size();  // a long request arrives in pieces: never search the same bytes twice
      break;
    }
    std::string_view line(c.in.data() + start, nl - start);
    start = nl + 1;
    c.scanned = start;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
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
  if (c.closing || c.dead || c.busy) return;
  if (c.in.size() > options_.max_request_bytes) {
    // Refuse without reading the rest: the connection cannot be resynchronised, so it is closed.
    reply_error({"too_large", fmt::format("request exceeds {} bytes; nothing was done", options_.max_request_bytes)});
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
      if (json::accept(rest)) {
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

ApiServer::Envelope ApiServer::parse_envelope(std::string_view request, json& id) {
  json req;
  try {
    req = json::parse(request.begin(), request.end());
  } catch (const json::exception& e) {
    throw ApiError{"parse_error", fmt::format("request is not valid JSON: {}", e.what())};
  }
  if (!req.is_object()) throw ApiError{"bad_request", "a request is a JSON object: {\"api\": 1, \"method\": ...}"};
  if (auto it = req.find("id"); it != req.end()) id = *it;
  auto api = req.find("api");
  if (api == req.end()) {
    throw ApiError{"bad_request", fmt::format("missing \"api\": requests say which API version they speak "
                                              "({{\"api\": {}, ...}})",
                                              kApiVersion)};
  }
  if (!api->is_number_integer()) throw ApiError{"bad_request", "\"api\" must be an integer"};
  if (api->get<int64_t>() != kApiVersion) {
    throw ApiError{"unsupported_api", fmt::format("API version {} is not supported; this eswitchd speaks version {}",
                                                  api->dump(), kApiVersion)};
  }
  Envelope env;
  auto m = req.find("method");
  if (m == req.end() || !m->is_string()) throw ApiError{"bad_request", "missing \"method\" (a string)"};
  env.method = m->get<std::string>();
  if (auto p = req.find("params"); p != req.end() && !p->is_null()) {
    if (!p->is_object()) throw ApiError{"bad_request", "\"params\" must be an object"};
    env.params = std::move(*p);
  }
  env.progress = param_bool(env.params, "progress", false);
  static const char* kMethods[] = {"ping", "config", "apply", "diff", "show", "stats", "trace", "rules"};
  if (std::find_if(std::begin(kMethods), std::end(kMethods), [&](const char* k) { return env.method == k; }) ==
      std::end(kMethods)) {
    throw ApiError{"unknown_method", fmt::format("unknown method \"{}\"; methods: ping, config, apply, diff, show, "
                                                 "stats, trace, rules",
                                                 env.method)};
  }
  return env;
}

json ApiServer::dispatch_read(const Envelope& env) {
  if (env.method == "ping") return do_ping();
  if (env.method == "config") return do_config();
  if (env.method == "show") return do_show(env.params);
  if (env.method == "stats") return do_stats(env.params);
  if (env.method == "trace") return do_trace(env.params);
  if (env.method == "rules") return do_rules(env.params);
  throw ApiError{"internal", fmt::format("method {} is not a read", env.method)};
}

std::unique_ptr<ApiServer::ApplyJob> ApiServer::make_job(const Envelope& env) {
  auto job = std::make_unique<ApplyJob>();
  job->dry_run = env.method == "diff" || param_bool(env.params, "dry_run", false);
  job->progress = env.progress;
  job->yaml = param_string(env.params, "yaml", true);
  job->source = param_string(env.params, "source", false, "<api>");
  job->diff_limit = param_uint(env.params, "diff_limit", 0);  // 0: every item
  return job;
}

std::string ApiServer::handle(std::string_view request, const std::function<void(const std::string&)>& progress) {
  ++requests_;
  last_error_code_.clear();
  json id = nullptr;
  try {
    Envelope env = parse_envelope(request, id);
    if (env.method != "apply" && env.method != "diff") return make_reply(id, true, dispatch_read(env));
    std::unique_ptr<ApplyJob> job = make_job(env);
    job->id = id;
    const auto t = Clock::now();
    job->loaded = cfg::load_config_string(job->yaml, job->source);
    job->parse_ms = ms_since(t);
    return commit(*job, [&](json p) {
      if (job->progress && progress) {
        progress(json{{"api", kApiVersion}, {"id", id}, {"progress", std::move(p)}}.dump());
      }
    });
  } catch (const ApiError& e) {
    last_error_code_ = e.code;
    return make_reply(id, false, error_json(e));
  } catch (const std::exception& e) {
    last_error_code_ = "internal";
    return make_reply(id, false, error_json({"internal", e.what()}));
  }
}

void ApiServer::handle_line(Client& c, std::string_view line) {
  ++requests_;
  last_error_code_.clear();
  const Clock::duration receive_time = Clock::now() - c.request_start;
  json id = nullptr;
  std::string reply;
  try {
    Envelope env = parse_envelope(line, id);
    if (env.method == "apply" || env.method == "diff") {
      std::unique_ptr<ApplyJob> job = make_job(env);
      job->id = id;
      job->client = c.serial;
      job->receive_time = receive_time;
      c.busy = true;
      queue_.push_back(std::move(job));
      start_next_job();
      return;  // the reply comes when the commit is done
    }
    reply = make_reply(id, true, dispatch_read(env));
  } catch (const ApiError& e) {
    last_error_code_ = e.code;
    reply = make_reply(id, false, error_json(e));
  } catch (const std::exception& e) {
    last_error_code_ = "internal";
    reply = make_reply(id, false, error_json({"internal", e.what()}));
  }
  send_line(c, reply, false);
}

void ApiServer::start_next_job() {
  while (job_ == nullptr && !queue_.empty()) {
    job_ = std::move(queue_.front());
    queue_.erase(queue_.begin());
    Client* c = find_client(job_->client);
    if (c == nullptr || peer_gone(c->fd)) {
      // Its client left while it waited: nobody wants it any more, and it changes nothing.
      if (c != nullptr) c->dead = true;
      job_.reset();
      continue;
    }
    if (job_->progress) {
      send_line(*c,
                json{{"api", kApiVersion},
                     {"id", job_->id},
                     {"progress",
                      {{"phase", "received"}, {"bytes", job_->yaml.size()}, {"receive_ms", ms_of(job_->receive_time)}}}}
                    .dump(),
                true);
    }
    ApplyJob* j = job_.get();
    const int efd = event_fd_;
    j->thread = std::thread([j, efd] {
      // Inherits the main lcore's CPU affinity: it never competes with a worker core.
      pthread_setname_np(pthread_self(), "esw-api-parse");
      const auto t = Clock::now();
      j->loaded = cfg::load_config_string(j->yaml, j->source);
      j->parse_ms = ms_since(t);
      j->done.store(true, std::memory_order_release);
      const uint64_t one = 1;
      (void)!write(efd, &one, sizeof(one));
    });
  }
}

void ApiServer::finish_job() {
  std::unique_ptr<ApplyJob> job = std::move(job_);
  job->thread.join();
  Client* c = find_client(job->client);
  if (c == nullptr || peer_gone(c->fd)) {
    // The client was killed or gave up while its config was parsed: commit nothing nobody is waiting for.
    fmt::print("eswitchd: api: {} from {} dropped: its client disconnected before the commit\n",
               job->dry_run ? "diff" : "apply", job->source);
    fflush(stdout);
    if (c != nullptr) c->dead = true;
  } else {
    const std::string reply = commit(*job, [&](json p) {
      if (!job->progress) return;
      send_line(*c, json{{"api", kApiVersion}, {"id", job->id}, {"progress", std::move(p)}}.dump(), true);
    });
    if (!c->dead) {
      send_line(*c, reply, true);
      c->busy = false;
      handle_complete_requests(*c);  // lines it sent meanwhile, or its EOF
    }
  }
  start_next_job();
}

std::string ApiServer::commit(ApplyJob& job, const std::function<void(json)>& progress) {
  const bool dry_run = job.dry_run;
  const std::string& source = job.source;
  const char* nothing = dry_run ? "nothing would be applied" : "nothing was applied; the switch keeps its running "
                                                               "config";
  try {
    const cfg::LoadResult& loaded = job.loaded;
    if (!loaded.config) {
      throw ApiError{"invalid_config",
                     fmt::format("{}: {} error{}; {}", source, loaded.errors.size(),
                                 loaded.errors.size() == 1 ? "" : "s", nothing),
                     config_errors_json(loaded.errors)};
    }
    size_t rules = 0;
    for (const auto& t : loaded.config->tables) rules += t.rules.size();
    progress({{"phase", dry_run ? "diffing" : "applying"}, {"parse_ms", job.parse_ms}, {"rules", rules}});

    const auto t_apply = Clock::now();
    ApplyResult ar;
    try {
      ar = sw_.apply(*loaded.config, dry_run);
    } catch (const std::exception& e) {
      throw ApiError{"apply_failed", fmt::format("{}: {}; {}", source, e.what(), nothing)};
    }
    const double apply_ms = ms_since(t_apply);
    if (!ar.ok) {
      throw ApiError{"invalid_config",
                     fmt::format("{}: {} error{}; {}", source, ar.errors.size(), ar.errors.size() == 1 ? "" : "s",
                                 nothing),
                     config_errors_json(ar.errors)};
    }
    json diff = json::array();
    std::map<char, size_t> counts{{'+', 0}, {'-', 0}, {'~', 0}};
    for (const auto& d : ar.diff) {
      ++counts[d.op];
      if (job.diff_limit == 0 || diff.size() < job.diff_limit) {
        diff.push_back({{"op", std::string(1, d.op)}, {"kind", d.kind}, {"name", d.name}, {"detail", d.detail}});
      }
    }
    if (!dry_run &&
        (!ar.diff.empty() || job.yaml != running_.yaml || ar.restart_required != running_.restart_required)) {
      running_.yaml = job.yaml;
      running_.hash = text_hash(job.yaml);
      running_.source = source;
      running_.restart_required = ar.restart_required;
      ++running_.generation;
      if (on_applied_) on_applied_();
    }
    json result = {{"dry_run", dry_run},
                   {"changed", !ar.diff.empty()},
                   {"diff", std::move(diff)},
                   {"diff_total", ar.diff.size()},
                   {"counts", {{"added", counts['+']}, {"removed", counts['-']}, {"changed", counts['~']}}},
                   {"restart_required", ar.restart_required},
                   {"generation", running_.generation},
                   {"config_hash", running_.hash},
                   {"rules", rules},
                   {"timing",
                    {{"receive_ms", ms_of(job.receive_time)},
                     {"parse_ms", job.parse_ms},
                     {"apply_ms", apply_ms},
                     {"total_ms", ms_of(job.receive_time) + ms_since(job.received)}}}};
    last_error_code_.clear();
    return make_reply(job.id, true, std::move(result));
  } catch (const ApiError& e) {
    last_error_code_ = e.code;
    return make_reply(job.id, false, error_json(e));
  } catch (const std::exception& e) {
    last_error_code_ = "internal";
    return make_reply(job.id, false, error_json({"internal", e.what()}));
  }
}

json ApiServer::do_ping() {
  return {{"api", kApiVersion},
          {"pid", getpid()},
          {"uptime_s", ms_since(started_) / 1000.0},
          {"generation", running_.generation},
          {"config_hash", running_.hash},
          {"file_prefix", Eal::file_prefix()},
          {"clients", clients_.size()},
          {"apply_in_progress", apply_in_progress()},
          {"requests", requests_}};
}

json ApiServer::do_config() {
  const cfg::Config& c = sw_.config();
  size_t rules = 0;
  for (const auto& t : c.tables) rules += t.rules.size();
  return {{"yaml", running_.yaml},
          {"source", running_.source},
          {"generation", running_.generation},
          {"config_hash", running_.hash},
          {"restart_required", running_.restart_required},
          {"summary",
           {{"uplinks", c.uplinks.size()},
            {"vports", c.vports.size()},
            {"tables", c.tables.size()},
            {"rules", rules},
            {"meters", c.meters.size()},
            {"pipeline", cfg::to_string(c.pipeline.mode)}}}};
}

json ApiServer::do_show(const json& params) {
  const std::string what = param_string(params, "what", true);
  const cfg::Config& config = sw_.config();
  json out = json::object();
  if (what == "ports") {
    // The DPDK device name and port id are what dpdk-dumpcap and dpdk-telemetry.py's /ethdev/ commands take.
    std::map<std::string, const Port*> by_name;
    for (const auto& p : sw_.ports()) {
      if (p != nullptr) by_name[p->name()] = p.get();
    }
    json ports = json::array();
    for (const PortStats& s : sw_.port_stats()) {
      const PortCounters& c = s.counters;
      const cfg::Attachment* a = attachment_of(config, s.name);
      const Port* port = by_name.count(s.name) ? by_name[s.name] : nullptr;
      json queues = json::array();
      for (size_t q = 0; q < s.rx_queues.size(); ++q) {
        const QueueCounters& qc = s.rx_queues[q];
        queues.push_back({{"queue", q},
                          {"packets", qc.packets},
                          {"bytes", qc.bytes},
                          {"polls", qc.polls},
                          {"empty_polls", qc.empty_polls}});
      }
      ports.push_back({{"name", s.name},
                       {"role", port_role_name(s.role)},
                       {"driver", s.driver},
                       {"devargs", a != nullptr ? a->devargs : ""},
                       {"device", port != nullptr ? port->device_name() : ""},
                       {"port_id", port != nullptr ? json(port->port_id()) : json(nullptr)},
                       {"link_up", s.link_up},
                       {"rx_packets", c.rx_packets},
                       {"rx_bytes", c.rx_bytes},
                       {"tx_packets", c.tx_packets},
                       {"tx_bytes", c.tx_bytes},
                       {"tx_dropped", c.tx_dropped},
                       {"dropped_total", c.dropped_total()},
                       {"dropped", drops_json(c)},
                       {"rx_queues", std::move(queues)}});
    }
    out["ports"] = std::move(ports);
  } else if (what == "vports" || what == "representors") {
    const std::vector<VportStats> stats = sw_.vport_stats();
    json list = json::array();
    for (const auto& v : config.vports) {
      const VportStats* s = nullptr;
      for (const auto& x : stats) {
        if (x.name == v.name) s = &x;
      }
      json drops = json::object();
      uint64_t drops_total = 0;
      if (s != nullptr) {
        for (const auto& [reason, n] : s->drops) {
          drops[reason] = n;
          drops_total += n;
        }
      }
      if (what == "representors") {
        list.push_back({{"vport", v.name},
                        {"representor", s != nullptr ? s->representor : ""},
                        {"kind", config.representors.kind == cfg::RepresentorKind::kTap ? "tap" : "none"},
                        {"active", s != nullptr ? s->active : v.state == cfg::VportState::kActive}});
        continue;
      }
      list.push_back({{"name", v.name},
                      {"flavour", v.flavour == cfg::Flavour::kVf ? "vf" : "sf"},
                      {"id", v.id},
                      {"devargs", v.attach.devargs},
                      {"hw_addr", v.hw_addr.value_or("")},
                      {"ipv4", v.ipv4},
                      {"ipv6", v.ipv6},
                      {"vlan", v.vlan ? json(*v.vlan) : json(nullptr)},
                      {"state", v.state == cfg::VportState::kActive ? "active" : "inactive"},
                      {"spoofchk", v.spoofchk},
                      {"trust", v.trust},
                      {"roce", v.roce},
                      {"smc", v.smc == cfg::SmcPolicy::kAllow ? "allow" : "deny"},
                      {"representor", s != nullptr ? s->representor : ""},
                      {"active", s != nullptr ? s->active : v.state == cfg::VportState::kActive},
                      {"rx_packets", s != nullptr ? s->rx_packets : 0},
                      {"tx_packets", s != nullptr ? s->tx_packets : 0},
                      {"drops_total", drops_total},
                      {"drops", std::move(drops)}});
    }
    out[what] = std::move(list);
  } else if (what == "tables") {
    struct Agg {
      size_t rules = 0;
      uint64_t packets = 0;
      uint64_t bytes = 0;
    };
    std::map<unsigned, Agg> agg;
    for (const RuleStats& r : sw_.rule_stats()) {
      Agg& a = agg[r.table];
      ++a.rules;
      a.packets += r.packets;
      a.bytes += r.bytes;
    }
    std::map<unsigned, const cfg::TableConfig*> declared;
    for (const auto& t : config.tables) declared[t.id] = &t;
    for (const auto& [id, t] : declared) agg.try_emplace(id);
    json tables = json::array();
    for (const auto& [id, a] : agg) {
      const cfg::TableConfig* t = declared.count(id) ? declared[id] : nullptr;
      tables.push_back({{"id", id},
                        {"name", t != nullptr ? t->name : ""},
                        {"declared", t != nullptr},
                        {"configured_rules", t != nullptr ? t->rules.size() : 0},
                        {"rules", a.rules},
                        {"packets", a.packets},
                        {"bytes", a.bytes},
                        {"miss", t != nullptr && !t->miss.empty() ? action_text(t->miss) : "to_representor"}});
    }
    const ClassifierStats cs = sw_.classifier_stats();
    out["tables"] = std::move(tables);
    out["classifier"] = {{"version", cs.version},
                         {"rules", cs.rules},
                         {"tables", cs.tables},
                         {"subtables", cs.subtables},
                         {"snapshot_bytes", cs.snapshot_bytes},
                         {"index_bytes", cs.index_bytes},
                         {"published", cs.published},
                         {"freed", cs.freed},
                         {"pending_reclaim", cs.pending_reclaim}};
  } else if (what == "rules") {
    const json* table = param(params, "table");
    if (table != nullptr && !table->is_number_unsigned()) {
      throw ApiError{"bad_request", "params.table must be a table id (0..254)"};
    }
    const uint64_t offset = param_uint(params, "offset", 0);
    const uint64_t limit = param_uint(params, "limit", 0);  // 0: all
    json rules = json::array();
    uint64_t matched = 0;
    for (const RuleStats& r : sw_.rule_stats()) {
      if (table != nullptr && r.table != table->get<uint64_t>()) continue;
      const uint64_t idx = matched++;
      if (idx < offset || (limit != 0 && idx >= offset + limit)) continue;
      rules.push_back({{"id", r.id},
                       {"table", r.table},
                       {"priority", r.priority},
                       {"where", r.where},
                       {"match", r.match},
                       {"actions", r.actions},
                       {"packets", r.packets},
                       {"bytes", r.bytes}});
    }
    out["rules"] = std::move(rules);
    out["total"] = matched;
  } else {
    throw ApiError{"bad_request",
                   fmt::format("show: unknown \"{}\"; one of ports, vports, tables, rules, representors", what)};
  }
  return out;
}

json ApiServer::do_stats(const json& params) {
  const bool with_rules = param_bool(params, "rules", false);
  json ports = json::array();
  uint64_t rx = 0, tx = 0, drops = 0;
  for (const PortStats& s : sw_.port_stats()) {
    const PortCounters& c = s.counters;
    rx += c.rx_packets;
    tx += c.tx_packets;
    drops += c.dropped_total() + c.tx_dropped;
    ports.push_back({{"name", s.name},
                     {"rx_packets", c.rx_packets},
                     {"rx_bytes", c.rx_bytes},
                     {"tx_packets", c.tx_packets},
                     {"tx_bytes", c.tx_bytes},
                     {"tx_dropped", c.tx_dropped},
                     {"dropped", c.dropped_total()}});
  }
  json out = {{"time", std::chrono::duration<double>(Clock::now().time_since_epoch()).count()},
              {"ports", std::move(ports)},
              {"totals", {{"rx_packets", rx}, {"tx_packets", tx}, {"dropped", drops}}}};
  if (with_rules) {
    json rules = json::array();
    for (const RuleStats& r : sw_.rule_stats()) {
      if (r.packets == 0 && r.bytes == 0) continue;
      rules.push_back({{"id", r.id}, {"where", r.where}, {"packets", r.packets}, {"bytes", r.bytes}});
    }
    out["rules"] = std::move(rules);
  }
  return out;
}

// Runtime rules: {"add": ["name=x,priority=..,<match> actions=..", ...], "delete": ["x", ...]}. One transaction
// on the main thread, like an apply; small and incremental, so it does not queue behind YAML parsing.
json ApiServer::do_rules(const json& params) {
  auto strings = [&](const char* key) {
    std::vector<std::string> out;
    auto it = params.find(key);
    if (it == params.end() || it->is_null()) return out;
    if (!it->is_array()) throw ApiError{"bad_request", fmt::format("\"{}\" must be an array of strings", key)};
    for (const auto& v : *it) {
      if (!v.is_string()) throw ApiError{"bad_request", fmt::format("\"{}\" must be an array of strings", key)};
      out.push_back(v.get<std::string>());
    }
    return out;
  };
  const std::vector<std::string> add = strings("add");
  const std::vector<std::string> del = strings("delete");
  const auto t = Clock::now();
  const ApplyResult r = sw_.change_rules(add, del);
  if (!r.ok) {
    throw ApiError{"invalid_config", fmt::format("{} error(s); nothing was changed", r.errors.size()),
                   config_errors_json(r.errors)};
  }
  return json{{"added", add.size()}, {"deleted", del.size()}, {"changes", r.diff.size()},
              {"runtime_rules", sw_.runtime_rule_count()}, {"ms", ms_since(t)}};
}

json ApiServer::do_trace(const json& params) {
  TraceResult tr;
  const std::string hex = param_string(params, "hex", false);
  if (!hex.empty()) {
    const std::string in_port = param_string(params, "in_port", true);
    const int port = sw_.port_index(in_port);
    if (port < 0) throw ApiError{"not_found", fmt::format("trace: no port named \"{}\"", in_port)};
    std::vector<uint8_t> bytes;
    std::string digits;
    for (char ch : hex) {
      if (std::isxdigit(static_cast<unsigned char>(ch))) digits += ch;
      else if (ch != ' ' && ch != ':' && ch != '\n' && ch != '\t') {
        throw ApiError{"bad_request", fmt::format("trace: params.hex: '{}' is not a hex digit", ch)};
      }
    }
    if (digits.size() % 2 != 0) throw ApiError{"bad_request", "trace: params.hex has an odd number of digits"};
    for (size_t i = 0; i < digits.size(); i += 2) {
      bytes.push_back(static_cast<uint8_t>(std::stoi(digits.substr(i, 2), nullptr, 16)));
    }
    if (bytes.size() < 14 || bytes.size() > 9000) {
      throw ApiError{"bad_request", fmt::format("trace: a frame has 14..9000 bytes, got {}", bytes.size())};
    }
    tr = sw_.trace(static_cast<uint16_t>(port), bytes.data(), bytes.size());
  } else {
    const std::string packet = param_string(params, "packet", true);
    std::string error;
    if (!sw_.trace(packet, tr, error)) throw ApiError{"bad_request", fmt::format("trace: {}", error)};
  }
  return {{"packet", tr.packet}, {"lines", tr.lines}, {"verdict", tr.verdict}};
}

}  // namespace esw::dp
