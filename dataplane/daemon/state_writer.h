#pragma once
// Write-behind for the state directory (state_store.h): saves run on one helper thread, so the main loop never
// waits for a write or an fsync, and saves that pile up while one is being written are coalesced (group commit):
// each part's file holds the whole part, so only the newest queued version of it needs writing.
//
// Every submit returns a ticket (increasing); durable() is the highest ticket whose state is on disk (or whose
// save failed: the failure is printed to stderr, and the running state is then newer than the saved one, as it
// was when saves were synchronous). The API holds the reply to a change until its ticket is durable, so a client
// hears "ok" only for a change that a crash can no longer lose.
//
// Order: submissions are written in the order they were made; consecutive submissions of the same part are
// coalesced into the last one. A config save and a rules save are never reordered, so after a crash the
// directory holds a (config, rules) pair the switch ran at some point (a prefix of the changes), each part
// old-or-new as StateStore guarantees.
//
// Threading: submit*, durable(), drain() from any thread (eswitchd: the main thread); `on_durable` runs on the
// writer thread after each write (eswitchd notifies its event loop from it). The store is used only by the
// writer thread while a StateWriter exists.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/daemon/state_store.h"

namespace esw::dp {

class StateWriter {
 public:
  StateWriter(StateStore& store, std::function<void(uint64_t durable)> on_durable);
  StateWriter(const StateWriter&) = delete;
  StateWriter& operator=(const StateWriter&) = delete;
  // Writes whatever is still queued, then stops the thread.
  ~StateWriter();

  uint64_t submit_config(SavedConfig config);
  uint64_t submit_rules(std::vector<std::string> rules);
  uint64_t durable() const;
  // Blocks until every submission made so far is written (or failed) and on_durable has been called for it.
  void drain();

  struct Counters {
    uint64_t submitted = 0;  // submissions
    uint64_t written = 0;    // files written (submitted - written were coalesced away)
    uint64_t failed = 0;
    // The last file written: which part, its size, and the write's wall and CPU time (the writer thread's).
    uint64_t last_ticket = 0;
    bool last_is_config = false;
    size_t last_bytes = 0;
    double last_ms = 0;
    double last_cpu_ms = 0;
  };
  Counters counters() const;

 private:
  struct Item {
    uint64_t ticket = 0;
    bool is_config = false;
    SavedConfig config;
    std::vector<std::string> rules;
  };
  uint64_t submit(Item item);
  void run();

  StateStore& store_;
  std::function<void(uint64_t)> on_durable_;
  mutable std::mutex mu_;
  std::condition_variable wake_;   // the writer: work or stop
  std::condition_variable idle_;   // drain(): durable_ moved
  std::deque<Item> queue_;         // under mu_
  uint64_t next_ticket_ = 0;       // under mu_
  uint64_t durable_ = 0;           // under mu_
  uint64_t reported_ = 0;          // under mu_: the last ticket on_durable was called with
  bool stop_ = false;              // under mu_
  Counters counters_;              // under mu_
  std::thread thread_;
};

}  // namespace esw::dp
