// eswitchctl commands (except watch, in watch.cc): the offline validator and the API requests.

#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "config/config.h"
#include "control/api_client.h"
#include "control/commands.h"
#include "control/progress.h"
#include "control/render.h"
#include "dataplane/rules/ruleset.h"

namespace esw::ctl {

using json = nlohmann::json;

namespace {

bool read_file(const std::string& path, std::string& out, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = fmt::format("cannot read {}: {}", path, std::strerror(errno));
    return false;
  }
  // Straight into the string (a 100k-rule file is ~10 MB: no stream buffer and copies in between).
  out.clear();
  in.seekg(0, std::ios::end);
  if (const std::streamoff size = in.tellg(); size > 0) out.reserve(static_cast<size_t>(size));
  in.seekg(0);
  in.clear();
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) out.append(buf, static_cast<size_t>(in.gcount()));
  if (in.bad()) {
    error = fmt::format("cannot read {}: {}", path, std::strerror(errno));
    return false;
  }
  return true;
}

void print_json(const json& j) { fmt::print("{}\n", j.dump(2, ' ', false, json::error_handler_t::replace)); }

// Runs one request with a progress line on a terminal. Returns the reply, or an exit status via `status` when
// eswitchd could not be reached.
bool request(const Options& o, const std::string& label, const std::string& method, const json& params,
             ApiReply& reply, int& status, CallTiming* timing = nullptr) {
  ApiClient client(o.socket, o.timeout_s);
  struct Keep {
    ApiClient& client;
    CallTiming* out;
    ~Keep() {
      if (out != nullptr) *out = client.last_timing();
    }
  } keep{client, timing};
  Progress progress(label, o.progress);
  try {
    reply = client.call(method, params, [&](const CallProgress& p) {
      if (p.sent < p.total) {
        progress.update(fmt::format("sending {} of {}", si(static_cast<double>(p.sent), "B"),
                                    si(static_cast<double>(p.total), "B")));
      } else if (p.server != nullptr) {
        const std::string phase = p.server->value("phase", "");
        if (phase == "received") {
          progress.update("eswitchd: parsing and checking the YAML");
        } else if (phase == "applying" || phase == "diffing") {
          progress.update(fmt::format("eswitchd: {} {} rules (parsed in {:.0f} ms)", phase,
                                      p.server->value("rules", uint64_t{0}), p.server->value("parse_ms", 0.0)));
        } else {
          progress.update(fmt::format("eswitchd: {}", phase));
        }
      } else if (p.elapsed_s >= 0.3) {
        progress.update("waiting for eswitchd");
      }
    });
  } catch (const ConnectError& e) {
    progress.clear();
    fmt::print(stderr, "eswitchctl: {}\n", e.what());
    status = kExitUnreachable;
    return false;
  }
  progress.clear();
  return true;
}

// A failed reply: JSON for scripts (the whole reply), errors located in `file` for people.
int fail_reply(const Options& o, const std::string& file, const ApiReply& reply) {
  if (o.json) {
    print_json(reply.raw);
  } else {
    print_api_error(stderr, file, reply.error);
  }
  return kExitFailed;
}

