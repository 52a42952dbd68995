// The rules family of the management API: rules (a write: runtime rules added and deleted incrementally).

#include <fmt/format.h>

#include "dataplane/daemon/api_methods.h"
#include "dataplane/daemon/switch.h"

namespace esw::dp {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// Runtime rules: {"add": ["name=x,priority=..,<match> actions=..", ...], "delete": ["x", ...]}. One transaction
// on the main thread, like an apply; small and incremental, so it parses nothing off the loop thread and runs at
// once unless earlier writes are still queued (writes commit in the order they arrived).
json run_rules(ApiContext& ctx, const ApiCall& call) {
  const json& params = call.params;
  auto strings = [&](const char* key) {
    std::vector<std::string> out;
    auto it = params.find(key);
    if (it == params.end() || it->is_null()) return out;
    if (!it->is_array()) throw ApiError{"bad_request", fmt::format("\"{}\" must be an array of strings", key)};
    for (const auto& v : *it) {
      if (!v.is_string()) throw ApiError{"bad_request", fmt::format("\"{}\" must be an array of strings", key)};
      out.push_back(v.get<std::string>());
    }
    return out;
  };
  const std::vector<std::string> add = strings("add");
  const std::vector<std::string> del = strings("delete");
  const auto t = Clock::now();
  const ApplyResult r = ctx.sw.change_rules(add, del);
  if (!r.ok) {
    throw ApiError{"invalid_config", fmt::format("{} error(s); nothing was changed", r.errors.size()),
                   config_errors_json(r.errors)};
  }
  if (ctx.on_applied) ctx.on_applied();  // eswitchd saves the runtime rules before the client hears "ok"
  return json{{"added", add.size()}, {"deleted", del.size()}, {"changes", r.diff.size()},
              {"runtime_rules", ctx.sw.runtime_rule_count()}, {"ms", ms_since(t)}};
}

}  // namespace

void add_rules_methods(ApiMethodTable& table) {
  table.push_back({"rules", ApiAccess::kWrite, false, nullptr, run_rules});
}

}  // namespace esw::dp
