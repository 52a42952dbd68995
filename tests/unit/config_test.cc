// Config loader: schema, locations, cross-field rules, error collection. No EAL.
#include "config/config.h"
#include "config/yaml_doc.h"

#include <gmock/gmock.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace esw::cfg {
namespace {

using ::testing::HasSubstr;

LoadResult load(const std::string& yaml) { return load_config_string(yaml, "test.yaml"); }

std::string dump(const LoadResult& result) {
  std::string out;
  for (const Error& e : result.errors) out += "  " + e.to_string() + "\n";
  return out.empty() ? "  (no errors)\n" : out;
}

struct Expected {
  std::string path;
  int line;
  int column;
  std::string fragment;  // must occur in the message
};

// Exactly these errors, in this order.
void expect_errors(const LoadResult& result, const std::vector<Expected>& expected) {
  EXPECT_FALSE(result.config.has_value());
  ASSERT_EQ(result.errors.size(), expected.size()) << dump(result);
  for (size_t i = 0; i < expected.size(); ++i) {
    const Error& e = result.errors[i];
    SCOPED_TRACE("error " + std::to_string(i) + ": " + e.to_string());
    EXPECT_EQ(e.path, expected[i].path);
    EXPECT_EQ(e.line, expected[i].line);
    EXPECT_EQ(e.column, expected[i].column);
    EXPECT_THAT(e.message, HasSubstr(expected[i].fragment));
  }
}

#define EXPECT_ERRORS(result, ...)        \
  do {                                    \
    SCOPED_TRACE("expected errors here"); \
    expect_errors(result, __VA_ARGS__);   \
  } while (0)

Config loaded(const LoadResult& result) {
  EXPECT_TRUE(result.errors.empty()) << dump(result);
  EXPECT_TRUE(result.config.has_value());
  return result.config.value_or(Config{});
}

// ----------------------------------------------------------------------------------------------- valid configs

TEST(ConfigLoader, DefaultConfigLoads) {
  const LoadResult result = load_config_string(default_config_yaml(), "default.yaml");
  ASSERT_TRUE(result.config.has_value()) << dump(result);
  const Config& c = *result.config;
  EXPECT_EQ(c.api_version, "eswitch/v1");
  EXPECT_EQ(c.dataplane.main_core, 0);
  EXPECT_EQ(c.dataplane.worker_cores, std::vector<int>{1});
  EXPECT_EQ(c.dataplane.idle_sleep_us, 50u);
  ASSERT_EQ(c.uplinks.size(), 1u);
  EXPECT_EQ(c.uplinks[0].name, "uplink0");
  EXPECT_EQ(c.uplinks[0].attach.devargs, "net_af_packet0,iface=eswup0p");
  ASSERT_EQ(c.vports.size(), 3u);
  EXPECT_EQ(c.vports[0].name, "vm1");
  EXPECT_EQ(c.vports[0].hw_addr, "02:00:c6:12:00:01");
  EXPECT_EQ(c.vports[0].attach.devargs, "net_af_packet1,iface=eswt1p");
  EXPECT_EQ(c.vports[1].name, "vm2");
  EXPECT_EQ(c.vports[1].hw_addr, "02:00:c6:12:00:02");
  EXPECT_EQ(c.vports[1].attach.devargs, "net_af_packet2,iface=eswt2p");
  // vm3: a VM's virtio-net device over vhost-user (the demo's testpmd guest).
  EXPECT_EQ(c.vports[2].name, "vm3");
  ASSERT_TRUE(c.vports[2].attach.vhost_user.has_value());
  EXPECT_EQ(c.vports[2].attach.vhost_user->socket, "/run/eswitch/vm3.sock");
  EXPECT_EQ(c.pipeline.mode, PipelineMode::kL2);
  EXPECT_TRUE(c.pipeline.cross_connect.empty());
  // The demo's bindings (the e2e test and the README use these addresses).
  EXPECT_TRUE(c.vports[0].spoofchk);
  EXPECT_EQ(c.vports[0].ipv4, std::vector<std::string>{"198.18.0.1"});  // "/32" normalised away
  EXPECT_EQ(c.vports[0].ipv6, std::vector<std::string>{"2001:db8::1"});
  EXPECT_EQ(c.vports[1].ipv4, std::vector<std::string>{"198.18.0.2"});
  EXPECT_EQ(c.vports[1].ipv6, std::vector<std::string>{"2001:db8::2"});
  // The demo's "SMC-D beside TCP" step: vm1 and vm2 have emulated-ISM endpoints, vm3 none.
  ASSERT_TRUE(c.vports[0].smc_ism.has_value());
  ASSERT_TRUE(c.vports[1].smc_ism.has_value());
  EXPECT_EQ(c.vports[0].smc_ism->socket, "/run/eswitch/vm1.ism");
  EXPECT_EQ(c.vports[1].smc_ism->socket, "/run/eswitch/vm2.ism");
  EXPECT_EQ(c.vports[0].smc, SmcPolicy::kAllow);
  EXPECT_FALSE(c.vports[2].smc_ism.has_value());
  EXPECT_EQ(c.representors.kind, RepresentorKind::kTap);
  // One counting rule that forwards where l2 forwards anyway.
  ASSERT_EQ(c.tables.size(), 1u);
  EXPECT_EQ(c.tables[0].id, 0u);
  EXPECT_TRUE(c.tables[0].miss.empty());
  ASSERT_EQ(c.tables[0].rules.size(), 1u);
  const RuleConfig& r = c.tables[0].rules[0];
  ASSERT_EQ(r.actions.size(), 2u);
  EXPECT_EQ(r.actions[0].name, "count");
  EXPECT_EQ(r.actions[1].name, "output");
  EXPECT_EQ(r.actions[1].arg, "vm2");
  bool matches_vm2_mac = false;
  for (const MatchItem& m : r.match) matches_vm2_mac |= m.field == "eth_dst" && m.value == "02:00:c6:12:00:02";
  EXPECT_TRUE(matches_vm2_mac);
}

TEST(ConfigLoader, MinimalConfigTakesModelDefaults) {
  const Config c = loaded(load("apiVersion: eswitch/v1\n"));
  const DataplaneConfig d;
  EXPECT_EQ(c.api_version, kApiVersion);
  EXPECT_EQ(c.dataplane.main_core, d.main_core);
  EXPECT_EQ(c.dataplane.worker_cores, d.worker_cores);
  EXPECT_EQ(c.dataplane.memory_mb, d.memory_mb);
  EXPECT_EQ(c.dataplane.hugepages, d.hugepages);
  EXPECT_EQ(c.dataplane.mbufs, d.mbufs);
  EXPECT_EQ(c.dataplane.mbuf_cache, d.mbuf_cache);
  EXPECT_EQ(c.dataplane.rx_queue_size, d.rx_queue_size);
  EXPECT_EQ(c.dataplane.tx_queue_size, d.tx_queue_size);
  EXPECT_EQ(c.dataplane.burst, d.burst);
  EXPECT_EQ(c.dataplane.idle_sleep_us, d.idle_sleep_us);
  EXPECT_EQ(c.dataplane.file_prefix, d.file_prefix);
  EXPECT_EQ(c.dataplane.eal_extra, d.eal_extra);
  EXPECT_TRUE(c.uplinks.empty());
  EXPECT_TRUE(c.vports.empty());
  EXPECT_EQ(c.pipeline.mode, PipelineMode::kL2);
  EXPECT_TRUE(c.pipeline.cross_connect.empty());
}

TEST(ConfigLoader, FullConfigRoundTripsEveryField) {
  const Config c = loaded(load(R"(apiVersion: eswitch/v1
dataplane:
  main_core: 2
  worker_cores: [4, 3, 1023]
  memory_mb: 2048
  hugepages: off
  mbufs: 65536
  mbuf_cache: 512
  rx_queue_size: 2048
  tx_queue_size: 64
  burst: 48
  idle_sleep_us: 1000000
  file_prefix: esw-test.1
  eal_extra: ["--no-pci", "--log-level=pmd.net.tap:debug"]
uplinks:
  - name: up0
    attach: {devargs: "0000:03:00.0,representor=vf0", rx_queues: 4, tx_queues: 1024}
  - name: up1
    attach:
      devargs: "0000:03:00.0,representor=vf1"
vports:
  - name: vm-1_a
    hw_addr: "02:AB:cd:00:00:01"
    attach: {devargs: "net_tap0,iface=esw0", rx_queues: 2, tx_queues: 3}
  - name: B1234567890
    attach: {devargs: net_ring0}
    spoofchk: false
pipeline:
  mode: cross_connect
  cross_connect:
    - {from: up0, to: vm-1_a}
    - {from: vm-1_a, to: up0}
    - {from: B1234567890, to: B1234567890}
)"));
  const DataplaneConfig& d = c.dataplane;
  EXPECT_EQ(d.main_core, 2);
  EXPECT_EQ(d.worker_cores, (std::vector<int>{4, 3, 1023}));
  EXPECT_EQ(d.memory_mb, 2048u);
  EXPECT_EQ(d.hugepages, HugepageMode::kOff);
  EXPECT_EQ(d.mbufs, 65536u);
  EXPECT_EQ(d.mbuf_cache, 512);
  EXPECT_EQ(d.rx_queue_size, 2048);
  EXPECT_EQ(d.tx_queue_size, 64);
  EXPECT_EQ(d.burst, 48);
  EXPECT_EQ(d.idle_sleep_us, 1000000u);
  EXPECT_EQ(d.file_prefix, "esw-test.1");
  EXPECT_EQ(d.eal_extra, (std::vector<std::string>{"--no-pci", "--log-level=pmd.net.tap:debug"}));

  ASSERT_EQ(c.uplinks.size(), 2u);
  EXPECT_EQ(c.uplinks[0].name, "up0");
  EXPECT_EQ(c.uplinks[0].line, 16);
  EXPECT_EQ(c.uplinks[0].attach.devargs, "0000:03:00.0,representor=vf0");
  EXPECT_EQ(c.uplinks[0].attach.rx_queues, 4);
  EXPECT_EQ(c.uplinks[0].attach.tx_queues, 1024);
  EXPECT_EQ(c.uplinks[1].name, "up1");
  EXPECT_EQ(c.uplinks[1].line, 18);
  EXPECT_EQ(c.uplinks[1].attach.devargs, "0000:03:00.0,representor=vf1");
  EXPECT_EQ(c.uplinks[1].attach.rx_queues, 1);
  EXPECT_EQ(c.uplinks[1].attach.tx_queues, 1);

  ASSERT_EQ(c.vports.size(), 2u);
  EXPECT_EQ(c.vports[0].name, "vm-1_a");
  EXPECT_EQ(c.vports[0].line, 22);
  EXPECT_EQ(c.vports[0].hw_addr, "02:ab:cd:00:00:01");  // normalised to lower case
  EXPECT_EQ(c.vports[0].attach.devargs, "net_tap0,iface=esw0");
  EXPECT_EQ(c.vports[0].attach.rx_queues, 2);
  EXPECT_EQ(c.vports[0].attach.tx_queues, 3);
  EXPECT_EQ(c.vports[1].name, "B1234567890");
  EXPECT_EQ(c.vports[1].line, 25);
  EXPECT_FALSE(c.vports[1].hw_addr.has_value());
  EXPECT_EQ(c.vports[1].attach.devargs, "net_ring0");

  EXPECT_EQ(c.pipeline.mode, PipelineMode::kCrossConnect);
  ASSERT_EQ(c.pipeline.cross_connect.size(), 3u);
  EXPECT_EQ(c.pipeline.cross_connect[0].from, "up0");
  EXPECT_EQ(c.pipeline.cross_connect[0].to, "vm-1_a");
  EXPECT_EQ(c.pipeline.cross_connect[1].from, "vm-1_a");
  EXPECT_EQ(c.pipeline.cross_connect[1].to, "up0");
  EXPECT_EQ(c.pipeline.cross_connect[2].from, "B1234567890");
  EXPECT_EQ(c.pipeline.cross_connect[2].to, "B1234567890");
}

TEST(ConfigLoader, EmptySectionsMeanDefaults) {
  const Config c = loaded(load("apiVersion: eswitch/v1\ndataplane:\nuplinks:\nvports: []\npipeline: {}\n"));
  EXPECT_EQ(c.dataplane.burst, DataplaneConfig{}.burst);
  EXPECT_TRUE(c.uplinks.empty());
  EXPECT_TRUE(c.vports.empty());
}

TEST(ConfigLoader, HugepageAndPipelineSpellings) {
  EXPECT_STREQ(to_string(HugepageMode::kAuto), "auto");
  EXPECT_STREQ(to_string(HugepageMode::kOn), "on");
  EXPECT_STREQ(to_string(HugepageMode::kOff), "off");
  EXPECT_STREQ(to_string(PipelineMode::kL2), "l2");
  EXPECT_STREQ(to_string(PipelineMode::kCrossConnect), "cross_connect");
  for (HugepageMode mode : {HugepageMode::kAuto, HugepageMode::kOn, HugepageMode::kOff}) {
    const Config c =
        loaded(load(std::string("apiVersion: eswitch/v1\ndataplane: {hugepages: ") + to_string(mode) + "}\n"));
    EXPECT_EQ(c.dataplane.hugepages, mode);
  }
}

// ----------------------------------------------------------------------------------------------- error format

TEST(ConfigError, ToStringFormats) {
  EXPECT_EQ((Error{"vports[2].attach.devargs", 14, 11, "bad"}).to_string(),
            "vports[2].attach.devargs: bad (line 14, col 11)");
  EXPECT_EQ((Error{"burst", 0, 0, "bad"}).to_string(), "burst: bad");
  EXPECT_EQ((Error{"", 3, 1, "f.yaml: bad"}).to_string(), "f.yaml: bad (line 3, col 1)");
}

// ----------------------------------------------------------------------------------------------- unknown keys

TEST(ConfigLoader, UnknownTopLevelKey) {
  const LoadResult r = load("apiVersion: eswitch/v1\ndataplan:\n  burst: 32\n");
  EXPECT_ERRORS(r, {{"dataplan", 2, 1, "unknown key \"dataplan\""}});
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].to_string(),
            "dataplan: unknown key \"dataplan\"; did you mean \"dataplane\"?; valid keys: apiVersion, dataplane, "
            "uplinks, vports, representors, pipeline, meters, tables (line 2, col 1)");
}

