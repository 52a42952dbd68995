#include "dataplane/daemon/api_request.h"

#include <vector>

#include <fmt/format.h>

#include "config/text_escape.h"
#include "control/api_protocol.h"

namespace esw::dp {
namespace {

using json = nlohmann::json;

// A parser message can quote a whole (huge) token: cut it.
constexpr size_t kMaxMessageBytes = 512;

std::string cut(std::string text, size_t max) {
  if (text.size() > max) {
    text.resize(max);
    text += "...";
  }
  return text;
}

// The first string (or key) in `params` longer than kMaxParamStringBytes, as a path ("params.add[3]"), or "".
// params.yaml is exempt (the request size bounds it). Recursion is bounded: the depth scan ran first.
std::string long_string(const json& v, const std::string& path, bool top) {
  if (v.is_string()) return v.get_ref<const std::string&>().size() > kMaxParamStringBytes ? path : std::string();
  if (v.is_array()) {
    for (size_t i = 0; i < v.size(); ++i) {
      std::string p = long_string(v[i], fmt::format("{}[{}]", path, i), false);
      if (!p.empty()) return p;
    }
  } else if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (it.key().size() > kMaxParamStringBytes) return path + ".<a key>";
      if (top && it.key() == "yaml") continue;
      std::string p = long_string(it.value(), path + "." + quoted_text(it.key()), false);
      if (!p.empty()) return p;
    }
  }
  return {};
}

}  // namespace

std::string quoted_text(std::string_view text) {
  constexpr size_t kShown = 64;
  if (text.size() > kShown) return fmt::format("\"{}\"...", escape_control(text.substr(0, kShown)));
  return fmt::format("\"{}\"", escape_control(text));
}

json error_json(const ApiError& e) {
  json j = {{"code", escape_control(e.code)}, {"message", escape_control(e.message)}};
  if (!e.errors.empty()) {
    json errors = e.errors;
    for (auto& err : errors) {
      if (!err.is_object()) continue;
      for (const char* key : {"path", "message"}) {
        auto it = err.find(key);
        if (it != err.end() && it->is_string()) *it = escape_control(it->get_ref<const std::string&>());
      }
    }
    j["errors"] = std::move(errors);
  }
  return j;
}

DepthScan scan_depth(std::string_view text, size_t max_depth) {
  DepthScan r;
  size_t depth = 0;
  bool in_string = false, escaped = false;
  bool expect_key = false, in_key = false;  // at level 1 of an object: the envelope's member names
  size_t key_start = 0;
  std::string_view field;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
        if (in_key) {
          field = text.substr(key_start, i - key_start);
          in_key = false;
        }
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        if (depth == 1 && expect_key) {
          in_key = true;
          key_start = i + 1;
          expect_key = false;
        }
        break;
      case '{':
      case '[':
        ++depth;
        if (depth == 1) expect_key = c == '{';
        if (depth > r.depth) r.depth = depth;
        if (depth > max_depth) {
          r.exceeded_at = i;
          r.field = std::string(field);
          return r;
        }
        break;
      case '}':
      case ']':
        if (depth > 0) --depth;
        if (depth == 0) field = {};
        break;
      case ',':
        if (depth == 1) {
          expect_key = true;
          field = {};
        }
        break;
      default:
        break;
    }
  }
  return r;
}

void parse_envelope(std::string_view line, ApiEnvelope& env) {
  // 1. Nesting, on the raw bytes: nothing recursive has touched the request yet.
  const DepthScan scan = scan_depth(line, kMaxDepth);
  if (scan.exceeded_at != std::string_view::npos) {
    throw ApiError{"too_deep", fmt::format("request nests arrays/objects deeper than {} levels (at byte {}{}); "
                                           "nothing was done",
                                           kMaxDepth, scan.exceeded_at,
                                           scan.field.empty() ? "" : ", in " + quoted_text(scan.field))};
  }
  // 2. The JSON itself (nlohmann's parser is iterative; the depth bound keeps every later copy, dump and walk of
  // the tree shallow).
  json req;
  try {
    req = json::parse(line.begin(), line.end());
  } catch (const json::exception& e) {
    throw ApiError{"parse_error", cut(fmt::format("request is not valid JSON: {}", e.what()), kMaxMessageBytes)};
  }
  if (!req.is_object()) throw ApiError{"bad_request", "a request is a JSON object: {\"api\": 1, \"method\": ...}"};
  // 3. Each envelope member within its bound, before it is copied anywhere.
  if (auto it = req.find("id"); it != req.end()) {
    const size_t id_bytes = it->is_string() ? it->get_ref<const std::string&>().size() + 2
                                            : it->dump(-1, ' ', false, json::error_handler_t::replace).size();
    if (id_bytes > kMaxIdBytes) {
      throw ApiError{"too_large", fmt::format("\"id\" is {} bytes of JSON; at most {}", id_bytes, kMaxIdBytes)};
    }
    env.id = std::move(*it);
  }
  auto api = req.find("api");
  if (api == req.end()) {
    throw ApiError{"bad_request", fmt::format("missing \"api\": requests say which API version they speak "
                                              "({{\"api\": {}, ...}})",
                                              api::kApiVersion)};
  }
  if (!api->is_number_integer()) throw ApiError{"bad_request", "\"api\" must be an integer"};
  if (api->get<int64_t>() != api::kApiVersion) {
    throw ApiError{"unsupported_api", fmt::format("API version {} is not supported; this eswitchd speaks version {}",
                                                  api->dump(), api::kApiVersion)};
  }
  auto m = req.find("method");
  if (m == req.end() || !m->is_string()) throw ApiError{"bad_request", "missing \"method\" (a string)"};
  if (m->get_ref<const std::string&>().size() > kMaxMethodBytes) {
    throw ApiError{"too_large", fmt::format("\"method\" is {} bytes; at most {}",
                                            m->get_ref<const std::string&>().size(), kMaxMethodBytes)};
  }
  env.method = m->get<std::string>();
  if (auto p = req.find("params"); p != req.end() && !p->is_null()) {
    if (!p->is_object()) throw ApiError{"bad_request", "\"params\" must be an object"};
    const std::string where = long_string(*p, "params", true);
    if (!where.empty()) {
      throw ApiError{"too_large", fmt::format("{}: a string or key in params has at most {} bytes (only params.yaml "
                                              "may be longer)",
                                              where, kMaxParamStringBytes)};
    }
    env.params = std::move(*p);
  }
  if (auto it = env.params.find("progress"); it != env.params.end() && !it->is_null()) {
    if (!it->is_boolean()) throw ApiError{"bad_request", "params.progress must be true or false"};
    env.progress = it->get<bool>();
  }
}

}  // namespace esw::dp
