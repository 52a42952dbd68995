// YAML -> Config. Two passes:
//  1. Schema: MapReader walks each mapping, reads typed fields with value parsers (Integer, Text, OneOf, ListOf,
//     section readers) and reports unknown keys. Each value is checked on its own here.
//  2. Cross-field checks on the finished model (uniqueness, references, mode rules). They find their source
//     locations through the paths recorded in pass 1 and skip values that already failed in pass 1.
// A new section is a read_<section>() function built from these pieces plus, if needed, a check_<topic>().
#include <fmt/format.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "config/config.h"

namespace esw::cfg {
namespace {

constexpr int kMaxCore = 1023;               // RTE_MAX_LCORE - 1 of the stock DPDK build
constexpr int64_t kMaxMempoolCache = 512;    // RTE_MEMPOOL_CACHE_MAX_SIZE
constexpr int64_t kMaxQueuesPerPort = 1024;  // RTE_MAX_QUEUES_PER_PORT
constexpr int64_t kMaxIdleSleepUs = 1'000'000;
constexpr size_t kMaxPortNameLen = 15;  // IFNAMSIZ - 1: port names become netdev names
constexpr size_t kMaxFilePrefixLen = 64;
constexpr size_t kMaxShownLen = 40;  // longer user text is cut in messages

// ---------------------------------------------------------------------------------------------------------------
// Locations, paths, diagnostics

struct Loc {
  int line = 0;  // 1-based; 0 = unknown
  int column = 0;
};

Loc to_loc(const YAML::Mark& mark) {
  if (mark.is_null()) return {};
  return {mark.line + 1, mark.column + 1};
}

bool before(Loc a, Loc b) { return std::tie(a.line, a.column) < std::tie(b.line, b.column); }

std::string child_path(std::string_view parent, std::string_view key) {
  return parent.empty() ? std::string(key) : fmt::format("{}.{}", parent, key);
}

std::string index_path(std::string_view parent, size_t index) { return fmt::format("{}[{}]", parent, index); }

std::string quoted(std::string_view text) {
  if (text.size() > kMaxShownLen) return fmt::format("{:?}...", text.substr(0, kMaxShownLen));
  return fmt::format("{:?}", text);
}

// Every error found, plus where each YAML path was read, so that checks on the finished model can point at the
// text they complain about.
class Diagnostics {
 public:
  explicit Diagnostics(std::string source) : source_(std::move(source)) {}

  void error(const std::string& path, Loc loc, std::string message) {
    // Without a path the problem is with the source as a whole: name the source instead.
    if (path.empty()) message = fmt::format("{}: {}", source_, message);
    errors_.push_back(Error{path, loc.line, loc.column, std::move(message)});
    failed_.insert(path);
  }

  // For checks on the model: the location is where `path` (or, for a default, its closest ancestor) was read.
  void error_at(const std::string& path, std::string message) { error(path, location_of(path), std::move(message)); }

  void record(const std::string& path, Loc loc) { where_.emplace(path, loc); }
  bool in_source(const std::string& path) const { return where_.contains(path); }

  Loc location_of(std::string path) const {
    for (;;) {
      if (auto it = where_.find(path); it != where_.end()) return it->second;
      if (path.empty()) return {};
      size_t cut = path.find_last_of(".[");
      path.resize(cut == std::string::npos ? 0 : cut);
    }
  }

  // False when the value at `path` was rejected already; checks on the model skip it rather than pile on.
  bool clean(const std::string& path) const { return !failed_.contains(path); }

  bool has_errors() const { return !errors_.empty(); }

  std::vector<Error> take_in_file_order() {
    std::stable_sort(errors_.begin(), errors_.end(), [](const Error& a, const Error& b) {
      return before({a.line, a.column}, {b.line, b.column});
    });
    return std::move(errors_);
  }

 private:
  std::string source_;
  std::vector<Error> errors_;
  std::unordered_set<std::string> failed_;
  std::unordered_map<std::string, Loc> where_;
};

// A YAML node with its path and location. Creating one for a child records the child's location.
struct Value {
  YAML::Node node;
  std::string path;
  Loc loc;
  Diagnostics* diag;

  void error(std::string message) const { diag->error(path, loc, std::move(message)); }