TEST(ConfigLoader, UnknownNestedKeys) {
  const LoadResult r = load(R"(apiVersion: eswitch/v1
vports:
  - name: a
    attach: {devargs: net_ring0}
    spoofchk: false
  - name: b
    attach: {devargs: net_ring1, rxqueues: 2}
    mac: "02:00:00:00:00:01"
    spoofchk: false
dataplane:
  workers: [1]
)");
  EXPECT_ERRORS(r, {
                       {"vports[1].attach.rxqueues", 7, 34, "valid keys: devargs, rx_queues, tx_queues"},
                       {"vports[1].mac", 8, 5, "valid keys: name, flavour, id, attach, hw_addr, ipv4, ipv6, vlan"},
                       {"dataplane.workers", 11, 3, "unknown key \"workers\""},
                   });
  ASSERT_EQ(r.errors.size(), 3u);
  EXPECT_THAT(r.errors[0].message, HasSubstr("did you mean \"rx_queues\"?"));
  EXPECT_THAT(r.errors[1].message, Not(HasSubstr("did you mean")));
}

TEST(ConfigLoader, DuplicateKeyRejected) {
  EXPECT_ERRORS(load("apiVersion: eswitch/v1\ndataplane:\n  burst: 32\n  burst: 64\n"),
                {{"dataplane.burst", 4, 3, "duplicate key \"burst\"; first on line 3"}});
}

// A mapping of many keys: duplicates and unknown keys are found through the hash index (beyond 16 keys), with the
// same messages and places as in a small mapping.
TEST(ConfigLoader, DuplicateAndUnknownKeysInBigMappings) {
  std::string yaml = "apiVersion: eswitch/v1\ndataplane:\n";
  for (int i = 0; i < 40; ++i) yaml += fmt::format("  k{}: 1\n", i);                        // lines 3..42
  yaml += "  burst: 32\n  k7: 2\n  burst: 64\n";                                            // lines 43..45
  yaml += "tables:\n  - id: 0\n    rules:\n      - actions: [drop]\n        match:\n";  // lines 46..50
  for (int i = 0; i < 40; ++i) yaml += fmt::format("          f{}: 1\n", i);                  // lines 51..90
  yaml += "          f3: 2\n";                                                                // line 91
  const LoadResult r = load(yaml);
  ASSERT_EQ(r.errors.size(), 43u) << dump(r);
  EXPECT_EQ(r.errors[0].path, "dataplane.k0");
  EXPECT_THAT(r.errors[0].message, HasSubstr("unknown key \"k0\""));
  EXPECT_EQ(r.errors[40].to_string(), "dataplane.k7: duplicate key \"k7\"; first on line 10 (line 44, col 3)");
  EXPECT_EQ(r.errors[41].to_string(), "dataplane.burst: duplicate key \"burst\"; first on line 43 (line 45, col 3)");
  EXPECT_EQ(r.errors[42].to_string(),
            "tables[0].rules[0].match.f3: duplicate key \"f3\"; first on line 54 (line 91, col 11)");
}

// A key is user text: a control character in it is escaped in the error's path, never printed raw.
TEST(ConfigLoader, ControlCharactersInKeysAreEscaped) {
  const LoadResult r = load("apiVersion: eswitch/v1\ndataplane:\n  \"bu\\e[31mrst\": 32\n");
  ASSERT_EQ(r.errors.size(), 1u) << dump(r);
  EXPECT_EQ(r.errors[0].path, "dataplane.\"bu\\x1b[31mrst\"");
  for (char c : r.errors[0].to_string()) EXPECT_GE(static_cast<unsigned char>(c), 0x20);
  // yaml-cpp's own messages may quote the input ("unknown escape character: <c>").
  EXPECT_ERRORS(load("apiVersion: eswitch/v1\nx: \"a\\\x01" "b\"\n"),
                {{"", 2, 8, "test.yaml: invalid YAML: unknown escape character: \\x01"}});
}

// Anchors and aliases read as the anchored node, located where it was written.
TEST(ConfigLoader, AliasesReadAsTheAnchoredNode) {
  const LoadResult r = load(
      "apiVersion: eswitch/v1\n"
      "uplinks:\n"
      "  - name: up0\n"
      "    attach: &att { devargs: net_null0, rx_queues: 2 }\n"
      "tables:\n"
      "  - id: 0\n"
      "    rules:\n"
      "      - { match: &m { in_port: up0, udp: true }, actions: &a [count, output: up0] }\n"
      "      - { priority: 5, match: *m, actions: *a }\n"
      "  - id: 1\n"
      "    miss: *a\n"
      "vports:\n"
      "  - { name: vm1, spoofchk: false, attach: *att }\n");
  // vm1 shares up0's devargs (the same node): rejected at the alias's anchor, as a duplicate.
  ASSERT_EQ(r.errors.size(), 1u) << dump(r);
  EXPECT_THAT(r.errors[0].message, HasSubstr("net_null0"));
  EXPECT_EQ(r.errors[0].line, 4);

  const LoadResult ok = load(
      "apiVersion: eswitch/v1\n"
      "uplinks:\n"
      "  - name: up0\n"
      "    attach: { devargs: net_null0 }\n"
      "tables:\n"
      "  - id: 0\n"
      "    rules:\n"
      "      - { match: &m { in_port: up0, udp: true }, actions: &a [count, output: up0] }\n"
      "      - { priority: 5, match: *m, actions: *a }\n");
  ASSERT_TRUE(ok.config) << dump(ok);
  const auto& rules = ok.config->tables.at(0).rules;
  ASSERT_EQ(rules.size(), 2u);
  ASSERT_EQ(rules[1].match.size(), 2u);
  EXPECT_EQ(rules[1].match[0].field, "in_port");
  EXPECT_EQ(rules[1].match[0].loc.line, 8);  // the anchored node's place
  ASSERT_EQ(rules[1].actions.size(), 2u);
  EXPECT_EQ(rules[1].actions[1].arg, "up0");
  EXPECT_EQ(rules[1].priority, 5u);
}

