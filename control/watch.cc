// eswitchctl watch FILE: the control process mode. Keeps eswitchd's config equal to FILE: applies it at start,
// on every change (inotify on the directory, so editors that replace the file and symlink swaps are seen), and
// again when eswitchd's running config changes behind its back (a restarted eswitchd, another client). An
// invalid file is reported and changes nothing: eswitchd keeps running the last good config.

#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "config/config.h"
#include "control/api_client.h"
#include "control/commands.h"
#include "control/render.h"
#include "dataplane/rules/ruleset.h"

namespace esw::ctl {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::atomic<bool> g_stop{false};
void on_stop(int) { g_stop.store(true); }

std::string now_text() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof(buf), "%H:%M:%S", &tm);
  return buf;
}

class Watcher {
 public:
  Watcher(const Options& o, std::string file) : o_(o), file_(std::move(file)), client_(o.socket, o.timeout_s) {}

  // Reads the file and, when its content changed since the last attempt (or `force`), validates and applies it.
  void process(bool force) {
    std::string text;
    {
      std::ifstream in(file_, std::ios::binary);
      if (!in) {
        const std::string why = std::strerror(errno);
        if (last_event_ != "unreadable") {
          event("unreadable", fmt::format("cannot read {}: {}; keeping the running config", file_, why), {});
        }
        seen_hash_.clear();
        return;
      }
      std::ostringstream ss;
      ss << in.rdbuf();
      text = ss.str();
    }
    const std::string hash = cfg::text_hash(text);
    if (!force && hash == seen_hash_) return;  // touched, or saved without a change
    seen_hash_ = hash;

    cfg::LoadResult loaded = cfg::load_config_string(text, file_);
    std::vector<cfg::Error> errors = loaded.errors;
    if (loaded.config) errors = dp::check_config(*loaded.config);
    if (!errors.empty()) {
      json errs = json::array();
      for (const auto& e : errors) {
        errs.push_back({{"path", e.path}, {"line", e.line}, {"column", e.column}, {"message", e.message}});
      }
      event("invalid",
            fmt::format("{} is invalid ({} error{}): keeping the running config{}", file_, errors.size(),
                        errors.size() == 1 ? "" : "s",
                        applied_hash_.empty() ? "" : fmt::format(" (generation {})", generation_)),
            {{"errors", errs}});
      return;
    }
    ApiReply reply;
    try {
      reply = client_.call("apply", {{"yaml", text}, {"source", file_}, {"diff_limit", 20}});
    } catch (const ConnectError& e) {
      event("unreachable", fmt::format("{}; will retry", e.what()), {});
      seen_hash_.clear();  // retried at the next resync tick
      return;
    }
    if (!reply.ok) {
      event("refused", fmt::format("eswitchd refused {}: {}; keeping the running config", file_,
                                   reply.error.value("message", "")),
            {{"error", reply.error}});
      return;
    }
    const json& r = reply.result;
    applied_hash_ = hash;
    generation_ = r.value("generation", uint64_t{0});
    const json c = r.value("counts", json::object());
    if (r.value("diff_total", 0) == 0) {
      event("unchanged", fmt::format("{}: no changes (generation {})", file_, generation_), {{"result", r}});
    } else {
      event("applied",
            fmt::format("applied {}: {} added, {} removed, {} changed (generation {}, {:.0f} ms){}", file_,
                        c.value("added", 0), c.value("removed", 0), c.value("changed", 0), generation_,
                        r["timing"].value("total_ms", 0.0),
                        r.value("restart_required", false) ? "; dataplane changes need an eswitchd restart" : ""),
            {{"result", r}});
    }
  }

  // When eswitchd's running config is no longer what we applied (it restarted, or someone else applied),
  // apply the file again.
  void resync() {
    if (applied_hash_.empty() || applied_hash_ != seen_hash_) {
      if (seen_hash_.empty()) process(true);  // never applied, or eswitchd was unreachable
      return;
    }
    try {
      ApiReply reply = client_.call("ping", json::object());
      if (reply.ok && reply.result.value("config_hash", "") != applied_hash_) {
        event("drift", fmt::format("eswitchd's running config is not {} any more (generation {}): re-applying", file_,
                                   reply.result.value("generation", 0)),
              {});
        process(true);
      }
    } catch (const ConnectError& e) {
      if (last_event_ != "unreachable") event("unreachable", fmt::format("{}; will retry", e.what()), {});
    }
  }

