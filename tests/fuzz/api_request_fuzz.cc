// libFuzzer target for the management API's request handling that needs no switch: one request line through
// esw::dp::parse_envelope (depth scan, JSON, envelope bounds - dataplane/daemon/api_request.h) and error_json, and
// every string of a "rules" request's add list through the rule parser the runtime `rules` method and the YAML
// share (cfg::parse_rule_text). Built and run by run_api_fuzz.sh (clang, -fsanitize=fuzzer,address,undefined);
// the corpus it starts from is tests/fuzz/api_corpus/.
//
// Besides crashes and sanitizer reports, the checks below abort on results that break the documented bounds: a
// request accepted with nesting, an id or a method beyond their limits; an error message or an error path with a
// raw control character; a rule accepted with a priority or table out of range.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/text_escape.h"
#include "dataplane/daemon/api_request.h"

namespace {

using json = nlohmann::json;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "api request invariant violated: %s\n", what);
    std::abort();
  }
}

// Depth of a parsed value, iteratively (the tree is already bounded; this is the independent measure).
size_t depth_of(const json& root) {
  size_t deepest = 0;
  std::vector<std::pair<const json*, size_t>> stack{{&root, 1}};
  while (!stack.empty()) {
    auto [v, d] = stack.back();
    stack.pop_back();
    if (!v->is_structured()) continue;
    deepest = std::max(deepest, d);
    for (const auto& child : *v) stack.push_back({&child, d + 1});
  }
  return deepest;
}

// The id's size as the server measures it: a string's bytes plus its quotes, anything else its JSON text.
size_t id_bytes(const json& id) {
  return id.is_string() ? id.get_ref<const std::string&>().size() + 2
                        : id.dump(-1, ' ', false, json::error_handler_t::replace).size();
}

void check_error(const esw::dp::ApiError& e) {
  check(!e.code.empty(), "an error without a code");
  const json j = esw::dp::error_json(e);
  check(!esw::has_control(j["code"].get<std::string>()), "control character in an error code");
  check(!esw::has_control(j["message"].get<std::string>()), "control character in an error message");
  check(j.dump(-1, ' ', false, json::error_handler_t::replace).size() < 4096, "an error reply over 4 KiB");
}

void fuzz_rules(const json& params) {
  auto add = params.find("add");
  if (add == params.end() || !add->is_array()) return;
  for (const auto& v : *add) {
    if (!v.is_string()) continue;
    esw::cfg::RuleConfig rule;
    uint32_t table = 0;
    std::vector<esw::cfg::Error> errors;
    const bool ok = esw::cfg::parse_rule_text(v.get_ref<const std::string&>(), "add[0]", rule, table, errors);
    if (ok) {
      check(errors.empty(), "a rule accepted with errors");
      check(rule.priority <= 65535, "a rule accepted with a priority above 65535");
      check(table <= 254, "a rule accepted with a table above 254");
      check(!rule.actions.empty(), "a rule accepted without actions");
    } else {
      check(!errors.empty(), "a rule refused without an error");
      for (const auto& e : errors) {
        check(e.path == "add[0]", "a rule error not located at its string");
        check(!esw::has_control(e.to_string()), "control character in a rule error");
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  esw::dp::ApiEnvelope env;
  try {
    esw::dp::parse_envelope(line, env);
  } catch (const esw::dp::ApiError& e) {
    check_error(e);
    check(id_bytes(env.id) <= esw::dp::kMaxIdBytes, "an oversized id kept for the error reply");
    return 0;
  }
  check(esw::dp::scan_depth(line, esw::dp::kMaxDepth).exceeded_at == std::string_view::npos,
        "a request accepted beyond the depth limit");
  check(depth_of(env.id) + 1 <= esw::dp::kMaxDepth, "an id accepted beyond the depth limit");
  check(depth_of(env.params) + 1 <= esw::dp::kMaxDepth, "params accepted beyond the depth limit");
  check(id_bytes(env.id) <= esw::dp::kMaxIdBytes, "an id accepted beyond its size limit");
  check(env.method.size() <= esw::dp::kMaxMethodBytes, "a method accepted beyond its size limit");
  check(env.params.is_object(), "params accepted that are not an object");
  if (env.method == "rules") fuzz_rules(env.params);
  return 0;
}
