// eswitchd: the eswitch dataplane process.
//
//   eswitchd [--config FILE] [--state-dir DIR|none] [--state-sync full|process] [--duration S] [--stats-interval S]
//            [--stats-json FILE] [--ready-file FILE] [--api-socket PATH|none] [--smc-idle-timeout S]
//
// What it runs at start (the state directory is dataplane/daemon/state_store.h):
//  - --config FILE: that file, with no runtime rules; it replaces the saved state (an explicit --config wins).
//  - no --config: the saved state of --state-dir (default /var/lib/eswitch): the last config committed by an
//    apply, and the runtime rules, as they were when the last change was committed; without a saved config, the
//    embedded default config (config/default.yaml) plus any saved runtime rules.
// Every committed apply and runtime-rules change is saved before its reply is sent; `--state-dir none` keeps
// nothing.
//
// Exclusive ownership (instance_lock.h): the DPDK file prefix (default "eswitch"), API socket, state directory
// and every interface, vhost socket and PCI device of the config are locked before the EAL starts; one held by
// another instance ends start-up with one line naming its pid. Stale DPDK runtime directories of dead eswitchd
// instances are removed.
//
// Supervisors: with $NOTIFY_SOCKET set (systemd Type=notify), READY=1 is sent once every port forwards and
// STOPPING=1 when a stop begins (written to the socket directly, no libsystemd).
//
// Exit status: 0 after a clean stop; 1 on a config or start-up error (one line on stderr naming the cause);
// 2 on a command-line error; 3 when mbufs were missing from the pool after shutdown; 4 when something the config
// needs (file prefix, API socket, state directory, interface, vhost socket, PCI device) is owned by another
// running instance.
//
#include <rte_pdump.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <unordered_map>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "dataplane/daemon/api_server.h"
#include "dataplane/daemon/eal.h"
#include "dataplane/daemon/event_loop.h"
#include "dataplane/daemon/ism_service.h"
#include "dataplane/daemon/instance_lock.h"
#include "dataplane/daemon/state_store.h"
#include "dataplane/daemon/state_writer.h"
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

// sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET (a path, or '@' for the abstract namespace).
void notify_supervisor(const std::string& message) {
  const char* path = getenv("NOTIFY_SOCKET");
  if (path == nullptr || path[0] == '\0') return;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const size_t len = strlen(path);
  if (len >= sizeof addr.sun_path) return;
  memcpy(addr.sun_path, path, len);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  (void)sendto(fd, message.data(), message.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr),
               static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len));
  close(fd);
}