// eswitchctl --timing: this process's share of a request and eswitchd's (its reply's "timing"), on stderr.
void print_timing(double read_ms, const CallTiming& t, const ApiReply& reply) {
  timespec cpu{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
  fmt::print(stderr,
             "eswitchctl: timing: read file {:.0f} ms, encode {:.0f} ms, send {:.0f} ms, wait for the reply {:.0f} ms, "
             "decode {:.0f} ms; eswitchctl cpu {:.0f} ms (process so far)\n",
             read_ms, t.encode, t.send, t.wait, t.decode,
             static_cast<double>(cpu.tv_sec) * 1e3 + static_cast<double>(cpu.tv_nsec) / 1e6);
  const json timing = reply.result.is_object() ? reply.result.value("timing", json::object()) : json::object();
  if (!timing.empty()) fmt::print(stderr, "eswitchctl: timing: eswitchd: {}\n", timing.dump());
}

std::string ms_text(double ms) {
  return ms >= 1000 ? fmt::format("{:.2f} s", ms / 1000) : fmt::format("{:.0f} ms", ms);
}

std::string counts_text(const json& r) {
  const json c = r.value("counts", json::object());
  return fmt::format("{} added, {} removed, {} changed", c.value("added", 0), c.value("removed", 0),
                     c.value("changed", 0));
}

void print_diff(const json& r, uint64_t limit) {
  const json diff = r.value("diff", json::array());
  uint64_t shown = 0;
  for (const auto& d : diff) {
    if (limit != 0 && shown >= limit) break;
    fmt::print("{}\n", format_diff_item(d));
    ++shown;
  }
  const uint64_t total = r.value("diff_total", uint64_t{diff.size()});
  if (shown < total) fmt::print("... and {} more (--diff-limit 0 shows all)\n", total - shown);
}

}  // namespace

std::string resolve_socket(const std::string& flag, const std::string& config_file) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("ESWITCH_SOCKET"); env != nullptr && env[0] != '\0') return env;
  if (!config_file.empty()) {
    // Best effort: even a config that does not validate usually says where its switch listens.
    try {
      YAML::Node root = YAML::LoadFile(config_file);
      if (root.IsMap() && root["dataplane"] && root["dataplane"].IsMap()) {
        YAML::Node s = root["dataplane"]["api_socket"];
        if (s && s.IsScalar() && !s.Scalar().empty()) return s.Scalar();
      }
    } catch (const std::exception&) {
    }
  }
  return kDefaultSocket;
}

int cmd_validate(const Options& o, const std::string& file) {
  cfg::LoadResult loaded = cfg::load_config_file(file);
  std::vector<cfg::Error> errors = loaded.errors;
  if (loaded.config) errors = dp::check_config(*loaded.config);
  json summary = json::object();
  if (loaded.config) {
    size_t rules = 0;
    for (const auto& t : loaded.config->tables) rules += t.rules.size();
    summary = {{"uplinks", loaded.config->uplinks.size()},
               {"vports", loaded.config->vports.size()},
               {"tables", loaded.config->tables.size()},
               {"rules", rules},
               {"meters", loaded.config->meters.size()}};
  }
  if (o.json) {
    json errs = json::array();
    for (const auto& e : errors) {
      errs.push_back({{"path", e.path}, {"line", e.line}, {"column", e.column}, {"message", e.message}});
    }
    print_json({{"file", file}, {"valid", errors.empty()}, {"errors", errs}, {"summary", summary}});
    return errors.empty() ? kExitOk : kExitFailed;
  }
  for (const auto& e : errors) {
    fmt::print(stderr, "{}\n",
               format_config_error(file, {{"path", e.path}, {"line", e.line}, {"column", e.column},
                                          {"message", e.message}}));
  }
  if (!errors.empty()) {
    fmt::print(stderr, "{}: {} error{}\n", file, errors.size(), errors.size() == 1 ? "" : "s");
    return kExitFailed;
  }
  fmt::print("{}: valid ({} uplinks, {} vports, {} tables, {} rules, {} meters)\n", file,
             summary["uplinks"].get<size_t>(), summary["vports"].get<size_t>(), summary["tables"].get<size_t>(),
             summary["rules"].get<size_t>(), summary["meters"].get<size_t>());
  return kExitOk;
}

int cmd_diff(const Options& o, const std::string& file) {
  std::string yaml, error;
  if (!read_file(file, yaml, error)) {
    fmt::print(stderr, "eswitchctl: {}\n", error);
    return kExitFailed;
  }
  ApiReply reply;
  int status = kExitOk;
  if (!request(o, "diff " + file, "diff", {{"yaml", yaml}, {"source", file}, {"progress", o.progress}}, reply,
               status)) {
    return status;
  }
  if (!reply.ok) return fail_reply(o, file, reply);
  if (o.json) {
    print_json(reply.result);
    return kExitOk;
  }
  const json& r = reply.result;
  if (r.value("diff_total", 0) == 0) {
    fmt::print("no changes: the running config already is {}\n", file);
  } else {
    print_diff(r, 0);
    fmt::print("{} change{}: {}\n", r.value("diff_total", 0), r.value("diff_total", 0) == 1 ? "" : "s",
               counts_text(r));
  }
  if (r.value("restart_required", false)) {
    fmt::print("note: dataplane settings differ; they take effect only when eswitchd restarts\n");
  }
  return kExitOk;
}