  Value child(std::string child_at, const YAML::Node& child_node, Loc child_loc) const {
    diag->record(child_at, child_loc);
    return Value{child_node, std::move(child_at), child_loc, diag};
  }
};

bool is_plain(const YAML::Node& node) { return node.Tag() == "?"; }  // unquoted and untagged

bool looks_like_integer(std::string_view text) {
  if (!text.empty() && text.front() == '-') text.remove_prefix(1);
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// What the user wrote, for "expected X, got Y".
std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar: {
      const std::string& text = node.Scalar();
      if (!looks_like_integer(text) || text.size() > kMaxShownLen) return quoted(text);
      return is_plain(node) ? text : fmt::format("the string {}", quoted(text));
    }
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

// ---------------------------------------------------------------------------------------------------------------
// Value parsers: callables `bool(const Value&, T& out)`. They report their own errors at the value and assign
// `out` only on success (section readers, which fill a struct field by field, are the exception).

// A plain (unquoted) decimal integer in [min, max]. Quoted numbers are strings, as in the YAML core schema.
template <typename T>
struct Integer {
  int64_t min = 0;
  int64_t max = std::numeric_limits<T>::max();
  bool power_of_two = false;

  std::string expected() const {
    std::string range = max == static_cast<int64_t>(std::numeric_limits<T>::max())
                            ? fmt::format("an integer >= {}", min)
                            : fmt::format("an integer in {}..{}", min, max);
    return power_of_two ? range + " that is a power of two" : range;
  }

  bool operator()(const Value& v, T& out) const {
    std::optional<int64_t> n;
    if (v.node.IsScalar() && is_plain(v.node)) {
      const std::string& text = v.node.Scalar();
      int64_t parsed = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
      if (ec == std::errc() && end == text.data() + text.size()) n = parsed;
    }
    if (!n || *n < min || *n > max || (power_of_two && !std::has_single_bit(static_cast<uint64_t>(*n)))) {
      v.error(fmt::format("expected {}, got {}", expected(), describe(v.node)));
      return false;
    }
    out = static_cast<T>(*n);
    return true;
  }
};

// Any scalar, quoted or not.
struct Text {
  bool non_empty = false;

  bool operator()(const Value& v, std::string& out) const {
    if (!v.node.IsScalar()) {
      v.error(fmt::format("expected {}, got {}", non_empty ? "a non-empty string" : "a string", describe(v.node)));
      return false;
    }
    const std::string& text = v.node.Scalar();
    if (non_empty && text.find_first_not_of(" \t") == std::string::npos) {
      v.error(fmt::format("expected a non-empty string, got {}", quoted(text)));
      return false;
    }
    out = text;
    return true;
  }
};

// A string with a format. `check` may normalise the text in place; it returns the problem, if any.
template <typename Check>
struct CheckedText {
  Check check;

  bool operator()(const Value& v, std::string& out) const {
    std::string text;
    if (!Text{}(v, text)) return false;
    if (std::optional<std::string> problem = check(text)) {
      v.error(std::move(*problem));
      return false;
    }
    out = std::move(text);
    return true;
  }
};
template <typename Check>
CheckedText<Check> checked_text(Check check) {
  return {std::move(check)};
}

// One of an enum's values, spelled as to_string() spells them.
template <typename E>
struct OneOf {
  std::vector<E> choices;

  bool operator()(const Value& v, E& out) const {
    if (v.node.IsScalar()) {
      for (E choice : choices) {
        if (v.node.Scalar() == to_string(choice)) {
          out = choice;
          return true;
        }
      }
    }
    std::vector<std::string_view> names;
    for (E choice : choices) names.emplace_back(to_string(choice));
    v.error(fmt::format("expected one of {}, got {}", fmt::join(names, ", "), describe(v.node)));
    return false;
  }
};
template <typename E>
OneOf<E> one_of(std::initializer_list<E> choices) {
  return {std::vector<E>(choices)};
}

// A list whose items `element` parses. Items keep their YAML index in the model (a rejected item stays as a
// default or partly filled entry) so that "<path>[i]" names the same item in both.
template <typename Element>
struct ListOf {
  Element element;

  template <typename T>
  bool operator()(const Value& v, std::vector<T>& out) const {
    if (v.node.IsNull()) {  // "uplinks:" with every entry commented out
      out.clear();
      return true;
    }
    if (!v.node.IsSequence()) {
      v.error(fmt::format("expected a list, got {}", describe(v.node)));
      return false;
    }
    std::vector<T> items(v.node.size());
    bool ok = true;
    size_t i = 0;
    for (auto it = v.node.begin(); it != v.node.end(); ++it, ++i) {
      const YAML::Node item = *it;
      ok = element(v.child(index_path(v.path, i), item, to_loc(item.Mark())), items[i]) && ok;
    }
    out = std::move(items);
    return ok;
  }
};
template <typename Element>
ListOf<Element> list_of(Element element) {
  return {std::move(element)};
}

template <typename T>
struct IsOptional : std::false_type {};
template <typename T>
struct IsOptional<std::optional<T>> : std::true_type {};

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// Reads one YAML mapping. Each optional()/required() call names a valid key and reads its value with a parser;
// finish() then rejects every key no call asked for, listing the valid ones. A missing or null mapping reads as
// empty, so that defaults apply.
class MapReader {
 public:
  explicit MapReader(const Value& map) : map_(map) {
    if (map.node.IsNull()) return;
    if (!map.node.IsMap()) {
      map.error(fmt::format("expected a mapping, got {}", describe(map.node)));
      is_map_ = false;
      return;
    }
    for (auto it = map.node.begin(); it != map.node.end(); ++it) {
      const YAML::Node key = it->first;
      const Loc key_loc = to_loc(key.Mark());
      if (!key.IsScalar()) {
        map.diag->error(map.path, key_loc, fmt::format("expected a key name, got {}", describe(key)));
        continue;
      }
      auto same = std::find_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.key == key.Scalar(); });
      if (same != entries_.end()) {
        map.diag->error(child_path(map.path, key.Scalar()), key_loc,
                        fmt::format("duplicate key {}; first on line {}", quoted(key.Scalar()), same->key_loc.line));
        continue;
      }
      entries_.push_back(Entry{key.Scalar(), key_loc, it->second});
    }
  }

