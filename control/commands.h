#pragma once
// eswitchctl's commands. Each returns the process exit status: 0 success, 1 the request failed (invalid
// config, unknown port, ...), 2 eswitchd could not be reached.

#include <cstdint>
#include <string>
#include <vector>

namespace esw::ctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUnreachable = 2;

struct Options {
  std::string socket;      // resolved with resolve_socket()
  bool json = false;       // print the raw result as JSON instead of tables
  double timeout_s = 0;    // 0: wait as long as the request takes
  bool progress = false;   // draw progress on stderr (a terminal)
  bool timing = false;     // apply: print where the time went on stderr (--timing)
};

// --socket, else $ESWITCH_SOCKET, else dataplane.api_socket of `config_file` (when given and readable as
// YAML), else the default /run/eswitch/eswitchd.sock.
std::string resolve_socket(const std::string& flag, const std::string& config_file);

int cmd_validate(const Options& o, const std::string& file);
int cmd_diff(const Options& o, const std::string& file);
// diff_limit: diff items to print (0: all); with --json only when `limit_json` (the option was given).
int cmd_apply(const Options& o, const std::string& file, bool dry_run, uint64_t diff_limit, bool limit_json);
int cmd_watch(const Options& o, const std::string& file, double debounce_s, double resync_s);

struct ShowOptions {
  int table = -1;       // rules: only this table
  uint64_t limit = 0;   // rules: at most this many (0: all)
  uint64_t offset = 0;
};
int cmd_show(const Options& o, const std::string& what, const ShowOptions& so);
int cmd_stats(const Options& o, double interval_s, int count);
int cmd_trace(const Options& o, const std::string& packet, const std::string& hex, const std::string& in_port);
// Runtime rules (not part of the config file; kept across applies): add in the one-string form with name=NAME,
// delete by name, one transaction.
int cmd_rules(const Options& o, const std::vector<std::string>& add, const std::vector<std::string>& del);
int cmd_config(const Options& o);
int cmd_ping(const Options& o);
// vport migrate VPORT --to-state STATE [--stream FILE]: one migration arc (VFIO v2 states) of a vhost-user vport.
int cmd_vport_migrate(const Options& o, const std::string& vport, const std::string& to_state,
                      const std::string& stream);

}  // namespace esw::ctl
