#include "dataplane/daemon/api_request.h"

#include <charconv>
#include <random>
#include <system_error>
#include <vector>

#include <fmt/format.h>

#include "config/text_escape.h"
#include "control/api_protocol.h"
#include "control/json_text.h"

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

// Big string values (an apply's YAML) are decoded by decode_json_simple_string rather than by nlohmann's lexer
// (~10x faster): each is replaced in a copy of the line by a marker string, the copy is parsed, and the marker
// values are replaced by the decoded texts. Only literals that function takes whole (printable ASCII, simple
// escapes) and that are values, not keys; the result is the tree the parser builds from the line itself. When
// the copy does not parse, the line itself is parsed (its error, with its positions, is the one reported).
constexpr size_t kLiftBytes = size_t{64} << 10;

struct Lifted {
  std::string reduced;              // the line with a marker string for each lifted string
  std::vector<std::string> values;  // the lifted strings, in order
};

// The markers: a NUL character, a per-process random nonce, the index. As JSON text: "\u0000esw-lifted-...-N".
const std::string& marker_prefix() {
  static const std::string prefix = [] {
    std::random_device rd;
    return fmt::format("esw-lifted-{:08x}{:08x}{:08x}-", rd(), rd(), rd());
  }();
  return prefix;
}

bool lift_big_strings(std::string_view line, Lifted& out) {
  if (line.size() < kLiftBytes) return false;
  size_t copied = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] != '"') continue;
    // A literal starts here (the scan jumps over every literal, so this quote is not inside one).
    size_t end = i + 1;
    bool escaped = false;
    while (end < line.size() && (escaped || line[end] != '"')) {
      escaped = !escaped && line[end] == '\\';
      ++end;
    }
    if (end >= line.size()) return false;  // unterminated: the parser says so
    const size_t len = end + 1 - i;
    size_t next = end + 1;
    while (next < line.size() && (line[next] == ' ' || line[next] == '\t' || line[next] == '\n' || line[next] == '\r')) {
      ++next;
    }
    const bool is_key = next < line.size() && line[next] == ':';
    if (len >= kLiftBytes && !is_key) {
      std::string value;
      if (api::decode_json_simple_string(line.substr(i, len), value) == len) {
        out.reduced.append(line.data() + copied, i - copied);
        out.reduced += fmt::format("\"\\u0000{}{}\"", marker_prefix(), out.values.size());
        out.values.push_back(std::move(value));
        copied = i + len;
      }
    }
    i = end;
  }
  if (out.values.empty()) return false;
  out.reduced.append(line.data() + copied, line.size() - copied);
  return true;
}

// Puts the lifted strings back where their markers are; counts them. Recursion is bounded: the depth scan ran
// first.
void restore_lifted(json& v, Lifted& lifted, size_t& restored) {
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    const std::string& prefix = marker_prefix();
    if (s.size() <= prefix.size() + 1 || s[0] != '\0' || s.compare(1, prefix.size(), prefix) != 0) return;
    size_t index = 0;
    const char* first = s.data() + 1 + prefix.size();
    const auto [end, ec] = std::from_chars(first, s.data() + s.size(), index);
    if (ec == std::errc() && end == s.data() + s.size() && index < lifted.values.size()) {
      v = std::move(lifted.values[index]);
      ++restored;
    }
  } else if (v.is_array() || v.is_object()) {
    for (auto& item : v) restore_lifted(item, lifted, restored);
  }
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

json parse_request_json(std::string_view line, size_t* lifted_count) {
  if (lifted_count != nullptr) *lifted_count = 0;
  Lifted lifted;
  if (lift_big_strings(line, lifted)) {
    json req = json::parse(lifted.reduced, nullptr, false);
    std::string().swap(lifted.reduced);
    size_t restored = 0;
    if (!req.is_discarded()) restore_lifted(req, lifted, restored);
    if (!req.is_discarded() && restored == lifted.values.size()) {
      if (lifted_count != nullptr) *lifted_count = restored;
      return req;
    }
  }
  return json::parse(line.begin(), line.end());  // and its error, positions included
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
    req = parse_request_json(line);
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
