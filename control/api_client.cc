#include "control/api_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "control/json_text.h"

namespace esw::ctl {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string connect_hint(int err) {
  switch (err) {
    case ENOENT: return " (is eswitchd running? pass --socket or set dataplane.api_socket)";
    case ECONNREFUSED: return " (a stale socket: eswitchd is not running)";
    case EACCES:
    case EPERM: return " (the socket is mode 0660: run as root or as a member of its group)";
    default: return "";
  }
}

// The request line. Big string params (an apply's YAML) are written by append_json_ascii_string when they are
// ASCII (the same bytes as dump(), in a fraction of its time); everything else by dump().
std::string encode_request(uint64_t id, const std::string& method, const json& params) {
  constexpr size_t kBig = size_t{64} << 10;
  bool any_big = false;
  if (params.is_object()) {
    for (auto it = params.begin(); it != params.end(); ++it) {
      any_big = any_big || (it->is_string() && it->get_ref<const std::string&>().size() >= kBig);
    }
  }
  if (!any_big) return json{{"api", kApiVersion}, {"id", id}, {"method", method}, {"params", params}}.dump();
  json small = json::object();
  std::vector<std::pair<const std::string*, const std::string*>> big;  // key, text
  size_t big_bytes = 0;
  for (auto it = params.begin(); it != params.end(); ++it) {
    const bool ascii_big = it->is_string() && it->get_ref<const std::string&>().size() >= kBig &&
                           std::all_of(it->get_ref<const std::string&>().begin(), it->get_ref<const std::string&>().end(),
                                       [](char c) { return static_cast<unsigned char>(c) < 0x80; });
    if (ascii_big) {
      big.emplace_back(&it.key(), &it->get_ref<const std::string&>());
      big_bytes += it->get_ref<const std::string&>().size();
    } else {
      small[it.key()] = *it;
    }
  }
  std::string out;
  out.reserve(big_bytes + big_bytes / 8 + 4096);
  out += fmt::format("{{\"api\":{},\"id\":{},\"method\":{},\"params\":", kApiVersion, id, json(method).dump());
  out += small.dump();
  out.pop_back();  // the params object's '}'
  for (size_t i = 0; i < big.size(); ++i) {
    if (i > 0 || !small.empty()) out += ',';
    out += json(*big[i].first).dump();
    out += ':';
    api::append_json_ascii_string(out, *big[i].second);  // ASCII: it takes it
  }
  out += "}}";
  return out;
}

}  // namespace

ApiClient::ApiClient(std::string socket_path, double timeout_s)
    : path_(std::move(socket_path)), timeout_s_(timeout_s) {}

ApiReply ApiClient::call(const std::string& method, const json& params,
                         const std::function<void(const CallProgress&)>& tick) {
  timing_ = {};
  auto ms = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
  };
  const auto t_begin = Clock::now();
  sockaddr_un addr{};
  if (path_.size() >= sizeof(addr.sun_path)) throw ConnectError(fmt::format("socket path too long: {}", path_));
  Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) throw ConnectError(fmt::format("socket(): {}", std::strerror(errno)));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    throw ConnectError(fmt::format("cannot connect to eswitchd at {}: {}{}", path_, std::strerror(err),
                                   connect_hint(err)));
  }

  const auto t_encode = Clock::now();
  const uint64_t id = next_id_++;
  std::string request = encode_request(id, method, params);
  request += '\n';

  const auto start = Clock::now();
  timing_.encode = ms(t_encode, start);
  Clock::time_point t_sent = start;
  CallProgress prog;
  prog.total = request.size();
  json last_progress;
  std::string in;
  size_t scanned = 0;  // prefix of `in` known to hold no newline
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - start).count(); };
  auto last_tick = Clock::now();
  auto do_tick = [&](bool force) {
    if (!tick) return;
    if (!force && Clock::now() - last_tick < std::chrono::milliseconds(100)) return;
    last_tick = Clock::now();
    prog.elapsed_s = elapsed();
    prog.server = last_progress.is_null() ? nullptr : &last_progress;
    tick(prog);
  };

  bool write_closed = false;
  for (;;) {
    if (timeout_s_ > 0 && elapsed() > timeout_s_) {
      throw ConnectError(fmt::format("no reply from eswitchd within {:.0f} s", timeout_s_));
    }
    pollfd pfd{fd.get(), POLLIN, 0};
    if (prog.sent < request.size()) pfd.events |= POLLOUT;
    const int n = ::poll(&pfd, 1, 100);
    if (n < 0 && errno != EINTR) throw ConnectError(fmt::format("poll(): {}", std::strerror(errno)));
    if (n > 0 && (pfd.revents & POLLOUT) && prog.sent < request.size()) {
      const ssize_t w = send(fd.get(), request.data() + prog.sent, request.size() - prog.sent,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0) {
        prog.sent += static_cast<size_t>(w);
      } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        // The server may have refused the request and closed: its reply (if any) is still readable.
        if (errno != EPIPE && errno != ECONNRESET) {
          throw ConnectError(fmt::format("sending the request to eswitchd: {}", std::strerror(errno)));
        }
        prog.sent = request.size();
      }
    }
    if (prog.sent == request.size() && !write_closed) {
      shutdown(fd.get(), SHUT_WR);
      write_closed = true;
      t_sent = Clock::now();
      timing_.send = ms(t_begin, t_sent) - timing_.encode;
    }
    if (n > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR))) {
      char buf[65536];
      const ssize_t r = recv(fd.get(), buf, sizeof(buf), MSG_DONTWAIT);
      if (r > 0) {
        in.append(buf, static_cast<size_t>(r));
        size_t nl;
        // A big reply (a full diff) arrives in many pieces: never search the same bytes twice.
        while ((nl = in.find('\n', scanned)) != std::string::npos) {
          scanned = 0;
          const auto t_line = Clock::now();
          json line = json::parse(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(nl), nullptr, false);
          in.erase(0, nl + 1);
          if (line.is_discarded() || !line.is_object()) throw ConnectError("eswitchd sent a reply that is not JSON");
          if (line.contains("progress")) {
            last_progress = line["progress"];
            do_tick(true);
            continue;
          }
          timing_.wait = ms(t_sent, t_line);
          ApiReply reply;
          reply.ok = line.value("ok", false);
          if (reply.ok) reply.result = line.value("result", json::object());
          else reply.error = line.value("error", json{{"code", "internal"}, {"message", "no error object"}});
          reply.raw = std::move(line);
          timing_.decode = ms(t_line, Clock::now());
          return reply;
        }
        scanned = in.size();
      } else if (r == 0) {
        throw ConnectError("eswitchd closed the connection without a reply");
      } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        throw ConnectError(fmt::format("reading the reply from eswitchd: {}", std::strerror(errno)));
      }
    }
    do_tick(false);
  }
}

}  // namespace esw::ctl