// Loading is linear in the input (issue 13: 100k keys in one mapping took 93 s). Coarse on purpose (a shared
// 2-core machine, so the thread's CPU time, not the wall clock): 10x the keys may cost at most 35x the time (hash
// tables and the allocator grow a little worse than linearly); a quadratic check costs 100x.
TEST(ConfigLoader, LoadTimeIsLinearInKeysAndRules) {
  auto keys = [](int n) {
    std::string y = "apiVersion: eswitch/v1\ntables:\n  - id: 0\n    rules:\n      - actions: [drop]\n        match:\n";
    for (int i = 0; i < n; ++i) y += fmt::format("          k{}: {}\n", i, i);
    return y;
  };
  auto rules = [](int n) {
    std::string y = "apiVersion: eswitch/v1\ntables:\n  - id: 0\n    rules:\n";
    for (int i = 0; i < n; ++i) y += fmt::format("      - \"priority=1,udp,udp_dst={} actions=drop\"\n", i % 65536);
    return y;
  };
  auto seconds = [](const std::string& yaml) {
    double best = 1e9;
    for (int round = 0; round < 3; ++round) {
      timespec t0{}, t1{};
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
      const LoadResult r = load(yaml);
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
      const double s = static_cast<double>(t1.tv_sec - t0.tv_sec) + static_cast<double>(t1.tv_nsec - t0.tv_nsec) * 1e-9;
      EXPECT_TRUE(r.config) << dump(r);
      best = std::min(best, s);
    }
    return best;
  };
  for (auto make : {+keys, +rules}) {
    const double small = seconds(make(4000)), big = seconds(make(40000));
    std::printf("load: 4000 items %.4f s CPU, 40000 items %.4f s CPU (x%.1f)\n", small, big, big / small);
    EXPECT_LT(big, 35 * small + 0.02) << "4000: " << small << " s CPU, 40000: " << big << " s CPU";
  }
}

// The fast path for long runs of `- "text"` lines (yaml_doc.cc) gives the document yaml-cpp gives: every node's
// type, tag, scalar and mark (pos, line, column), in every context a run can be in or only look like it is in.
void same_doc(const detail::Node& a, const detail::Node& b, const std::string& where, size_t& nodes) {
  ++nodes;
  ASSERT_EQ(a.Type(), b.Type()) << where;
  ASSERT_EQ(a.Tag(), b.Tag()) << where;
  ASSERT_EQ(a.Scalar(), b.Scalar()) << where;
  ASSERT_EQ(a.Mark().pos, b.Mark().pos) << where;
  ASSERT_EQ(a.Mark().line, b.Mark().line) << where;
  ASSERT_EQ(a.Mark().column, b.Mark().column) << where;
  ASSERT_EQ(a.size(), b.size()) << where;
  size_t i = 0;
  for (auto x = a.begin(), y = b.begin(); x != a.end(); ++x, ++y, ++i) {
    const std::string at = where + "/" + std::to_string(i);
    if (a.IsMap()) {
      same_doc(x->first, y->first, at + "k", nodes);
      same_doc(x->second, y->second, at + "v", nodes);
    } else {
      same_doc(*x, *y, at, nodes);
    }
  }
}

TEST(ConfigLoader, FastListsGiveYamlCppsDocument) {
  auto items = [](int n, const std::string& indent, const std::string& tag) {
    std::string y;
    for (int i = 0; i < n; ++i) y += fmt::format("{}- \"{} priority={},udp,udp_dst={} actions=drop # not a comment\"\n", indent, tag, i, i);
    return y;
  };
  const std::vector<std::pair<std::string, std::string>> texts = {
      {"plain run", "a: 1\nlist:\n" + items(40, "  ", "x") + "b: [1, 2]\n"},
      {"two runs, top-level list, trailing spaces", items(33, "", "t") + "- x\n" + items(50, "", "u") + "- \"end\"   \n"},
      {"run at the end without a line break", "rules:\n" + items(40, "    ", "e").substr(0, items(40, "    ", "e").size() - 1)},
      {"inside a literal block scalar", "text: |\n" + items(40, "  ", "lit") + "other: 2\n"},
      {"inside a folded block scalar", "text: >\n" + items(40, "  ", "fold") + "other: 2\n"},
      {"in the second document", "a: 1\n---\nl:\n" + items(40, "  ", "d2")},
      {"nested lists", "a:\n  - - \"x\"\n" + items(40, "    ", "n") + "  - y\n"},
      {"inside a multi-line double-quoted scalar", "a: \"start\n" + items(40, "  ", "q") + "  end\"\n"},
      {"indentation changes in the middle", "l:\n" + items(35, "  ", "i") + items(35, "    ", "j")},
      {"a run under a mapping item", "tables:\n  - id: 0\n    rules:\n" + items(64, "      ", "r") + "  - id: 1\n"},
  };
  for (const auto& [name, text] : texts) {
    SCOPED_TRACE(name);
    std::optional<detail::Doc> fast, slow;
    std::string fast_error, slow_error;
    try {
      fast = detail::Doc::parse(text, true);
    } catch (const std::exception& e) {
      fast_error = e.what();
    }
    try {
      slow = detail::Doc::parse(text, false);
    } catch (const std::exception& e) {
      slow_error = e.what();
    }
    ASSERT_EQ(fast_error, slow_error);
    if (!slow) continue;
    ASSERT_EQ(fast->document_starts().size(), slow->document_starts().size());
    for (size_t d = 0; d < slow->document_starts().size(); ++d) {
      EXPECT_EQ(fast->document_starts()[d].pos, slow->document_starts()[d].pos);
    }
    size_t nodes = 0;
    same_doc(fast->root(), slow->root(), "", nodes);
    EXPECT_GT(nodes, 1u);
  }
  // A config in the compact form loads the same, every rule located at its own line.
  std::string y = "apiVersion: eswitch/v1\ntables:\n  - id: 0\n    rules:\n";
  for (int i = 0; i < 100; ++i) y += fmt::format("      - \"priority={},udp,udp_dst={} actions=drop\"\n", i, i);
  const Config c = loaded(load(y));
  ASSERT_EQ(c.tables.at(0).rules.size(), 100u);
  EXPECT_EQ(c.tables[0].rules[57].priority, 57u);
  EXPECT_EQ(c.tables[0].rules[57].loc.line, 5 + 57);
  EXPECT_EQ(c.tables[0].rules[57].loc.column, 9);
}

// ----------------------------------------------------------------------------------------------- wrong types

struct TypeCase {
  std::string yaml;  // appended to "apiVersion: eswitch/v1\n", so it starts on line 2
  Expected error;
};

