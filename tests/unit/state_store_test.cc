// StateStore (dataplane/daemon/state_store.h) and the ownership locks (instance_lock.h), without EAL: round trips,
// generations kept, damaged newest files falling back to the previous generation, the directory lock, and which
// resources a config claims.

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>

#include <gtest/gtest.h>

#include "config/config.h"
#include "dataplane/daemon/instance_lock.h"
#include "dataplane/daemon/state_store.h"
#include "dataplane/daemon/state_writer.h"

namespace esw::dp {
namespace {

namespace fs = std::filesystem;

std::string fmt_path() { return "/tmp/esw-lock-test-" + std::to_string(getpid()) + ".lock"; }

class StateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/esw-state-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = std::string(tmpl) + "/state";
  }
  void TearDown() override { fs::remove_all(fs::path(dir_).parent_path()); }

  std::vector<std::string> files(const std::string& part) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) {
      const std::string n = e.path().filename().string();
      if (n.rfind(part + ".", 0) == 0) out.push_back(e.path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  std::string dir_;
};

TEST_F(StateStoreTest, EmptyDirectoryHasNothing) {
  StateStore s(dir_);
  std::vector<std::string> notes;
  EXPECT_FALSE(s.load_config(notes));
  EXPECT_FALSE(s.load_rules(notes));
  EXPECT_TRUE(notes.empty());
  EXPECT_EQ(fs::status(dir_).permissions() & fs::perms::all, fs::perms::owner_all);
}

TEST_F(StateStoreTest, RoundTripAndTwoGenerationsKept) {
  {
    StateStore s(dir_);
    std::string err;
    for (uint64_t g = 1; g <= 5; ++g) {
      ASSERT_TRUE(s.save_config({"apiVersion: eswitch/v1\n# gen " + std::to_string(g) + "\n\"q\\\n", "f.yaml", g}, err))
          << err;
    }
    ASSERT_TRUE(s.save_rules({"priority=1,name=a,in_port=vm1 actions=drop", "name=b,ipv4 actions=drop"}, err)) << err;
    EXPECT_GT(s.last_save_bytes(), 0u);
  }
  EXPECT_EQ(files("config").size(), 2u);
  EXPECT_EQ(files("rules").size(), 1u);
  StateStore s(dir_);  // a new owner (the previous one released the lock)
  std::vector<std::string> notes;
  auto c = s.load_config(notes);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->yaml, "apiVersion: eswitch/v1\n# gen 5\n\"q\\\n");
  EXPECT_EQ(c->source, "f.yaml");
  EXPECT_EQ(c->generation, 5u);
  auto r = s.load_rules(notes);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, (std::vector<std::string>{"priority=1,name=a,in_port=vm1 actions=drop", "name=b,ipv4 actions=drop"}));
  EXPECT_TRUE(notes.empty());
}

TEST_F(StateStoreTest, WithoutSyncSavesTheSame) {
  {
    StateStore s(dir_, false);
    std::string err;
    ASSERT_TRUE(s.save_rules({"name=a actions=drop"}, err)) << err;
    ASSERT_TRUE(s.save_rules({"name=b actions=drop"}, err)) << err;
  }
  StateStore s(dir_);
  std::vector<std::string> notes;
  auto r = s.load_rules(notes);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, std::vector<std::string>{"name=b actions=drop"});
}