int cmd_apply(const Options& o, const std::string& file, bool dry_run, uint64_t diff_limit, bool limit_json) {
  using Clock = std::chrono::steady_clock;
  const auto t_read = Clock::now();
  std::string yaml, error;
  if (!read_file(file, yaml, error)) {
    fmt::print(stderr, "eswitchctl: {}\n", error);
    return kExitFailed;
  }
  const double read_ms = std::chrono::duration<double, std::milli>(Clock::now() - t_read).count();
  ApiReply reply;
  int status = kExitOk;
  json params = {{"yaml", std::move(yaml)}, {"source", file}, {"dry_run", dry_run}, {"progress", o.progress}};
  if ((!o.json || limit_json) && diff_limit != 0) params["diff_limit"] = diff_limit;
  CallTiming timing;
  const bool reached =
      request(o, (dry_run ? "apply --dry-run " : "apply ") + file, "apply", params, reply, status, &timing);
  if (o.timing) print_timing(read_ms, timing, reply);
  if (!reached) return status;
  if (!reply.ok) return fail_reply(o, file, reply);
  if (o.json) {
    print_json(reply.result);
    return kExitOk;
  }
  const json& r = reply.result;
  print_diff(r, diff_limit);
  const json t = r.value("timing", json::object());
  if (r.value("diff_total", 0) == 0) {
    fmt::print("{}: no changes{} (generation {})\n", file, dry_run ? " would be made" : "", r.value("generation", 0));
  } else {
    fmt::print("{} {}: {} (generation {}) in {} (parse {}, apply {})\n", dry_run ? "would apply" : "applied", file,
               counts_text(r), r.value("generation", 0), ms_text(t.value("total_ms", 0.0)),
               ms_text(t.value("parse_ms", 0.0)), ms_text(t.value("apply_ms", 0.0)));
  }
  if (r.value("restart_required", false)) {
    fmt::print("note: dataplane settings changed; they take effect only when eswitchd restarts\n");
  }
  return kExitOk;
}

// "  vm1 drops: spoofed_ip=2 arp_spoof=1": only the reasons that happened, after a table of totals.
static void print_nonzero_drops(const json& row, const char* key, const char* label) {
  std::string reasons;
  const json drops = row.value(key, json::object());  // a named value: items() must not outlive it
  for (const auto& [reason, n] : drops.items()) {
    if (n.get<uint64_t>() != 0) reasons += fmt::format(" {}={}", reason, n.get<uint64_t>());
  }
  if (!reasons.empty()) fmt::print("  {} {}:{}\n", to_str(row["name"]), label, reasons);
}

