#include "dataplane/daemon/state_writer.h"

#include <pthread.h>
#include <time.h>

#include <chrono>

#include <fmt/format.h>

namespace esw::dp {
namespace {

double thread_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

}  // namespace

StateWriter::StateWriter(StateStore& store, std::function<void(uint64_t)> on_durable)
    : store_(store), on_durable_(std::move(on_durable)) {
  thread_ = std::thread([this] {
    // Inherits the main lcore's CPU affinity: it never competes with a worker core.
    pthread_setname_np(pthread_self(), "esw-state");
    run();
  });
}

StateWriter::~StateWriter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

uint64_t StateWriter::submit(Item item) {
  uint64_t ticket;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ticket = item.ticket = ++next_ticket_;
    ++counters_.submitted;
    // The writer takes the whole queue at once, so the back is never being written: a newer version of the
    // same part replaces it (its ticket too: durable only once the newer version is written).
    if (!queue_.empty() && queue_.back().is_config == item.is_config) {
      queue_.back() = std::move(item);
    } else {
      queue_.push_back(std::move(item));
    }
  }
  wake_.notify_one();
  return ticket;
}

uint64_t StateWriter::submit_config(SavedConfig config) {
  Item item;
  item.is_config = true;
  item.config = std::move(config);
  return submit(std::move(item));
}

uint64_t StateWriter::submit_rules(std::vector<std::string> rules) {
  Item item;
  item.rules = std::move(rules);
  return submit(std::move(item));
}

uint64_t StateWriter::durable() const {
  std::lock_guard<std::mutex> lock(mu_);
  return durable_;
}

void StateWriter::drain() {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t want = next_ticket_;
  idle_.wait(lock, [&] { return reported_ >= want; });
}

StateWriter::Counters StateWriter::counters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counters_;
}

void StateWriter::run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stop_, and everything written
    std::deque<Item> batch;
    batch.swap(queue_);
    lock.unlock();
    for (Item& item : batch) {
      std::string error;
      const auto t0 = std::chrono::steady_clock::now();
      const double cpu0 = thread_cpu_ms();
      const bool ok = item.is_config ? store_.save_config(item.config, error) : store_.save_rules(item.rules, error);
      const double cpu = thread_cpu_ms() - cpu0;
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (!ok) {
        fmt::print(stderr, "eswitchd: the {} were not saved: {}\n",
                   item.is_config ? "applied config" : "runtime rules", error);
      }
      lock.lock();
      ++(ok ? counters_.written : counters_.failed);
      if (ok) {
        counters_.last_ticket = item.ticket;
        counters_.last_is_config = item.is_config;
        counters_.last_bytes = store_.last_save_bytes();
        counters_.last_ms = ms;
        counters_.last_cpu_ms = cpu;
      }
      durable_ = item.ticket;
      lock.unlock();
      if (on_durable_) on_durable_(item.ticket);
      lock.lock();
      reported_ = item.ticket;  // drain() returns only once the callback has seen it too
      lock.unlock();
      idle_.notify_all();
    }
    lock.lock();
  }
}

}  // namespace esw::dp