int run(int argc, char** argv) {
  using Clock = std::chrono::steady_clock;
  const auto t_start = Clock::now();
  // Start-up phases for the "forwarding" line: state read + config parse, EAL, switch (ports, rules), the rest.
  auto ms_between = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
  };
  Clock::time_point t_loaded, t_eal, t_switch;
  CLI::App app{"eswitchd: eswitch dataplane (userspace SmartNIC embedded switch on DPDK)"};
  std::string config_path;
  double duration = 0;
  double stats_interval = 0;
  std::string stats_json_path;
  std::string ready_file;
  bool print_config = false;
  std::vector<std::string> traces;
  std::string api_socket_override;
  double smc_idle_timeout = 600;
  unsigned ism_chid = esw::dp::kDefaultIsmChid;
  std::string state_dir = "/var/lib/eswitch";
  app.add_option("-c,--config", config_path,
                 "YAML config file; replaces the saved state (default: the saved state, else the embedded "
                 "config/default.yaml)");
  app.add_option("--state-dir", state_dir,
                 "where the applied config and runtime rules are saved and restored from ('none': nowhere)");
  std::string state_sync = "full";
  app.add_option("--state-sync", state_sync,
                 "full: fsync every save (survives power loss); process: write and rename only (survives a crash "
                 "or kill -9 of eswitchd; for high rates of runtime-rule changes)")
      ->check(CLI::IsMember({"full", "process"}));
  app.add_option("--duration", duration, "stop after this many seconds (0: run until SIGINT/SIGTERM)");
  app.add_option("--stats-interval", stats_interval, "print port counters every N seconds (0: only at exit)");
  app.add_option("--stats-json", stats_json_path, "write final port counters as JSON to this file at exit");
  app.add_option("--ready-file", ready_file, "create this file once every port forwards (for scripts)");
  app.add_flag("--print-default-config", print_config, "print the embedded default config and exit");
  app.add_option("--trace", traces,
                 "trace a packet description (e.g. in_port=vm1,ipv4,ipv4_dst=198.18.0.2,tcp,tcp_dst=80) "
                 "through the configured tables and exit; repeatable");
  app.add_option("--smc-ism-chid", ism_chid,
                 "CHID of the emulated ISM device (SMC-D between vports with smc.ism), 0xFF00-0xFFFE")
      ->check(CLI::Range(0xFF00u, 0xFFFEu));
  app.add_option("--smc-idle-timeout", smc_idle_timeout,
                 "seconds without an SMC event (SYN, CLC, FIN/RST) after which an SMC session and its RoCEv2 grants "
                 "end")
      ->check(CLI::Range(0.1, 86400.0))
      ->capture_default_str();
  app.add_option("--api-socket", api_socket_override,
                 "management API socket (default: dataplane.api_socket from the config; 'none' disables it)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (print_config) {
    fputs(esw::cfg::default_config_yaml(), stdout);
    return 0;
  }

  const bool trace_mode = !traces.empty();
  // Held until the very end: another instance may take them only once our runtime directory is gone.
  std::unique_ptr<esw::dp::StateStore> store;
  esw::dp::InstanceLocks locks;
  auto fail_start = [](const std::exception& e, int code) {
    fmt::print(stderr, "eswitchd: {}\n", e.what());
    return code;
  };
  try {
    if (!trace_mode && !state_dir.empty() && state_dir != "none") {
      store = std::make_unique<esw::dp::StateStore>(state_dir, state_sync == "full");
    }
  } catch (const esw::dp::InUseError& e) {
    return fail_start(e, esw::dp::kExitInUse);
  } catch (const esw::dp::Error& e) {
    return fail_start(e, 1);
  }

  // The API's `config` method reports the exact text the running config came from.
  std::string config_text;
  std::string source;
  uint64_t generation = 1;
  std::vector<std::string> saved_rules;
  bool restored = false;
  bool have_text = true;
  if (!config_path.empty()) {
    source = config_path;
    have_text = read_text(config_path, config_text);
  } else {
    std::vector<std::string> notes;
    std::optional<esw::dp::SavedConfig> saved;
    if (store) {
      saved = store->load_config(notes);
      if (auto rules = store->load_rules(notes)) saved_rules = std::move(*rules);
    }
    for (const auto& n : notes) fmt::print(stderr, "eswitchd: {}\n", n);
    if (saved) {
      config_text = std::move(saved->yaml);
      source = saved->source;
      generation = saved->generation;
      restored = true;
    } else {
      config_text = esw::cfg::default_config_yaml();
      source = "default.yaml (embedded)";
    }
  }
  const esw::cfg::LoadResult loaded = !have_text ? esw::cfg::load_config_file(config_path)
                                                 : esw::cfg::load_config_string(config_text, source);
  t_loaded = Clock::now();
  if (!loaded.config) {
    for (const auto& e : loaded.errors) fmt::print(stderr, "eswitchd: {}: {}\n", source, e.to_string());
    if (restored) {
      fmt::print(stderr, "eswitchd: (the config saved in {}; start with --config FILE to replace it)\n",
                 store->dir());
    }
    return 1;
  }
  esw::cfg::Config config = *loaded.config;
  // A --trace run opens the config's ports for a moment, beside a running switch's prefix.
  if (trace_mode && config.dataplane.file_prefix.empty()) {
    config.dataplane.file_prefix = fmt::format("esw-trace-{}", getpid());
  }
  std::string api_socket = config.dataplane.api_socket;
  if (!api_socket_override.empty()) api_socket = api_socket_override == "none" ? "" : api_socket_override;
  if (trace_mode) api_socket.clear();

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
    // Another eswitchd on anything this config uses stops here, before it touches the EAL or a single port.
    const std::string file_prefix = esw::dp::default_file_prefix(config.dataplane);
    locks.claim(esw::dp::exclusive_resources(config, file_prefix, api_socket));
    for (const auto& dir : esw::dp::clean_stale_runtime_dirs()) {
      fmt::print(stderr, "eswitchd: removed what a dead eswitchd left behind: {}\n", dir);
    }
    (void)esw::dp::clean_stale_lock_files();  // dead instances' lock files (harmless, but they pile up)
    if (!api_socket.empty()) esw::dp::ApiServer::check_socket_path(api_socket);
    esw::dp::Eal::init(config);
    t_eal = Clock::now();
    // Capture is a convenience: a primary without pdump still forwards.
    pdump = rte_pdump_init() == 0;
    if (!pdump) fmt::print(stderr, "eswitchd: warning: rte_pdump_init failed; dpdk-dumpcap will not work\n");
    esw::dp::Telemetry::register_commands();
    {
      esw::dp::Switch sw(config);
      sw.set_smc_idle_timeout(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::duration<double>(smc_idle_timeout)));
      t_switch = Clock::now();
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
      // An apply that adds an interface, vhost socket or PCI device another instance owns is refused; what an
      // apply stops using is released.
      sw.set_ownership_hooks({[&](const esw::cfg::Config& desired, std::string& error) {
                                try {
                                  locks.claim(esw::dp::exclusive_resources(desired, file_prefix, api_socket));
                                  return true;
                                } catch (const esw::dp::Error& e) {
                                  error = e.what();
                                  return false;
                                }
                              },
                              [&](const esw::cfg::Config& running) {
                                locks.retain_only(esw::dp::exclusive_resources(running, file_prefix, api_socket));
                              }});
      // The saved runtime rules go in before the first packet is forwarded (one transaction, like the change
      // that saved them).
      if (!saved_rules.empty()) {
        const esw::dp::ApplyResult r = sw.change_rules(saved_rules, {});
        if (!r.ok) {
          throw esw::dp::Error(fmt::format(
              "state directory {}: the {} saved runtime rules cannot be installed on this config: {}; start with "
              "--config FILE to replace the saved state",
              store->dir(), saved_rules.size(), r.errors.empty() ? "?" : r.errors.front().to_string()));
        }
      }
      // What runs is what is saved: an explicit --config replaces the saved config and drops saved runtime rules.
      if (store && !config_path.empty()) {
        std::string err;
        if (!store->save_config({config_text, source, generation}, err) || !store->save_rules({}, err)) {
          throw esw::dp::Error(err);
        }
      }
      if (restored || !saved_rules.empty()) {
        fmt::print("eswitchd: restored from {}: config generation {} ({}), {} runtime rule(s)\n", store->dir(),
                   generation, restored ? source : "embedded default", saved_rules.size());
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
        running.source = source;
        running.generation = generation;
        api = std::make_unique<esw::dp::ApiServer>(sw, loop, opts, running);
      }
      // Saves what a committed change changed (state_writer.h: on a helper thread, coalesced); the reply to the
      // change is held by the API until its save is durable.
      uint64_t saved_generation = generation;
      uint64_t saved_rules_version = sw.runtime_rules_version();
      std::unique_ptr<esw::dp::StateWriter> writer;
      std::shared_ptr<esw::dp::EventLoop::Notifier> saved;
      uint64_t reported_save = 0;
      if (store && api) {
        saved = loop.add_notifier(
            [&] {
              // A big save (a 100k-rule config is ~10 MB) says what it cost: it is on the path to the reply.
              const esw::dp::StateWriter::Counters wc = writer->counters();
              if (wc.last_ticket > reported_save && wc.last_bytes >= (size_t{1} << 20)) {
                fmt::print("eswitchd: state: {} saved ({:.1f} MB) in {:.0f} ms (cpu {:.0f} ms)\n",
                           wc.last_is_config ? "config" : "runtime rules", wc.last_bytes / 1e6, wc.last_ms,
                           wc.last_cpu_ms);
                fflush(stdout);
              }
              reported_save = wc.last_ticket;
              api->mark_durable(writer->durable());
            },
            "state writer: saves durable");
        writer = std::make_unique<esw::dp::StateWriter>(*store, [n = saved](uint64_t) { n->notify(); });
      }
      auto persist = [&]() -> uint64_t {
        if (!writer) return 0;
        uint64_t ticket = 0;
        const esw::dp::RunningSource& run = api->running();
        if (run.generation != saved_generation) {
          ticket = writer->submit_config({run.yaml, run.source, run.generation});
          saved_generation = run.generation;
        }
        if (sw.runtime_rules_version() != saved_rules_version) {
          std::vector<std::string> texts;
          texts.reserve(sw.runtime_rule_texts().size());
          for (const auto& t : sw.runtime_rule_texts()) {
            if (!t.empty()) texts.push_back(t);
          }
          ticket = writer->submit_rules(std::move(texts));
          saved_rules_version = sw.runtime_rules_version();
        }
        return ticket;
      };

      sw.start();
      const auto t_fwd = Clock::now();
      fmt::print("eswitchd: forwarding on {} ports with {} worker(s){} ({:.0f} ms after start: config {:.0f}, EAL "
                 "{:.0f}, switch {:.0f}, runtime rules and the rest {:.0f})\n",
                 sw.port_count(), config.dataplane.worker_cores.size(),
                 esw::dp::Eal::using_hugepages() ? "" : " (no hugepages: --no-huge)", ms_between(t_start, t_fwd),
                 ms_between(t_start, t_loaded), ms_between(t_loaded, t_eal), ms_between(t_eal, t_switch),
                 ms_between(t_switch, t_fwd));
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
      // The emulated ISM service's per-vport endpoints (dataplane/daemon/ism_service.h) follow every apply.
      auto ism = std::make_unique<esw::dp::IsmService>(loop, static_cast<uint16_t>(ism_chid));
      esw::dp::set_ism_service(ism.get());
      auto ism_sync = [&] {
        for (const auto& p : ism->sync(sw)) fmt::print(stderr, "eswitchd: {}\n", p);
      };
      ism_sync();
      // After an apply, once the request that made it has been answered.
      if (api) {
        api->on_applied([&] {
          ism_sync();
          const uint64_t ticket = persist();
          loop.post([&] { telemetry->publish_now(); });
          return ticket;
        });
      }
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
      notify_supervisor(fmt::format("READY=1\nMAINPID={}\nSTATUS=forwarding on {} ports", getpid(), sw.port_count()));

      loop.run();
      notify_supervisor("STOPPING=1");

      if (stop_signal != 0) fmt::print("eswitchd: signal {} received, stopping\n", stop_signal);
      esw::dp::set_ism_service(nullptr);
      ism.reset();  // endpoints unlinked, DMBs zeroed
      telemetry.reset();  // clears the snapshots
      if (writer) {
        writer->drain();  // what was committed is saved; its held replies go out (best effort) before the close
        api->mark_durable(writer->durable());
        writer.reset();
      }
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
  } catch (const esw::dp::InUseError& e) {
    fmt::print(stderr, "eswitchd: {}\n", e.what());
    status = esw::dp::kExitInUse;
  } catch (const esw::dp::Error& e) {
    fmt::print(stderr, "eswitchd: {}\n", e.what());
    status = 1;
  }
  esw::dp::Telemetry::clear();
  if (pdump) rte_pdump_uninit();
  esw::dp::Eal::cleanup();
  if (!ready_file.empty()) unlink(ready_file.c_str());
  return status;  // `locks` and `store` are released after this, once the runtime directory is gone
}

}  // namespace

int main(int argc, char** argv) { return run(argc, argv); }
