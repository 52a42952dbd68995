// The vport family of the management API: migrate (a write: a vhost-user vport's migration state, VFIO v2
// states and arcs, vdpa/migration.h).
//
//   {"method": "migrate", "params": {"vport": "vm1", "to_state": "STOP_COPY", "stream": "/path"}}
//
// One arc per request (the legal arcs of linux/vfio.h; anything else is refused naming both states):
//   -> STOP_COPY   the vport is stopped (no descriptor consumed or produced), then its state is written to the
//                  file `stream`: negotiated features, per-vring indices and inflight counts, the binding, the
//                  runtime rules that name it, its counters.
//   STOP -> RESUMING   `stream` is read and checked (format, bounds, the vport's name, queue pairs and binding
//                  against this eswitchd's config); a bad stream is refused with the byte and field at fault.
//   RESUMING -> STOP   the stream is installed: its runtime rules, counters that continue from the stream.
//   -> RUNNING     after a resume, the guest's MAC is announced (RARP) so learning bridges find its new place.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <algorithm>

#include <fmt/format.h>

#include "dataplane/daemon/api_methods.h"
#include "dataplane/daemon/state_store.h"
#include "dataplane/daemon/switch.h"
#include "vdpa/migration.h"
#include "vdpa/vhost_port.h"

namespace esw::dp {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using vdpa::MigState;

// Streams loaded by STOP -> RESUMING, installed by RESUMING -> STOP (main thread only).
std::map<std::string, vdpa::MigStream>& pending() {
  static std::map<std::string, vdpa::MigStream> m;
  return m;
}

// The runtime rules that name the vport as a port: in_port=VPORT, or a port action (output, mirror,
// to_representor) with VPORT, read from the parsed rules (not their text: a meter or rule name equal to the
// vport's is no port).
std::vector<std::string> rules_naming(const Switch& sw, const std::string& vport) {
  std::vector<std::string> out;
  const std::vector<RuleDef>& rules = sw.runtime_rules();
  for (size_t i = 0; i < rules.size(); ++i) {
    const RuleDef& r = rules[i];
    const bool named =
        std::any_of(r.match.begin(), r.match.end(), [&](const auto& m) { return m.first == "in_port" && m.second == vport; }) ||
        std::any_of(r.actions.begin(), r.actions.end(), [&](const ActionItem& a) {
          return (a.name == "output" || a.name == "mirror" || a.name == "to_representor") && a.arg == vport;
        });
    if (named) out.push_back(sw.runtime_rule_texts()[i]);
  }
  return out;
}

// The stream file: a regular file, never a FIFO or device (open would block the main loop) nor a symlink.
// `size` (optional) gets its size.
int open_stream(const std::string& path, int flags, size_t* size = nullptr) {
  const bool reading = (flags & O_ACCMODE) == O_RDONLY;
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
  if (fd < 0) throw ApiError{"io_error", fmt::format("migrate: cannot open stream {}: {}", path, strerror(errno))};
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      (reading && static_cast<size_t>(st.st_size) > vdpa::kMigMaxStreamBytes)) {
    ::close(fd);
    throw ApiError{"bad_stream", fmt::format("migrate: stream {} is not a regular file of at most {} bytes", path,
                                             vdpa::kMigMaxStreamBytes)};
  }
  if (size != nullptr) *size = static_cast<size_t>(st.st_size);
  return fd;
}

void write_stream(const std::string& path, const std::vector<uint8_t>& bytes) {
  const int fd = open_stream(path, O_WRONLY | O_CREAT);
  // Truncated only once known to be a regular file; no fsync: the destination reads it at once (downtime, not
  // durable state).
  const bool ok = ::ftruncate(fd, 0) == 0 && write_all(fd, reinterpret_cast<const char*>(bytes.data()), bytes.size());
  const int e = errno;
  if (::close(fd) != 0 || !ok) {
    throw ApiError{"io_error", fmt::format("migrate: cannot write stream {}: {}", path, strerror(ok ? errno : e))};
  }
}

