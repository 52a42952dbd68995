// In-process integration test of eswitchd's management API: a real EAL (--no-huge), a real Switch forwarding
// on net_null ports (uplink0 generates frames, vm1 sinks them), the real ApiServer on a unix socket, and clients
// on other threads (raw sockets for the misbehaving ones, control/api_client.h for the well-behaved ones) while
// this thread runs the event loop the server is registered with, as eswitchd's main thread does.
//
// What it pins down: socket mode/group/stale/in-use handling; versioned envelopes and error codes; garbage,
// truncated, oversized, stalled and disconnected requests change nothing and do not disturb forwarding;
// invalid configs are rejected with located errors and change nothing; apply/diff/config round-trip; concurrent
// clients are serialised (each apply is one transaction); an apply whose client disconnects before the commit
// is dropped; progress lines; the connection limit.

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/ring_harness.h"
#include "config/config.h"
#include "control/api_client.h"
#include "control/api_protocol.h"
#include "dataplane/daemon/api_server.h"
#include "dataplane/daemon/eal.h"
#include "dataplane/daemon/event_loop.h"
#include "dataplane/error.h"
#include "dataplane/daemon/switch.h"

namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using esw::dp::ApiServer;
using esw::dp::ApiServerOptions;
using esw::dp::RunningSource;
using esw::dp::Switch;

std::string base_yaml() {
  return R"(apiVersion: eswitch/v1
dataplane:
  main_core: 0
  worker_cores: [1]
  memory_mb: 256
  hugepages: off
  mbufs: 4096
  mbuf_cache: 64
  max_rules: 65536
uplinks:
  - name: uplink0
    attach: { devargs: "net_null_api0" }
vports:
  - name: vm1
    spoofchk: false
    attach: { devargs: "net_null_api1,no-rx=1" }
representors: { kind: none }
)";
}

// Config with a count rule that every generated frame hits, plus `extra` user rules in table 0.
std::string config_yaml(int variant, int extra = 0) {
  std::string y = base_yaml();
  y += "tables:\n  - id: 0\n    rules:\n";
  y += "      - name: fwd\n        priority: 1000\n        match: { in_port: uplink0 }\n";
  y += "        actions: [count, output: vm1]\n";
  y += fmt::format("      - name: variant\n        priority: 900\n        match: {{ in_port: vm1, udp: true, "
                   "udp_dst: {} }}\n        actions: [drop]\n",
                   1000 + variant);
  for (int i = 0; i < extra; ++i) {
    y += fmt::format("      - {{priority: 10, match: {{in_port: vm1, udp: true, ipv4_dst: 198.19.{}.{}, udp_dst: "
                     "{}}}, actions: [drop]}}\n",
                     (i >> 8) & 255, i & 255, 2000 + (i >> 16));
  }
  return y;
}

// --- raw socket helpers (for clients that misbehave on purpose) ---

int connect_to(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    data.remove_prefix(static_cast<size_t>(n));
  }
}

// Reads until EOF (or 10 s); returns the reply lines parsed as JSON.
std::vector<json> read_lines(int fd) {
  std::string in;
  char buf[65536];
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    in.append(buf, static_cast<size_t>(n));
  }
  std::vector<json> out;
  size_t pos = 0, nl;
  while ((nl = in.find('\n', pos)) != std::string::npos) {
    out.push_back(json::parse(in.substr(pos, nl - pos)));
    pos = nl + 1;
  }
  return out;
}

