#include "dataplane/daemon/state_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "control/json_text.h"
#include "dataplane/error.h"

namespace esw::dp {
namespace {

constexpr const char* kMagic = "eswitch-state";
constexpr int kVersion = 1;
constexpr const char* kParts[2] = {"config", "rules"};

int part_index(const char* part) { return std::strcmp(part, kParts[0]) == 0 ? 0 : 1; }

std::string gen_name(const char* part, uint64_t seq) { return fmt::format("{}.{:020}", part, seq); }

// Generations of `part` in `dir`, newest first.
std::vector<uint64_t> generations(const std::string& dir, const char* part) {
  std::vector<uint64_t> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  const std::string prefix = std::string(part) + ".";
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() != prefix.size() + 20 || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string digits = name.substr(prefix.size());
    if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    out.push_back(std::stoull(digits));
  }
  closedir(d);
  std::sort(out.rbegin(), out.rend());
  return out;
}

bool read_all(const std::string& path, std::string& out, std::string& error) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = strerror(errno);
    return false;
  }
  out.clear();
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = strerror(errno);
      close(fd);
      return false;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return true;
}


bool fsync_dir(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = fsync(fd) == 0;
  close(fd);
  return ok;
}

// Checks one generation file; on success `payload` is its JSON text.
bool check_file(const std::string& text, const char* part, uint64_t seq, std::string& payload, std::string& why) {
  const size_t nl = text.find('\n');
  if (nl == std::string::npos) {
    why = "no header line (truncated)";
    return false;
  }
  char magic[32] = {}, p[16] = {}, hash[17] = {};
  int version = 0;
  unsigned long long s = 0, bytes = 0;
  const std::string header = text.substr(0, nl);
  if (sscanf(header.c_str(), "%31s %d %15s %llu %llu %16s", magic, &version, p, &s, &bytes, hash) != 6 ||
      std::strcmp(magic, kMagic) != 0) {
    why = "not an eswitch state file (bad header)";
    return false;
  }
  if (version != kVersion) {
    why = fmt::format("format version {} (this eswitchd reads {})", version, kVersion);
    return false;
  }
  if (std::strcmp(p, part) != 0 || s != seq) {
    why = fmt::format("header says {} generation {}", p, s);
    return false;
  }
  if (text.size() - nl - 1 != bytes) {
    why = fmt::format("{} payload bytes, the header says {} (torn or truncated)", text.size() - nl - 1, bytes);
    return false;
  }
  payload = text.substr(nl + 1);
  if (cfg::text_hash(payload) != hash) {
    why = "checksum mismatch (corrupt)";
    return false;
  }
  return true;
}

}  // namespace

bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

StateStore::StateStore(std::string dir, bool sync) : dir_(std::move(dir)), sync_(sync) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) throw Error(fmt::format("state directory {}: cannot create it: {}", dir_, ec.message()));
  if (!std::filesystem::is_directory(dir_, ec)) throw Error(fmt::format("state directory {}: not a directory", dir_));
  chmod(dir_.c_str(), 0700);
  lock_ = InstanceLock(dir_ + "/lock", fmt::format("state directory {}", dir_));
  // Left by a crash between write and rename: never a generation, never read.
  for (const char* part : kParts) unlink(fmt::format("{}/.tmp.{}", dir_, part).c_str());
  for (int i = 0; i < 2; ++i) {
    const auto g = generations(dir_, kParts[i]);
    seq_[i] = g.empty() ? 0 : g.front();
  }
}

std::optional<std::string> StateStore::load_part(const char* part, std::vector<std::string>& notes) {
  const auto gens = generations(dir_, part);
  for (size_t i = 0; i < gens.size(); ++i) {
    const std::string path = fmt::format("{}/{}", dir_, gen_name(part, gens[i]));
    std::string text, payload, why;
    if (!read_all(path, text, why) || !check_file(text, part, gens[i], payload, why)) {
      notes.push_back(fmt::format("state: {}: {}; {}", path, why,
                                  i + 1 < gens.size() ? fmt::format("using the previous generation {}", gens[i + 1])
                                                      : std::string("no older generation")));
      continue;
    }
    return payload;
  }
  return std::nullopt;
}