 private:
  void event(const std::string& kind, const std::string& text, json extra) {
    last_event_ = kind;
    if (o_.json) {
      extra["time"] = std::time(nullptr);
      extra["event"] = kind;
      extra["file"] = file_;
      extra["message"] = text;
      fmt::print("{}\n", extra.dump(-1, ' ', false, json::error_handler_t::replace));
    } else {
      FILE* out = kind == "invalid" || kind == "refused" || kind == "unreachable" || kind == "unreadable" ? stderr
                                                                                                          : stdout;
      if (kind == "invalid") {
        for (const auto& e : extra["errors"]) fmt::print(out, "{}\n", format_config_error(file_, e));
      } else if (kind == "refused") {
        for (const auto& e : extra["error"].value("errors", json::array())) {
          fmt::print(out, "{}\n", format_config_error(file_, e));
        }
      } else if (kind == "applied") {
        for (const auto& d : extra["result"].value("diff", json::array())) {
          fmt::print(out, "  {}\n", format_diff_item(d));
        }
        const uint64_t total = extra["result"].value("diff_total", uint64_t{0});
        const uint64_t shown = extra["result"].value("diff", json::array()).size();
        if (shown < total) fmt::print(out, "  ... and {} more\n", total - shown);
      }
      fmt::print(out, "[{}] {}\n", now_text(), text);
    }
    fflush(stdout);
    fflush(stderr);
  }

  const Options& o_;
  std::string file_;
  ApiClient client_;
  std::string seen_hash_;     // content last processed (valid or not)
  std::string applied_hash_;  // content eswitchd accepted last
  uint64_t generation_ = 0;
  std::string last_event_;
};

}  // namespace

int cmd_watch(const Options& o, const std::string& file, double debounce_s, double resync_s) {
  struct sigaction sa {};
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  std::error_code ec;
  const std::filesystem::path abs = std::filesystem::absolute(file, ec);
  const std::filesystem::path dir = abs.parent_path();
  const int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (ifd < 0) {
    fmt::print(stderr, "eswitchctl: inotify: {}\n", std::strerror(errno));
    return kExitFailed;
  }
  if (inotify_add_watch(ifd, dir.c_str(),
                        IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_MODIFY |
                            IN_ATTRIB) < 0) {
    fmt::print(stderr, "eswitchctl: cannot watch {}: {}\n", dir.string(), std::strerror(errno));
    ::close(ifd);
    return kExitFailed;
  }
  if (!o.json) fmt::print("[{}] watching {} (eswitchd at {}); Ctrl-C stops\n", now_text(), file, o.socket);
  fflush(stdout);

  Watcher w(o, file);
  w.process(true);
  const auto debounce = std::chrono::duration<double>(debounce_s);
  const auto resync = std::chrono::duration<double>(resync_s);
  bool pending = false;
  auto last_event = Clock::now();
  auto last_resync = Clock::now();
  alignas(inotify_event) char buf[16384];
  while (!g_stop.load()) {
    pollfd pfd{ifd, POLLIN, 0};
    const int n = ::poll(&pfd, 1, 100);
    if (n > 0 && (pfd.revents & POLLIN)) {
      // Any change in the directory may be ours (an editor's temp file renamed over it, a ..data symlink swap):
      // the content hash decides whether anything changed.
      while (read(ifd, buf, sizeof(buf)) > 0) {
      }
      pending = true;
      last_event = Clock::now();
    }
    const auto now = Clock::now();
    if (pending && now - last_event >= debounce) {
      pending = false;
      w.process(false);
      last_resync = now;
    }
    if (resync_s > 0 && now - last_resync >= resync) {
      w.resync();
      last_resync = Clock::now();
    }
  }
  ::close(ifd);
  if (!o.json) fmt::print("[{}] stopped watching {}\n", now_text(), file);
  return kExitOk;
}

}  // namespace esw::ctl