int cmd_show(const Options& o, const std::string& what, const ShowOptions& so) {
  json params = {{"what", what}};
  if (what == "rules") {
    if (so.table >= 0) params["table"] = so.table;
    if (so.limit != 0) params["limit"] = so.limit;
    if (so.offset != 0) params["offset"] = so.offset;
  }
  ApiReply reply;
  int status = kExitOk;
  if (!request(o, "show " + what, "show", params, reply, status)) return status;
  if (!reply.ok) return fail_reply(o, "", reply);
  if (o.json) {
    print_json(reply.result);
    return kExitOk;
  }
  const json& r = reply.result;
  if (what == "ports") {
    Table t({{"PORT"}, {"ROLE"}, {"DRIVER"}, {"DEVICE"}, {"LINK"}, {"RX_PKTS", true}, {"RX_BYTES", true},
             {"TX_PKTS", true}, {"TX_BYTES", true}, {"TX_DROP", true}, {"DROPPED", true}, {"DEVARGS"}});
    for (const auto& p : r["ports"]) {
      const std::string device = p.value("device", "");
      t.row({to_str(p["name"]), to_str(p["role"]), to_str(p["driver"]),
             device.empty()                                   ? "-"
             : !p.contains("port_id") || p["port_id"].is_null() ? device  // not an ethdev (tap representor, vhost)
                                                                : fmt::format("{} ({})", device, to_str(p["port_id"])),
             p.value("link_up", false) ? "up" : "down",
             to_str(p["rx_packets"]), to_str(p["rx_bytes"]), to_str(p["tx_packets"]), to_str(p["tx_bytes"]),
             to_str(p["tx_dropped"]), to_str(p["dropped_total"]), to_str(p["devargs"])});
    }
    t.print(stdout);
    // Drops by reason, only the ones that happened: where a packet went is the first question after "how many".
    for (const auto& p : r["ports"]) print_nonzero_drops(p, "dropped", "dropped");
    // Loss below the switch (the device or the host side of a representor), only where it happened.
    for (const auto& p : r["ports"]) {
      const json& d = p.value("device_counters", json());
      if (!d.is_object()) continue;
      std::string lost;
      for (const char* k : {"imissed", "ierrors", "oerrors", "rx_nombuf"}) {
        if (d.value(k, uint64_t{0}) != 0) lost += fmt::format(" {}={}", k, d.value(k, uint64_t{0}));
      }
      if (!lost.empty()) fmt::print("port {} device:{}\n", to_str(p["name"]), lost);
    }
    // A backend's peer session (vhost-user guest): connected?, queue pairs on, what was negotiated.
    for (const auto& p : r["ports"]) {
      const json& g = p.value("peer", json());
      if (!g.is_object()) continue;
      size_t on = 0, all = 0;
      std::string per_queue;
      for (const auto& q : g.value("queues", json::array())) {
        ++all;
        if (q.value("rx_enabled", false)) ++on;
        per_queue += fmt::format(" q{}:rx={},tx={},drop={}", to_str(q["queue_pair"]), to_str(q["rx_packets"]),
                                 to_str(q["tx_packets"]), to_str(q["tx_dropped"]));
      }
      std::string names;
      for (const auto& n : g.value("feature_names", json::array())) names += (names.empty() ? "" : ",") + to_str(n);
      fmt::print("port {} peer: {}, {} of {} queue pairs on, connects={} disconnects={}{}{}\n", to_str(p["name"]),
                 g.value("connected", false) ? "connected" : "not connected", on, all, to_str(g["connects"]),
                 to_str(g["disconnects"]), per_queue, names.empty() ? "" : ", features " + names);
    }
  } else if (what == "vports") {
    Table t({{"VPORT"}, {"FLAVOUR"}, {"ID", true}, {"HW_ADDR"}, {"STATE"}, {"SPOOFCHK"}, {"IPV4"}, {"IPV6"},
             {"VLAN"}, {"REPRESENTOR"}, {"RX_PKTS", true}, {"TX_PKTS", true}, {"DROPS", true}});
    for (const auto& v : r["vports"]) {
      t.row({to_str(v["name"]), to_str(v["flavour"]), to_str(v["id"]), to_str(v["hw_addr"]), to_str(v["state"]),
             v.value("spoofchk", false) ? "on" : "off", to_str(v["ipv4"]), to_str(v["ipv6"]), to_str(v["vlan"]),
             to_str(v["representor"]), to_str(v["rx_packets"]), to_str(v["tx_packets"]), to_str(v["drops_total"])});
    }
    t.print(stdout);
    for (const auto& v : r["vports"]) print_nonzero_drops(v, "drops", "drops");
  } else if (what == "smc") {
    auto side = [](const json& x) {
      std::string s = fmt::format("{} {}:{}", to_str(x["vport"]), to_str(x["ip"]), to_str(x["port"]));
      if (x.contains("qpn")) s += fmt::format(" qpn={} rkey={}", to_str(x["qpn"]), to_str(x["rkey"]));
      if (x.contains("dmb_token")) s += fmt::format(" dmb={}", to_str(x["dmb_token"]));
      return s;
    };
    Table t({{"STATE"}, {"PATH"}, {"VER", true}, {"CLIENT"}, {"SERVER"}, {"GRANTED"}, {"IDLE_S", true},
             {"DECLINE/REFUSED"}});
    for (const auto& x : r["sessions"]) {
      t.row({to_str(x["state"]), to_str(x["path"]), to_str(x["version"]), side(x["client"]),
             side(x["server"]), x.value("granted", false) ? "yes" : "no",
             fmt::format("{:.1f}", x.value("idle_s", 0.0)),
             !x["decline_code"].is_null()                     ? to_str(x["decline_code"])
             : x.contains("refused") && !x["refused"].is_null() ? fmt::format("{} ({})", to_str(x["refused"]),
                                                                             to_str(x["refused_by"]))
                                                                : "-"});
    }
    t.print(stdout);
    Table v({{"VPORT"}, {"SMC"}, {"ROCE_STRICT"}, {"SYN", true}, {"STRIPPED", true}, {"CLC", true},
             {"QP_REFUSED", true}, {"RKEY_REFUSED", true}, {"FOREIGN_MAC/GID/PREFIX"}, {"FLOW_REFUSED", true}});
    for (const auto& x : r["vports"]) {
      v.row({to_str(x["name"]), to_str(x["smc"]), x.value("roce_strict", false) ? "on" : "off", to_str(x["smc_syn"]),
             to_str(x["smc_option_stripped"]), to_str(x["smc_clc"]), to_str(x["roce_qp_not_granted"]),
             to_str(x["roce_rkey_not_granted"]),
             fmt::format("{}/{}/{}", x.value("smc_foreign_mac", 0), x.value("smc_foreign_gid", 0),
                         x.value("smc_foreign_prefix", 0)),
             std::to_string(x.value("smc_flow_refused", uint64_t{0}))});
    }
    v.print(stdout);
    const json& e = r["events"];
    const json& g = r["grants"];
    fmt::print("events: {} enqueued, {} lost (ring full), {} read; grants: {} flows, {} QPs, {} rkeys; idle timeout {}s\n",
               to_str(e["enqueued"]), to_str(e["lost"]), to_str(e["read"]), to_str(g["flows"]), to_str(g["qp"]),
               to_str(g["rkey"]), to_str(r["idle_timeout_s"]));
    if (r.contains("ism")) {  // the emulated ISM service (SMC-D between vports)
      const json& ism = r["ism"];
      fmt::print("SMC-D (emulated ISM, CHID {}):\n", to_str(ism["chid"]));
      Table ep({{"VPORT"}, {"SOCKET"}, {"MODE"}, {"CLIENTS", true}, {"DMBS", true}, {"DMB_BYTES", true}});
      for (const auto& x : ism["endpoints"]) {
        ep.row({to_str(x["vport"]), to_str(x["socket"]), to_str(x["mode"]), to_str(x["clients"]), to_str(x["dmbs"]),
                to_str(x["bytes"])});
      }
      ep.print(stdout);
      Table d({{"OWNER"}, {"WRITER"}, {"TOKEN"}, {"SIZE", true}, {"BYTES", true}, {"ABORTED"}});
      for (const auto& x : ism["dmbs"]) {
        d.row({to_str(x["owner"]), to_str(x["writer"]), to_str(x["token"]), to_str(x["size"]), to_str(x["bytes"]),
               x.value("aborted", false) ? "yes" : "no"});
      }
      d.print(stdout);
    }
  } else if (what == "representors") {
    Table t({{"VPORT"}, {"REPRESENTOR"}, {"KIND"}, {"ACTIVE"}});
    for (const auto& v : r["representors"]) {
      t.row({to_str(v["vport"]), to_str(v["representor"]), to_str(v["kind"]), v.value("active", false) ? "yes" : "no"});
    }
    t.print(stdout);
  } else if (what == "tables") {
    Table t({{"TABLE", true}, {"NAME"}, {"RULES", true}, {"PACKETS", true}, {"BYTES", true}, {"MISS"}});
    for (const auto& x : r["tables"]) {
      t.row({to_str(x["id"]), to_str(x["name"]), to_str(x["rules"]), to_str(x["packets"]), to_str(x["bytes"]),
             to_str(x["miss"])});
    }
    t.print(stdout);
    const json c = r.value("classifier", json::object());
    fmt::print("classifier: {} rules in {} tables, {} subtables, snapshot {} (version {})\n", c.value("rules", 0),
               c.value("tables", 0), c.value("subtables", 0),
               si(static_cast<double>(c.value("snapshot_bytes", 0)), "B"), c.value("version", 0));
  } else if (what == "rules") {
    Table t({{"ID", true}, {"TABLE", true}, {"PRIO", true}, {"PACKETS", true}, {"BYTES", true}, {"RUNS"},
             {"XDP_DROPS", true}, {"RULE"}, {"MATCH"}, {"ACTIONS"}});
    for (const auto& x : r["rules"]) {
      const std::string match = to_str(x["match"]);
      // RUNS: software (with why not in XDP, on an offload port), or xdp (the worker keeps the rule as well;
      // XDP_DROPS: what the programs dropped for it; steer rules' redirects count in PACKETS when they count).
      t.row({to_str(x["id"]), to_str(x["table"]), to_str(x["priority"]), to_str(x["packets"]), to_str(x["bytes"]),
             (x.contains("runs") ? to_str(x["runs"]) : "software") +
                 (x.contains("xdp_refused") ? " (" + to_str(x["xdp_refused"]) + ")" : ""),
             x.contains("xdp_drops") ? to_str(x["xdp_drops"]) : "0", to_str(x["where"]),
             match.empty() ? "(any)" : match, to_str(x["actions"])});
    }
    t.print(stdout);
    if (r.value("total", uint64_t{0}) != t.size()) {
      fmt::print("({} of {} rules shown)\n", t.size(), r.value("total", uint64_t{0}));
    }
  }
  return kExitOk;
}

