// eswitchctl: the control process and CLI for eswitchd. See control/README.md.
//
//   eswitchctl validate FILE                 offline: load + compile every rule, print located errors
//   eswitchctl diff FILE                     what applying FILE would change
//   eswitchctl apply FILE [--dry-run]        make the switch FILE, all or nothing
//   eswitchctl watch FILE                    keep the switch equal to FILE (applies every change)
//   eswitchctl show ports|vports|tables|rules|representors
//   eswitchctl stats [--interval S] [--count N]
//   eswitchctl trace PACKET | --hex HEX --in-port PORT
//   eswitchctl config | ping
//
// Exit status: 0 success, 1 the request failed (invalid config, ...), 2 eswitchd unreachable.

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "control/api_protocol.h"
#include "control/commands.h"
#include "control/progress.h"

int main(int argc, char** argv) {
  CLI::App app{"eswitchctl: control and inspect eswitchd (validate, diff, apply, watch, show, stats, trace)"};
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the command: `eswitchctl show ports --json`

  std::string socket;
  std::string config_file;
  bool json = false;
  bool no_progress = false;
  double timeout = 0;
  app.add_option("-s,--socket", socket,
                 std::string("eswitchd API socket (default: $ESWITCH_SOCKET, dataplane.api_socket of the config "
                             "file, or ") + esw::api::kDefaultSocketPath + ")");
  app.add_option("-c,--config", config_file, "config file to take dataplane.api_socket from (read commands)");
  app.add_flag("-j,--json", json, "print results as JSON (for scripts)");
  app.add_flag("--no-progress", no_progress, "no progress line on stderr even on a terminal");
  app.add_option("--timeout", timeout, "give up waiting for eswitchd after this many seconds (0: never)");
  bool timing = false;
  app.add_flag("--timing", timing, "apply: print where the time went (eswitchctl's phases and eswitchd's) on stderr");

  std::string file;
  auto* validate = app.add_subcommand("validate", "check a config file offline (no eswitchd needed)");
  validate->add_option("FILE", file, "YAML config")->required();

  auto* diff = app.add_subcommand("diff", "show what applying FILE would change in the running switch");
  diff->add_option("FILE", file, "YAML config")->required();

  bool dry_run = false;
  uint64_t diff_limit = 50;
  auto* apply = app.add_subcommand("apply", "apply FILE as one transaction: all of it or nothing");
  apply->add_option("FILE", file, "YAML config")->required();
  apply->add_flag("--dry-run", dry_run, "validate and show the diff, change nothing");
  apply->add_option("--diff-limit", diff_limit, "print at most N changes (0: all)")->capture_default_str();

  double debounce = 0.2;
  double resync = 5;
  auto* watch = app.add_subcommand("watch", "apply FILE now and on every change; keep the running config when "
                                            "the new file is invalid");
  watch->add_option("FILE", file, "YAML config")->required();
  watch->add_option("--debounce", debounce, "wait for this many seconds of quiet after a change")
      ->capture_default_str();
  watch
      ->add_option("--resync", resync, "every N seconds, re-apply FILE if eswitchd's running config differs (0: never)")
      ->capture_default_str();

  std::string what;
  esw::ctl::ShowOptions show_opts;
  auto* show = app.add_subcommand("show", "show ports, vports, tables, rules, representors or smc with counters");
  show->add_option("WHAT", what, "ports | vports | tables | rules | representors | smc (SMC sessions)")
      ->required()
      ->check(CLI::IsMember({"ports", "vports", "tables", "rules", "representors", "smc"}));
  show->add_option("--table", show_opts.table, "rules: only this table");
  show->add_option("--limit", show_opts.limit, "rules: at most N rules");
  show->add_option("--offset", show_opts.offset, "rules: skip the first N rules");

  double interval = 1;
  int count = 1;
  auto* stats = app.add_subcommand("stats", "port rates (packets and bits per second) over an interval");
  stats->add_option("-i,--interval", interval, "seconds between the two samples")->capture_default_str()
      ->check(CLI::Range(0.01, 3600.0));
  stats->add_option("-n,--count", count, "repeat N times (0: until interrupted)")->capture_default_str();

  std::string packet, hex, in_port;
  std::vector<std::string> rules_add, rules_del;
  auto* rules = app.add_subcommand("rules", "add or delete named runtime rules (not in the config file; kept across applies)");
  rules->add_option("--add", rules_add,
                    "a rule in the one-string form with a name, e.g. 'priority=100,name=block-ssh,in_port=vm1,ipv4,"
                    "tcp_dst=22 actions=drop' (repeatable)");
  rules->add_option("--delete", rules_del, "the name of a runtime rule to delete (repeatable)");
  auto* trace = app.add_subcommand("trace", "run a packet through the tables and show each step");
  trace->add_option("PACKET", packet, "packet description, e.g. in_port=vm1,ipv4,ipv4_dst=198.18.0.2,tcp,tcp_dst=80");
  trace->add_option("--hex", hex, "the frame as hex bytes (with --in-port) instead of a description");
  trace->add_option("--in-port", in_port, "the port a --hex frame enters on");

  auto* config = app.add_subcommand("config", "print the running config (the YAML it was applied from)");
  std::string mig_vport, mig_state, mig_stream;
  auto* vport = app.add_subcommand("vport", "vport operations (migrate)");
  auto* migrate = vport->add_subcommand("migrate", "move a vhost-user vport's migration state one arc (VFIO v2 states)");
  migrate->add_option("VPORT", mig_vport, "the vport")->required();
  migrate->add_option("--to-state", mig_state,
                      "RUNNING, RUNNING_P2P, STOP, STOP_COPY (writes --stream), RESUMING (reads --stream), PRE_COPY, "
                      "PRE_COPY_P2P")->required();
  migrate->add_option("--stream", mig_stream, "the device-state stream file (STOP_COPY writes it, RESUMING reads it)");
  vport->require_subcommand(1);
  auto* ping = app.add_subcommand("ping", "check that eswitchd answers; print its pid and config generation");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  esw::ctl::Options o;
  o.json = json;
  o.timeout_s = timeout;
  o.timing = timing;
  o.progress = !no_progress && !json && esw::ctl::stderr_is_tty();
  const bool takes_file = diff->parsed() || apply->parsed() || watch->parsed();
  o.socket = esw::ctl::resolve_socket(socket, takes_file ? file : config_file);

  if (validate->parsed()) return esw::ctl::cmd_validate(o, file);
  if (diff->parsed()) return esw::ctl::cmd_diff(o, file);
  if (apply->parsed()) return esw::ctl::cmd_apply(o, file, dry_run, diff_limit, apply->count("--diff-limit") > 0);
  if (watch->parsed()) return esw::ctl::cmd_watch(o, file, debounce, resync);
  if (show->parsed()) return esw::ctl::cmd_show(o, what, show_opts);
  if (stats->parsed()) return esw::ctl::cmd_stats(o, interval, count);
  if (rules->parsed()) {
    if (rules_add.empty() && rules_del.empty()) {
      fmt::print(stderr, "eswitchctl rules: give --add RULE and/or --delete NAME\n");
      return 1;
    }
    return esw::ctl::cmd_rules(o, rules_add, rules_del);
  }
  if (trace->parsed()) {
    if (hex.empty() == packet.empty()) {
      fmt::print(stderr, "eswitchctl trace: give either PACKET or --hex HEX --in-port PORT\n");
      return 2;
    }
    if (!hex.empty() && in_port.empty()) {
      fmt::print(stderr, "eswitchctl trace: --hex needs --in-port\n");
      return 2;
    }
    return esw::ctl::cmd_trace(o, packet, hex, in_port);
  }
  if (config->parsed()) return esw::ctl::cmd_config(o);
  if (ping->parsed()) return esw::ctl::cmd_ping(o);
  if (migrate->parsed()) return esw::ctl::cmd_vport_migrate(o, mig_vport, mig_state, mig_stream);
  return 2;
}