TEST_F(StateStoreTest, DamagedNewestFallsBackToPrevious) {
  StateStore s(dir_);
  std::string err;
  ASSERT_TRUE(s.save_rules({"name=old actions=drop"}, err));
  ASSERT_TRUE(s.save_rules({"name=old actions=drop", "name=new actions=drop"}, err));
  ASSERT_TRUE(s.save_config({"old", "x", 1}, err));
  ASSERT_TRUE(s.save_config({"new", "x", 2}, err));
  const auto rules = files("rules");
  const auto configs = files("config");
  ASSERT_EQ(rules.size(), 2u);
  fs::resize_file(rules.back(), fs::file_size(rules.back()) - 3);  // torn
  {
    std::fstream f(configs.back(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-2, std::ios::end);
    f.put('#');  // one byte changed, same length
  }
  std::vector<std::string> notes;
  auto r = s.load_rules(notes);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, std::vector<std::string>{"name=old actions=drop"});
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("torn or truncated"), std::string::npos) << notes[0];
  EXPECT_NE(notes[0].find("using the previous generation"), std::string::npos) << notes[0];
  notes.clear();
  auto c = s.load_config(notes);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->yaml, "old");
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("checksum mismatch"), std::string::npos) << notes[0];

  // Every generation damaged: nothing, and said so.
  fs::resize_file(configs.front(), 10);
  notes.clear();
  EXPECT_FALSE(s.load_config(notes));
  EXPECT_EQ(notes.size(), 2u);
  // A later save still goes above the damaged newest one and is what loads.
  ASSERT_TRUE(s.save_config({"newer", "x", 3}, err));
  notes.clear();
  c = s.load_config(notes);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->yaml, "newer");
}

TEST_F(StateStoreTest, LeftoverTemporaryFileIsIgnoredAndRemoved) {
  {
    StateStore s(dir_);
    std::string err;
    ASSERT_TRUE(s.save_config({"committed", "x", 1}, err));
  }
  std::ofstream(dir_ + "/.tmp.config") << "eswitch-state 1 config 2 5 0000000000000000\nhalf-";
  StateStore s(dir_);
  EXPECT_FALSE(fs::exists(dir_ + "/.tmp.config"));
  std::vector<std::string> notes;
  auto c = s.load_config(notes);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->yaml, "committed");
}

TEST_F(StateStoreTest, SecondOwnerIsRefusedWithThePid) {
  StateStore first(dir_);
  try {
    StateStore second(dir_);
    FAIL() << "two owners of one state directory";
  } catch (const InUseError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("state directory " + dir_ + " is in use by"), std::string::npos) << m;
    EXPECT_NE(m.find(std::to_string(getpid())), std::string::npos) << m;
  }
}

// Write-behind with group commit: every submission gets a ticket, durable() reaches the last one, saves queued
// behind a write are coalesced, and what is on disk is the newest submission of each part. The writer is held in
// its first on_durable call (after the config's write, and only then) while 200 rules saves are submitted: they queue behind it
// and must become one write.
TEST_F(StateStoreTest, WriterCoalescesAndReportsDurableTickets) {
  StateStore s(dir_);
  std::atomic<uint64_t> reported{0};
  std::atomic<bool> first{true};
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  uint64_t last = 0;
  {
    StateWriter w(s, [&](uint64_t t) {
      if (first.exchange(false)) {
        entered.set_value();
        released.wait();
      }
      reported.store(t);
    });
    last = w.submit_config({"apiVersion: eswitch/v1\n", "a.yaml", 2});
    // Only once the writer holds in the config's callback are the rules submitted: had the writer not yet taken
    // the config, it could take the first rules save with it and write three files.
    entered.get_future().wait();
    for (int i = 0; i < 200; ++i) {
      const uint64_t t = w.submit_rules({"name=r" + std::to_string(i) + ",in_port=vm1 actions=drop"});
      EXPECT_GT(t, last);
      last = t;
    }
    release.set_value();
    w.drain();
    EXPECT_EQ(w.durable(), last);
    EXPECT_EQ(reported.load(), last);
    const StateWriter::Counters c = w.counters();
    EXPECT_EQ(c.submitted, 201u);
    EXPECT_EQ(c.failed, 0u);
    EXPECT_EQ(c.written, 2u);  // the config, and the 200 rules saves as one
    std::printf("state writer: %llu submissions, %llu files written (the rest coalesced)\n",
                static_cast<unsigned long long>(c.submitted), static_cast<unsigned long long>(c.written));
    // A save after a drain is written too.
    last = w.submit_rules({"name=final,in_port=vm1 actions=drop"});
  }  // the destructor writes what is queued
  EXPECT_EQ(reported.load(), last);
  std::vector<std::string> notes;
  const auto cfg = s.load_config(notes);
  ASSERT_TRUE(cfg);
  EXPECT_EQ(cfg->source, "a.yaml");
  EXPECT_EQ(cfg->generation, 2u);
  const auto rules = s.load_rules(notes);
  ASSERT_TRUE(rules);
  ASSERT_EQ(rules->size(), 1u);
  EXPECT_EQ(rules->front(), "name=final,in_port=vm1 actions=drop");
}