std::optional<SavedConfig> StateStore::load_config(std::vector<std::string>& notes) {
  auto payload = load_part("config", notes);
  if (!payload) return std::nullopt;
  const auto j = nlohmann::json::parse(*payload, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("yaml") || !j["yaml"].is_string()) {
    notes.push_back(fmt::format("state: {}: config payload is not what this eswitchd writes; ignored", dir_));
    return std::nullopt;
  }
  SavedConfig c;
  c.yaml = j["yaml"].get<std::string>();
  c.source = j.value("source", std::string("<state>"));
  c.generation = j.value("generation", uint64_t{1});
  return c;
}

std::optional<std::vector<std::string>> StateStore::load_rules(std::vector<std::string>& notes) {
  auto payload = load_part("rules", notes);
  if (!payload) return std::nullopt;
  const auto j = nlohmann::json::parse(*payload, nullptr, false);
  std::vector<std::string> rules;
  if (j.is_discarded() || !j.is_object() || !j.contains("rules") || !j["rules"].is_array()) {
    notes.push_back(fmt::format("state: {}: rules payload is not what this eswitchd writes; ignored", dir_));
    return std::nullopt;
  }
  for (const auto& r : j["rules"]) {
    if (!r.is_string()) {
      notes.push_back(fmt::format("state: {}: a saved runtime rule is not a string; ignored", dir_));
      return std::nullopt;
    }
    rules.push_back(r.get<std::string>());
  }
  return rules;
}

bool StateStore::save_config(const SavedConfig& config, std::string& error) {
  // The same text as nlohmann's dump() of {"generation", "source", "yaml"}; an ASCII YAML (~10 MB for 100k
  // rules) is written without its per-byte UTF-8 machinery and without copying it into a JSON tree first.
  std::string payload = fmt::format("{{\"generation\":{},\"source\":{},\"yaml\":", config.generation,
                                    nlohmann::json(config.source).dump(-1, ' ', false, nlohmann::json::error_handler_t::strict));
  if (api::append_json_ascii_string(payload, config.yaml)) {
    payload += '}';
  } else {
    payload = nlohmann::json{{"yaml", config.yaml}, {"source", config.source}, {"generation", config.generation}}.dump();
  }
  return save_part("config", payload, error);
}

bool StateStore::save_rules(const std::vector<std::string>& rules, std::string& error) {
  const nlohmann::json j{{"rules", rules}};
  return save_part("rules", j.dump(), error);
}

bool StateStore::save_part(const char* part, const std::string& payload, std::string& error) {
  const auto t0 = std::chrono::steady_clock::now();
  const int idx = part_index(part);
  const uint64_t seq = seq_[idx] + 1;
  const std::string tmp = fmt::format("{}/.tmp.{}", dir_, part);
  const std::string final_path = fmt::format("{}/{}", dir_, gen_name(part, seq));
  const std::string header =
      fmt::format("{} {} {} {} {} {}\n", kMagic, kVersion, part, seq, payload.size(), cfg::text_hash(payload));
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = fmt::format("state: {}: {}", tmp, strerror(errno));
    return false;
  }
  if (!write_all(fd, header.data(), header.size()) || !write_all(fd, payload.data(), payload.size()) ||
      (sync_ && fsync(fd) != 0)) {
    error = fmt::format("state: {}: write: {}", tmp, strerror(errno));
    close(fd);
    unlink(tmp.c_str());
    return false;
  }
  close(fd);
  if (const char* crash = getenv("ESWITCHD_TEST_CRASH_IN_STATE_WRITE"); crash != nullptr && strcmp(crash, part) == 0) {
    raise(SIGKILL);  // a crash between write and rename (tests)
  }
  if (rename(tmp.c_str(), final_path.c_str()) != 0) {
    error = fmt::format("state: rename {} -> {}: {}", tmp, final_path, strerror(errno));
    unlink(tmp.c_str());
    return false;
  }
  if (sync_ && !fsync_dir(dir_)) {
    error = fmt::format("state: fsync {}: {}", dir_, strerror(errno));
    return false;
  }
  seq_[idx] = seq;
  // Keep this generation and the previous one (the fallback when this one is found damaged).
  for (uint64_t g : generations(dir_, part)) {
    if (g + 1 < seq) unlink(fmt::format("{}/{}", dir_, gen_name(part, g)).c_str());
  }
  last_bytes_ = header.size() + payload.size();
  last_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return true;
}

}  // namespace esw::dp