std::string request(const std::string& method, json params, json id = 1) {
  return json{{"api", 1}, {"id", id}, {"method", method}, {"params", std::move(params)}}.dump() + "\n";
}

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fmt::format("/tmp/esw-apitest-{}", getpid());
    std::filesystem::remove_all(dir_);
    sock_ = dir_ + "/sub/api.sock";  // the parent directory does not exist yet: the server creates it
    start_yaml_ = config_yaml(0);
    auto loaded = esw::cfg::load_config_string(start_yaml_, "start.yaml");
    ASSERT_TRUE(loaded.config) << (loaded.errors.empty() ? "" : loaded.errors[0].to_string());
    sw_ = std::make_unique<Switch>(*loaded.config);
    sw_->start();
    loop_ = std::make_unique<esw::dp::EventLoop>();
  }
  void TearDown() override {
    server_.reset();
    if (sw_) sw_->close();
    sw_.reset();
    std::filesystem::remove_all(dir_);
  }

  void start_server(ApiServerOptions opts = {}) {
    opts.socket_path = sock_;
    RunningSource rs;
    rs.yaml = start_yaml_;
    rs.source = "start.yaml";
    server_ = std::make_unique<ApiServer>(*sw_, *loop_, opts, rs);
  }

  // Runs `client` on another thread while this thread serves the API, as eswitchd's main loop does.
  void serve_while(const std::function<void()>& client) {
    std::atomic<bool> done{false};
    std::thread t([&] {
      client();
      done.store(true);
    });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!done.load() && std::chrono::steady_clock::now() < deadline) {
      loop_->run_once(5ms);
      sw_->maintain();
    }
    t.join();
    ASSERT_TRUE(done.load()) << "client did not finish";
    for (int i = 0; i < 20; ++i) loop_->run_once(1ms);  // let the server notice closed connections
  }

  json call(const std::string& method, json params = json::object()) {
    esw::ctl::ApiReply reply;
    serve_while([&] { reply = esw::ctl::ApiClient(sock_, 30).call(method, params); });
    return reply.raw;
  }

  uint64_t vm1_tx() {
    for (const auto& p : sw_->port_stats()) {
      if (p.name == "vm1") return p.counters.tx_packets;
    }
    return 0;
  }
  uint64_t fwd_packets() {
    for (const auto& r : sw_->rule_stats()) {
      if (r.where.find("(fwd)") != std::string::npos) return r.packets;
    }
    return 0;
  }

  std::string dir_, sock_, start_yaml_;
  std::unique_ptr<Switch> sw_;
  std::unique_ptr<esw::dp::EventLoop> loop_;  // eswitchd's main loop; the server registers with it
  std::unique_ptr<ApiServer> server_;
};

