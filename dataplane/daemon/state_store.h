#pragma once
// Durable state: what eswitchd runs — the applied config (its YAML text exactly as applied, where it came from,
// its generation) and the runtime rules (their one-string texts, in installation order) — kept in a state
// directory (eswitchd --state-dir, default /var/lib/eswitch) and read back when eswitchd starts.
//
// Layout: two independent parts, each a series of generations, the newest two kept:
//   DIR/lock                      flock'ed by the eswitchd that owns DIR (its pid inside)
//   DIR/config.<seq>              the config part, seq = 20 decimal digits
//   DIR/rules.<seq>               the runtime-rules part
// A file is one header line "eswitch-state 1 <part> <seq> <payload bytes> <fnv1a64 hex>\n" and a JSON payload.
// A save writes DIR/.tmp.<part>, fsyncs it, renames it to the next generation and fsyncs DIR, then removes
// generations older than the previous one. A load takes the newest generation whose header, length, checksum
// and JSON are right; a torn or corrupt newer file is skipped with a note (the previous generation is used).
// An apply changes only the config part and a runtime-rules change only the rules part, and each part is
// replaced by one rename, so after a crash the directory holds the state after the last commit that was saved,
// or the one before: never a mix.
//
// Test hook: ESWITCHD_TEST_CRASH_IN_STATE_WRITE=<part> kills the process with SIGKILL after the temporary file
// of that part was written and synced, before the rename (a crash in the middle of a state write).
//
// Threading: one thread at a time (the main thread at start, then the state writer's thread, state_writer.h).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/daemon/instance_lock.h"

namespace esw::dp {

// Writes all n bytes to fd (retrying EINTR and short writes); false with errno set on failure.
bool write_all(int fd, const char* p, size_t n);

struct SavedConfig {
  std::string yaml;    // the config text as applied
  std::string source;  // where it came from ("my.yaml", "<api>", ...)
  uint64_t generation = 1;
};

class StateStore {
 public:
  // Creates DIR (mode 0700) if missing and takes its lock. Throws Error naming DIR and the cause; when another
  // eswitchd owns DIR, the message names its pid.
  // sync: fsync the file and the directory on every save (survives power loss); false: write and rename only
  // (survives a crash or kill -9 of eswitchd, which is what the page cache keeps; ~10x more saves per second).
  explicit StateStore(std::string dir, bool sync = true);
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  const std::string& dir() const { return dir_; }

  // The newest valid generation of each part (nullopt: none saved). Files skipped as torn or corrupt are
  // described in `notes`, one line each.
  std::optional<SavedConfig> load_config(std::vector<std::string>& notes);
  std::optional<std::vector<std::string>> load_rules(std::vector<std::string>& notes);

  // Atomic replacement of one part. False with `error` set (naming the file and the cause) when it failed; the
  // previous generation is then still there.
  bool save_config(const SavedConfig& config, std::string& error);
  bool save_rules(const std::vector<std::string>& rules, std::string& error);

  // Bytes and milliseconds of the last successful save (for logs and benchmarks).
  size_t last_save_bytes() const { return last_bytes_; }
  double last_save_ms() const { return last_ms_; }

 private:
  std::optional<std::string> load_part(const char* part, std::vector<std::string>& notes);
  bool save_part(const char* part, const std::string& payload, std::string& error);

  std::string dir_;
  bool sync_ = true;
  InstanceLock lock_;
  uint64_t seq_[2] = {0, 0};  // newest generation on disk per part (config, rules)
  size_t last_bytes_ = 0;
  double last_ms_ = 0;
};

}  // namespace esw::dp
