// Pass 2 of the loader: cross-field checks on the finished model (uniqueness, references, mode rules). They find
// their source locations through the paths recorded in pass 1 and skip values that already failed there.
#include "config/checks.h"

#include <fmt/format.h>

#include <map>
#include <set>

#include "config/schema_limits.h"
#include "config/net_text.h"
#include "config/schema_smc.h"

namespace esw::cfg::detail {

namespace {

// One occurrence of a value that must be unique, and the path it was read from.
struct Site {
  std::string key;
  std::string path;
};

// Adds a site for a value that was read without error.
void add_site(std::vector<Site>& sites, const Diagnostics& diag, std::string key, std::string path) {
  if (key.empty() || !diag.in_source(path) || !diag.clean(path)) return;
  sites.push_back(Site{std::move(key), std::move(path)});
}

// Reports every repeat at the repeat, naming the first occurrence in the file.
void check_unique(Diagnostics& diag, std::vector<Site> sites, std::string_view what, bool quote_key = true) {
  std::stable_sort(sites.begin(), sites.end(), [&](const Site& a, const Site& b) {
    return before(diag.location_of(a.path), diag.location_of(b.path));
  });
  std::unordered_map<std::string_view, const Site*> first;
  for (const Site& site : sites) {
    auto [it, inserted] = first.emplace(site.key, &site);
    if (inserted) continue;
    diag.error_at(site.path, fmt::format("duplicate {} {}; first used by {} on line {}", what,
                                         quote_key ? quoted(site.key) : site.key, it->second->path,
                                         diag.location_of(it->second->path).line));
  }
}

// "no port named "x"; expected one of a, b" (or why there is none to expect).
std::string no_such(std::string_view what, std::string_view name, const std::vector<std::string_view>& valid,
                    std::string_view none) {
  if (valid.empty()) return fmt::format("no {} named {}; {}", what, quoted(name), none);
  return fmt::format("no {} named {}; expected one of {}", what, quoted(name), fmt::join(valid, ", "));
}

void check_cores(const DataplaneConfig& dp, Diagnostics& diag) {
  const std::string main_path = "dataplane.main_core";
  std::vector<Site> workers;
  for (size_t i = 0; i < dp.worker_cores.size(); ++i) {
    std::string path = index_path("dataplane.worker_cores", i);
    if (!diag.clean(path)) continue;
    if (dp.worker_cores[i] == dp.main_core && diag.clean(main_path)) {
      diag.error_at(path, fmt::format("core {} is also {}{}; workers need cores of their own", dp.main_core, main_path,
                                      diag.in_source(main_path) ? "" : " (its default)"));
      continue;
    }
    add_site(workers, diag, std::to_string(dp.worker_cores[i]), std::move(path));
  }
  check_unique(diag, std::move(workers), "worker core", /*quote_key=*/false);
}

// DPDK refuses a second vdev with the same name whatever its arguments, so vdevs compare by name. A bus address
// (it has a ':') may be probed again with other arguments (mlx5 "representor=vf0", then "vf1"): compare it whole.
std::string device_key(const std::string& devargs) {
  const std::string_view name = std::string_view(devargs).substr(0, devargs.find(','));
  return name.find(':') == std::string_view::npos ? std::string(name) : devargs;
}

void check_ports(const Config& config, Diagnostics& diag) {
  std::vector<Site> names, devices, macs;
  auto add_port = [&](const std::string& base, const std::string& name, const Attachment& attach) {
    add_site(names, diag, name, base + ".name");
    if (attach.vhost_user) {
      add_site(devices, diag, "vhost-user:" + attach.vhost_user->socket, base + ".attach.vhost_user.socket");
    } else {
      add_site(devices, diag, device_key(attach.devargs), base + ".attach.devargs");
    }
  };
  for (size_t i = 0; i < config.uplinks.size(); ++i) {
    add_port(index_path("uplinks", i), config.uplinks[i].name, config.uplinks[i].attach);
  }
  for (size_t i = 0; i < config.vports.size(); ++i) {
    const VportConfig& vport = config.vports[i];
    const std::string base = index_path("vports", i);
    add_port(base, vport.name, vport.attach);
    if (vport.hw_addr) add_site(macs, diag, *vport.hw_addr, base + ".hw_addr");
  }
  check_unique(diag, std::move(names), "port name");
  check_unique(diag, std::move(devices), "device");
  check_unique(diag, std::move(macs), "hw_addr");
}

// VF and SF numbers: unique per flavour; an omitted id is the lowest one no other vport of its flavour has.
void assign_vport_ids(Config& config, Diagnostics& diag) {
  std::map<Flavour, std::vector<Site>> sites;
  std::map<Flavour, std::set<uint32_t>> taken;
  for (size_t i = 0; i < config.vports.size(); ++i) {
    const VportConfig& vport = config.vports[i];
    const std::string base = index_path("vports", i);
    if (!diag.clean(base + ".flavour") || !diag.in_source(base + ".id")) continue;
    add_site(sites[vport.flavour], diag, std::to_string(vport.id), base + ".id");
    taken[vport.flavour].insert(vport.id);
  }
  for (auto& [flavour, list] : sites) {
    check_unique(diag, std::move(list), fmt::format("{} id", to_string(flavour)), /*quote_key=*/false);
  }
  for (size_t i = 0; i < config.vports.size(); ++i) {
    VportConfig& vport = config.vports[i];
    if (diag.in_source(index_path("vports", i) + ".id")) continue;
    std::set<uint32_t>& used = taken[vport.flavour];
    uint32_t id = 0;
    while (used.contains(id)) ++id;
    vport.id = id;
    used.insert(id);
  }
}

void check_spoofchk(const Config& config, Diagnostics& diag) {
  for (size_t i = 0; i < config.vports.size(); ++i) {
    const VportConfig& vport = config.vports[i];
    const std::string base = index_path("vports", i);
    if (!vport.spoofchk || vport.hw_addr || !diag.clean(base + ".spoofchk") || !diag.clean(base + ".hw_addr") ||
        !diag.in_source(base)) {
      continue;
    }
    diag.error_at(base + ".hw_addr",
                  fmt::format("required while spoofchk is on{}: anti-spoofing checks the source MAC; add the vport's "
                              "MAC address or set spoofchk: false",
                              diag.in_source(base + ".spoofchk") ? "" : " (the default)"));
  }
}

// roce_strict narrows RoCEv2 that roce allows: without roce there is nothing to narrow (a config that says
// "strict" while RoCE is off is a mistake, not a stricter setting).
void check_roce_strict(const Config& config, Diagnostics& diag) {
  for (size_t i = 0; i < config.vports.size(); ++i) {
    const VportConfig& vport = config.vports[i];
    const std::string base = index_path("vports", i);
    if (!vport.roce_strict || vport.roce || !diag.clean(base + ".roce_strict") || !diag.clean(base + ".roce") ||
        !diag.in_source(base + ".roce_strict")) {
      continue;
    }
    diag.error_at(base + ".roce_strict",
                  fmt::format("needs roce: true{}: strict mode narrows the RoCEv2 a vport may send to what SMC-R "
                              "granted; with roce off all of it is dropped already",
                              diag.in_source(base + ".roce") ? "" : " (roce is off by default)"));
  }
}

// An address or prefix belongs to one vport, and a vport's prefix may not include another vport's addresses.
void check_bindings(const Config& config, Diagnostics& diag) {
  struct Bound {
    IpPrefix prefix;
    size_t vport;
    std::string path;
    Loc loc;
  };
  std::vector<Bound> bound;
  for (size_t i = 0; i < config.vports.size(); ++i) {
    const VportConfig& vport = config.vports[i];
    const std::string base = index_path("vports", i);
    auto add = [&](const std::vector<std::string>& list, bool v6) {
      for (size_t j = 0; j < list.size(); ++j) {
        std::string path = index_path(base + (v6 ? ".ipv6" : ".ipv4"), j);
        if (!diag.in_source(path) || !diag.clean(path)) continue;
        if (std::optional<IpPrefix> p = parse_prefix(list[j], v6)) {
          bound.push_back(Bound{*p, i, path, diag.location_of(path)});
        }
      }
    };
    add(vport.ipv4, false);
    add(vport.ipv6, true);
  }
  std::stable_sort(bound.begin(), bound.end(), [](const Bound& a, const Bound& b) { return before(a.loc, b.loc); });
  // Quadratic, but over bound addresses: a few per vport, at most 256 vports.
  for (size_t b = 0; b < bound.size(); ++b) {
    const Bound& later = bound[b];
    for (size_t a = 0; a < b; ++a) {
      const Bound& first = bound[a];
      if (first.prefix.v6 != later.prefix.v6) continue;
      const bool equal = first.prefix.len == later.prefix.len && first.prefix.contains(later.prefix);
      const std::string& first_name = config.vports[first.vport].name;
      const std::string& later_name = config.vports[later.vport].name;
      const std::string first_at = fmt::format("{} on line {}", first.path, first.loc.line);
      if (first.vport == later.vport) {
        if (!equal) continue;  // an address inside the vport's own prefix is redundant, not wrong
        diag.error(later.path, later.loc, fmt::format("duplicate address {}; first listed as {}",
                                                      later.prefix.text(), first_at));
      } else if (equal) {
        diag.error(later.path, later.loc,
                   fmt::format("{} is already bound to vport {} by {}; an address belongs to one vport",
                               later.prefix.text(), quoted(first_name), first_at));
      } else if (later.prefix.contains(first.prefix)) {
        diag.error(later.path, later.loc,
                   fmt::format("prefix {} of vport {} covers {}, bound to vport {} by {}; a vport's prefix cannot "
                               "include another vport's addresses",
                               later.prefix.text(), quoted(later_name), first.prefix.text(), quoted(first_name),
                               first_at));
      } else if (first.prefix.contains(later.prefix)) {
        diag.error(later.path, later.loc,
                   fmt::format("{} of vport {} is inside prefix {}, bound to vport {} by {}; a vport's prefix cannot "
                               "include another vport's addresses",
                               later.prefix.text(), quoted(later_name), first.prefix.text(), quoted(first_name),
                               first_at));
      } else {
        continue;
      }
      break;  // one error per address
    }
  }
}

void check_meters(const Config& config, Diagnostics& diag) {
  std::vector<Site> names;
  for (size_t i = 0; i < config.meters.size(); ++i) {
    const MeterConfig& meter = config.meters[i];
    const std::string base = index_path("meters", i);
    add_site(names, diag, meter.name, base + ".name");
    if (!diag.in_source(base + ".type") || !diag.clean(base + ".type")) continue;
    auto present = [&](std::string_view key) { return diag.in_source(fmt::format("{}.{}", base, key)); };
    if (meter.tr_tcm) {
      if (present("ebs")) {
        diag.error_at(base + ".ebs", "only for type: srtcm; a trtcm meter has cir, cbs, pir and pbs");
      }
      for (std::string_view key : {"pir", "pbs"}) {
        if (!present(key)) {
          diag.error_at(fmt::format("{}.{}", base, key),
                        "required key is missing (type: trtcm needs cir, cbs, pir and pbs)");
        }
      }
      if (present("pir") && present("cir") && diag.clean(base + ".pir") && diag.clean(base + ".cir") &&
          meter.pir_bps < meter.cir_bps) {
        diag.error_at(base + ".pir", fmt::format("pir {} is below cir {}; a trtcm meter's peak rate must be at least "
                                                 "its committed rate",
                                                 format_rate(meter.pir_bps), format_rate(meter.cir_bps)));
      }
    } else {
      for (std::string_view key : {"pir", "pbs"}) {
        if (present(key)) {
          diag.error_at(fmt::format("{}.{}", base, key),
                        "only for type: trtcm; an srtcm meter has cir, cbs and ebs");
        }
      }
    }
  }
  check_unique(diag, std::move(names), "meter name");
}

void check_pipeline(const Config& config, Diagnostics& diag) {
  std::vector<std::string_view> port_names;
  for (const UplinkConfig& uplink : config.uplinks) port_names.push_back(uplink.name);
  for (const VportConfig& vport : config.vports) port_names.push_back(vport.name);
  std::erase(port_names, std::string_view());
  const std::unordered_set<std::string_view> ports(port_names.begin(), port_names.end());

  auto check_reference = [&](const std::string& path, const std::string& name) {
    if (name.empty() || !diag.clean(path) || ports.contains(name)) return true;
    diag.error_at(path, no_such("port", name, port_names, "no uplinks or vports are defined"));
    return false;
  };

  const PipelineConfig& pipeline = config.pipeline;
  std::vector<Site> sources;
  for (size_t i = 0; i < pipeline.cross_connect.size(); ++i) {
    const std::string base = index_path("pipeline.cross_connect", i);
    const CrossConnect& cc = pipeline.cross_connect[i];
    if (check_reference(base + ".from", cc.from)) add_site(sources, diag, cc.from, base + ".from");
    check_reference(base + ".to", cc.to);
  }
  check_unique(diag, std::move(sources), "from port");

  const std::string mode_path = "pipeline.mode";
  const std::string list_path = "pipeline.cross_connect";
  if (!diag.clean(mode_path) || !diag.clean(list_path)) return;
  const char* defaulted = diag.in_source(mode_path) ? "" : " (its default)";
  if (pipeline.mode == PipelineMode::kL2 && !pipeline.cross_connect.empty()) {
    diag.error_at(list_path, fmt::format("must be empty when {} is l2{}; set {}: cross_connect to use it", mode_path,
                                         defaulted, mode_path));
  }
  if (pipeline.mode == PipelineMode::kCrossConnect && pipeline.cross_connect.empty()) {
    // Point at the list if it is there (empty), else at the mode that asks for it.
    diag.error(list_path, diag.location_of(diag.in_source(list_path) ? list_path : mode_path),
               fmt::format("must list at least one {{from, to}} pair when {} is cross_connect", mode_path));
  }
}

// Table ids and names, rule names, and what actions refer to: ports, meters, tables (goto by name becomes goto
// by id here).
void check_tables(Config& config, Diagnostics& diag) {
  std::vector<Site> ids, table_names, rule_names;
  std::map<uint32_t, size_t> declared;  // id -> first table with it
  std::unordered_map<std::string, uint32_t> id_by_name;
  for (size_t t = 0; t < config.tables.size(); ++t) {
    const TableConfig& table = config.tables[t];
    const std::string base = index_path("tables", t);
    const bool id_ok = diag.in_source(base + ".id") && diag.clean(base + ".id");
    if (id_ok) {
      add_site(ids, diag, std::to_string(table.id), base + ".id");
      declared.emplace(table.id, t);
    }
    add_site(table_names, diag, table.name, base + ".name");
    if (id_ok && !table.name.empty() && diag.clean(base + ".name")) id_by_name.emplace(table.name, table.id);
    for (size_t r = 0; r < table.rules.size(); ++r) {
      // Paths only for named rules: a 100k-rule table would format 100k of them for nothing.
      if (!table.rules[r].name.empty()) add_site(rule_names, diag, table.rules[r].name, rule_path(t, r) + ".name");
    }
  }
  check_unique(diag, std::move(ids), "table id", /*quote_key=*/false);
  check_unique(diag, std::move(table_names), "table name");
  check_unique(diag, std::move(rule_names), "rule name");

  std::vector<std::string_view> port_names, vport_names, meter_names, declared_names;
  std::unordered_set<std::string_view> uplinks;
  for (const UplinkConfig& uplink : config.uplinks) {
    if (uplink.name.empty()) continue;
    port_names.push_back(uplink.name);
    uplinks.insert(uplink.name);
  }
  for (const VportConfig& vport : config.vports) {
    if (vport.name.empty()) continue;
    port_names.push_back(vport.name);
    vport_names.push_back(vport.name);
  }
  // A name that failed its own check is not in the model: references that may mean it are not reported again.
  bool meter_name_failed = false, table_name_failed = false;
  for (size_t i = 0; i < config.meters.size(); ++i) {
    if (!config.meters[i].name.empty()) meter_names.push_back(config.meters[i].name);
    meter_name_failed |= !diag.clean(index_path("meters", i) + ".name");
  }
  for (size_t t = 0; t < config.tables.size(); ++t) {
    table_name_failed |= !diag.clean(index_path("tables", t) + ".name");
  }
  for (const auto& [name, id] : id_by_name) declared_names.push_back(name);
  std::sort(declared_names.begin(), declared_names.end());
  const std::unordered_set<std::string_view> ports(port_names.begin(), port_names.end());
  const std::unordered_set<std::string_view> vports(vport_names.begin(), vport_names.end());
  const std::unordered_set<std::string_view> meters(meter_names.begin(), meter_names.end());
  std::vector<uint32_t> declared_ids;
  for (const auto& [id, index] : declared) declared_ids.push_back(id);

  // list_path_of(): the list's path, formatted only when needed (an error, or a value that failed before).
  auto check_actions = [&](std::vector<ActionConfig>& actions, const auto& list_path_of,
                           int64_t own_table) {  // -1: the table's own id is not valid
    for (ActionConfig& action : actions) {
      if (action.arg.empty()) continue;
      std::string path;
      auto path_of = [&]() -> const std::string& {
        if (path.empty()) path = action_path(list_path_of(), action);
        return path;
      };
      if (!diag.none_failed() && !diag.clean(path_of())) continue;
      auto fail = [&](std::string message) { diag.error(path_of(), action.loc, std::move(message)); };
      if (action.name == "output" || action.name == "mirror") {
        if (!ports.contains(action.arg)) {
          fail(no_such("port", action.arg, port_names, "no uplinks or vports are defined"));
        }
      } else if (action.name == "to_representor") {
        if (uplinks.contains(action.arg)) {
          fail(fmt::format("{} is an uplink and only vports have representors; {}", quoted(action.arg),
                           vport_names.empty() ? std::string("no vports are defined")
                                               : fmt::format("expected one of {}", fmt::join(vport_names, ", "))));
        } else if (!vports.contains(action.arg)) {
          fail(no_such("vport", action.arg, vport_names, "no vports are defined"));
        }
      } else if (action.name == "meter") {
        if (!meters.contains(action.arg) && !meter_name_failed) {
          fail(no_such("meter", action.arg, meter_names, "no meters are defined"));
        }
      } else if (action.name == "goto_table") {
        uint32_t target = 0;
        if (looks_like_integer(action.arg)) {
          std::from_chars(action.arg.data(), action.arg.data() + action.arg.size(), target);
        } else if (auto it = id_by_name.find(action.arg); it != id_by_name.end()) {
          target = it->second;
          action.arg = std::to_string(target);
        } else {
          if (!table_name_failed) fail(no_such("table", action.arg, declared_names, "no table has a name"));
          continue;
        }
        if (!declared.contains(target)) {
          fail(declared_ids.empty() ? fmt::format("table {} is not declared; no tables are declared", target)
                                    : fmt::format("table {} is not declared; declared tables: {}", target,
                                                  fmt::join(declared_ids, ", ")));
        } else if (own_table >= 0 && target <= own_table) {
          fail(fmt::format("goto_table {} from table {}: a rule can only go to a table with a higher id (no loops)",
                           target, own_table));
        }
      }
    }
  };

  for (size_t t = 0; t < config.tables.size(); ++t) {
    TableConfig& table = config.tables[t];
    const std::string base = index_path("tables", t);
    const int64_t own = diag.in_source(base + ".id") && diag.clean(base + ".id") ? int64_t{table.id} : -1;
    check_actions(table.miss, [&] { return base + ".miss"; }, own);
    for (size_t r = 0; r < table.rules.size(); ++r) {
      check_actions(table.rules[r].actions, [&] { return rule_path(t, r) + ".actions"; }, own);
    }
  }
}

void check_limits(const Config& config, Diagnostics& diag) {
  const size_t representors = config.representors.kind == RepresentorKind::kTap ? config.vports.size() : 0;
  const size_t ports = config.uplinks.size() + config.vports.size() + representors;
  if (ports > kMaxPorts) {
    diag.error_at(config.vports.empty() ? "uplinks" : "vports",
                  fmt::format("too many ports: {} uplink(s) + {} vport(s) + {} tap representor(s) = {}; at most {}{}",
                              config.uplinks.size(), config.vports.size(), representors, ports, kMaxPorts,
                              representors > 0 ? " (representors.kind: none saves one port per vport)" : ""));
  }
  size_t rules = 0;
  for (const TableConfig& table : config.tables) rules += table.rules.size();
  if (rules > config.dataplane.max_rules && diag.clean("dataplane.max_rules")) {
    diag.error_at("tables", fmt::format("{} rules, more than dataplane.max_rules ({}{})", rules,
                                        config.dataplane.max_rules,
                                        diag.in_source("dataplane.max_rules") ? "" : ", its default"));
  }
}

}  // namespace

void check_model(Config& config, Diagnostics& diag) {
  check_cores(config.dataplane, diag);
  check_ports(config, diag);
  assign_vport_ids(config, diag);
  check_spoofchk(config, diag);
  check_roce_strict(config, diag);
  check_bindings(config, diag);
  check_meters(config, diag);
  check_pipeline(config, diag);
  check_tables(config, diag);
  check_limits(config, diag);
  check_smc_ism(config, diag);  // schema_smc.cc
}

}  // namespace esw::cfg::detail
