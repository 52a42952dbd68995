#pragma once
// One management API request line, checked and split into its envelope - the part of the API a client controls
// byte by byte, kept apart from the socket (api_server.cc) and the switch so that it is fuzzed on its own
// (tests/fuzz/api_request_fuzz.cc). No DPDK.
//
// Every bound is checked before the JSON is copied or walked recursively, and each is answered with its own
// error code naming the field (the limits are listed in control/README.md, "Limits"):
//   - nesting: at most kMaxDepth levels of arrays/objects anywhere in the line (the envelope object is level 1),
//     found by one linear scan of the raw bytes before the JSON parser builds anything: "too_deep".
//   - "id": at most kMaxIdBytes of JSON text; "method": at most kMaxMethodBytes; every string and key in
//     "params" at most kMaxParamStringBytes except params.yaml, which only the request size bounds: "too_large".
//   - the whole line: ApiServerOptions::max_request_bytes, checked by the server while the line arrives.
// Messages quote user text with control characters escaped (config/text_escape.h).

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace esw::dp {

// A request error: the reply's "error" object. Thrown inside the handlers, turned into {"ok": false, ...}.
struct ApiError {
  std::string code;     // parse_error, bad_request, too_deep, too_large, unsupported_api, unknown_method,
                        // truncated, timeout, idle_timeout, busy, invalid_config, apply_failed, not_found, internal
  std::string message;
  nlohmann::json errors = nlohmann::json::array();  // located config errors: {path, line, column, message}
};

// {"code", "message"[, "errors"]}, every string with its control characters escaped.
nlohmann::json error_json(const ApiError& e);

inline constexpr size_t kMaxDepth = 32;
inline constexpr size_t kMaxIdBytes = 256;
inline constexpr size_t kMaxMethodBytes = 32;
inline constexpr size_t kMaxParamStringBytes = 64 * 1024;

struct ApiEnvelope {
  nlohmann::json id;  // null when absent (or when the request was refused before it was read)
  std::string method;
  nlohmann::json params = nlohmann::json::object();
  bool progress = false;
};

// The deepest nesting in `text` and where it first exceeds `max_depth` (npos: it does not), in one pass without
// recursion; brackets inside strings do not count. It does not validate the JSON (the parser does that next).
struct DepthScan {
  size_t depth = 0;               // the deepest level reached (stops counting past max_depth + 1)
  size_t exceeded_at = std::string_view::npos;  // byte offset of the first bracket beyond max_depth
  std::string field;              // the envelope member it is in (raw key text), "" when outside one
};
DepthScan scan_depth(std::string_view text, size_t max_depth);

// The JSON of a request line, as nlohmann::json::parse gives it (and throws). String values of 64 KiB or more
// that are printable ASCII with simple escapes (an apply's YAML) are decoded past nlohmann's lexer
// (control/json_text.h); `lifted` (optional) says how many were. Run scan_depth first: it recurses.
nlohmann::json parse_request_json(std::string_view line, size_t* lifted = nullptr);

// Parses and checks one request line. Throws ApiError (parse_error, bad_request, too_deep, too_large,
// unsupported_api). `env.id` is set as soon as it is known to be within bounds, so that an error after that
// still echoes it. Does not look the method up (the server's table does).
void parse_envelope(std::string_view line, ApiEnvelope& env);

// "text" quoted, control characters escaped, cut after 64 characters: for user text inside a message.
std::string quoted_text(std::string_view text);

}  // namespace esw::dp