TEST(InstanceLockTest, ReleasedLockCanBeTakenAgainAndFileIsRemoved) {
  const std::string path = fmt_path();
  {
    InstanceLock a(path, "thing");
    EXPECT_THROW(InstanceLock(path, "thing"), InUseError);
  }
  EXPECT_FALSE(fs::exists(path));
  InstanceLock b(path, "thing");
  EXPECT_TRUE(fs::exists(path));
}

TEST(InstanceLockTest, StaleLockFilesAreRemovedHeldOnesKept) {
  const std::string stale = lock_dir() + "/esw-test-stale-" + std::to_string(getpid()) + ".lock";
  const std::string held_path = lock_dir() + "/esw-test-held-" + std::to_string(getpid()) + ".lock";
  std::ofstream(stale) << "999999\n";  // its owner died without removing it
  InstanceLock held(held_path, "thing");
  const auto removed = clean_stale_lock_files();
  EXPECT_NE(std::find(removed.begin(), removed.end(), stale), removed.end());
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(held_path));
  EXPECT_THROW(InstanceLock(held_path, "thing"), InUseError);
}

TEST(InstanceLockTest, ResourcesOfAConfig) {
  const char* yaml = R"(apiVersion: eswitch/v1
uplinks:
  - { name: up0, attach: { devargs: "net_af_packet0,iface=eswup0p,qpairs=1" } }
  - { name: up1, attach: { devargs: "0000:03:00.0" } }
vports:
  - { name: vm1, hw_addr: "02:00:c6:12:00:01", attach: { devargs: "net_pcap0,rx_iface=eswa,tx_iface=eswa" } }
  - { name: vm2, hw_addr: "02:00:c6:12:00:02", attach: { devargs: "net_tap0,iface=eswtap" } }
  - { name: vm3, hw_addr: "02:00:c6:12:00:03", attach: { vhost_user: { socket: /run/eswitch/vm3.sock } } }
  - { name: vm4, hw_addr: "02:00:c6:12:00:04", attach: { devargs: "net_null0" } }
)";
  const cfg::LoadResult loaded = cfg::load_config_string(yaml);
  ASSERT_TRUE(loaded.config) << (loaded.errors.empty() ? "" : loaded.errors[0].to_string());
  std::vector<std::string> keys;
  for (const auto& r : exclusive_resources(*loaded.config, "eswitch", "/run/eswitch/eswitchd.sock")) {
    keys.push_back(r.key + " | " + r.what);
  }
  EXPECT_EQ(keys, (std::vector<std::string>{
                      "prefix.eswitch | DPDK file prefix 'eswitch'",
                      "path.%2Frun%2Feswitch%2Feswitchd.sock | API socket /run/eswitch/eswitchd.sock",
                      "iface.eswup0p | interface eswup0p",
                      "pci.0000:03:00.0 | PCI device 0000:03:00.0",
                      "iface.eswa | interface eswa",
                      "iface.rep-vm1 | representor interface rep-vm1",
                      "iface.eswtap | interface eswtap",
                      "iface.rep-vm2 | representor interface rep-vm2",
                      "path.%2Frun%2Feswitch%2Fvm3.sock | vhost-user socket /run/eswitch/vm3.sock",
                      "iface.rep-vm3 | representor interface rep-vm3",
                      "iface.rep-vm4 | representor interface rep-vm4",
                  }));
}

}  // namespace
}  // namespace esw::dp
