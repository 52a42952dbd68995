// Config loader: schema, locations, cross-field rules, error collection. No EAL.
#include "config/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
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
  ASSERT_EQ(c.vports.size(), 2u);
  EXPECT_EQ(c.vports[0].name, "vm1");
  EXPECT_EQ(c.vports[0].hw_addr, "02:00:c6:12:00:01");
  EXPECT_EQ(c.vports[0].attach.devargs, "net_af_packet1,iface=eswt1p");
  EXPECT_EQ(c.vports[1].name, "vm2");
  EXPECT_EQ(c.vports[1].hw_addr, "02:00:c6:12:00:02");
  EXPECT_EQ(c.vports[1].attach.devargs, "net_af_packet2,iface=eswt2p");
  EXPECT_EQ(c.pipeline.mode, PipelineMode::kL2);
  EXPECT_TRUE(c.pipeline.cross_connect.empty());
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
  - name: B12345678901234
    attach: {devargs: net_ring0}
pipeline:
  mode: cross_connect
  cross_connect:
    - {from: up0, to: vm-1_a}
    - {from: vm-1_a, to: up0}
    - {from: B12345678901234, to: B12345678901234}
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
  EXPECT_EQ(c.vports[1].name, "B12345678901234");
  EXPECT_EQ(c.vports[1].line, 25);
  EXPECT_FALSE(c.vports[1].hw_addr.has_value());
  EXPECT_EQ(c.vports[1].attach.devargs, "net_ring0");

  EXPECT_EQ(c.pipeline.mode, PipelineMode::kCrossConnect);
  ASSERT_EQ(c.pipeline.cross_connect.size(), 3u);
  EXPECT_EQ(c.pipeline.cross_connect[0].from, "up0");
  EXPECT_EQ(c.pipeline.cross_connect[0].to, "vm-1_a");
  EXPECT_EQ(c.pipeline.cross_connect[1].from, "vm-1_a");
  EXPECT_EQ(c.pipeline.cross_connect[1].to, "up0");
  EXPECT_EQ(c.pipeline.cross_connect[2].from, "B12345678901234");
  EXPECT_EQ(c.pipeline.cross_connect[2].to, "B12345678901234");
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
            "uplinks, vports, pipeline (line 2, col 1)");
}

TEST(ConfigLoader, UnknownNestedKeys) {
  const LoadResult r = load(R"(apiVersion: eswitch/v1
vports:
  - name: a
    attach: {devargs: net_ring0}
  - name: b
    attach: {devargs: net_ring1, rxqueues: 2}
    mac: "02:00:00:00:00:01"
dataplane:
  workers: [1]
)");
  EXPECT_ERRORS(r, {
                       {"vports[1].attach.rxqueues", 6, 34, "valid keys: devargs, rx_queues, tx_queues"},
                       {"vports[1].mac", 7, 5, "valid keys: name, hw_addr, attach"},
                       {"dataplane.workers", 9, 3, "unknown key \"workers\""},
                   });
  ASSERT_EQ(r.errors.size(), 3u);
  EXPECT_THAT(r.errors[0].message, HasSubstr("did you mean \"rx_queues\"?"));
  EXPECT_THAT(r.errors[1].message, Not(HasSubstr("did you mean")));
}

TEST(ConfigLoader, DuplicateKeyRejected) {
  EXPECT_ERRORS(load("apiVersion: eswitch/v1\ndataplane:\n  burst: 32\n  burst: 64\n"),
                {{"dataplane.burst", 4, 3, "duplicate key \"burst\"; first on line 3"}});
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
      {"vports:\n  - name: v\n", {"vports[0].attach", 3, 5, "required key is missing"}},
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
vports:
  - name: abcdefghijklmnop
    attach: {devargs: net_ring1}
  - name: "a b"
    attach: {devargs: net_ring2}
)"),
                {
                    {"uplinks[0].name", 3, 11, "\"1up\" is not a valid port name"},
                    {"vports[0].name", 6, 11, "\"abcdefghijklmnop\" is not a valid port name"},
                    {"vports[1].name", 8, 11, "expected a letter followed by at most 14 letters, digits"},
                });
}

TEST(ConfigLoader, PortNamesUniqueAcrossUplinksAndVports) {
  // vports come first in the file: the uplink is the repeat.
  EXPECT_ERRORS(load(R"(apiVersion: eswitch/v1
vports:
  - name: p0
    attach: {devargs: net_ring0}
  - name: p1
    attach: {devargs: net_ring1}
uplinks:
  - name: p0
    attach: {devargs: net_ring2}
  - name: p1
    attach: {devargs: net_ring3}
)"),
                {
                    {"uplinks[0].name", 8, 11, "duplicate port name \"p0\"; first used by vports[0].name on line 3"},
                    {"uplinks[1].name", 10, 11, "duplicate port name \"p1\"; first used by vports[1].name on line 5"},
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
  - name: b
    attach: {devargs: "net_tap0,iface=b"}
  - name: c
    attach: {devargs: "0000:03:00.0"}
)"),
                {
                    {"vports[1].attach.devargs", 11, 23,
                     "duplicate device \"net_tap0\"; first used by vports[0].attach.devargs on line 9"},
                    {"vports[2].attach.devargs", 13, 23,
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
)";  // 7 lines; what follows starts on line 8

TEST(ConfigLoader, CrossConnectReferencesExistingPorts) {
  EXPECT_ERRORS(load(std::string(kTwoPorts) + R"(pipeline:
  mode: cross_connect
  cross_connect:
    - {from: up, to: vm2}
    - {from: nope, to: up}
)"),
                {
                    {"pipeline.cross_connect[0].to", 11, 22, "no port named \"vm2\"; expected one of up, vm"},
                    {"pipeline.cross_connect[1].from", 12, 14, "no port named \"nope\""},
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
          {"pipeline.cross_connect[0].to", 10, 19, "required key is missing"},
          {"pipeline.cross_connect[1].from", 10, 31, "required key is missing"},
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
                {{"pipeline.cross_connect[2].from", 13, 14,
                  "duplicate from port \"up\"; first used by pipeline.cross_connect[0].from on line 11"}});
}

TEST(ConfigLoader, CrossConnectOnlyInCrossConnectMode) {
  EXPECT_ERRORS(
      load(std::string(kTwoPorts) + "pipeline:\n  mode: l2\n  cross_connect:\n    - {from: up, to: vm}\n"),
      {{"pipeline.cross_connect", 11, 5, "must be empty when pipeline.mode is l2; set pipeline.mode: cross_connect"}});
  EXPECT_ERRORS(load(std::string(kTwoPorts) + "pipeline:\n  cross_connect: [{from: up, to: vm}]\n"),
                {{"pipeline.cross_connect", 9, 18, "must be empty when pipeline.mode is l2 (its default)"}});
  EXPECT_ERRORS(
      load(std::string(kTwoPorts) + "pipeline:\n  mode: cross_connect\n"),
      {{"pipeline.cross_connect", 9, 9, "must list at least one {from, to} pair when pipeline.mode is cross_connect"}});
  EXPECT_ERRORS(load(std::string(kTwoPorts) + "pipeline:\n  mode: cross_connect\n  cross_connect: []\n"),
                {{"pipeline.cross_connect", 10, 18, "must list at least one"}});
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
                       {"vports[1].name", 13, 11, "duplicate port name \"vm1\""},
                       {"vports[1].attach.devargs", 14, 23, "duplicate device \"net_ring0\""},
                       {"vports[1].attach.tx_queues", 14, 45, "in 1..1024, got -2"},
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
  EXPECT_EQ(r.config->vports.size(), 2u);
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
