// eswitchd: the eswitch dataplane process.
//
//   eswitchd [--config FILE] [--duration S] [--stats-interval S] [--stats-json FILE] [--ready-file FILE]
//            [--api-socket PATH|none]
//
// Without --config it runs the embedded default config (config/default.yaml). Exit status: 0 after a clean
// stop, 1 on a config or start-up error (one line on stderr naming the cause), 3 when mbufs were missing from
// the pool after shutdown.
//
// The main thread is the control thread and runs one event loop (dataplane/daemon/event_loop.h) that everything
// on the main lcore registers with: the management API (dataplane/daemon/api_server.h: its socket, connections
// and the config-parse notifier), the telemetry snapshot timer and rule-refresh notifier
// (dataplane/daemon/telemetry.h), the switch maintenance timer (frees retired snapshots), --stats-interval
// printing, --duration, and SIGINT/SIGTERM. Nothing registered may block. rte_pdump is initialised so
// dpdk-dumpcap can capture on eswitch ports (it needs hugepages: a --no-huge primary's memory cannot be shared
// with a secondary process).

#include <rte_pdump.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <unordered_map>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "dataplane/daemon/api_server.h"
#include "dataplane/daemon/eal.h"
#include "dataplane/daemon/event_loop.h"
#include "dataplane/error.h"
#include "dataplane/daemon/switch.h"
#include "dataplane/daemon/telemetry.h"

