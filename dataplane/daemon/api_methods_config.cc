// The config family of the management API: config (read), diff (read; parses YAML), apply (write; parses YAML).

#include <map>

#include <fmt/format.h>

#include "config/config.h"
#include "dataplane/daemon/api_methods.h"
#include "dataplane/daemon/switch.h"

namespace esw::dp {
namespace {

using json = nlohmann::json;

json run_config(ApiContext& ctx, const ApiCall&) {
  const cfg::Config& c = ctx.sw.config();
  size_t rules = 0;
  for (const auto& t : c.tables) rules += t.rules.size();
  return {{"yaml", ctx.running.yaml},
          {"source", ctx.running.source},
          {"generation", ctx.running.generation},
          {"config_hash", ctx.running.hash},
          {"restart_required", ctx.running.restart_required},
          {"summary",
           {{"uplinks", c.uplinks.size()},
            {"vports", c.vports.size()},
            {"tables", c.tables.size()},
            {"rules", rules},
            {"meters", c.meters.size()},
            {"pipeline", cfg::to_string(c.pipeline.mode)}}}};
}

// The params apply and diff share, checked when the request arrives (apply also takes dry_run).
void check_yaml_params(const json& params) {
  (void)api_param_string(params, "yaml", true);
  (void)api_param_string(params, "source", false, "<api>");
  (void)api_param_uint(params, "diff_limit", 0);
}
void check_apply(const json& params) {
  (void)api_param_bool(params, "dry_run", false);
  check_yaml_params(params);
}

// One Switch::apply of the parsed YAML (a dry run for diff): all of it or nothing.
json commit(ApiContext& ctx, const ApiCall& call) {
  const bool dry_run = call.dry_run;
  const std::string_view source = call.source;
  const char* nothing = dry_run ? "nothing would be applied" : "nothing was applied; the switch keeps its running "
                                                               "config";
  const cfg::LoadResult& loaded = *call.loaded;
  if (!loaded.config) {
    throw ApiError{"invalid_config",
                   fmt::format("{}: {} error{}; {}", source, loaded.errors.size(), loaded.errors.size() == 1 ? "" : "s",
                               nothing),
                   config_errors_json(loaded.errors)};
  }
  size_t rules = 0;
  for (const auto& t : loaded.config->tables) rules += t.rules.size();
  call.progress({{"phase", dry_run ? "diffing" : "applying"}, {"parse_ms", call.parse_ms}, {"rules", rules}});

  const auto t_apply = std::chrono::steady_clock::now();
  const double cpu_apply = thread_cpu_ms();
  ApplyResult ar;
  try {
    ar = call.prepared ? ctx.sw.finish_apply(call.prepared) : ctx.sw.apply(*loaded.config, dry_run);
  } catch (const std::exception& e) {
    throw ApiError{"apply_failed", fmt::format("{}: {}; {}", source, e.what(), nothing)};
  }
  const double apply_ms = ms_since(t_apply);
  const double apply_cpu_ms = thread_cpu_ms() - cpu_apply;
  if (!ar.ok) {
    throw ApiError{"invalid_config",
                   fmt::format("{}: {} error{}; {}", source, ar.errors.size(), ar.errors.size() == 1 ? "" : "s",
                               nothing),
                   config_errors_json(ar.errors)};
  }
  const uint64_t diff_limit = api_param_uint(call.params, "diff_limit", 0);  // 0: every item
  json diff = json::array();
  std::map<char, size_t> counts{{'+', 0}, {'-', 0}, {'~', 0}};
  for (const auto& d : ar.diff) {
    ++counts[d.op];
    if (diff_limit == 0 || diff.size() < diff_limit) {
      diff.push_back({{"op", std::string(1, d.op)}, {"kind", d.kind}, {"name", d.name}, {"detail", d.detail}});
    }
  }
  RunningSource& running = ctx.running;
  if (!dry_run && (!ar.diff.empty() || call.yaml != running.yaml || ar.restart_required != running.restart_required)) {
    running.hash = call.yaml_hash.empty() ? text_hash(call.yaml) : std::string(call.yaml_hash);
    if (call.yaml_owned != nullptr) {
      running.yaml = std::move(*call.yaml_owned);  // the job is done with it (a 100k-rule text is ~10 MB)
    } else {
      running.yaml = std::string(call.yaml);
    }
    running.source = std::string(source);
    running.restart_required = ar.restart_required;
    ++running.generation;
    if (ctx.on_applied) ctx.on_applied();
  }
  json reply = {{"dry_run", dry_run},
          {"changed", !ar.diff.empty()},
          {"diff", std::move(diff)},
          {"diff_total", ar.diff.size()},
          {"counts", {{"added", counts['+']}, {"removed", counts['-']}, {"changed", counts['~']}}},
          {"restart_required", ar.restart_required},
          {"generation", running.generation},
          {"config_hash", running.hash},
          {"rules", rules},
          {"timing",
           {{"receive_ms", ms_of(call.receive_time)},
            {"parse_ms", call.parse_ms},
            {"plan_ms", call.plan_ms},
            {"apply_ms", apply_ms},
            {"apply_cpu_ms", apply_cpu_ms},
            {"total_ms", ms_of(call.receive_time) + ms_since(call.received)}}}};
  if (call.timing.is_object()) reply["timing"].update(call.timing);
  if (call.dispose_diff != nullptr) *call.dispose_diff = std::move(ar.diff);
  return reply;
}


}  // namespace

void add_config_methods(ApiMethodTable& table) {
  table.push_back({"config", ApiAccess::kRead, false, nullptr, run_config});
  table.push_back({"apply", ApiAccess::kWrite, true, check_apply, commit});
  table.push_back({"diff", ApiAccess::kRead, true, check_yaml_params, commit});
}

}  // namespace esw::dp