// Per worker between two stats samples: busy share of the loop's cycles, cycles per packet (busy cycles / packets
// received; null without packets), packets per busy loop iteration (how full its bursts are; null without busy
// iterations or from an eswitchd that does not report them), packets per second. Workers missing from either
// sample (an older eswitchd reports none) are left out.
static json worker_rates(const json& prev, const json& cur) {
  json out = json::array();
  const json none = json::array();
  const json& before = prev.contains("workers") ? prev["workers"] : none;
  const double hz = cur.value("tsc_hz", 0.0);
  for (const auto& w : cur.contains("workers") ? cur["workers"] : none) {
    for (const auto& b : before) {
      if (b.value("index", -1) != w.value("index", -2)) continue;
      auto delta = [&](const char* k) { return w.value(k, uint64_t{0}) - b.value(k, uint64_t{0}); };
      const uint64_t busy = delta("busy_cycles"), idle = delta("idle_cycles"), pkts = delta("packets");
      const uint64_t loops = w.contains("busy_loops") && b.contains("busy_loops") ? delta("busy_loops") : 0;
      const double secs = hz > 0 ? static_cast<double>(busy + idle) / hz : 0;
      out.push_back({{"index", w["index"]},
                     {"lcore", w["lcore"]},
                     {"busy_cycles", busy},
                     {"idle_cycles", idle},
                     {"packets", pkts},
                     {"busy_loops", loops},
                     {"packets_per_busy_loop", loops > 0 ? json(static_cast<double>(pkts) / static_cast<double>(loops)) : json()},
                     {"busy_pct", busy + idle > 0 ? 100.0 * static_cast<double>(busy) / static_cast<double>(busy + idle) : 0.0},
                     {"cycles_per_packet", pkts > 0 ? json(static_cast<double>(busy) / static_cast<double>(pkts)) : json()},
                     {"pps", secs > 0 ? static_cast<double>(pkts) / secs : 0.0}});
    }
  }
  return out;
}

