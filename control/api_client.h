#pragma once
// Client side of eswitchd's management API (dataplane/daemon/api_server.h): one request per connection, sent as
// one JSON line; the connection is half-closed after the request so the server sees a complete request even
// without reading the newline. Progress lines the server sends (params.progress = true) and periodic ticks go
// to a callback so a terminal can show what is happening during a long apply.
//
// Threading: one ApiClient per thread; a call blocks until the reply arrives (or the timeout passes).

#include <functional>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "control/api_protocol.h"

namespace esw::ctl {

// Both from control/api_protocol.h, the one place the server takes them from too.
inline constexpr int kApiVersion = api::kApiVersion;
inline constexpr const char* kDefaultSocket = api::kDefaultSocketPath;

// eswitchd cannot be reached (no socket, refused, permission) or the connection broke before a reply came.
class ConnectError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ApiReply {
  bool ok = false;
  nlohmann::json result;  // when ok
  nlohmann::json error;   // when !ok: {"code", "message", "errors": [{path, line, column, message}]}
  nlohmann::json raw;     // the whole reply line
};

struct CallProgress {
  size_t sent = 0;             // request bytes written so far
  size_t total = 0;            // request size
  const nlohmann::json* server = nullptr;  // the latest progress object from the server, if any
  double elapsed_s = 0;
};

// Where the last call's time went (eswitchctl --timing), in ms.
struct CallTiming {
  double encode = 0;  // the request line built (the JSON text of params)
  double send = 0;    // connect to the request's last byte written (eswitchd reads it meanwhile)
  double wait = 0;    // from there to the reply line received
  double decode = 0;  // the reply line parsed
};

class ApiClient {
 public:
  explicit ApiClient(std::string socket_path, double timeout_s = 0);

  // Sends {"api":1,"id":N,"method":method,"params":params} and waits for the reply. `tick` is called about
  // every 100 ms and whenever the server reports progress. Throws ConnectError when eswitchd cannot be reached
  // or the connection fails before the reply; a reply with "ok": false is returned, not thrown.
  ApiReply call(const std::string& method, const nlohmann::json& params,
                const std::function<void(const CallProgress&)>& tick = {});

  const std::string& socket_path() const { return path_; }
  const CallTiming& last_timing() const { return timing_; }

 private:
  std::string path_;
  double timeout_s_;
  uint64_t next_id_ = 1;
  CallTiming timing_;
};

}  // namespace esw::ctl