  bool is_map() const { return is_map_; }

  template <typename T, typename Parse>
  void optional(std::string_view key, T& out, const Parse& parse) {
    if (Entry* entry = claim(key)) read(*entry, out, parse);
  }

  template <typename T, typename Parse>
  void required(std::string_view key, T& out, const Parse& parse) {
    if (Entry* entry = claim(key)) {
      read(*entry, out, parse);
    } else if (is_map_) {
      map_.diag->error(child_path(map_.path, key), map_.loc, "required key is missing");
      ok_ = false;
    }
  }

  // Returns whether every key was valid and every value parsed.
  bool finish() {
    for (const Entry& entry : entries_) {
      if (entry.claimed) continue;
      std::string message = fmt::format("unknown key {}", quoted(entry.key));
      if (std::optional<std::string_view> near = closest_valid_key(entry.key)) {
        message += fmt::format("; did you mean {}?", quoted(*near));
      }
      message += fmt::format("; valid keys: {}", fmt::join(valid_, ", "));
      map_.diag->error(child_path(map_.path, entry.key), entry.key_loc, std::move(message));
      ok_ = false;
    }
    return ok_;
  }

 private:
  struct Entry {
    std::string key;
    Loc key_loc;
    YAML::Node value;
    bool claimed = false;
  };

  Entry* claim(std::string_view key) {
    valid_.push_back(key);
    for (Entry& entry : entries_) {
      if (entry.key == key) {
        entry.claimed = true;
        return &entry;
      }
    }
    return nullptr;
  }

  template <typename T, typename Parse>
  void read(const Entry& entry, T& out, const Parse& parse) {
    // yaml-cpp puts an empty value ("key:") at the start of the next line; the key is the better place.
    const Loc loc = entry.value.IsNull() ? entry.key_loc : to_loc(entry.value.Mark());
    const Value value = map_.child(child_path(map_.path, entry.key), entry.value, loc);
    if constexpr (IsOptional<T>::value) {
      typename T::value_type parsed{};
      if (parse(value, parsed)) {
        out = std::move(parsed);
      } else {
        ok_ = false;
      }
    } else {
      ok_ = parse(value, out) && ok_;
    }
  }

