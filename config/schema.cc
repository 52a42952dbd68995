// The schema of each section of the config: one read_<section>() each, built from config/yaml_reader.h. Rules
// and tables: schema_rules.cc; the compact rule string: rule_text.cc.
#include "config/schema.h"
#include "config/schema_smc.h"

#include "config/formats.h"
#include "config/schema_limits.h"

namespace esw::cfg::detail {

namespace {

constexpr Integer<int> kCoreId{.min = 0, .max = kMaxCore};
constexpr Integer<uint16_t> kRingSize{.min = 64, .max = 8192, .power_of_two = true};
constexpr Integer<uint16_t> kQueueCount{.min = 1, .max = kMaxQueuesPerPort};
constexpr Integer64 kBurstBytes{.min = kMinBurstBytes, .max = kMaxBurstBytes};

bool read_dataplane(const Value& v, DataplaneConfig& out) {
  return read_map(v, [&](MapReader& m) {
    m.optional("main_core", out.main_core, kCoreId);
    m.optional("worker_cores", out.worker_cores, list_of(kCoreId));
    m.optional("memory_mb", out.memory_mb, Integer<uint32_t>{.min = 64});
    m.optional("hugepages", out.hugepages, one_of({HugepageMode::kAuto, HugepageMode::kOn, HugepageMode::kOff}));
    m.optional("mbufs", out.mbufs, Integer<uint32_t>{.min = 1024});
    m.optional("mbuf_cache", out.mbuf_cache, Integer<uint16_t>{.min = 0, .max = kMaxMempoolCache});
    m.optional("rx_queue_size", out.rx_queue_size, kRingSize);
    m.optional("tx_queue_size", out.tx_queue_size, kRingSize);
    m.optional("burst", out.burst, Integer<uint16_t>{.min = 1, .max = 256});
    m.optional("idle_sleep_us", out.idle_sleep_us, Integer<uint32_t>{.min = 0, .max = kMaxIdleSleepUs});
    m.optional("file_prefix", out.file_prefix, checked_text(check_file_prefix));
    m.optional("eal_extra", out.eal_extra, list_of(Text{.non_empty = true}));
    m.optional("max_rules", out.max_rules, Integer<uint32_t>{.min = 1024, .max = 4194304});
    m.optional("flow_cache_entries", out.flow_cache_entries,
               Integer<uint32_t>{.min = 256, .max = 1048576, .power_of_two = true});
    m.optional("flow_cache_insert_inv_prob", out.flow_cache_insert_inv_prob, Integer<uint32_t>{.min = 1, .max = 1000});
    m.optional("api_socket", out.api_socket, checked_text(check_api_socket));
    m.optional("api_socket_group", out.api_socket_group, checked_text(check_group));
    m.optional("api_max_request_bytes", out.api_max_request_bytes,
               Integer64{.min = 4096, .max = int64_t{1} << 30});
    m.optional("api_max_clients", out.api_max_clients, Integer<uint32_t>{.min = 1, .max = 4096});
    m.optional("api_idle_timeout_ms", out.api_idle_timeout_ms, Integer<uint32_t>{.min = 100, .max = 86400000});
    m.optional("api_request_timeout_ms", out.api_request_timeout_ms, Integer<uint32_t>{.min = 100, .max = 3600000});
  });
}

// `xdp: { program: builtin | none, mode: auto | native | generic }` on a net_af_xdp attachment.
bool read_xdp(const Value& v, XdpAttachment& out) {
  auto one_of = [](std::initializer_list<const char*> allowed) {
    return [allowed](const Value& x, std::string& text) {
      if (!Text{}(x, text)) return false;
      std::string list;
      for (const char* a : allowed) {
        if (text == a) return true;
        list += fmt::format("{}\"{}\"", list.empty() ? "" : " or ", a);
      }
      x.error(fmt::format("expected {}, got {}", list, quoted(text)));
      return false;
    };
  };
  std::string program = "builtin", broadcast = "host", multicast = "host";
  const bool ok = read_map(v, [&](MapReader& m) {
    m.optional("program", program, one_of({"builtin", "none"}));
    m.optional("mode", out.mode, one_of({"auto", "native", "generic"}));
    m.optional("broadcast", broadcast, one_of({"host", "switch"}));
    m.optional("multicast", multicast, one_of({"host", "switch"}));
  });
  out.builtin = program == "builtin";
  out.broadcast_to_switch = broadcast == "switch";
  out.multicast_to_switch = multicast == "switch";
  out.has_uplink_keys = v.node.IsMap() && (v.node.has("broadcast") || v.node.has("multicast"));
  return ok;
}

// `offload: off | auto | required` (vports; dataplane/offload/xdp_tier.h).
bool read_offload_mode(const Value& v, std::string& out) {
  if (!Text{}(v, out)) return false;
  if (out != "off" && out != "auto" && out != "required") {
    v.error(fmt::format("expected \"off\" or \"auto\" or \"required\", got {}", quoted(out)));
    return false;
  }
  return true;
}

// offload: required needs a tier that can take rules: today eswitch's XDP program on a net_af_xdp attachment.
bool check_offload(const Value& v, const Attachment& out) {
  if (out.offload != "required") return true;
  if (out.devargs.rfind("net_af_xdp", 0) != 0 || !out.xdp || !out.xdp->builtin) {
    v.error("offload: required needs an attachment that can run rules below the worker: "
                            "net_af_xdp devargs with xdp: {program: builtin} (this one has none)");
    return false;
  }
  return true;
}

// The xdp key belongs to net_af_xdp attachments only.
bool check_xdp_devargs(const Value& v, const Attachment& out) {
  if (!v.node.IsMap() || !v.node.has("xdp") || out.devargs.empty()) return true;
  if (out.devargs.rfind("net_af_xdp", 0) != 0) {
    v.error(fmt::format("xdp applies to net_af_xdp attachments only; devargs {} is not one", quoted(out.devargs)));
    return false;
  }
  return true;
}

bool read_attachment(const Value& v, Attachment& out) {
  const bool ok = read_map(v, [&](MapReader& m) {
    m.required("devargs", out.devargs, Text{.non_empty = true});
    m.optional("rx_queues", out.rx_queues, kQueueCount);
    m.optional("tx_queues", out.tx_queues, kQueueCount);
    m.optional("xdp", out.xdp, read_xdp);
  });
  return check_xdp_devargs(v, out) && ok;
}

bool read_vhost_mode(const Value& v, bool& client) {
  std::string text;
  if (!Text{}(v, text)) return false;
  if (text != "server" && text != "client") {
    v.error(fmt::format("expected \"server\" or \"client\", got {}", quoted(text)));
    return false;
  }
  client = text == "client";
  return true;
}

// `vhost_user: { socket, mode, queues, vdpa_device, mtu }`: a vport served over vhost-user by rte_vhost (vdpa/).
bool read_vhost_user(const Value& v, VhostUserAttachment& out) {
  return read_map(v, [&](MapReader& m) {
    m.required("socket", out.socket, checked_text(check_vhost_socket));
    m.optional("mode", out.client, read_vhost_mode);
    m.optional("queues", out.queues, Integer<uint16_t>{.min = 1, .max = kMaxVhostQueues});
    m.optional("vdpa_device", out.vdpa_device, Text{.non_empty = true});
    m.optional("mtu", out.mtu, Integer<uint16_t>{.min = kMinVhostMtu, .max = kMaxVhostMtu});
  });
}

// A vport reaches DPDK through devargs (an ethdev) or a vhost-user socket: exactly one of them.
bool read_vport_attachment(const Value& v, Attachment& out) {
  const bool ok = read_map(v, [&](MapReader& m) {
    m.optional("devargs", out.devargs, Text{.non_empty = true});
    m.optional("rx_queues", out.rx_queues, kQueueCount);
    m.optional("tx_queues", out.tx_queues, kQueueCount);
    m.optional("vhost_user", out.vhost_user, read_vhost_user);
    m.optional("xdp", out.xdp, read_xdp);
    m.optional("offload", out.offload, read_offload_mode);
  });
  if (!v.node.IsMap()) return ok;
  if (!check_xdp_devargs(v, out)) return false;
  if (!check_offload(v, out)) return false;
  if (out.xdp && out.xdp->has_uplink_keys) {
    v.error("xdp broadcast/multicast apply to uplinks only (a vport's program is its binding guard)");
    return false;
  }
  const bool has_devargs = v.node.has("devargs"), has_vhost = v.node.has("vhost_user");
  if (has_devargs == has_vhost) {
    v.error(has_vhost ? "devargs and vhost_user exclude each other; give one of them"
                      : "required key is missing: devargs (an ethdev) or vhost_user (a vhost-user socket)");
    return false;
  }
  if (has_vhost && (v.node.has("rx_queues") || v.node.has("tx_queues"))) {
    v.error("a vhost_user attachment sets its queue pairs with vhost_user.queues, not rx_queues/tx_queues");
    return false;
  }
  return ok;
}

bool read_uplink(const Value& v, UplinkConfig& out) {
  out.line = v.loc.line;
  return read_map(v, [&](MapReader& m) {
    m.required("name", out.name, checked_text(check_port_name));
    m.required("attach", out.attach, read_attachment);
  });
}

bool read_rate(const Value& v, RateLimit& out) {
  if (v.node.IsNull()) return true;  // "rate:" alone: unlimited
  return read_map(v, [&](MapReader& m) {
    m.required("tx_max_bps", out.tx_max_bps, Rate{});
    m.optional("tx_burst_bytes", out.tx_burst_bytes, kBurstBytes);
  });
}

bool read_vport(const Value& v, VportConfig& out) {
  out.line = v.loc.line;
  return read_map(v, [&](MapReader& m) {
    m.required("name", out.name, checked_text(check_vport_name));
    m.optional("flavour", out.flavour, one_of({Flavour::kVf, Flavour::kSf}));
    m.optional("id", out.id, Integer<uint32_t>{});
    m.required("attach", out.attach, read_vport_attachment);
    m.optional("hw_addr", out.hw_addr, checked_text(check_unicast_mac));
    m.optional("ipv4", out.ipv4, list_of(checked_text(check_ipv4_binding)));
    m.optional("ipv6", out.ipv6, list_of(checked_text(check_ipv6_binding)));
    m.optional("vlan", out.vlan, Integer<uint16_t>{.min = 1, .max = 4094});
    m.optional("state", out.state, one_of({VportState::kActive, VportState::kInactive}));
    m.optional("spoofchk", out.spoofchk, Bool{});
    m.optional("trust", out.trust, Bool{});
    m.optional("roce", out.roce, Bool{});
    m.optional("roce_strict", out.roce_strict, Bool{});
    m.optional("smc", out, read_vport_smc);  // schema_smc.cc: allow | deny | {policy, ism}
    m.optional("dhcp_client", out.dhcp_client, Bool{});
    m.optional("egress_multicast", out.egress_multicast, Bool{});
    m.optional("rate", out.rate, read_rate);
  });
}

bool read_representors(const Value& v, RepresentorConfig& out) {
  return read_map(v, [&](MapReader& m) {
    m.optional("kind", out.kind, one_of({RepresentorKind::kTap, RepresentorKind::kNone}));
  });
}

bool read_meter_type(const Value& v, bool& tr_tcm) {
  if (v.node.IsScalar() && (v.node.Scalar() == "srtcm" || v.node.Scalar() == "trtcm")) {
    tr_tcm = v.node.Scalar() == "trtcm";
    return true;
  }
  v.error(fmt::format("expected one of srtcm, trtcm, got {}", describe(v.node)));
  return false;
}

// Which keys belong to which type is checked by check_meters(), which can say so.
bool read_meter(const Value& v, MeterConfig& out) {
  out.loc = v.loc;
  return read_map(v, [&](MapReader& m) {
    m.required("name", out.name, checked_text(check_identifier("meter")));
    m.required("type", out.tr_tcm, read_meter_type);
    m.required("cir", out.cir_bps, Rate{});
    m.required("cbs", out.cbs_bytes, kBurstBytes);
    m.optional("ebs", out.ebs_bytes, Integer64{.min = 0, .max = kMaxBurstBytes});
    m.optional("pir", out.pir_bps, Rate{});
    m.optional("pbs", out.pbs_bytes, kBurstBytes);
  });
}

bool read_cross_connect(const Value& v, CrossConnect& out) {
  return read_map(v, [&](MapReader& m) {
    m.required("from", out.from, Text{.non_empty = true});
    m.required("to", out.to, Text{.non_empty = true});
  });
}

bool read_pipeline(const Value& v, PipelineConfig& out) {
  return read_map(v, [&](MapReader& m) {
    m.optional("mode", out.mode, one_of({PipelineMode::kL2, PipelineMode::kCrossConnect}));
    m.optional("cross_connect", out.cross_connect, list_of(read_cross_connect));
  });
}

}  // namespace

bool read_config(const Value& v, Config& out) {
  return read_map(v, [&](MapReader& m) {
    m.required("apiVersion", out.api_version, checked_text(check_api_version));
    m.optional("dataplane", out.dataplane, read_dataplane);
    m.optional("uplinks", out.uplinks, list_of(read_uplink));
    m.optional("vports", out.vports, list_of(read_vport));
    m.optional("representors", out.representors, read_representors);
    m.optional("pipeline", out.pipeline, read_pipeline);
    m.optional("meters", out.meters, list_of(read_meter));
    m.optional("tables", out.tables, list_of(read_table));
  });
}

}  // namespace esw::cfg::detail
