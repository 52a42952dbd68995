#pragma once
// The management API's method table: what each method is called, whether it reads or writes the switch, and its
// handler. The transport (dataplane/daemon/api_server.cc: framing, connections, limits, the write queue) finds a
// request's method here and runs it; the handlers live one file per family:
//
//   api_methods_config.cc   config (read), diff (read, parses YAML), apply (write, parses YAML)
//   api_methods_show.cc     ping, show, stats, trace (reads)
//   api_methods_rules.cc    rules (write)
//   api_methods_vport.cc    migrate (write: a vhost-user vport's migration state)
//
// How the server runs a method:
//  - kRead without YAML: answered at once, on the loop thread, whatever else is queued.
//  - kWrite, and any method that parses YAML: serialised through one queue in arrival order, so writes commit
//    in the order they were received and a diff is computed against every write received before it. A method
//    that parses YAML has params.yaml parsed on a helper thread first (a 100k-rule file takes seconds and
//    touches no switch state); its handler then runs on the loop thread. A write that parses nothing (rules)
//    runs at once when nothing is queued ahead of it.
// A handler throws ApiError for a request the client got wrong; the server turns it into {"ok": false, ...}.
//
// Threading: handlers run on eswitchd's main thread (the event loop's), one at a time.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "dataplane/daemon/api_server.h"
#include "dataplane/daemon/switch.h"

namespace esw::dp {

// What a handler may see and change besides the switch.
struct ApiContext {
  Switch& sw;
  RunningSource& running;  // a write that changed something updates it (and calls on_applied)
  const std::function<void()>& on_applied;
  // For ping.
  size_t clients = 0;
  bool apply_in_progress = false;
  uint64_t requests = 0;
  std::chrono::steady_clock::time_point started;
};

// One request as the transport hands it to a handler.
struct ApiCall {
  const nlohmann::json& params;
  // Methods that parse YAML: params.yaml and params.source ("<api>" when absent), the parse result, and the
  // timing the reply reports.
  std::string_view yaml;
  std::string_view source;
  const cfg::LoadResult* loaded = nullptr;
  double parse_ms = 0;
  // Planned with the parse, off the loop thread (Switch::prepare_apply; null in the synchronous handle()), its
  // time, the YAML's text_hash (empty: not computed), and the job's YAML text, which the handler may take.
  std::shared_ptr<Switch::PreparedApply> prepared;
  double plan_ms = 0;
  std::string_view yaml_hash;
  std::string* yaml_owned = nullptr;
  bool dry_run = false;  // diff, or apply with params.dry_run (decided once, when the request arrived)
  // Big results the handler is done with (a 100k-item diff): the server frees them off the loop thread.
  std::vector<DiffItem>* dispose_diff = nullptr;
  std::chrono::steady_clock::duration receive_time{};   // first byte to complete request
  std::chrono::steady_clock::time_point received{};     // when the request was complete
  std::function<void(nlohmann::json)> progress;  // sends a progress line if the request asked for them
  // More of the job's timing for the reply (the JSON parse, the wait in the queue, CPU times): an object.
  nlohmann::json timing;
};

enum class ApiAccess { kRead, kWrite };

struct ApiMethod {
  std::string_view name;
  ApiAccess access;
  bool parses_yaml = false;  // params.yaml is parsed off the loop thread before `run`
  // Optional: checks params when the request arrives, so a malformed one is refused before it waits in the queue.
  void (*check)(const nlohmann::json& params) = nullptr;
  nlohmann::json (*run)(ApiContext& ctx, const ApiCall& call) = nullptr;
};

using ApiMethodTable = std::vector<ApiMethod>;

void add_config_methods(ApiMethodTable& table);  // config, diff, apply
void add_show_methods(ApiMethodTable& table);    // ping, show, stats, trace
void add_rules_methods(ApiMethodTable& table);   // rules
void add_vport_methods(ApiMethodTable& table);   // migrate (api_methods_vport.cc)

// The whole table, in the order "unknown_method" errors list the methods.
const ApiMethodTable& api_methods();
const ApiMethod* find_api_method(std::string_view name);

// Request params: a wrong type is the client's mistake, reported as bad_request naming the param.
const nlohmann::json* api_param(const nlohmann::json& params, const char* key);
std::string api_param_string(const nlohmann::json& params, const char* key, bool required, std::string def = {});
bool api_param_bool(const nlohmann::json& params, const char* key, bool def);
uint64_t api_param_uint(const nlohmann::json& params, const char* key, uint64_t def);

nlohmann::json config_errors_json(const std::vector<cfg::Error>& errors);
double ms_since(std::chrono::steady_clock::time_point t);
double ms_of(std::chrono::steady_clock::duration d);
double thread_cpu_ms();  // the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID), in ms

}  // namespace esw::dp
