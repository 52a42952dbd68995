#include "dataplane/ports/dpdk_log.h"

#include <rte_log.h>

#include <cstdio>
#include <deque>
#include <mutex>

namespace esw::dp {
namespace {

constexpr size_t kKeptLogLines = 8;

struct LogState {
  FILE* stream = nullptr;
  std::mutex mu;
  std::deque<std::string> errors;  // WARNING or worse, most recent last
  std::string partial;             // a line written in pieces
  int echo_level = RTE_LOG_CRIT;   // forwarded to stderr at this level or worse
};

LogState& state() {
  static LogState s;
  return s;
}

ssize_t log_write(void*, const char* buf, size_t size) {
  LogState& s = state();
  const uint32_t level = rte_log_cur_msg_loglevel();
  std::lock_guard lock(s.mu);
  if (level <= static_cast<uint32_t>(s.echo_level)) (void)!fwrite(buf, 1, size, stderr);
  if (level <= RTE_LOG_WARNING) {
    s.partial.append(buf, size);
    size_t nl;
    while ((nl = s.partial.find('\n')) != std::string::npos) {
      std::string line = s.partial.substr(0, nl);
      s.partial.erase(0, nl + 1);
      if (line.empty()) continue;
      s.errors.push_back(std::move(line));
      if (s.errors.size() > kKeptLogLines) s.errors.pop_front();
    }
  }
  return static_cast<ssize_t>(size);
}

}  // namespace

void install_dpdk_log_capture() {
  LogState& s = state();
  if (s.stream != nullptr) return;
  cookie_io_functions_t io{};
  io.write = log_write;
  s.stream = fopencookie(nullptr, "w", io);
  if (s.stream != nullptr) {
    setvbuf(s.stream, nullptr, _IONBF, 0);
    rte_openlog_stream(s.stream);
  }
}

std::string last_dpdk_error() {
  LogState& s = state();
  std::lock_guard lock(s.mu);
  if (s.errors.empty()) return {};
  // A driver's own line ("net_af_packet0: ioctl failed (SIOCGIFINDEX): No such device") says more than the
  // generic EAL lines that follow it ("EAL: Failed to attach device on primary process").
  std::string line = s.errors.back();
  for (const auto& l : s.errors) {
    if (l.rfind("EAL:", 0) != 0) {
      line = l;
      break;
    }
  }
  while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
  return line;
}

void clear_dpdk_errors() {
  LogState& s = state();
  std::lock_guard lock(s.mu);
  s.errors.clear();
  s.partial.clear();
}

}  // namespace esw::dp