namespace {

// How often the switch frees retired snapshots (Switch::maintain).
constexpr auto kMaintainPeriod = std::chrono::milliseconds(50);
// A safety net only: port backends wake the main lcore themselves (representors/README.md). No millisecond tick:
// a main lcore that wakes 1000 times a second measurably slows the workers (bench scenario a: -10%).
constexpr auto kPortServicePeriod = std::chrono::milliseconds(100);

nlohmann::json stats_json(const esw::dp::Switch& sw) {
  nlohmann::json ports = nlohmann::json::array();
  for (const auto& s : sw.port_stats()) {
    const auto& c = s.counters;
    nlohmann::json drops;
    for (size_t i = 0; i < c.dropped.size(); ++i) {
      drops[esw::dp::drop_reason_name(static_cast<esw::dp::DropReason>(i))] = c.dropped[i];
    }
    ports.push_back({{"name", s.name},
                     {"role", esw::dp::port_role_name(s.role)},
                     {"driver", s.driver},
                     {"rx_packets", c.rx_packets},
                     {"rx_bytes", c.rx_bytes},
                     {"tx_packets", c.tx_packets},
                     {"tx_bytes", c.tx_bytes},
                     {"tx_dropped", c.tx_dropped},
                     {"dropped", drops}});
  }
  return {{"ports", ports}};
}

// Reads a whole file; false when it cannot be read (the loader then names the cause).
bool read_text(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return false;
  out = ss.str();
  return true;
}

int run(int argc, char** argv) {
  CLI::App app{"eswitchd: eswitch dataplane (userspace SmartNIC embedded switch on DPDK)"};
  std::string config_path;
  double duration = 0;
  double stats_interval = 0;
  std::string stats_json_path;
  std::string ready_file;
  bool print_config = false;
  std::vector<std::string> traces;
  std::string api_socket_override;
  app.add_option("-c,--config", config_path, "YAML config file (default: the embedded config/default.yaml)");
  app.add_option("--duration", duration, "stop after this many seconds (0: run until SIGINT/SIGTERM)");
  app.add_option("--stats-interval", stats_interval, "print port counters every N seconds (0: only at exit)");
  app.add_option("--stats-json", stats_json_path, "write final port counters as JSON to this file at exit");
  app.add_option("--ready-file", ready_file, "create this file once every port forwards (for scripts)");
  app.add_flag("--print-default-config", print_config, "print the embedded default config and exit");
  app.add_option("--trace", traces,
                 "trace a packet description (e.g. in_port=vm1,ipv4,ipv4_dst=198.18.0.2,tcp,tcp_dst=80) "
                 "through the configured tables and exit; repeatable");
  app.add_option("--api-socket", api_socket_override,
                 "management API socket (default: dataplane.api_socket from the config; 'none' disables it)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (print_config) {
    fputs(esw::cfg::default_config_yaml(), stdout);
    return 0;
  }

  // The API's `config` method reports the exact text the running config came from.
  std::string config_text;
  const bool have_text = config_path.empty() ? (config_text = esw::cfg::default_config_yaml(), true)
                                             : read_text(config_path, config_text);
  const esw::cfg::LoadResult loaded =
      !have_text ? esw::cfg::load_config_file(config_path)
                 : esw::cfg::load_config_string(config_text,
                                                config_path.empty() ? "default.yaml (embedded)" : config_path);
  if (!loaded.config) {
    const std::string source = config_path.empty() ? "default.yaml (embedded)" : config_path;
    for (const auto& e : loaded.errors) fmt::print(stderr, "eswitchd: {}: {}\n", source, e.to_string());
    return 1;
  }
  const esw::cfg::Config& config = *loaded.config;
  std::string api_socket = config.dataplane.api_socket;
  if (!api_socket_override.empty()) api_socket = api_socket_override == "none" ? "" : api_socket_override;

  signal(SIGPIPE, SIG_IGN);
  int status = 0;
  bool pdump = false;
  try {
    // The main lcore's one event loop. Signals are routed into it first: one during start-up stops the switch as
    // soon as the loop runs.
    esw::dp::EventLoop loop;
    int stop_signal = 0;
    for (int sig : {SIGINT, SIGTERM}) {
      loop.add_signal(sig, [&](int s) {
        stop_signal = s;
        loop.stop();
      }, "eswitchd: stop on SIGINT/SIGTERM");
    }
    // Another eswitchd on this socket stops here, before it touches the EAL or a single port.
    if (traces.empty() && !api_socket.empty()) esw::dp::ApiServer::check_socket_path(api_socket);
    esw::dp::Eal::init(config);
    // Capture is a convenience: a primary without pdump still forwards.
    pdump = rte_pdump_init() == 0;
    if (!pdump) fmt::print(stderr, "eswitchd: warning: rte_pdump_init failed; dpdk-dumpcap will not work\n");
    esw::dp::Telemetry::register_commands();
    {
      esw::dp::Switch sw(config);
      if (!traces.empty()) {
        for (const auto& t : traces) {
          esw::dp::TraceResult tr;
          std::string err;
          if (!sw.trace(t, tr, err)) {
            fmt::print(stderr, "eswitchd: --trace '{}': {}\n", t, err);
            status = 1;
            continue;
          }
          fmt::print("packet: {}\n", tr.packet);
          for (const auto& l : tr.lines) fmt::print("  {}\n", l);
          fmt::print("verdict: {}\n", tr.verdict);
        }
        sw.close();
        esw::dp::Telemetry::clear();
        if (pdump) rte_pdump_uninit();
        esw::dp::Eal::cleanup();
        return status;
      }
      // Listening before forwarding starts; requests are served by the event loop, one at a time.
      std::unique_ptr<esw::dp::ApiServer> api;
      if (!api_socket.empty()) {
        esw::dp::ApiServerOptions opts;
        opts.socket_path = api_socket;
        opts.group = config.dataplane.api_socket_group;
        opts.max_request_bytes = config.dataplane.api_max_request_bytes;
        opts.max_clients = config.dataplane.api_max_clients;
        opts.idle_timeout = std::chrono::milliseconds(config.dataplane.api_idle_timeout_ms);
        opts.request_timeout = std::chrono::milliseconds(config.dataplane.api_request_timeout_ms);
        esw::dp::RunningSource running;
        running.yaml = config_text;
        running.source = config_path.empty() ? "default.yaml (embedded)" : config_path;
        api = std::make_unique<esw::dp::ApiServer>(sw, loop, opts, running);
      }

      sw.start();
      fmt::print("eswitchd: forwarding on {} ports with {} worker(s){}\n", sw.port_count(),
                 config.dataplane.worker_cores.size(),
                 esw::dp::Eal::using_hugepages() ? "" : " (no hugepages: --no-huge)");
      if (api) fmt::print("eswitchd: management API on {}\n", api->socket_path());
      fflush(stdout);

      // Everything else the main lcore does is a loop handler. Subsystems that need the main lcore (the
      // representors' tap fds and pump, later vhost and SMC-D events) register with `loop` here, before run().
      auto telemetry = std::make_unique<esw::dp::TelemetryPublisher>(loop, sw, [&] {
        esw::dp::TelemetryInfo info;
        info.api_socket = api_socket;
        if (api) {
          info.generation = api->running().generation;
          info.config_hash = api->running().hash;
        }
        return info;
      });
      // After an apply, once the request that made it has been answered.
      if (api) api->on_applied([&] { loop.post([&] { telemetry->publish_now(); }); });
      loop.add_timer(kMaintainPeriod, [&] { sw.maintain(); }, "switch maintenance (snapshot reclaim)");
      if (stats_interval > 0) {
        using Ns = std::chrono::nanoseconds;
        loop.add_timer(std::chrono::duration_cast<Ns>(std::chrono::duration<double>(stats_interval)),
                       [&] {
                         sw.print_summary(stdout);
                         fflush(stdout);
                       },
                       "--stats-interval printing");
      }
      if (duration > 0) {
        using Ns = std::chrono::nanoseconds;
        loop.add_oneshot(std::chrono::duration_cast<Ns>(std::chrono::duration<double>(duration)), [&] { loop.stop(); },
                         "--duration");
      }
      // Port backends with a main-lcore share (tap representors today, vhost-user later): their fd is watched
      // while the port exists, and the service tick drains what the workers queued for the host.
      std::unordered_map<int, esw::dp::EventLoop::Id> port_fds;
      sw.set_service_hooks({[&](int fd, std::function<void()> on_readable) {
                              port_fds[fd] = loop.add_fd(
                                  fd, esw::dp::EventLoop::kRead, [cb = std::move(on_readable)](uint32_t) { cb(); },
                                  fmt::format("port service fd {}", fd));
                            },
                            [&](int fd) {
                              auto it = port_fds.find(fd);
                              if (it == port_fds.end()) return;
                              loop.remove(it->second);
                              port_fds.erase(it);
                            }});
      loop.add_timer(kPortServicePeriod, [&] { sw.service_ports(); }, "port service safety tick");
      if (!ready_file.empty()) std::ofstream(ready_file) << getpid() << "\n";

      loop.run();

      if (stop_signal != 0) fmt::print("eswitchd: signal {} received, stopping\n", stop_signal);
      telemetry.reset();  // clears the snapshots
      api.reset();  // removes the socket: nobody can ask a stopping switch for anything
      sw.close();
      sw.print_summary(stdout);
      const esw::dp::MempoolReport pool = sw.mempool_report();
      if (pool.in_use == 0) {
        fmt::print("eswitchd: stopped cleanly; all {} mbufs back in the pool\n", pool.size);
      } else {
        fmt::print(stderr, "eswitchd: {} of {} mbufs still in use after shutdown (leak)\n", pool.in_use, pool.size);
        status = 3;
      }
      if (!stats_json_path.empty()) {
        nlohmann::json j = stats_json(sw);
        j["mbufs"] = {{"size", pool.size}, {"in_use_after_shutdown", pool.in_use}};
        std::ofstream(stats_json_path) << j.dump(2) << "\n";
      }
    }
  } catch (const esw::dp::Error& e) {
    fmt::print(stderr, "eswitchd: {}\n", e.what());
    status = 1;
  }
  esw::dp::Telemetry::clear();
  if (pdump) rte_pdump_uninit();
  esw::dp::Eal::cleanup();
  if (!ready_file.empty()) unlink(ready_file.c_str());
  return status;
}

}  // namespace

int main(int argc, char** argv) { return run(argc, argv); }