TEST(ConfigLoader, WrongTypesAndRanges) {
  const std::vector<TypeCase> cases = {
      {"dataplane:\n  burst: fast\n", {"dataplane.burst", 3, 10, "expected an integer in 1..256, got \"fast\""}},
      {"dataplane:\n  burst: \"32\"\n", {"dataplane.burst", 3, 10, "got the string \"32\""}},
      {"dataplane:\n  burst: 0\n", {"dataplane.burst", 3, 10, "expected an integer in 1..256, got 0"}},
      {"dataplane:\n  burst: 257\n", {"dataplane.burst", 3, 10, "got 257"}},
      {"dataplane:\n  burst: [32]\n", {"dataplane.burst", 3, 10, "got a list"}},
      {"dataplane:\n  burst:\n", {"dataplane.burst", 3, 3, "got nothing"}},
      {"dataplane:\n  main_core: -1\n", {"dataplane.main_core", 3, 14, "expected an integer in 0..1023, got -1"}},
      {"dataplane:\n  main_core: 1024\n", {"dataplane.main_core", 3, 14, "in 0..1023, got 1024"}},
      {"dataplane:\n  main_core: 99999999999999999999999\n", {"dataplane.main_core", 3, 14, "in 0..1023"}},
      {"dataplane:\n  worker_cores: 3\n", {"dataplane.worker_cores", 3, 17, "expected a list, got 3"}},
      {"dataplane:\n  worker_cores: [1, 1024]\n", {"dataplane.worker_cores[1]", 3, 21, "in 0..1023, got 1024"}},
      {"dataplane:\n  memory_mb: 32\n", {"dataplane.memory_mb", 3, 14, "expected an integer >= 64, got 32"}},
      {"dataplane:\n  memory_mb: 1.5\n", {"dataplane.memory_mb", 3, 14, "got \"1.5\""}},
      {"dataplane:\n  memory_mb: 4294967296\n",
       {"dataplane.memory_mb", 3, 14, "expected an integer in 64..4294967295, got 4294967296"}},
      {"dataplane:\n  mbufs: 1000\n", {"dataplane.mbufs", 3, 10, "expected an integer >= 1024, got 1000"}},
      {"dataplane:\n  mbuf_cache: 513\n", {"dataplane.mbuf_cache", 3, 15, "in 0..512, got 513"}},
      {"dataplane:\n  rx_queue_size: 1000\n",
       {"dataplane.rx_queue_size", 3, 18, "expected an integer in 64..8192 that is a power of two, got 1000"}},
      {"dataplane:\n  rx_queue_size: 32\n", {"dataplane.rx_queue_size", 3, 18, "got 32"}},
      {"dataplane:\n  tx_queue_size: 16384\n", {"dataplane.tx_queue_size", 3, 18, "power of two, got 16384"}},
      {"dataplane:\n  idle_sleep_us: 1000001\n", {"dataplane.idle_sleep_us", 3, 18, "in 0..1000000"}},
      {"dataplane:\n  hugepages: yes\n", {"dataplane.hugepages", 3, 14, "expected one of auto, on, off, got \"yes\""}},
      {"dataplane:\n  file_prefix: ../x\n", {"dataplane.file_prefix", 3, 16, "\"../x\" is not a valid file prefix"}},
      {"dataplane:\n  eal_extra: --no-pci\n", {"dataplane.eal_extra", 3, 14, "expected a list, got \"--no-pci\""}},
      {"dataplane:\n  eal_extra: [a, '']\n", {"dataplane.eal_extra[1]", 3, 18, "expected a non-empty string"}},
      {"dataplane: 5\n", {"dataplane", 2, 12, "expected a mapping, got 5"}},
      {"uplinks: {name: u}\n", {"uplinks", 2, 10, "expected a list, got a mapping"}},
      {"uplinks:\n  - name: u\n    attach: net_ring0\n", {"uplinks[0].attach", 4, 13, "expected a mapping"}},
      {"uplinks:\n  - name: u\n    attach: {devargs: ''}\n",
       {"uplinks[0].attach.devargs", 4, 23, "expected a non-empty string, got \"\""}},
      {"uplinks:\n  - name: u\n    attach: {devargs: [a]}\n", {"uplinks[0].attach.devargs", 4, 23, "got a list"}},
      {"uplinks:\n  - name: u\n    attach: {devargs: r, rx_queues: 0}\n",
       {"uplinks[0].attach.rx_queues", 4, 37, "in 1..1024, got 0"}},
      {"uplinks:\n  - name: u\n    attach: {rx_queues: 2}\n",
       {"uplinks[0].attach.devargs", 4, 13, "required key is missing"}},
      {"uplinks:\n  - attach: {devargs: r}\n", {"uplinks[0].name", 3, 5, "required key is missing"}},
      {"vports:\n  - name: v\n    spoofchk: false\n", {"vports[0].attach", 3, 5, "required key is missing"}},
      {"pipeline:\n  mode: l3\n", {"pipeline.mode", 3, 9, "expected one of l2, cross_connect, got \"l3\""}},
  };
  for (const TypeCase& tc : cases) {
    SCOPED_TRACE(tc.yaml);
    EXPECT_ERRORS(load("apiVersion: eswitch/v1\n" + tc.yaml), {tc.error});
  }
}

TEST(ConfigLoader, WrongTypeFullMessage) {
  const LoadResult r = load("apiVersion: eswitch/v1\ndataplane:\n  rx_queue_size: 1000\n");
  ASSERT_EQ(r.errors.size(), 1u) << dump(r);
  EXPECT_EQ(r.errors[0].to_string(),
            "dataplane.rx_queue_size: expected an integer in 64..8192 that is a power of two, got 1000 "
            "(line 3, col 18)");
}

TEST(ConfigLoader, ApiVersion) {
  EXPECT_ERRORS(load("dataplane: {}\n"), {{"apiVersion", 1, 1, "required key is missing"}});
  EXPECT_ERRORS(load("apiVersion: eswitch/v2\n"),
                {{"apiVersion", 1, 13, "expected \"eswitch/v1\", got \"eswitch/v2\""}});
  EXPECT_ERRORS(load("apiVersion: [eswitch/v1]\n"), {{"apiVersion", 1, 13, "expected a string, got a list"}});
  EXPECT_ERRORS(load(""), {{"apiVersion", 0, 0, "required key is missing"}});
}

// ----------------------------------------------------------------------------------------------- document level

TEST(ConfigLoader, YamlSyntaxErrorHasLocation) {
  // An unclosed flow list is noticed at the end of the input.
  const LoadResult r = load("apiVersion: eswitch/v1\ndataplane:\n  burst: [32,\n  mbufs: 1024\n");
  ASSERT_EQ(r.errors.size(), 1u) << dump(r);
  EXPECT_FALSE(r.config.has_value());
  EXPECT_EQ(r.errors[0].to_string(), "test.yaml: invalid YAML: end of sequence flow not found (line 5, col 1)");

  EXPECT_ERRORS(load("apiVersion: eswitch/v1\ndataplane:\n  burst: 32\n mbufs: 1024\n"),
                {{"", 4, 2, "test.yaml: invalid YAML: end of map not found"}});
  EXPECT_ERRORS(load("apiVersion: eswitch/v1\nvports: *missing\n"),
                {{"", 2, 9, "invalid YAML: the referenced anchor is not defined"}});
}

// yaml-cpp 0.7's LoadAll() loops forever (and eats memory) on these; the loader must not.
TEST(ConfigLoader, StrayFlowEntryAtDocumentLevel) {
  EXPECT_ERRORS(load(", apiVersion: eswitch/v1\n"), {{"", 1, 1, "test.yaml: invalid YAML: unexpected \",\""}});
  EXPECT_ERRORS(load("# comment\n, x\napiVersion: eswitch/v1\n"), {{"", 2, 1, "invalid YAML: unexpected \",\""}});
  EXPECT_ERRORS(load("- a\n,\n"), {{"", 2, 1, "invalid YAML: unexpected \",\""}});
}

TEST(ConfigLoader, AbsurdNestingIsAnErrorNotACrash) {
  const LoadResult r = load("apiVersion: eswitch/v1\ndataplane: " + std::string(100000, '[') + "\n");
  ASSERT_EQ(r.errors.size(), 1u) << dump(r);
  EXPECT_EQ(r.errors[0].path, "");
  EXPECT_THAT(r.errors[0].message, HasSubstr("invalid YAML: nested more than"));
}

TEST(ConfigLoader, DocumentShape) {
  EXPECT_ERRORS(load("- apiVersion: eswitch/v1\n"), {{"", 1, 1, "test.yaml: expected a mapping, got a list"}});
  EXPECT_ERRORS(load("apiVersion: eswitch/v1\n---\napiVersion: eswitch/v1\n"),
                {{"", 2, 1, "test.yaml: holds 2 YAML documents; expected one"}});
  EXPECT_ERRORS(load("apiVersion: eswitch/v1\n[1]: x\n"), {{"", 2, 1, "expected a key name, got a list"}});
}

// ----------------------------------------------------------------------------------------------- cross-field rules

TEST(ConfigLoader, PortNamesMustBeValidNetdevNames) {
  EXPECT_ERRORS(load(R"(apiVersion: eswitch/v1
uplinks:
  - name: 1up
    attach: {devargs: net_ring0}
  - name: abcdefghijklmno
    attach: {devargs: net_ring3}
vports:
  - name: abcdefghijklmnop
    attach: {devargs: net_ring1}
    spoofchk: false
  - name: "a b"
    attach: {devargs: net_ring2}
    spoofchk: false
  - name: abcdefghijkl
    attach: {devargs: net_ring4}
    spoofchk: false
  - name: abcdefghijk
    attach: {devargs: net_ring5}
    spoofchk: false
)"),
                {
                    {"uplinks[0].name", 3, 11,
                     "\"1up\" is not a valid port name; expected a letter followed by at most 14 letters, digits"},
                    {"vports[0].name", 8, 11,
                     "\"abcdefghijklmnop\" is 16 characters long; a vport name has at most 11 (its representor netdev "
                     "is \"rep-abcdefghijklmnop\""},
                    {"vports[1].name", 11, 11,
                     "\"a b\" is not a valid port name; expected a letter followed by at most 10 letters, digits"},
                    {"vports[2].name", 14, 11, "is 12 characters long; a vport name has at most 11"},
                });
}

TEST(ConfigLoader, PortNamesUniqueAcrossUplinksAndVports) {
  // vports come first in the file: the uplink is the repeat.
  EXPECT_ERRORS(load(R"(apiVersion: eswitch/v1
vports:
  - name: p0
    attach: {devargs: net_ring0}
    spoofchk: false
  - name: p1
    attach: {devargs: net_ring1}
    spoofchk: false
uplinks:
  - name: p0
    attach: {devargs: net_ring2}
  - name: p1
    attach: {devargs: net_ring3}
)"),
                {
                    {"uplinks[0].name", 10, 11, "duplicate port name \"p0\"; first used by vports[0].name on line 3"},
                    {"uplinks[1].name", 12, 11, "duplicate port name \"p1\"; first used by vports[1].name on line 6"},
                });
}

TEST(ConfigLoader, HwAddrMustBeUnicastMac) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"02:00:00:00:00", "is not a MAC address"},       {"02-00-00-00-00-01", "is not a MAC address"},
      {"02:00:00:00:00:0g", "is not a MAC address"},    {"02:00:00:00:00:001", "is not a MAC address"},
      {"01:00:5e:00:00:01", "is a multicast address"},  {"ff:ff:ff:ff:ff:ff", "is a multicast address"},
      {"00:00:00:00:00:00", "is the all-zero address"},
  };
  for (const auto& [mac, fragment] : cases) {
    SCOPED_TRACE(mac);
    EXPECT_ERRORS(
        load("apiVersion: eswitch/v1\nvports:\n  - name: v\n    hw_addr: \"" + mac + "\"\n    attach: {devargs: r}\n"),
        {{"vports[0].hw_addr", 4, 14, fragment}});
  }
  EXPECT_ERRORS(load("apiVersion: eswitch/v1\nvports:\n  - name: v\n    hw_addr: 5\n    attach: {devargs: r}\n"),
                {{"vports[0].hw_addr", 4, 14, "\"5\" is not a MAC address"}});
  // Unquoted is fine too (YAML 1.2 has no sexagesimal numbers).
  const Config c = loaded(
      load("apiVersion: eswitch/v1\nvports:\n  - name: v\n    hw_addr: 02:00:00:00:00:10\n    attach: {devargs: r}\n"));
  ASSERT_EQ(c.vports.size(), 1u);
  EXPECT_EQ(c.vports[0].hw_addr, "02:00:00:00:00:10");
}