TEST_F(ApiServerTest, SocketIsCreated0660WithTheGroupAndRemovedAtExit) {
  ApiServerOptions opts;
  opts.group = "daemon";  // exists on every Debian system
  const group* g = getgrnam("daemon");
  ASSERT_NE(g, nullptr);
  start_server(opts);
  struct stat st {};
  ASSERT_EQ(stat(sock_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  EXPECT_EQ(st.st_gid, g->gr_gid);
  server_.reset();
  EXPECT_FALSE(std::filesystem::exists(sock_)) << "socket left behind";
}

TEST_F(ApiServerTest, UnknownGroupIsAnError) {
  ApiServerOptions opts;
  opts.group = "esw-no-such-group";
  try {
    start_server(opts);
    FAIL() << "expected an error";
  } catch (const esw::dp::Error& e) {
    EXPECT_NE(std::string(e.what()).find("no such group"), std::string::npos) << e.what();
  }
}

TEST_F(ApiServerTest, StaleSocketIsReplacedLiveOneAndNonSocketAreRefused) {
  // A stale socket: bound, then its owner died without removing it.
  std::filesystem::create_directories(dir_ + "/sub");
  {
    const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, sock_.c_str(), sock_.size() + 1);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    ::close(fd);
  }
  start_server();
  EXPECT_EQ(call("ping")["ok"], true);

  // A second server on the live socket must refuse, and must not remove the first one's socket.
  ApiServerOptions opts;
  opts.socket_path = sock_;
  try {
    ApiServer second(*sw_, *loop_, opts, RunningSource{});
    FAIL() << "a second server took over a live socket";
  } catch (const esw::dp::Error& e) {
    EXPECT_NE(std::string(e.what()).find("in use"), std::string::npos) << e.what();
  }
  EXPECT_EQ(call("ping")["ok"], true);
  server_.reset();

  std::FILE* f = std::fopen(sock_.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  try {
    start_server();
    FAIL() << "a regular file was replaced";
  } catch (const esw::dp::Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a socket"), std::string::npos) << e.what();
  }
}

TEST_F(ApiServerTest, EnvelopeIsVersionedAndErrorsHaveCodes) {
  start_server();
  json r = call("ping");
  ASSERT_EQ(r["ok"], true) << r;
  EXPECT_EQ(r["api"], 1);
  EXPECT_EQ(r["result"]["generation"], 1);
  EXPECT_EQ(r["result"]["config_hash"], esw::dp::text_hash(start_yaml_));
  // eswitchctl (watch) compares this hash with its own: both must be the same function.
  EXPECT_EQ(esw::cfg::text_hash(start_yaml_), esw::dp::text_hash(start_yaml_));

  std::vector<json> replies;
  serve_while([&] {
    const int fd = connect_to(sock_);
    send_all(fd, R"({"api": 2, "id": "a", "method": "ping"})" "\n");
    send_all(fd, R"({"id": "b", "method": "ping"})" "\n");
    send_all(fd, R"({"api": 1, "id": "c", "method": "reboot"})" "\n");
    send_all(fd, R"({"api": 1, "id": "d", "method": "show", "params": {"what": "nothing"}})" "\n");
    send_all(fd, R"({"api": 1, "id": "e", "method": "show", "params": []})" "\n");
    send_all(fd, R"({"api": 1, "id": "f", "method": "apply", "params": {}})" "\n");
    send_all(fd, R"([1, 2, 3])" "\n");
    send_all(fd, R"({"api": 1, "id": {"x": 1}, "method": "ping"})" "\n");
    shutdown(fd, SHUT_WR);
    replies = read_lines(fd);
    ::close(fd);
  });
  ASSERT_EQ(replies.size(), 8u);
  auto code = [](const json& j) { return j["error"]["code"].get<std::string>(); };
  EXPECT_EQ(code(replies[0]), "unsupported_api");
  EXPECT_EQ(replies[0]["id"], "a");
  EXPECT_EQ(code(replies[1]), "bad_request");
  EXPECT_EQ(code(replies[2]), "unknown_method");
  EXPECT_EQ(code(replies[3]), "bad_request");
  EXPECT_EQ(code(replies[4]), "bad_request");
  EXPECT_EQ(code(replies[5]), "bad_request");  // params.yaml is required
  EXPECT_EQ(code(replies[6]), "bad_request");
  EXPECT_EQ(replies[7]["ok"], true);
  EXPECT_EQ(replies[7]["id"], json({{"x", 1}}));
}

TEST_F(ApiServerTest, GarbageTruncatedOversizedStalledAndDisconnectedRequestsChangeNothing) {
  ApiServerOptions opts;
  opts.max_request_bytes = 64 << 10;
  opts.stall_timeout = std::chrono::milliseconds(300);
  start_server(opts);
  const uint64_t tx0 = vm1_tx();
  const uint64_t fwd0 = fwd_packets();
  const std::string valid = request("apply", {{"yaml", config_yaml(7)}});

  std::vector<std::vector<json>> replies(6);
  serve_while([&] {
    // 1. Garbage lines: an error each, the connection stays usable.
    int fd = connect_to(sock_);
    send_all(fd, "hello\n\x01\x02\xff{\"api\":\n");
    send_all(fd, request("ping", json::object(), 2));
    shutdown(fd, SHUT_WR);
    replies[0] = read_lines(fd);
    ::close(fd);
    // 2. Binary garbage without a newline, then half-close: "truncated".
    fd = connect_to(sock_);
    send_all(fd, std::string("\x00\x01\x02garbage", 10));
    shutdown(fd, SHUT_WR);
    replies[1] = read_lines(fd);
    ::close(fd);
    // 3. The first half of a valid apply, then half-close: "truncated", nothing applied.
    fd = connect_to(sock_);
    send_all(fd, valid.substr(0, valid.size() / 2));
    shutdown(fd, SHUT_WR);
    replies[2] = read_lines(fd);
    ::close(fd);
    // 4. The first half of a valid apply, then the client vanishes: no reply possible, nothing applied.
    fd = connect_to(sock_);
    send_all(fd, valid.substr(0, valid.size() - 10));
    ::close(fd);
    // 5. Oversized: more than max_request_bytes without a newline.
    fd = connect_to(sock_);
    send_all(fd, std::string(100 << 10, 'x'));
    replies[4] = read_lines(fd);
    ::close(fd);
    // 6. A partial request that stops arriving is dropped after the stall timeout.
    fd = connect_to(sock_);
    send_all(fd, "{\"api\": 1, ");
    replies[5] = read_lines(fd);  // the error line, then the close (read_lines stops at EOF)
    ::close(fd);
  });
  ASSERT_EQ(replies[0].size(), 3u);
  EXPECT_EQ(replies[0][0]["error"]["code"], "parse_error");
  EXPECT_EQ(replies[0][1]["error"]["code"], "parse_error");
  EXPECT_EQ(replies[0][2]["ok"], true);
  ASSERT_EQ(replies[1].size(), 1u);
  EXPECT_EQ(replies[1][0]["error"]["code"], "truncated");
  ASSERT_EQ(replies[2].size(), 1u);
  EXPECT_EQ(replies[2][0]["error"]["code"], "truncated");
  ASSERT_EQ(replies[4].size(), 1u);
  EXPECT_EQ(replies[4][0]["error"]["code"], "too_large");
  ASSERT_EQ(replies[5].size(), 1u);
  EXPECT_EQ(replies[5][0]["error"]["code"], "timeout");

  // Nothing changed, and the dataplane kept forwarding (and counting) throughout.
  EXPECT_EQ(server_->running().generation, 1u);
  EXPECT_EQ(server_->running().yaml, start_yaml_);
  EXPECT_GT(vm1_tx(), tx0);
  EXPECT_GT(fwd_packets(), fwd0);
  EXPECT_EQ(server_->clients(), 0u);
}

TEST_F(ApiServerTest, InvalidConfigIsRejectedWithLocatedErrorsAndChangesNothing) {
  start_server();
  std::string bad = config_yaml(1);
  bad.replace(bad.find("output: vm1"), 11, "output: vm9");
  json r = call("apply", {{"yaml", bad}, {"source", "bad.yaml"}});
  ASSERT_EQ(r["ok"], false) << r;
  EXPECT_EQ(r["error"]["code"], "invalid_config");
  ASSERT_FALSE(r["error"]["errors"].empty());
  const json& e = r["error"]["errors"][0];
  EXPECT_EQ(e["path"], "tables[0].rules[0].actions[1].output");
  EXPECT_GT(e["line"].get<int>(), 0);
  EXPECT_GT(e["column"].get<int>(), 0);
  EXPECT_NE(e["message"].get<std::string>().find("vm9"), std::string::npos) << e;

  json syntax = call("apply", {{"yaml", "apiVersion: eswitch/v1\ndataplane: [1, 2\n"}});
  ASSERT_EQ(syntax["ok"], false);
  EXPECT_EQ(syntax["error"]["code"], "invalid_config");
  EXPECT_EQ(server_->running().generation, 1u);
  EXPECT_EQ(call("config")["result"]["yaml"], start_yaml_);
}

TEST_F(ApiServerTest, DiffApplyAndConfigRoundTripAndUnchangedRulesKeepCounting) {
  start_server();
  const std::string b = config_yaml(1);
  json d = call("diff", {{"yaml", b}});
  ASSERT_EQ(d["ok"], true) << d;
  EXPECT_EQ(d["result"]["dry_run"], true);
  EXPECT_EQ(d["result"]["counts"]["added"], 1);
  EXPECT_EQ(d["result"]["counts"]["removed"], 1);
  EXPECT_EQ(server_->running().generation, 1u);  // a diff changes nothing

  const uint64_t fwd_before = fwd_packets();
  json a = call("apply", {{"yaml", b}, {"source", "b.yaml"}});
  ASSERT_EQ(a["ok"], true) << a;
  EXPECT_EQ(a["result"]["generation"], 2);
  EXPECT_EQ(a["result"]["diff_total"], 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_GT(fwd_packets(), fwd_before) << "the unchanged count rule lost its counter";

  json c = call("config");
  EXPECT_EQ(c["result"]["yaml"], b);
  EXPECT_EQ(c["result"]["source"], "b.yaml");
  EXPECT_EQ(c["result"]["config_hash"], esw::dp::text_hash(b));

  json again = call("diff", {{"yaml", b}});
  EXPECT_EQ(again["result"]["diff_total"], 0);
  json same = call("apply", {{"yaml", b}});
  EXPECT_EQ(same["result"]["generation"], 2);  // nothing changed, nothing bumped

  json show = call("show", {{"what", "rules"}, {"table", 0}});
  ASSERT_EQ(show["ok"], true);
  bool found = false;
  for (const auto& r : show["result"]["rules"]) {
    found |= r["where"].get<std::string>().find("(variant)") != std::string::npos;
  }
  EXPECT_TRUE(found);
  json trace = call("trace", {{"packet", "in_port=uplink0,ipv4,udp,udp_dst=53"}});
  ASSERT_EQ(trace["ok"], true) << trace;
  EXPECT_EQ(trace["result"]["verdict"], "output:vm1");
  json bad_trace = call("trace", {{"packet", "in_port=nowhere"}});
  EXPECT_EQ(bad_trace["ok"], false);
}

TEST_F(ApiServerTest, ConcurrentClientsAreSerialisedOneTransactionEach) {
  start_server();
  const std::string ya = config_yaml(0), yb = config_yaml(1);
  constexpr int kClients = 6, kRounds = 4;
  std::atomic<int> changed{0}, failures{0};
  serve_while([&] {
    std::vector<std::thread> ts;
    for (int c = 0; c < kClients; ++c) {
      ts.emplace_back([&, c] {
        esw::ctl::ApiClient client(sock_, 60);
        for (int r = 0; r < kRounds; ++r) {
          const std::string& y = (c + r) % 2 == 0 ? yb : ya;
          try {
            auto reply = client.call("apply", {{"yaml", y}});
            if (!reply.ok) ++failures;
            else if (reply.result["changed"].get<bool>()) ++changed;
            if (!client.call("ping", json::object()).ok) ++failures;
          } catch (const std::exception&) {
            ++failures;
          }
        }
      });
    }
    for (auto& t : ts) t.join();
  });
  EXPECT_EQ(failures.load(), 0);
  // Every apply that changed something is one generation: none was lost or half-done.
  EXPECT_EQ(server_->running().generation, 1u + static_cast<uint64_t>(changed.load()));
  EXPECT_TRUE(server_->running().yaml == ya || server_->running().yaml == yb);
}

TEST_F(ApiServerTest, ApplyWhoseClientDisconnectsBeforeTheCommitIsDropped) {
  start_server();
  // Big enough that its parse (on the helper thread) outlasts the client, which leaves as soon as the server
  // says it has the whole request.
  const std::string big = request("apply", {{"yaml", config_yaml(3, 3000)}, {"progress", true}});
  std::string first;
  serve_while([&] {
    const int fd = connect_to(sock_);
    send_all(fd, big);
    char c;
    while (recv(fd, &c, 1, 0) == 1 && c != '\n') first += c;
    ::close(fd);
  });
  EXPECT_NE(first.find("\"received\""), std::string::npos) << first;
  EXPECT_TRUE(server_->apply_in_progress()) << "the parse ended before the client left: make the config bigger";
  // The parse finishes later: keep serving until the server has dropped it.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (server_->apply_in_progress() && std::chrono::steady_clock::now() < deadline) loop_->run_once(10ms);
  EXPECT_FALSE(server_->apply_in_progress());
  EXPECT_EQ(server_->running().generation, 1u);
  EXPECT_EQ(server_->running().yaml, start_yaml_);
}

TEST_F(ApiServerTest, WritesCommitInArrivalOrderWhileReadsAreAnsweredAtOnce) {
  start_server();
  json ping;
  std::string apply_in, rules_in;
  bool rules_overtook = false;
  serve_while([&] {
    const int fa = connect_to(sock_);
    send_all(fa, request("apply", {{"yaml", config_yaml(4, 20000)}, {"progress", true}}));
    shutdown(fa, SHUT_WR);
    char c;
    while (recv(fa, &c, 1, 0) == 1 && c != '\n') {
    }  // "received": its parse has started
    // A read is answered while the apply is still being parsed.
    ping = esw::ctl::ApiClient(sock_, 60).call("ping", json::object()).raw;
    // A write received now must wait for the apply. The server writes the apply's reply before it runs the
    // rules request, so whenever the rules reply is readable the apply's reply is too.
    const int fr = connect_to(sock_);
    send_all(fr, request("rules", {{"add", {"priority=100,name=late,in_port=vm1,ipv4,tcp_dst=22 actions=drop"}}}));
    shutdown(fr, SHUT_WR);
    auto has_reply = [](const std::string& in) { return in.find("\"ok\"") != std::string::npos; };
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (!(has_reply(apply_in) && has_reply(rules_in)) && std::chrono::steady_clock::now() < deadline) {
      pollfd p[2] = {{fa, POLLIN, 0}, {fr, POLLIN, 0}};
      if (::poll(p, 2, 1000) <= 0) continue;
      char buf[65536];
      ssize_t n;
      while ((n = recv(fa, buf, sizeof(buf), MSG_DONTWAIT)) > 0) apply_in.append(buf, static_cast<size_t>(n));
      while ((n = recv(fr, buf, sizeof(buf), MSG_DONTWAIT)) > 0) rules_in.append(buf, static_cast<size_t>(n));
      if (has_reply(rules_in) && !has_reply(apply_in)) rules_overtook = true;
    }
    ::close(fa);
    ::close(fr);
  });
  ASSERT_TRUE(ping["ok"] == true) << ping;
  ASSERT_TRUE(ping["result"]["apply_in_progress"] == true) << "the parse ended too soon: make the config bigger";
  ASSERT_NE(apply_in.find("\"ok\":true"), std::string::npos) << apply_in.substr(0, 2000);
  ASSERT_NE(rules_in.find("\"ok\":true"), std::string::npos) << rules_in;
  EXPECT_FALSE(rules_overtook) << "a write received later committed before an earlier one";
  EXPECT_NE(rules_in.find("\"runtime_rules\":1"), std::string::npos) << rules_in;
  EXPECT_EQ(server_->running().generation, 2u);
}

TEST_F(ApiServerTest, ServerAndClientShareTheProtocolConstants) {
  EXPECT_EQ(esw::ctl::kApiVersion, esw::api::kApiVersion);
  EXPECT_STREQ(esw::ctl::kDefaultSocket, esw::api::kDefaultSocketPath);
  // config/config.h keeps its own default (that file is not this change's to edit): it must agree.
  EXPECT_EQ(esw::cfg::DataplaneConfig{}.api_socket, esw::api::kDefaultSocketPath);
  start_server();
  const json pong = call("ping");
  EXPECT_EQ(pong["api"], esw::api::kApiVersion);
  EXPECT_EQ(pong["result"]["api"], esw::api::kApiVersion);
}

TEST_F(ApiServerTest, ProgressLinesPrecedeTheReply) {
  start_server();
  std::vector<std::string> phases;
  esw::ctl::ApiReply reply;
  serve_while([&] {
    reply = esw::ctl::ApiClient(sock_, 60).call(
        "apply", {{"yaml", config_yaml(2, 500)}, {"progress", true}}, [&](const esw::ctl::CallProgress& p) {
          if (p.server != nullptr) {
            const std::string ph = p.server->value("phase", "");
            if (phases.empty() || phases.back() != ph) phases.push_back(ph);
          }
        });
  });
  ASSERT_TRUE(reply.ok) << reply.raw;
  EXPECT_EQ(phases, (std::vector<std::string>{"received", "applying"}));
  EXPECT_EQ(reply.result["counts"]["added"], 501);
  EXPECT_GE(reply.result["timing"]["parse_ms"].get<double>(), 0.0);
}

TEST_F(ApiServerTest, AtTheConnectionLimitTheIdleLongestIsEvictedAndBusyOnesTurnNewcomersAway) {
  ApiServerOptions opts;
  opts.max_clients = 3;
  start_server(opts);
  std::vector<json> evicted, extra;
  serve_while([&] {
    // Three idle connections: a fourth evicts the oldest, which is told why.
    std::vector<int> fds;
    for (int i = 0; i < 3; ++i) {
      fds.push_back(connect_to(sock_));
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
    const int fourth = connect_to(sock_);
    send_all(fourth, request("ping", json::object(), 4));
    evicted = read_lines(fds[0]);
    // Three connections each in the middle of a request (none idle): a newcomer gets "busy".
    send_all(fds[1], "{\"api\": 1, ");
    send_all(fds[2], "{\"api\": 1, ");
    send_all(fourth, "{\"api\": 1, ");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const int fifth = connect_to(sock_);
    extra = read_lines(fifth);
    ::close(fifth);
    ::close(fourth);
    for (int f : fds) ::close(f);
  });
  ASSERT_EQ(evicted.size(), 1u);
  EXPECT_EQ(evicted[0]["error"]["code"], "idle_timeout");
  ASSERT_EQ(extra.size(), 1u);
  EXPECT_EQ(extra[0]["error"]["code"], "busy");
  EXPECT_EQ(call("ping")["ok"], true);  // the others left: room again
}

TEST_F(ApiServerTest, IdleAndSlowConnectionsTimeOut) {
  ApiServerOptions opts;
  opts.idle_timeout = std::chrono::milliseconds(300);
  opts.request_timeout = std::chrono::milliseconds(600);
  start_server(opts);
  std::vector<json> idle, slow;
  double slow_s = 0;
  serve_while([&] {
    // Idle from accept: no byte ever sent.
    const int a = connect_to(sock_);
    idle = read_lines(a);
    ::close(a);
    // A slow writer: one byte every 100 ms (it never stalls, it never finishes).
    const int b = connect_to(sock_);
    const std::string req = request("ping", json::object(), 1);
    const auto t = std::chrono::steady_clock::now();
    for (size_t i = 0; i + 1 < req.size(); ++i) {
      if (send(b, req.data() + i, 1, MSG_NOSIGNAL) != 1) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      pollfd p{b, POLLIN, 0};
      if (poll(&p, 1, 0) > 0) break;
    }
    slow = read_lines(b);
    slow_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    ::close(b);
  });
  ASSERT_EQ(idle.size(), 1u);
  EXPECT_EQ(idle[0]["error"]["code"], "idle_timeout");
  ASSERT_EQ(slow.size(), 1u);
  EXPECT_EQ(slow[0]["error"]["code"], "timeout");
  EXPECT_LT(slow_s, 3.0);
  EXPECT_EQ(server_->clients(), 0u);
}

TEST_F(ApiServerTest, DeepNestingInEveryFieldIsRefusedBeforeAnythingRecursive) {
  start_server();
  constexpr int kDeep = 100000;
  const std::string arr = std::string(kDeep, '[') + std::string(kDeep, ']');
  std::string obj;
  for (int i = 0; i < kDeep; ++i) obj += "{\"a\":";
  obj += "1" + std::string(kDeep, '}');
  const std::vector<std::string> lines = {
      "{\"api\":1,\"id\":" + arr + ",\"method\":\"ping\"}",
      "{\"api\":1,\"id\":" + obj + ",\"method\":\"ping\"}",
      "{\"api\":" + arr + ",\"method\":\"ping\"}",
      "{\"api\":1,\"method\":" + arr + "}",
      "{\"api\":1,\"method\":\"ping\",\"params\":" + obj + "}",
      "{\"api\":1,\"method\":\"rules\",\"params\":{\"add\":" + arr + "}}",
      "{\"api\":1,\"method\":\"ping\",\"zz\":" + arr + "}",
      arr,
  };
  for (const std::string& line : lines) {
    const json r = json::parse(server_->handle(line));
    EXPECT_EQ(r["error"]["code"], "too_deep") << r.dump();
  }
  // The bounds of the other fields.
  const json big_id = json::parse(server_->handle("{\"api\":1,\"id\":\"" + std::string(300, 'i') + "\",\"method\":\"ping\"}"));
  EXPECT_EQ(big_id["error"]["code"], "too_large");
  EXPECT_TRUE(big_id["id"].is_null());  // not echoed
  const json big_param = json::parse(server_->handle(
      request("trace", {{"in_port", "vm1"}, {"packet", std::string(70000, 'p')}}, 1)));
  EXPECT_EQ(big_param["error"]["code"], "too_large");
  const json ok = json::parse(server_->handle(request("ping", json::object(), json::array({json::array({1})}))));
  EXPECT_EQ(ok["ok"], true);
  EXPECT_EQ(ok["id"], json::array({json::array({1})}));
}

TEST_F(ApiServerTest, AClientThatPipelinesAndNeverReadsStallsOnlyItself) {
  ApiServerOptions opts;
  opts.max_pending_output = 64 << 10;
  start_server(opts);
  size_t sent = 0;
  std::vector<double> others_ms;
  serve_while([&] {
    const int hog = connect_to(sock_);
    fcntl(hog, F_SETFL, O_NONBLOCK);
    const std::string line = request("ping", json::object(), 1);
    std::string burst;
    for (int i = 0; i < 1000; ++i) burst += line;
    const auto t = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - t < std::chrono::seconds(3)) {
      const ssize_t n = send(hog, burst.data(), burst.size(), MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<size_t>(n) / line.size();
      else std::this_thread::sleep_for(std::chrono::milliseconds(5));
      if (others_ms.size() < 20) {
        const auto t0 = std::chrono::steady_clock::now();
        const auto r = esw::ctl::ApiClient(sock_, 5).call("ping", json::object());
        if (r.ok) {
          others_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        }
      }
    }
    ::close(hog);
  });
  // The server stopped reading it: far fewer than 3 s of unthrottled sending.
  EXPECT_LT(sent, 200000u);
  ASSERT_EQ(others_ms.size(), 20u);
  std::sort(others_ms.begin(), others_ms.end());
  EXPECT_LT(others_ms.back(), 500.0);
  std::printf("pipelined %zu requests before the server stopped reading; others' ping max %.1f ms\n", sent,
              others_ms.back());
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new esw::test::EalEnv("apitest"));
  return RUN_ALL_TESTS();
}