int cmd_stats(const Options& o, double interval_s, int count) {
  ApiClient client(o.socket, o.timeout_s);
  auto sample = [&](json& out) -> int {
    try {
      ApiReply reply = client.call("stats", json::object());
      if (!reply.ok) return fail_reply(o, "", reply);
      out = reply.result;
      return kExitOk;
    } catch (const ConnectError& e) {
      fmt::print(stderr, "eswitchctl: {}\n", e.what());
      return kExitUnreachable;
    }
  };
  json prev;
  if (int rc = sample(prev); rc != kExitOk) return rc;
  for (int i = 0; count <= 0 || i < count; ++i) {
    std::this_thread::sleep_for(std::chrono::duration<double>(interval_s));
    json cur;
    if (int rc = sample(cur); rc != kExitOk) return rc;
    const double dt = cur.value("time", 0.0) - prev.value("time", 0.0);
    std::map<std::string, json> before;
    for (const auto& p : prev["ports"]) before[p.value("name", "")] = p;
    json ports = json::array();
    double rx_pps = 0, tx_pps = 0, drop_pps = 0;
    for (const auto& p : cur["ports"]) {
      const std::string name = p.value("name", "");
      if (!before.count(name) || dt <= 0) continue;  // a port added between the samples has no rate yet
      const json& b = before[name];
      auto rate = [&](const char* k) {
        return static_cast<double>(p.value(k, uint64_t{0}) - b.value(k, uint64_t{0})) / dt;
      };
      json x = {{"name", name},
                {"rx_pps", rate("rx_packets")},
                {"tx_pps", rate("tx_packets")},
                {"rx_bps", rate("rx_bytes") * 8},
                {"tx_bps", rate("tx_bytes") * 8},
                {"drop_pps", rate("dropped") + rate("tx_dropped")},
                {"rx_packets", p["rx_packets"]},
                {"tx_packets", p["tx_packets"]}};
      rx_pps += x["rx_pps"].get<double>();
      tx_pps += x["tx_pps"].get<double>();
      drop_pps += x["drop_pps"].get<double>();
      ports.push_back(std::move(x));
    }
    const json workers = worker_rates(prev, cur);
    if (o.json) {
      json j = {{"interval_s", dt},
                {"ports", ports},
                {"totals", {{"rx_pps", rx_pps}, {"tx_pps", tx_pps}, {"drop_pps", drop_pps}}},
                {"workers", workers}};
      if (count == 1) print_json(j);
      else fmt::print("{}\n", j.dump());
    } else {
      if (i > 0) fmt::print("\n");
      Table t({{"PORT"}, {"RX_PPS", true}, {"TX_PPS", true}, {"RX_BPS", true}, {"TX_BPS", true}, {"DROP_PPS", true}});
      for (const auto& x : ports) {
        t.row({to_str(x["name"]), si(x["rx_pps"].get<double>()), si(x["tx_pps"].get<double>()),
               si(x["rx_bps"].get<double>()), si(x["tx_bps"].get<double>()), si(x["drop_pps"].get<double>())});
      }
      t.row({"total", si(rx_pps), si(tx_pps), "", "", si(drop_pps)});
      t.print(stdout);
      if (!workers.empty()) {
        Table w({{"WORKER", true}, {"LCORE", true}, {"BUSY%", true}, {"CYCLES/PKT", true}, {"PKTS/LOOP", true},
                 {"PPS", true}});
        auto dec = [](const json& v) { return v.is_null() ? std::string("-") : fmt::format("{:.1f}", v.get<double>()); };
        for (const auto& x : workers) {
          w.row({to_str(x["index"]), to_str(x["lcore"]), fmt::format("{:.1f}", x["busy_pct"].get<double>()),
                 dec(x["cycles_per_packet"]), dec(x["packets_per_busy_loop"]), si(x["pps"].get<double>())});
        }
        w.print(stdout);
      }
      fmt::print("(rates over {:.2f} s)\n", dt);
    }
    fflush(stdout);
    prev = std::move(cur);
  }
  return kExitOk;
}