TEST(ConfigLoader, HwAddrUniqueIgnoringCase) {
  EXPECT_ERRORS(load(R"(apiVersion: eswitch/v1
vports:
  - name: a
    hw_addr: "02:00:00:00:00:AA"
    attach: {devargs: net_ring0}
  - name: b
    hw_addr: "02:00:00:00:00:aa"
    attach: {devargs: net_ring1}
)"),
                {{"vports[1].hw_addr", 7, 14,
                  "duplicate hw_addr \"02:00:00:00:00:aa\"; first used by vports[0].hw_addr on line 4"}});
}

TEST(ConfigLoader, DevargsUnique) {
  EXPECT_ERRORS(load(R"(apiVersion: eswitch/v1
uplinks:
  - name: u0
    attach: {devargs: "0000:03:00.0"}
  - name: u1
    attach: {devargs: "0000:03:00.0,representor=vf0"}
vports:
  - name: a
    attach: {devargs: "net_tap0,iface=a"}
    spoofchk: false
  - name: b
    attach: {devargs: "net_tap0,iface=b"}
    spoofchk: false
  - name: c
    attach: {devargs: "0000:03:00.0"}
    spoofchk: false
)"),
                {
                    {"vports[1].attach.devargs", 12, 23,
                     "duplicate device \"net_tap0\"; first used by vports[0].attach.devargs on line 9"},
                    {"vports[2].attach.devargs", 15, 23,
                     "duplicate device \"0000:03:00.0\"; first used by uplinks[0].attach.devargs on line 4"},
                });
}

TEST(ConfigLoader, CoresMustBeDistinct) {
  EXPECT_ERRORS(load("apiVersion: eswitch/v1\ndataplane:\n  main_core: 2\n  worker_cores: [1, 2, 3, 1]\n"),
                {
                    {"dataplane.worker_cores[1]", 4, 21, "core 2 is also dataplane.main_core; workers need cores"},
                    {"dataplane.worker_cores[3]", 4, 27,
                     "duplicate worker core 1; first used by dataplane.worker_cores[0] on line 4"},
                });
  EXPECT_ERRORS(load("apiVersion: eswitch/v1\ndataplane:\n  worker_cores: [0]\n"),
                {{"dataplane.worker_cores[0]", 3, 18, "core 0 is also dataplane.main_core (its default)"}});
}

constexpr const char* kTwoPorts = R"(apiVersion: eswitch/v1
uplinks:
  - name: up
    attach: {devargs: net_ring0}
vports:
  - name: vm
    attach: {devargs: net_ring1}
    spoofchk: false
)";  // 8 lines; what follows starts on line 9

TEST(ConfigLoader, CrossConnectReferencesExistingPorts) {
  EXPECT_ERRORS(load(std::string(kTwoPorts) + R"(pipeline:
  mode: cross_connect
  cross_connect:
    - {from: up, to: vm2}
    - {from: nope, to: up}
)"),
                {
                    {"pipeline.cross_connect[0].to", 12, 22, "no port named \"vm2\"; expected one of up, vm"},
                    {"pipeline.cross_connect[1].from", 13, 14, "no port named \"nope\""},
                });
  EXPECT_ERRORS(load("apiVersion: eswitch/v1\npipeline:\n  mode: cross_connect\n  cross_connect: [{from: a, to: a}]\n"),
                {
                    {"pipeline.cross_connect[0].from", 4, 26, "no port named \"a\"; no uplinks or vports are defined"},
                    {"pipeline.cross_connect[0].to", 4, 33, "no port named \"a\""},
                });
}

TEST(ConfigLoader, CrossConnectEntriesNeedFromAndTo) {
  EXPECT_ERRORS(
      load(std::string(kTwoPorts) + "pipeline:\n  mode: cross_connect\n  cross_connect: [{from: up}, {to: up}]\n"),
      {
          {"pipeline.cross_connect[0].to", 11, 19, "required key is missing"},
          {"pipeline.cross_connect[1].from", 11, 31, "required key is missing"},
      });
}

TEST(ConfigLoader, CrossConnectFromUnique) {
  EXPECT_ERRORS(load(std::string(kTwoPorts) + R"(pipeline:
  mode: cross_connect
  cross_connect:
    - {from: up, to: vm}
    - {from: vm, to: up}
    - {from: up, to: up}
)"),
                {{"pipeline.cross_connect[2].from", 14, 14,
                  "duplicate from port \"up\"; first used by pipeline.cross_connect[0].from on line 12"}});
}

TEST(ConfigLoader, CrossConnectOnlyInCrossConnectMode) {
  EXPECT_ERRORS(
      load(std::string(kTwoPorts) + "pipeline:\n  mode: l2\n  cross_connect:\n    - {from: up, to: vm}\n"),
      {{"pipeline.cross_connect", 12, 5, "must be empty when pipeline.mode is l2; set pipeline.mode: cross_connect"}});
  EXPECT_ERRORS(load(std::string(kTwoPorts) + "pipeline:\n  cross_connect: [{from: up, to: vm}]\n"),
                {{"pipeline.cross_connect", 10, 18, "must be empty when pipeline.mode is l2 (its default)"}});
  EXPECT_ERRORS(
      load(std::string(kTwoPorts) + "pipeline:\n  mode: cross_connect\n"),
      {{"pipeline.cross_connect", 10, 9, "must list at least one {from, to} pair when pipeline.mode is cross_connect"}});
  EXPECT_ERRORS(load(std::string(kTwoPorts) + "pipeline:\n  mode: cross_connect\n  cross_connect: []\n"),
                {{"pipeline.cross_connect", 11, 18, "must list at least one"}});
}

TEST(ConfigLoader, ChecksSkipValuesThatAlreadyFailed) {
  // The bad core is reported once, not again as "also the main_core"; a port whose name failed is not a
  // duplicate; an unparsable mode does not trigger the mode rules.
  EXPECT_ERRORS(load(R"(apiVersion: eswitch/v1
dataplane: {main_core: x, worker_cores: [x, 0]}
uplinks:
  - name: "9"
    attach: {devargs: a}
  - name: "9"
    attach: {devargs: b}
pipeline:
  mode: l3
  cross_connect: [{from: "9", to: "9"}]
)"),
                {
                    {"dataplane.main_core", 2, 24, "got \"x\""},
                    {"dataplane.worker_cores[0]", 2, 42, "got \"x\""},
                    {"uplinks[0].name", 4, 11, "not a valid port name"},
                    {"uplinks[1].name", 6, 11, "not a valid port name"},
                    {"pipeline.mode", 9, 9, "got \"l3\""},
                    {"pipeline.cross_connect[0].from", 10, 26, "no port named \"9\""},
                    {"pipeline.cross_connect[0].to", 10, 35, "no port named \"9\""},
                });
}

// ----------------------------------------------------------------------------------------------- many errors

TEST(ConfigLoader, ReportsAllErrorsInFileOrder) {
  const LoadResult r = load(R"(apiVersion: eswitch/v1
pipeline:
  mode: cross_connect
  cross_connect:
    - {from: vm1, to: ghost}
dataplane:
  burst: 1024
  colour: blue
vports:
  - name: vm1
    hw_addr: "01:00:00:00:00:01"
    attach: {devargs: net_ring0}
  - name: vm1
    attach: {devargs: net_ring0, tx_queues: -2}
)");
  EXPECT_ERRORS(r, {
                       {"pipeline.cross_connect[0].to", 5, 23, "no port named \"ghost\""},
                       {"dataplane.burst", 7, 10, "got 1024"},
                       {"dataplane.colour", 8, 3, "unknown key"},
                       {"vports[0].hw_addr", 11, 14, "multicast"},
                       {"vports[1].hw_addr", 13, 5, "required while spoofchk is on (the default)"},
                       {"vports[1].name", 13, 11, "duplicate port name \"vm1\""},
                       {"vports[1].attach.devargs", 14, 23, "duplicate device \"net_ring0\""},
                       {"vports[1].attach.tx_queues", 14, 45, "in 1..1024, got -2"},
                   });
}

// ----------------------------------------------------------------------------------------------- dataplane, vports

