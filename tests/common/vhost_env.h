#pragma once
// The process-wide set-up of the in-process vhost-user tests: one EAL for the whole binary and a socket directory
// of its own, both removed at the end; SIGPIPE ignored, as in eswitchd (and any VMM): a peer that closed its
// socket is an error return, not a signal.

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/ring_harness.h"
#include "config/config.h"
#include "dataplane/daemon/eal.h"
#include "dataplane/daemon/switch.h"
#include "vdpa/vhost_port.h"

namespace esw::test {

class VhostEnv : public ::testing::Environment {
 public:
  VhostEnv(std::string socket_dir, cfg::Config eal_config)
      : dir_(std::move(socket_dir)), config_(std::move(eal_config)) {}
  void SetUp() override {
    std::filesystem::create_directories(dir_);
    dp::Eal::init(config_);
  }
  void TearDown() override {
    dp::Eal::cleanup();
    std::filesystem::remove_all(dir_);
  }

 private:
  std::string dir_;
  cfg::Config config_;
};

inline vdpa::VhostUserPort* vhost_port(dp::Switch& sw, const std::string& name) {
  const int i = sw.port_index(name);
  if (i < 0) return nullptr;
  return dynamic_cast<vdpa::VhostUserPort*>(sw.ports()[static_cast<size_t>(i)].get());
}

// The main lcore's share: what eswitchd's event loop does when a port's eventfd is readable (and on its 100 ms
// tick), here polled until `done` or the timeout.
inline bool serve_until(dp::Switch& sw, const std::function<bool()>& done,
                        std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    sw.service_ports();
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

// One of the port's peer counters (peer_status().counters); a missing name fails the test.
inline uint64_t peer_counter(const vdpa::VhostUserPort& vp, const std::string& name) {
  for (const auto& [k, v] : vp.peer_status().counters) {
    if (k == name) return v;
  }
  ADD_FAILURE() << "no peer counter " << name;
  return 0;
}

// A switch with the vhost-user vport `vm` (server mode, 1 queue pair, no binding check) beside two ring ports a
// and b, forwarding as `cross_connect` says (e.g. {"vm", "a"}: what the guest sends comes out of ring a).
struct VhostBench {
  RingPort a, b;
  std::string sock;
  dp::Switch sw;
  vdpa::VhostUserPort* vp = nullptr;

  static cfg::Config config(cfg::Config c, const RingPort& a, const RingPort& b, const std::string& sock,
                            std::vector<cfg::CrossConnect> cross_connect) {
    c.uplinks.push_back(uplink("a", a.devname));
    c.uplinks.push_back(uplink("b", b.devname));
    cfg::VportConfig v;
    v.name = "vm";
    v.attach.vhost_user = cfg::VhostUserAttachment{sock, false, 1};
    v.spoofchk = false;
    c.vports.push_back(v);
    c.pipeline.mode = cfg::PipelineMode::kCrossConnect;
    c.pipeline.cross_connect = std::move(cross_connect);
    return c;
  }
  VhostBench(const std::string& tag, const std::string& socket_dir, cfg::Config base,
             std::vector<cfg::CrossConnect> cross_connect)
      : a(tag + "a"), b(tag + "b"), sock(socket_dir + "/" + tag + ".sock"),
        sw(config(std::move(base), a, b, sock, std::move(cross_connect))) {
    sw.start();
    vp = vhost_port(sw, "vm");
    if (vp == nullptr) throw std::runtime_error("no vhost-user vport");
  }
};

inline int run_vhost_tests(int argc, char** argv, const std::string& socket_dir, const cfg::Config& eal_config) {
  signal(SIGPIPE, SIG_IGN);
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new VhostEnv(socket_dir, eal_config));
  return RUN_ALL_TESTS();
}

}  // namespace esw::test