int cmd_trace(const Options& o, const std::string& packet, const std::string& hex, const std::string& in_port) {
  json params = json::object();
  if (!hex.empty()) {
    params = {{"hex", hex}, {"in_port", in_port}};
  } else {
    params = {{"packet", packet}};
  }
  ApiReply reply;
  int status = kExitOk;
  if (!request(o, "trace", "trace", params, reply, status)) return status;
  if (!reply.ok) return fail_reply(o, "", reply);
  if (o.json) {
    print_json(reply.result);
    return kExitOk;
  }
  const json& r = reply.result;
  fmt::print("packet: {}\n", to_str(r["packet"]));
  for (const auto& l : r.value("lines", json::array())) fmt::print("  {}\n", to_str(l));
  fmt::print("verdict: {}\n", to_str(r["verdict"]));
  return kExitOk;
}

int cmd_rules(const Options& o, const std::vector<std::string>& add, const std::vector<std::string>& del) {
  ApiReply reply;
  int status = kExitOk;
  if (!request(o, "rules", "rules", json{{"add", add}, {"delete", del}}, reply, status)) return status;
  if (!reply.ok) return fail_reply(o, "", reply);
  if (o.json) {
    print_json(reply.result);
    return kExitOk;
  }
  fmt::print("runtime rules: {} added, {} deleted ({} runtime rules now) in {} ms\n", add.size(), del.size(),
             reply.result.value("runtime_rules", 0), reply.result.value("ms", 0.0));
  return kExitOk;
}