TEST(ConfigLoader, DataplaneRuleAndApiFields) {
  const Config c = loaded(load(R"(apiVersion: eswitch/v1
dataplane:
  max_rules: 4194304
  flow_cache_entries: 256
  flow_cache_insert_inv_prob: 1000
  api_socket: ""
  api_socket_group: "1001"
)"));
  EXPECT_EQ(c.dataplane.max_rules, 4194304u);
  EXPECT_EQ(c.dataplane.flow_cache_entries, 256u);
  EXPECT_EQ(c.dataplane.flow_cache_insert_inv_prob, 1000u);
  EXPECT_EQ(c.dataplane.api_socket, "");
  EXPECT_EQ(c.dataplane.api_socket_group, "1001");

  const Config d =
      loaded(load("apiVersion: eswitch/v1\ndataplane: {api_socket: /tmp/e.sock, api_socket_group: _esw}\n"));
  EXPECT_EQ(d.dataplane.api_socket, "/tmp/e.sock");
  EXPECT_EQ(d.dataplane.api_socket_group, "_esw");
  EXPECT_EQ(d.dataplane.max_rules, DataplaneConfig{}.max_rules);

  EXPECT_ERRORS(load("apiVersion: eswitch/v1\ndataplane: {api_socket: /run/}\n"),
                {{"dataplane.api_socket", 2, 25, "is not a valid socket path"}});
  EXPECT_ERRORS(load("apiVersion: eswitch/v1\ndataplane: {api_socket: /" + std::string(107, 'x') + "}\n"),
                {{"dataplane.api_socket", 2, 25, "at most 107 bytes"}});
  EXPECT_ERRORS(load("apiVersion: eswitch/v1\ndataplane: {flow_cache_entries: 2097152}\n"),
                {{"dataplane.flow_cache_entries", 2, 33, "in 256..1048576 that is a power of two"}});
}

TEST(ConfigLoader, VportEveryFieldRoundTrips) {
  const Config c = loaded(load(R"(apiVersion: eswitch/v1
vports:
  - name: web1
    flavour: sf
    id: 4000000000
    attach: {devargs: net_ring0}
    hw_addr: "02:00:C6:12:01:01"
    ipv4: [198.18.1.1/32, 198.18.2.0/24]
    ipv6: ["2001:DB8:0:0::1", "2001:db8:2::/64", "fe80::1/128"]
    vlan: 4094
    state: inactive
    spoofchk: false
    trust: true
    roce: true
    smc: deny
    dhcp_client: true
    egress_multicast: false
    rate: {tx_max_bps: 2.5G, tx_burst_bytes: 1518}
  - name: plain
    attach: {devargs: net_ring1}
    hw_addr: "02:00:c6:12:01:02"
)"));
  ASSERT_EQ(c.vports.size(), 2u);
  const VportConfig& v = c.vports[0];
  EXPECT_EQ(v.flavour, Flavour::kSf);
  EXPECT_EQ(v.id, 4000000000u);
  EXPECT_EQ(v.hw_addr, "02:00:c6:12:01:01");
  EXPECT_EQ(v.ipv4, (std::vector<std::string>{"198.18.1.1", "198.18.2.0/24"}));
  EXPECT_EQ(v.ipv6, (std::vector<std::string>{"2001:db8::1", "2001:db8:2::/64", "fe80::1"}));
  EXPECT_EQ(v.vlan, 4094);
  EXPECT_EQ(v.state, VportState::kInactive);
  EXPECT_FALSE(v.spoofchk);
  EXPECT_TRUE(v.trust);
  EXPECT_TRUE(v.roce);
  EXPECT_EQ(v.smc, SmcPolicy::kDeny);
  EXPECT_TRUE(v.dhcp_client);
  EXPECT_FALSE(v.egress_multicast);
  EXPECT_EQ(v.rate.tx_max_bps, 2'500'000'000u);
  EXPECT_EQ(v.rate.tx_burst_bytes, 1518u);
  // Where each field was written, relative to the vport.
  auto at = [&](const VportConfig& vp, const std::string& field) {
    auto it = vp.locs.find(field);
    return it == vp.locs.end() ? std::pair(-1, -1) : std::pair(it->second.line, it->second.column);
  };
  EXPECT_EQ(at(v, "name"), std::pair(3, 11));
  EXPECT_EQ(at(v, "hw_addr"), std::pair(7, 14));
  EXPECT_EQ(at(v, "ipv4"), std::pair(8, 11));
  EXPECT_EQ(at(v, "ipv4[1]"), std::pair(8, 27));
  EXPECT_EQ(at(v, "ipv6[2]"), std::pair(9, 50));
  EXPECT_EQ(at(v, "attach.devargs"), std::pair(6, 23));
  EXPECT_EQ(at(v, "rate.tx_max_bps"), std::pair(18, 24));
  EXPECT_EQ(at(v, "spoofchk"), std::pair(12, 15));
  EXPECT_EQ(at(v, "id"), std::pair(5, 9));
  EXPECT_FALSE(v.locs.contains("ipv4[2]"));

  const VportConfig& p = c.vports[1];  // defaults
  const VportConfig d;
  EXPECT_EQ(p.flavour, d.flavour);
  EXPECT_EQ(p.id, 0u);
  EXPECT_TRUE(p.ipv4.empty() && p.ipv6.empty());
  EXPECT_FALSE(p.vlan.has_value());
  EXPECT_EQ(p.state, d.state);
  EXPECT_EQ(p.spoofchk, d.spoofchk);
  EXPECT_EQ(p.trust, d.trust);
  EXPECT_EQ(p.roce, d.roce);
  EXPECT_EQ(p.smc, d.smc);
  EXPECT_EQ(p.dhcp_client, d.dhcp_client);
  EXPECT_EQ(p.egress_multicast, d.egress_multicast);
  EXPECT_EQ(p.rate.tx_max_bps, 0u);
  EXPECT_EQ(p.rate.tx_burst_bytes, 0u);
  EXPECT_FALSE(p.locs.contains("rate"));
}

TEST(ConfigLoader, EnumSpellings) {
  EXPECT_STREQ(to_string(Flavour::kVf), "vf");
  EXPECT_STREQ(to_string(Flavour::kSf), "sf");
  EXPECT_STREQ(to_string(VportState::kActive), "active");
  EXPECT_STREQ(to_string(VportState::kInactive), "inactive");
  EXPECT_STREQ(to_string(SmcPolicy::kAllow), "allow");
  EXPECT_STREQ(to_string(SmcPolicy::kDeny), "deny");
  EXPECT_STREQ(to_string(RepresentorKind::kTap), "tap");
  EXPECT_STREQ(to_string(RepresentorKind::kNone), "none");
  EXPECT_EQ(loaded(load("apiVersion: eswitch/v1\nrepresentors: {kind: none}\n")).representors.kind,
            RepresentorKind::kNone);
}

std::string vport_with(const std::string& fields) {
  return "apiVersion: eswitch/v1\nvports:\n  - name: v\n    hw_addr: \"02:00:c6:12:00:01\"\n"
         "    attach: {devargs: r}\n" +
         fields;  // fields start on line 6
}

TEST(ConfigLoader, RatesTakeSiSuffixes) {
  const std::vector<std::pair<std::string, uint64_t>> good = {
      {"8", 8},           {"1000000", 1'000'000},       {"64k", 64'000},          {"64K", 64'000},
      {"100M", 100'000'000}, {"1.5G", 1'500'000'000},   {"2.25M", 2'250'000},     {"10T", 10'000'000'000'000},
      {"0.5k", 500},      {"1.000000001G", 1'000'000'001}, {"\"10G\"", 10'000'000'000},
  };
  for (const auto& [text, bps] : good) {
    SCOPED_TRACE(text);
    const Config c = loaded(load(vport_with("    rate: {tx_max_bps: " + text + "}\n")));
    ASSERT_EQ(c.vports.size(), 1u);
    EXPECT_EQ(c.vports[0].rate.tx_max_bps, bps);
  }
  for (const std::string text : {"0", "7", "10Gb", "10g", "1.5", "1e9", "1.0000000005G", ".5G", "5.G", "-1G", "G",
                                 "11T", "99999999999999999999", "1,5G", "true"}) {
    SCOPED_TRACE(text);
    EXPECT_ERRORS(load(vport_with("    rate: {tx_max_bps: \"" + text + "\"}\n")),
                  {{"vports[0].rate.tx_max_bps", 6, 24, "expected a rate in bits/s from 8 to 10T"}});
  }
}

TEST(ConfigLoader, AddressesAreCanonical) {
  const std::vector<std::pair<std::string, std::string>> v4 = {
      {"198.18.0.1", "198.18.0.1"},     {"198.18.0.1/32", "198.18.0.1"}, {"198.18.0.0/15", "198.18.0.0/15"},
      {"198.19.255.255", "198.19.255.255"}, {"198.18.0.0/31", "198.18.0.0/31"},
  };
  for (const auto& [text, canonical] : v4) {
    SCOPED_TRACE(text);
    const Config c = loaded(load(vport_with("    ipv4: [\"" + text + "\"]\n")));
    EXPECT_EQ(c.vports.at(0).ipv4, std::vector<std::string>{canonical});
  }
  const std::vector<std::pair<std::string, std::string>> v6 = {
      {"2001:db8::1", "2001:db8::1"},
      {"2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"},
      {"2001:db8::1/128", "2001:db8::1"},
      {"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},  // RFC 5952: the first of two equal runs
      {"2001:db8:0:1::/64", "2001:db8:0:1::/64"},
      {"2001:db8:1:0:0:0:0:0/48", "2001:db8:1::/48"},
      {"fe80::0001", "fe80::1"},
  };
  for (const auto& [text, canonical] : v6) {
    SCOPED_TRACE(text);
    const Config c = loaded(load(vport_with("    ipv6: [\"" + text + "\"]\n")));
    EXPECT_EQ(c.vports.at(0).ipv6, std::vector<std::string>{canonical});
  }
}

TEST(ConfigLoader, AddressErrorsSayWhatWouldBeValid) {
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"ipv4", "198.18.0.1/24",
       "has host bits set; the prefix is 198.18.0.0/24 (or bind the address alone: 198.18.0.1)"},
      {"ipv4", "198.18.0.128/24", "the prefix is 198.18.0.0/24"},
      {"ipv4", "198.18.0.0/33", "invalid prefix length; expected /1 to /32"},
      {"ipv4", "198.18.0.0/032", "has an invalid prefix length; expected /1 to /32"},
      {"ipv4", "198.18.0.0/", "has an invalid prefix length"},
      {"ipv4", "198.18.0.0/24/24", "has an invalid prefix length"},
      {"ipv4", "198.18.0.a", "is not an IPv4 address or prefix"},
      {"ipv4", "0.0.0.0", "is the unspecified address"},
      {"ipv4", "255.255.255.255", "is a reserved or broadcast address"},
      {"ipv4", "2001:db8::1", "is not an IPv4 address"},
      {"ipv4", " 198.18.0.1", "is not an IPv4 address"},
      {"ipv6", "198.18.0.1", "is not an IPv6 address"},
      {"ipv6", "2001:db8::1/64", "the prefix is 2001:db8::/64 (or bind the address alone: 2001:db8::1)"},
      {"ipv6", "::1", "is the loopback address"},
      {"ipv6", "ff02::1:ff00:1", "is a multicast address"},
      {"ipv6", "::ffff:198.18.0.9", "is an IPv4-mapped address; bind 198.18.0.9 under ipv4 instead"},
      {"ipv6", "2001:db8::/0", "expected /1 to /128 (to let a vport send from any address, set spoofchk: false)"},
  };
  for (const auto& [key, text, fragment] : cases) {
    SCOPED_TRACE(text);
    EXPECT_ERRORS(load(vport_with("    " + key + ": [\"" + text + "\"]\n")),
                  {{"vports[0]." + key + "[0]", 6, 12, fragment}});
  }
}

TEST(ConfigLoader, BoundAddressesBelongToOneVport) {
  // Neighbouring prefixes, an address inside the vport's own prefix, the same address in another family: fine.
  loaded(load(R"(apiVersion: eswitch/v1
vports:
  - name: a
    hw_addr: "02:00:c6:12:00:01"
    ipv4: [198.18.0.0/25, 198.18.0.7]
    ipv6: ["2001:db8:a::/48"]
    attach: {devargs: net_ring0}
  - name: b
    hw_addr: "02:00:c6:12:00:02"
    ipv4: [198.18.0.128/25]
    ipv6: ["2001:db8:b::/48", "::c612:7"]
    attach: {devargs: net_ring1}
)"));
  EXPECT_ERRORS(load(R"(apiVersion: eswitch/v1
vports:
  - name: a
    hw_addr: "02:00:c6:12:00:01"
    ipv4: [198.18.4.0/22, 198.18.9.9, 198.18.9.9]
    attach: {devargs: net_ring0}
  - name: b
    hw_addr: "02:00:c6:12:00:02"
    ipv4: [198.18.6.1, 198.18.0.0/20, 198.18.0.0/20]
    attach: {devargs: net_ring1}
)"),
                {
                    {"vports[0].ipv4[2]", 5, 39,
                     "duplicate address 198.18.9.9; first listed as vports[0].ipv4[1] on line 5"},
                    {"vports[1].ipv4[0]", 9, 12,
                     "198.18.6.1 of vport \"b\" is inside prefix 198.18.4.0/22, bound to vport \"a\" by "
                     "vports[0].ipv4[0] on line 5"},
                    {"vports[1].ipv4[1]", 9, 24,
                     "prefix 198.18.0.0/20 of vport \"b\" covers 198.18.4.0/22, bound to vport \"a\" by "
                     "vports[0].ipv4[0] on line 5"},
                    {"vports[1].ipv4[2]", 9, 39, "prefix 198.18.0.0/20 of vport \"b\" covers 198.18.4.0/22"},
                });
}

TEST(ConfigLoader, VportIdsUniquePerFlavourAndAssigned) {
  const Config c = loaded(load(R"(apiVersion: eswitch/v1
vports:
  - {name: a, spoofchk: false, attach: {devargs: r0}}
  - {name: b, spoofchk: false, attach: {devargs: r1}, id: 0}
  - {name: c, spoofchk: false, attach: {devargs: r2}, flavour: sf}
  - {name: d, spoofchk: false, attach: {devargs: r3}, id: 2}
  - {name: e, spoofchk: false, attach: {devargs: r4}}
  - {name: f, spoofchk: false, attach: {devargs: r5}, flavour: sf, id: 0}
)"));
  ASSERT_EQ(c.vports.size(), 6u);
  EXPECT_EQ(c.vports[0].id, 1u);  // 0 is taken by b
  EXPECT_EQ(c.vports[1].id, 0u);
  EXPECT_EQ(c.vports[2].id, 1u);  // sf 0 is taken by f
  EXPECT_EQ(c.vports[3].id, 2u);
  EXPECT_EQ(c.vports[4].id, 3u);
  EXPECT_EQ(c.vports[5].id, 0u);
  EXPECT_ERRORS(load(R"(apiVersion: eswitch/v1
vports:
  - {name: a, spoofchk: false, attach: {devargs: r0}, id: 5, flavour: sf}
  - {name: b, spoofchk: false, attach: {devargs: r1}, id: 5, flavour: sf}
  - {name: c, spoofchk: false, attach: {devargs: r2}, id: 5}
  - {name: d, spoofchk: false, attach: {devargs: r3}, id: 5, flavour: xf}
)"),
                {
                    {"vports[1].id", 4, 59, "duplicate sf id 5; first used by vports[0].id on line 3"},
                    {"vports[3].flavour", 6, 71, "expected one of vf, sf, got \"xf\""},
                });
}

TEST(ConfigLoader, SpoofchkNeedsHwAddr) {
  EXPECT_ERRORS(load("apiVersion: eswitch/v1\nvports:\n  - name: v\n    attach: {devargs: r}\n"),
                {{"vports[0].hw_addr", 3, 5, "required while spoofchk is on (the default): anti-spoofing checks the "
                                             "source MAC; add the vport's MAC address or set spoofchk: false"}});
  EXPECT_ERRORS(load("apiVersion: eswitch/v1\nvports:\n  - name: v\n    spoofchk: true\n    attach: {devargs: r}\n"),
                {{"vports[0].hw_addr", 3, 5, "required while spoofchk is on: "}});
  // A bad spoofchk or hw_addr is reported once.
  EXPECT_ERRORS(load("apiVersion: eswitch/v1\nvports:\n  - name: v\n    spoofchk: on\n    attach: {devargs: r}\n"),
                {{"vports[0].spoofchk", 4, 15, "expected true or false, got \"on\""}});
  EXPECT_ERRORS(load("apiVersion: eswitch/v1\nvports:\n  - name: v\n    hw_addr: \"02:00:c6:12:00\"\n"
                     "    attach: {devargs: r}\n"),
                {{"vports[0].hw_addr", 4, 14, "is not a MAC address"}});
}

TEST(ConfigLoader, PortLimitCountsTapRepresentors) {
  auto config = [](int uplinks, int vports, const char* kind) {
    std::string yaml = fmt::format("apiVersion: eswitch/v1\nrepresentors: {{kind: {}}}\nuplinks:\n", kind);
    for (int i = 0; i < uplinks; ++i) yaml += fmt::format("  - {{name: u{}, attach: {{devargs: u{}}}}}\n", i, i);
    yaml += "vports:\n";
    for (int i = 0; i < vports; ++i) {
      yaml += fmt::format("  - {{name: v{}, spoofchk: false, attach: {{devargs: v{}}}}}\n", i, i);
    }
    return yaml;
  };
  loaded(load(config(0, 128, "tap")));
  loaded(load(config(2, 127, "tap")));
  loaded(load(config(56, 200, "none")));
  EXPECT_ERRORS(load(config(1, 128, "tap")),
                {{"vports", 6, 3, "too many ports: 1 uplink(s) + 128 vport(s) + 128 tap representor(s) = 257; at most "
                                  "256 (representors.kind: none saves one port per vport)"}});
  EXPECT_ERRORS(load(config(257, 0, "tap")), {{"uplinks", 4, 3, "= 257; at most 256"}});
}

// ----------------------------------------------------------------------------------------------- meters

TEST(ConfigLoader, MetersRoundTrip) {
  const Config c = loaded(load(R"(apiVersion: eswitch/v1
meters:
  - {name: m1, type: srtcm, cir: 10M, cbs: 12500}
  - name: m2.fast
    type: trtcm
    cir: 1G
    cbs: 4294967295
    pir: 1G
    pbs: 1518
  - {name: m3, type: srtcm, cir: 8, cbs: 1518, ebs: 0}
)"));
  ASSERT_EQ(c.meters.size(), 3u);
  EXPECT_EQ(c.meters[0].name, "m1");
  EXPECT_FALSE(c.meters[0].tr_tcm);
  EXPECT_EQ(c.meters[0].cir_bps, 10'000'000u);
  EXPECT_EQ(c.meters[0].cbs_bytes, 12500u);
  EXPECT_EQ(c.meters[0].ebs_bytes, 0u);
  EXPECT_EQ(c.meters[0].loc.line, 3);
  EXPECT_EQ(c.meters[0].loc.column, 5);
  EXPECT_TRUE(c.meters[1].tr_tcm);
  EXPECT_EQ(c.meters[1].cir_bps, 1'000'000'000u);
  EXPECT_EQ(c.meters[1].cbs_bytes, 4294967295u);
  EXPECT_EQ(c.meters[1].pir_bps, 1'000'000'000u);  // pir == cir is fine
  EXPECT_EQ(c.meters[1].pbs_bytes, 1518u);
  EXPECT_EQ(c.meters[1].loc.line, 4);
  EXPECT_EQ(c.meters[2].cir_bps, 8u);
}

// ----------------------------------------------------------------------------------------------- tables

constexpr const char* kPorts = R"(apiVersion: eswitch/v1
uplinks:
  - name: up0
    attach: {devargs: net_ring0}
vports:
  - name: vm1
    hw_addr: "02:00:c6:12:00:01"
    attach: {devargs: net_ring1}
  - name: vm2
    hw_addr: "02:00:c6:12:00:02"
    attach: {devargs: net_ring2}
meters:
  - {name: m1, type: srtcm, cir: 10M, cbs: 12500}
)";  // 13 lines; what follows starts on line 14

TEST(ConfigLoader, TablesRoundTripWithLocations) {
  const Config c = loaded(load(std::string(kPorts) + R"(tables:
  - id: 7
    name: last
    miss: [count, output: up0]
  - id: 0
    rules:
      - name: r1
        priority: 65535
        match: {in_port: vm1, tcp: true, tcp6: , ipv4_dst: 198.18.0.0/24, eth_type: 0x0800, x: "a b"}
        actions:
          - count
          - meter: m1
          - mirror: vm2
          - set_field: {eth_dst: "02:00:c6:12:00:02", ipv4_dst: 198.18.0.2}
          - push_vlan: 100
          - push_vlan: {vid: 0, pcp: 7}
          - pop_vlan
          - dec_ttl
          - set_register: {reg1: 0x10}
          - to_representor
          - to_representor: vm1
          - to_representor:
          - drop
          - output: vm2
          - goto_table: last
      - actions: [goto_table: 7]
)"));
  ASSERT_EQ(c.tables.size(), 2u);
  const TableConfig& last = c.tables[0];
  EXPECT_EQ(last.id, 7u);
  EXPECT_EQ(last.name, "last");
  EXPECT_EQ(last.loc.line, 15);
  EXPECT_EQ(last.loc.column, 5);
  ASSERT_EQ(last.miss.size(), 2u);
  EXPECT_EQ(action_path("tables[0].miss", last.miss[1]), "tables[0].miss[1].output");
  EXPECT_EQ(last.miss[1].arg, "up0");

  const TableConfig& t0 = c.tables[1];
  EXPECT_EQ(t0.id, 0u);
  EXPECT_TRUE(t0.name.empty());
  EXPECT_TRUE(t0.miss.empty());
  ASSERT_EQ(t0.rules.size(), 2u);
  const RuleConfig& r = t0.rules[0];
  EXPECT_EQ(r.name, "r1");
  EXPECT_EQ(r.priority, 65535u);
  EXPECT_EQ(r.loc.line, 20);
  EXPECT_EQ(r.loc.column, 9);
  const std::string rp = rule_path(1, 0);
  EXPECT_EQ(rp, "tables[1].rules[0]");

  struct M {
    std::string field, value;
    int line, column;
  };
  const std::vector<M> match = {{"in_port", "vm1", 22, 26},       {"tcp", "", 22, 36},
                                {"tcp6", "", 22, 42},             {"ipv4_dst", "198.18.0.0/24", 22, 60},
                                {"eth_type", "0x0800", 22, 85},   {"x", "a b", 22, 96}};
  ASSERT_EQ(r.match.size(), match.size());
  for (size_t i = 0; i < match.size(); ++i) {
    SCOPED_TRACE(match[i].field);
    EXPECT_EQ(r.match[i].field, match[i].field);
    EXPECT_EQ(r.match[i].value, match[i].value);
    EXPECT_EQ(r.match[i].loc.line, match[i].line);
    EXPECT_EQ(r.match[i].loc.column, match[i].column);
  }
  EXPECT_EQ(match_path(rp, r.match[3]), "tables[1].rules[0].match.ipv4_dst");

  struct A {
    std::string name, arg, path;
    int line, column;
  };
  const std::vector<A> actions = {
      {"count", "", "actions[0]", 24, 13},
      {"meter", "m1", "actions[1].meter", 25, 20},
      {"mirror", "vm2", "actions[2].mirror", 26, 21},
      {"set_field", "eth_dst=02:00:c6:12:00:02", "actions[3].set_field.eth_dst", 27, 34},
      {"set_field", "ipv4_dst=198.18.0.2", "actions[3].set_field.ipv4_dst", 27, 65},
      {"push_vlan", "100", "actions[4].push_vlan", 28, 24},
      {"push_vlan", "0/7", "actions[5].push_vlan", 29, 24},
      {"pop_vlan", "", "actions[6]", 30, 13},
      {"dec_ttl", "", "actions[7]", 31, 13},
      {"set_register", "reg1=0x10", "actions[8].set_register.reg1", 32, 34},
      {"to_representor", "", "actions[9]", 33, 13},
      {"to_representor", "vm1", "actions[10].to_representor", 34, 29},
      {"to_representor", "", "actions[11]", 35, 13},
      {"drop", "", "actions[12]", 36, 13},
      {"output", "vm2", "actions[13].output", 37, 21},
      {"goto_table", "7", "actions[14].goto_table", 38, 25},  // by name, stored as the id
  };
  ASSERT_EQ(r.actions.size(), actions.size());
  for (size_t i = 0; i < actions.size(); ++i) {
    SCOPED_TRACE(actions[i].path);
    EXPECT_EQ(r.actions[i].name, actions[i].name);
    EXPECT_EQ(r.actions[i].arg, actions[i].arg);
    EXPECT_EQ(action_path(rp + ".actions", r.actions[i]), rp + "." + actions[i].path);
    EXPECT_EQ(r.actions[i].loc.line, actions[i].line);
    EXPECT_EQ(r.actions[i].loc.column, actions[i].column);
  }
  EXPECT_EQ(r.actions[4].index, 3);  // both set_field actions come from item 3
  EXPECT_EQ(t0.rules[1].priority, 0u);
  EXPECT_TRUE(t0.rules[1].match.empty());
  EXPECT_EQ(action_path("x", ActionConfig{"drop", "", {}, -1}), "x");  // built in code: no index
}

TEST(ConfigLoader, ActionErrorsAreLocated) {
  EXPECT_ERRORS(load(std::string(kPorts) + R"(tables:
  - id: 0
    rules:
      - actions: [outptu: vm2, output, drop: x, {count: , drop: }, output: nope, meter: m9, mirror: [vm1]]
      - actions: [set_field: {}, push_vlan: {vid: 4095}, to_representor: up0, goto_table: 0, count]
      - actions: [goto_table: 9, output: up0]
  - id: 9
    miss: [pop_vlan]
)"),
                {
                    {"tables[0].rules[0].actions[0]", 17, 19, "did you mean \"output\"?"},
                    {"tables[0].rules[0].actions[1]", 17, 32, "output needs an argument; write output: <port>"},
                    {"tables[0].rules[0].actions[2]", 17, 40, "drop takes no argument"},
                    {"tables[0].rules[0].actions[3]", 17, 49,
                     "got a mapping with 2 keys; write one action per list item"},
                    {"tables[0].rules[0].actions[4].output", 17, 76,
                     "no port named \"nope\"; expected one of up0, vm1, vm2"},
                    {"tables[0].rules[0].actions[5].meter", 17, 89, "no meter named \"m9\"; expected one of m1"},
                    {"tables[0].rules[0].actions[6].mirror", 17, 101, "expected a non-empty string, got a list"},
                    {"tables[0].rules[1].actions[0].set_field", 18, 30, "set_field needs at least one field"},
                    {"tables[0].rules[1].actions[1].push_vlan.vid", 18, 51, "in 0..4094, got 4095"},
                    {"tables[0].rules[1].actions[2].to_representor", 18, 74, "\"up0\" is an uplink"},
                    {"tables[0].rules[1].actions[3].goto_table", 18, 91,
                     "goto_table 0 from table 0: a rule can only go to a table with a higher id"},
                    {"tables[0].rules[1].actions[4]", 18, 94, "nothing may follow goto_table"},
                    {"tables[0].rules[2].actions[1]", 19, 34, "nothing may follow goto_table"},
                    {"tables[1].miss[0]", 21, 12, "pop_vlan cannot be a miss action"},
                });
}

TEST(ConfigLoader, RuleCountIsBoundedByMaxRules) {
  std::string yaml = "apiVersion: eswitch/v1\ndataplane: {max_rules: 1024}\ntables:\n  - id: 0\n    rules:\n";
  for (int i = 0; i < 1024; ++i) yaml += "      - {actions: [drop]}\n";
  loaded(load(yaml));
  yaml += "      - {actions: [drop]}\n";
  EXPECT_ERRORS(load(yaml), {{"tables", 4, 3, "1025 rules, more than dataplane.max_rules (1024)"}});
}

TEST(ConfigLoader, ReferencesToBadNamesDoNotPileOn) {
  // The meter whose name failed is what the action means: one error, not a second "no meter named".
  EXPECT_ERRORS(load(R"(apiVersion: eswitch/v1
meters:
  - {name: 1m, type: srtcm, cir: 10M, cbs: 12500}
tables:
  - id: 0
    rules:
      - actions: [meter: 1m, goto_table: 300]
)"),
                {
                    {"meters[0].name", 3, 12, "not a valid meter name"},
                    {"tables[0].rules[0].actions[1].goto_table", 7, 42, "expected an integer in 0..254, got 300"},
                });
}

// ----------------------------------------------------------------------------------------------- files

class ConfigFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("esw_config_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const std::filesystem::path path = dir_ / name;
    std::ofstream(path) << text;
    return path.string();
  }

  std::filesystem::path dir_;
};

TEST_F(ConfigFile, LoadsFile) {
  const std::string path = write("ok.yaml", default_config_yaml());
  const LoadResult r = load_config_file(path);
  ASSERT_TRUE(r.config.has_value()) << dump(r);
  EXPECT_EQ(r.config->vports.size(), 3u);
}

TEST_F(ConfigFile, ErrorsNameTheFileForDocumentProblems) {
  const std::string path = write("bad.yaml", "apiVersion: eswitch/v1\n---\n{}\n");
  EXPECT_ERRORS(load_config_file(path), {{"", 2, 1, path + ": holds 2 YAML documents"}});
}

TEST_F(ConfigFile, MissingFileIsOneError) {
  const std::string path = (dir_ / "absent.yaml").string();
  const LoadResult r = load_config_file(path);
  EXPECT_ERRORS(r, {{"", 0, 0, "No such file or directory"}});
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].to_string(), "cannot read config file \"" + path + "\": No such file or directory");
}

TEST_F(ConfigFile, DirectoryIsOneError) {
  EXPECT_ERRORS(load_config_file(dir_.string()), {{"", 0, 0, "Is a directory"}});
}

}  // namespace
}  // namespace esw::cfg