  std::optional<std::string_view> closest_valid_key(std::string_view key) const {
    std::optional<std::string_view> best;
    size_t best_distance = std::min<size_t>(2, key.size() / 2);
    for (std::string_view valid : valid_) {
      if (size_t d = edit_distance(key, valid); d <= best_distance && (!best || d < edit_distance(key, *best))) {
        best = valid;
        best_distance = d;
      }
    }
    return best;
  }

  Value map_;
  bool is_map_ = true;
  bool ok_ = true;
  std::vector<Entry> entries_;
  std::vector<std::string_view> valid_;
};

template <typename Fill>
bool read_map(const Value& v, Fill&& fill) {
  MapReader reader(v);
  if (!reader.is_map()) return false;
  fill(reader);
  return reader.finish();
}

// ---------------------------------------------------------------------------------------------------------------
// String formats

bool is_ascii_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_ascii_alnum(char c) { return is_ascii_alpha(c) || (c >= '0' && c <= '9'); }

std::optional<std::string> check_api_version(std::string& text) {
  if (text == kApiVersion) return std::nullopt;
  return fmt::format("expected {}, got {}", quoted(kApiVersion), quoted(text));
}

std::optional<std::string> check_port_name(std::string& text) {
  const bool ok =
      !text.empty() && text.size() <= kMaxPortNameLen && is_ascii_alpha(text.front()) &&
      std::all_of(text.begin(), text.end(), [](char c) { return is_ascii_alnum(c) || c == '_' || c == '-'; });
  if (ok) return std::nullopt;
  return fmt::format("{} is not a valid port name; expected a letter followed by at most {} letters, digits, '_' or '-'",
                     quoted(text), kMaxPortNameLen - 1);
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Normalises to lower case so that equal addresses compare equal.
std::optional<std::string> check_unicast_mac(std::string& text) {
  constexpr size_t kBytes = 6;
  uint8_t bytes[kBytes] = {};
  bool ok = text.size() == kBytes * 3 - 1;
  for (size_t i = 0; ok && i < kBytes; ++i) {
    const int high = hex_digit(text[i * 3]);
    const int low = hex_digit(text[i * 3 + 1]);
    ok = high >= 0 && low >= 0 && (i + 1 == kBytes || text[i * 3 + 2] == ':');
    bytes[i] = static_cast<uint8_t>(high * 16 + low);
  }
  if (!ok) {
    return fmt::format("{} is not a MAC address; expected six hex bytes like \"02:00:00:00:00:01\"", quoted(text));
  }
  if (bytes[0] & 1) {
    return fmt::format("{} is a multicast address; expected a unicast MAC address (lowest bit of the first byte clear)",
                       quoted(text));
  }
  if (std::all_of(std::begin(bytes), std::end(bytes), [](uint8_t b) { return b == 0; })) {
    return fmt::format("{} is the all-zero address; expected a unicast MAC address", quoted(text));
  }
  std::transform(text.begin(), text.end(), text.begin(),
                 [](char c) { return c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c; });
  return std::nullopt;
}

// The prefix becomes part of file names under /var/run/dpdk and hugetlbfs: no '/', no leading '.'.
std::optional<std::string> check_file_prefix(std::string& text) {
  const bool ok = text.empty() || (text.size() <= kMaxFilePrefixLen && is_ascii_alnum(text.front()) &&
                                   std::all_of(text.begin(), text.end(), [](char c) {
                                     return is_ascii_alnum(c) || c == '_' || c == '-' || c == '.';
                                   }));
  if (ok) return std::nullopt;
  return fmt::format(
      "{} is not a valid file prefix; expected \"\" (the default) or up to {} letters, digits, '_', "
      "'-' or '.', starting with a letter or digit",
      quoted(text), kMaxFilePrefixLen);
}

// ---------------------------------------------------------------------------------------------------------------
// Sections

constexpr Integer<int> kCoreId{.min = 0, .max = kMaxCore};
constexpr Integer<uint16_t> kRingSize{.min = 64, .max = 8192, .power_of_two = true};
constexpr Integer<uint16_t> kQueueCount{.min = 1, .max = kMaxQueuesPerPort};

bool read_dataplane(const Value& v, DataplaneConfig& out) {
  return read_map(v, [&](MapReader& m) {
    m.optional("main_core", out.main_core, kCoreId);
    m.optional("worker_cores", out.worker_cores, list_of(kCoreId));
    m.optional("memory_mb", out.memory_mb, Integer<uint32_t>{.min = 64});
    m.optional("hugepages", out.hugepages, one_of({HugepageMode::kAuto, HugepageMode::kOn, HugepageMode::kOff}));
    m.optional("mbufs", out.mbufs, Integer<uint32_t>{.min = 1024});
    m.optional("mbuf_cache", out.mbuf_cache, Integer<uint16_t>{.min = 0, .max = kMaxMempoolCache});
    m.optional("rx_queue_size", out.rx_queue_size, kRingSize);
    m.optional("tx_queue_size", out.tx_queue_size, kRingSize);
    m.optional("burst", out.burst, Integer<uint16_t>{.min = 1, .max = 256});
    m.optional("idle_sleep_us", out.idle_sleep_us, Integer<uint32_t>{.min = 0, .max = kMaxIdleSleepUs});
    m.optional("file_prefix", out.file_prefix, checked_text(check_file_prefix));
    m.optional("eal_extra", out.eal_extra, list_of(Text{.non_empty = true}));
  });
}

bool read_attachment(const Value& v, Attachment& out) {
  return read_map(v, [&](MapReader& m) {
    m.required("devargs", out.devargs, Text{.non_empty = true});
    m.optional("rx_queues", out.rx_queues, kQueueCount);
    m.optional("tx_queues", out.tx_queues, kQueueCount);
  });
}

bool read_uplink(const Value& v, UplinkConfig& out) {
  out.line = v.loc.line;
  return read_map(v, [&](MapReader& m) {
    m.required("name", out.name, checked_text(check_port_name));
    m.required("attach", out.attach, read_attachment);
  });
}

bool read_vport(const Value& v, VportConfig& out) {
  out.line = v.loc.line;
  return read_map(v, [&](MapReader& m) {
    m.required("name", out.name, checked_text(check_port_name));
    m.optional("hw_addr", out.hw_addr, checked_text(check_unicast_mac));
    m.required("attach", out.attach, read_attachment);
  });
}

bool read_cross_connect(const Value& v, CrossConnect& out) {
  return read_map(v, [&](MapReader& m) {
    m.required("from", out.from, Text{.non_empty = true});
    m.required("to", out.to, Text{.non_empty = true});
  });
}

bool read_pipeline(const Value& v, PipelineConfig& out) {
  return read_map(v, [&](MapReader& m) {
    m.optional("mode", out.mode, one_of({PipelineMode::kL2, PipelineMode::kCrossConnect}));
    m.optional("cross_connect", out.cross_connect, list_of(read_cross_connect));
  });
}

bool read_config(const Value& v, Config& out) {
  return read_map(v, [&](MapReader& m) {
    m.required("apiVersion", out.api_version, checked_text(check_api_version));
    m.optional("dataplane", out.dataplane, read_dataplane);
    m.optional("uplinks", out.uplinks, list_of(read_uplink));
    m.optional("vports", out.vports, list_of(read_vport));
    m.optional("pipeline", out.pipeline, read_pipeline);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Cross-field checks

// One occurrence of a value that must be unique, and the path it was read from.
struct Site {
  std::string key;
  std::string path;
};

// Adds a site for a value that was read without error.
void add_site(std::vector<Site>& sites, const Diagnostics& diag, std::string key, std::string path) {
  if (key.empty() || !diag.in_source(path) || !diag.clean(path)) return;
  sites.push_back(Site{std::move(key), std::move(path)});
}

// Reports every repeat at the repeat, naming the first occurrence in the file.
void check_unique(Diagnostics& diag, std::vector<Site> sites, std::string_view what, bool quote_key = true) {
  std::stable_sort(sites.begin(), sites.end(), [&](const Site& a, const Site& b) {
    return before(diag.location_of(a.path), diag.location_of(b.path));
  });
  std::unordered_map<std::string_view, const Site*> first;
  for (const Site& site : sites) {
    auto [it, inserted] = first.emplace(site.key, &site);
    if (inserted) continue;
    diag.error_at(site.path, fmt::format("duplicate {} {}; first used by {} on line {}", what,
                                         quote_key ? quoted(site.key) : site.key, it->second->path,
                                         diag.location_of(it->second->path).line));
  }
}

void check_cores(const DataplaneConfig& dp, Diagnostics& diag) {
  const std::string main_path = "dataplane.main_core";
  std::vector<Site> workers;
  for (size_t i = 0; i < dp.worker_cores.size(); ++i) {
    std::string path = index_path("dataplane.worker_cores", i);
    if (!diag.clean(path)) continue;
    if (dp.worker_cores[i] == dp.main_core && diag.clean(main_path)) {
      diag.error_at(path, fmt::format("core {} is also {}{}; workers need cores of their own", dp.main_core, main_path,
                                      diag.in_source(main_path) ? "" : " (its default)"));
      continue;
    }
    add_site(workers, diag, std::to_string(dp.worker_cores[i]), std::move(path));
  }
  check_unique(diag, std::move(workers), "worker core", /*quote_key=*/false);
}

// DPDK refuses a second vdev with the same name whatever its arguments, so vdevs compare by name. A bus address
// (it has a ':') may be probed again with other arguments (mlx5 "representor=vf0", then "vf1"): compare it whole.
std::string device_key(const std::string& devargs) {
  const std::string_view name = std::string_view(devargs).substr(0, devargs.find(','));
  return name.find(':') == std::string_view::npos ? std::string(name) : devargs;
}

void check_ports(const Config& config, Diagnostics& diag) {
  std::vector<Site> names, devices, macs;
  auto add_port = [&](const std::string& base, const std::string& name, const Attachment& attach) {
    add_site(names, diag, name, base + ".name");
    add_site(devices, diag, device_key(attach.devargs), base + ".attach.devargs");
  };
  for (size_t i = 0; i < config.uplinks.size(); ++i) {
    add_port(index_path("uplinks", i), config.uplinks[i].name, config.uplinks[i].attach);
  }
  for (size_t i = 0; i < config.vports.size(); ++i) {
    const VportConfig& vport = config.vports[i];
    const std::string base = index_path("vports", i);
    add_port(base, vport.name, vport.attach);
    if (vport.hw_addr) add_site(macs, diag, *vport.hw_addr, base + ".hw_addr");
  }
  check_unique(diag, std::move(names), "port name");
  check_unique(diag, std::move(devices), "device");
  check_unique(diag, std::move(macs), "hw_addr");
}

void check_pipeline(const Config& config, Diagnostics& diag) {
  std::vector<std::string_view> port_names;
  for (const UplinkConfig& uplink : config.uplinks) port_names.push_back(uplink.name);
  for (const VportConfig& vport : config.vports) port_names.push_back(vport.name);
  std::erase(port_names, std::string_view());
  const std::unordered_set<std::string_view> ports(port_names.begin(), port_names.end());

  auto check_reference = [&](const std::string& path, const std::string& name) {
    if (name.empty() || !diag.clean(path) || ports.contains(name)) return true;
    diag.error_at(path,
                  port_names.empty()
                      ? fmt::format("no port named {}; no uplinks or vports are defined", quoted(name))
                      : fmt::format("no port named {}; expected one of {}", quoted(name), fmt::join(port_names, ", ")));
    return false;
  };

  const PipelineConfig& pipeline = config.pipeline;
  std::vector<Site> sources;
  for (size_t i = 0; i < pipeline.cross_connect.size(); ++i) {
    const std::string base = index_path("pipeline.cross_connect", i);
    const CrossConnect& cc = pipeline.cross_connect[i];
    if (check_reference(base + ".from", cc.from)) add_site(sources, diag, cc.from, base + ".from");
    check_reference(base + ".to", cc.to);
  }
  check_unique(diag, std::move(sources), "from port");

  const std::string mode_path = "pipeline.mode";
  const std::string list_path = "pipeline.cross_connect";
  if (!diag.clean(mode_path) || !diag.clean(list_path)) return;
  const char* defaulted = diag.in_source(mode_path) ? "" : " (its default)";
  if (pipeline.mode == PipelineMode::kL2 && !pipeline.cross_connect.empty()) {
    diag.error_at(list_path, fmt::format("must be empty when {} is l2{}; set {}: cross_connect to use it", mode_path,
                                         defaulted, mode_path));
  }
  if (pipeline.mode == PipelineMode::kCrossConnect && pipeline.cross_connect.empty()) {
    // Point at the list if it is there (empty), else at the mode that asks for it.
    diag.error(list_path, diag.location_of(diag.in_source(list_path) ? list_path : mode_path),
               fmt::format("must list at least one {{from, to}} pair when {} is cross_connect", mode_path));
  }
}

// Sees document boundaries without building nodes. yaml-cpp 0.7's LoadAll() never returns on a stray ',' at
// document level ("- a\n,"): the parser yields an empty document without consuming the token, forever, allocating
// as it goes. A document that starts where the previous one started is that loop.
class DocumentStarts : public YAML::EventHandler {
 public:
  const std::vector<YAML::Mark>& starts() const { return starts_; }
  bool stuck() const { return starts_.size() >= 2 && starts_.back().pos == starts_[starts_.size() - 2].pos; }

  void OnDocumentStart(const YAML::Mark& mark) override { starts_.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

 private:
  std::vector<YAML::Mark> starts_;
};

// The one document in `yaml` (a null node when there is none), or nothing after reporting why not.
std::optional<YAML::Node> parse_document(const std::string& yaml, Diagnostics& diag) {
  try {
    std::istringstream stream(yaml);
    YAML::Parser parser(stream);
    DocumentStarts documents;
    while (parser.HandleNextDocument(documents)) {
      if (documents.stuck()) {
        const YAML::Mark& at = documents.starts().back();
        const std::string_view token =
            at.pos >= 0 && static_cast<size_t>(at.pos) < yaml.size() ? std::string_view(yaml).substr(at.pos, 1) : "";
        diag.error("", to_loc(at), fmt::format("invalid YAML: unexpected {}", quoted(token)));
        return std::nullopt;
      }
    }
    if (documents.starts().size() > 1) {
      diag.error("", to_loc(documents.starts()[1]),
                 fmt::format("holds {} YAML documents; expected one", documents.starts().size()));
    }
    return YAML::Load(yaml);  // the first document only
  } catch (const YAML::DeepRecursion& e) {  // its message is just "bad file"
    diag.error("", to_loc(e.mark), fmt::format("invalid YAML: nested more than {} levels deep", e.depth()));
    return std::nullopt;
  } catch (const YAML::Exception& e) {
    diag.error("", to_loc(e.mark), fmt::format("invalid YAML: {}", e.msg));
    return std::nullopt;
  }
}

}  // namespace

LoadResult load_config_string(const std::string& yaml, const std::string& source_name) {
  Diagnostics diag(source_name);
  LoadResult result;
  const std::optional<YAML::Node> document = parse_document(yaml, diag);
  if (!document) {
    result.errors = diag.take_in_file_order();
    return result;
  }
  const YAML::Node& root = *document;
  Config config;
  diag.record("", to_loc(root.Mark()));
  read_config(Value{root, "", to_loc(root.Mark()), &diag}, config);
  check_cores(config.dataplane, diag);
  check_ports(config, diag);
  check_pipeline(config, diag);

  if (diag.has_errors()) {
    result.errors = diag.take_in_file_order();
  } else {
    result.config = std::move(config);
  }
  return result;
}

LoadResult load_config_file(const std::string& path) {
  std::string text;
  int err = 0;
  if (std::FILE* file = std::fopen(path.c_str(), "rb")) {
    char buffer[1 << 16];
    errno = 0;
    size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) text.append(buffer, n);
    if (std::ferror(file)) err = errno != 0 ? errno : EIO;
    std::fclose(file);
  } else {
    err = errno;
  }
  if (err != 0) {
    LoadResult result;
    result.errors.push_back(
        Error{"", 0, 0, fmt::format("cannot read config file {:?}: {}", path, std::generic_category().message(err))});
    return result;
  }
  return load_config_string(text, path);
}

}  // namespace esw::cfg