int cmd_config(const Options& o) {
  ApiReply reply;
  int status = kExitOk;
  if (!request(o, "config", "config", json::object(), reply, status)) return status;
  if (!reply.ok) return fail_reply(o, "", reply);
  if (o.json) {
    print_json(reply.result);
    return kExitOk;
  }
  fmt::print("{}", reply.result.value("yaml", ""));
  return kExitOk;
}

int cmd_ping(const Options& o) {
  ApiReply reply;
  int status = kExitOk;
  if (!request(o, "ping", "ping", json::object(), reply, status)) return status;
  if (!reply.ok) return fail_reply(o, "", reply);
  if (o.json) {
    print_json(reply.result);
    return kExitOk;
  }
  const json& r = reply.result;
  fmt::print("eswitchd pid {} on {}: up {:.0f} s, config generation {} ({}), file prefix {}\n", r.value("pid", 0),
             o.socket, r.value("uptime_s", 0.0), r.value("generation", 0), to_str(r["config_hash"]),
             to_str(r["file_prefix"]));
  return kExitOk;
}

// vport migrate: one arc of a vhost-user vport's migration state machine (eswitchd's "migrate" method).
int cmd_vport_migrate(const Options& o, const std::string& vport, const std::string& to_state,
                      const std::string& stream) {
  ApiReply reply;
  int status = kExitOk;
  json params{{"vport", vport}, {"to_state", to_state}};
  if (!stream.empty()) params["stream"] = stream;
  if (!request(o, "vport migrate", "migrate", params, reply, status)) return status;
  if (!reply.ok) return fail_reply(o, "", reply);
  if (o.json) {
    print_json(reply.result);
    return kExitOk;
  }
  const json& r = reply.result;
  fmt::print("vport {}: {} -> {} in {:.1f} ms", vport, to_str(r["from"]), to_str(r["to"]), r.value("ms", 0.0));
  if (r.contains("bytes")) fmt::print(" (stream {}: {} bytes)", to_str(r["stream"]), r.value("bytes", 0));
  fmt::print("\n");
  return kExitOk;
}

}  // namespace esw::ctl