std::vector<uint8_t> read_stream(const std::string& path) {
  size_t size = 0;
  const int fd = open_stream(path, O_RDONLY, &size);
  std::vector<uint8_t> b(size);
  size_t off = 0;
  while (off < b.size()) {
    const ssize_t n = ::read(fd, b.data() + off, b.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  ::close(fd);
  b.resize(off);
  return b;
}

const cfg::VportConfig* vport_config(const Switch& sw, const std::string& name) {
  for (const auto& v : sw.config().vports) {
    if (v.name == name) return &v;
  }
  return nullptr;
}

// A stream that decoded cleanly still has to fit this vport.
void check_fits(const vdpa::MigStream& s, const std::string& name, const cfg::VportConfig& v, uint16_t queues,
                const std::string& path) {
  auto refuse = [&](const std::string& what) {
    throw ApiError{"bad_stream", fmt::format("migrate: stream {}: {}", path, what)};
  };
  if (s.vport != name) refuse(fmt::format("it is vport '{}', not '{}'", s.vport, name));
  if (s.queue_pairs != queues) {
    refuse(fmt::format("{} queue pair(s), vport {} has {} configured", s.queue_pairs, name, queues));
  }
  if (s.hw_addr != v.hw_addr.value_or("")) {
    refuse(fmt::format("binding hw_addr '{}' differs from vport {}'s '{}'", s.hw_addr, name, v.hw_addr.value_or("")));
  }
  if (s.ipv4 != v.ipv4 || s.ipv6 != v.ipv6) refuse(fmt::format("binding addresses differ from vport {}'s", name));
  if (s.counters.dropped.size() > static_cast<size_t>(DropReason::kCount)) {
    refuse(fmt::format("{} drop reasons, this eswitchd knows {}", s.counters.dropped.size(),
                       static_cast<size_t>(DropReason::kCount)));
  }
}

json run_migrate(ApiContext& ctx, const ApiCall& call) {
  const auto t = Clock::now();
  const std::string name = api_param_string(call.params, "vport", true);
  const std::string to_name = api_param_string(call.params, "to_state", true);
  const std::string path = api_param_string(call.params, "stream", false);
  const auto to = vdpa::parse_mig_state(to_name);
  if (!to) {
    throw ApiError{"bad_request", fmt::format("migrate: to_state '{}' is not one of RUNNING, RUNNING_P2P, STOP, "
                                              "STOP_COPY, RESUMING, PRE_COPY, PRE_COPY_P2P", to_name)};
  }
  const int idx = ctx.sw.port_index(name);
  const cfg::VportConfig* vc = vport_config(ctx.sw, name);
  if (idx < 0 || vc == nullptr) throw ApiError{"not_found", fmt::format("migrate: no vport named '{}'", name)};
  auto* port = dynamic_cast<vdpa::VhostUserPort*>(ctx.sw.ports()[static_cast<size_t>(idx)].get());
  if (port == nullptr) {
    throw ApiError{"bad_request", fmt::format("migrate: vport {} is not a vhost_user vport", name)};
  }
  const MigState from = port->mig_state();
  if (const std::string e = vdpa::mig_arc_error(from, *to); !e.empty()) {
    throw ApiError{"illegal_arc", fmt::format("migrate: vport {}: {}", name, e)};
  }
  if ((*to == MigState::kStopCopy || *to == MigState::kResuming) && path.empty()) {
    throw ApiError{"bad_request", fmt::format("migrate: {} needs params.stream (a file path)", vdpa::mig_state_name(*to))};
  }
  json reply{{"vport", name}, {"from", vdpa::mig_state_name(from)}, {"to", vdpa::mig_state_name(*to)}};

  if (*to == MigState::kStopCopy) {
    port->set_mig_state(MigState::kStopCopy);  // stopped (and no burst running) before anything is read
    vdpa::MigStream s;
    s.vport = name;
    port->save_mig(s);
    s.hw_addr = vc->hw_addr.value_or("");
    s.ipv4 = vc->ipv4;
    s.ipv6 = vc->ipv6;
    for (const PortStats& ps : ctx.sw.port_stats()) {
      if (ps.name != name) continue;
      const PortCounters& c = ps.counters;
      s.counters.rx_packets = c.rx_packets;
      s.counters.rx_bytes = c.rx_bytes;
      s.counters.tx_packets = c.tx_packets;
      s.counters.tx_bytes = c.tx_bytes;
      s.counters.tx_dropped = c.tx_dropped;
      s.counters.dropped.assign(c.dropped.begin(), c.dropped.end());
    }
    s.rules = rules_naming(ctx.sw, name);
    const std::vector<uint8_t> bytes = vdpa::encode_mig_stream(s);
    try {
      // What the destination will refuse is refused here, before anything is written (e.g. more addresses or
      // rules naming the vport than the stream carries): the decoder holds the bounds.
      vdpa::MigStream check;
      std::string error;
      if (!vdpa::decode_mig_stream(bytes.data(), bytes.size(), check, error)) {
        throw ApiError{"bad_stream", fmt::format("migrate: vport {} does not fit a stream: {}", name, error)};
      }
      write_stream(path, bytes);
    } catch (...) {
      port->set_mig_state(from);  // the arc failed: the device stays where it was
      throw;
    }
    uint32_t inflight = 0;
    for (const auto& v : s.vrings) inflight += v.inflight;
    reply["stream"] = path;
    reply["bytes"] = bytes.size();
    reply["features"] = s.features;
    reply["inflight"] = inflight;
    reply["rules"] = s.rules.size();
    reply["rx_packets"] = s.counters.rx_packets;
    reply["tx_packets"] = s.counters.tx_packets;
  } else if (*to == MigState::kResuming) {
    const std::vector<uint8_t> bytes = read_stream(path);
    vdpa::MigStream s;
    std::string error;
    if (!vdpa::decode_mig_stream(bytes.data(), bytes.size(), s, error)) {
      throw ApiError{"bad_stream", fmt::format("migrate: stream {}: {}", path, error)};
    }
    const uint16_t queues = port->spec().rx_queues;
    check_fits(s, name, *vc, queues, path);
    reply["stream"] = path;
    reply["bytes"] = bytes.size();
    reply["rules"] = s.rules.size();
    pending()[name] = std::move(s);
    port->set_mig_state(MigState::kResuming);
  } else if (from == MigState::kResuming) {  // -> STOP: install
    auto it = pending().find(name);
    if (it == pending().end()) throw ApiError{"bad_request", fmt::format("migrate: vport {}: no stream loaded", name)};
    const vdpa::MigStream& s = it->second;
    if (!s.rules.empty()) {
      const ApplyResult r = ctx.sw.change_rules(s.rules, {});
      if (!r.ok) {
        throw ApiError{"invalid_config", fmt::format("migrate: vport {}: the stream's rules do not install; "
                                                     "still RESUMING", name), config_errors_json(r.errors)};
      }
      if (ctx.on_applied) ctx.on_applied();
    }
    // The stream's counts become this port's base: what the switch counted here so far is subtracted, so the
    // totals read exactly the stream's values from now on.
    PortCounters now{};
    for (const PortStats& ps : ctx.sw.port_stats()) {
      if (ps.name == name) now = ps.counters;
    }
    PortCounters carried{};
    carried.rx_packets = s.counters.rx_packets - std::min(s.counters.rx_packets, now.rx_packets);
    carried.rx_bytes = s.counters.rx_bytes - std::min(s.counters.rx_bytes, now.rx_bytes);
    carried.tx_packets = s.counters.tx_packets - std::min(s.counters.tx_packets, now.tx_packets);
    carried.tx_bytes = s.counters.tx_bytes - std::min(s.counters.tx_bytes, now.tx_bytes);
    carried.tx_dropped = s.counters.tx_dropped - std::min(s.counters.tx_dropped, now.tx_dropped);
    for (size_t i = 0; i < s.counters.dropped.size() && i < carried.dropped.size(); ++i) {
      carried.dropped[i] = s.counters.dropped[i] - std::min(s.counters.dropped[i], now.dropped[i]);
    }
    port->load_mig(s, carried);
    reply["rules"] = s.rules.size();
    reply["rx_packets"] = s.counters.rx_packets;
    reply["tx_packets"] = s.counters.tx_packets;
    pending().erase(it);
    port->set_mig_state(MigState::kStop);
  } else {
    port->set_mig_state(*to);
  }
  reply["dirty_logging"] = port->dirty_logging();
  reply["ms"] = ms_since(t);
  fmt::print("eswitchd: vport {}: migration {} -> {}\n", name, reply["from"].get<std::string>(),
             reply["to"].get<std::string>());
  fflush(stdout);
  return reply;
}

}  // namespace

void add_vport_methods(ApiMethodTable& table) {
  table.push_back({"migrate", ApiAccess::kWrite, false, nullptr, run_migrate});
}

}  // namespace esw::dp
