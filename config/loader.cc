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

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <set>
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
constexpr size_t kMaxPortNameLen = 15;   // IFNAMSIZ - 1: uplink names become netdev names
constexpr size_t kMaxVportNameLen = 11;  // a vport's representor netdev is "rep-<name>", at most 15 characters
constexpr size_t kMaxIdentifierLen = 63;  // meter, table and rule names
constexpr size_t kMaxFilePrefixLen = 64;
constexpr size_t kMaxUnixPathLen = 107;  // sizeof(sockaddr_un::sun_path) - 1
constexpr size_t kMaxGroupNameLen = 32;  // what shadow-utils accepts
constexpr size_t kMaxPorts = 256;        // dataplane/flow_key.h kMaxPorts: uplinks + vports + representors
constexpr int64_t kMaxTableId = 254;     // 255 is the classifier's "no table"
constexpr int64_t kMaxPriority = 65535;
constexpr int64_t kMinBurstBytes = 1518;  // one full-size Ethernet frame: a smaller bucket never passes one
constexpr int64_t kMaxBurstBytes = 4294967295;
constexpr uint64_t kMinRateBps = 8;                   // meters count bytes: 1 byte/s
constexpr uint64_t kMaxRateBps = 10'000'000'000'000;  // 10T
constexpr size_t kMaxShownLen = 40;  // longer user text is cut in messages

// ---------------------------------------------------------------------------------------------------------------
// Locations, paths, diagnostics

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

  template <typename Visit>
  void for_each_recorded(Visit&& visit) const {
    for (const auto& [path, loc] : where_) visit(path, loc);
  }

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

  // The type's own maximum goes unsaid unless the value is above it.
  std::string expected(bool above_max = false) const {
    std::string range = max == static_cast<int64_t>(std::numeric_limits<T>::max()) && !above_max
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
      v.error(fmt::format("expected {}, got {}", expected(n && *n > max), describe(v.node)));
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

// true or false, unquoted (the YAML 1.2 core schema spellings: "yes" and "on" are strings).
struct Bool {
  bool operator()(const Value& v, bool& out) const {
    if (v.node.IsScalar() && is_plain(v.node)) {
      const std::string& text = v.node.Scalar();
      if (text == "true" || text == "True" || text == "TRUE") {
        out = true;
        return true;
      }
      if (text == "false" || text == "False" || text == "FALSE") {
        out = false;
        return true;
      }
    }
    v.error(fmt::format("expected true or false, got {}", describe(v.node)));
    return false;
  }
};

// Integer<> for 64-bit fields (whose ranges fit int64_t).
struct Integer64 {
  int64_t min = 0;
  int64_t max = std::numeric_limits<int64_t>::max();

  bool operator()(const Value& v, uint64_t& out) const {
    int64_t n = 0;
    if (!Integer<int64_t>{.min = min, .max = max}(v, n)) return false;
    out = static_cast<uint64_t>(n);
    return true;
  }
};

constexpr Integer64 kBurstBytes{.min = kMinBurstBytes, .max = kMaxBurstBytes};

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

uint64_t pow10(size_t n) {
  uint64_t p = 1;
  while (n-- > 0) p *= 10;
  return p;
}

// "1000", "10G", "1.5G", "100M", "64k" (SI: k = 1000) -> bits/s. Nothing if malformed, overflowing or not a whole
// number of bits/s.
std::optional<uint64_t> parse_rate(std::string_view text) {
  size_t exponent = 0;
  if (!text.empty()) {
    switch (text.back()) {
      case 'k':
      case 'K': exponent = 3; break;
      case 'M': exponent = 6; break;
      case 'G': exponent = 9; break;
      case 'T': exponent = 12; break;
      default: break;
    }
    if (exponent != 0) text.remove_suffix(1);
  }
  const size_t dot = text.find('.');
  const std::string_view whole = text.substr(0, dot);
  const std::string_view fraction = dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1);
  if (!all_digits(whole) || whole.size() > 14 || fraction.size() > 12) return std::nullopt;
  if (dot != std::string_view::npos && (exponent == 0 || !all_digits(fraction))) return std::nullopt;
  uint64_t value = 0;
  std::from_chars(whole.data(), whole.data() + whole.size(), value);
  if (__builtin_mul_overflow(value, pow10(exponent), &value)) return std::nullopt;
  if (!fraction.empty()) {
    uint64_t part = 0;
    std::from_chars(fraction.data(), fraction.data() + fraction.size(), part);
    if (fraction.size() > exponent) {
      const uint64_t divisor = pow10(fraction.size() - exponent);
      if (part % divisor != 0) return std::nullopt;
      part /= divisor;
    } else {
      part *= pow10(exponent - fraction.size());
    }
    value += part;
  }
  return value;
}

// The shortest exact spelling parse_rate() reads back: 10000000000 -> "10G", 1500000 -> "1500k".
std::string format_rate(uint64_t bps) {
  static constexpr std::pair<uint64_t, char> kUnits[] = {
      {1'000'000'000'000, 'T'}, {1'000'000'000, 'G'}, {1'000'000, 'M'}, {1'000, 'k'}};
  for (const auto& [unit, suffix] : kUnits) {
    if (bps >= unit && bps % unit == 0) return fmt::format("{}{}", bps / unit, suffix);
  }
  return std::to_string(bps);
}

// A rate in bits per second, as an integer or with an SI suffix. Quoting does not matter here ("10G" is a string
// either way).
struct Rate {
  bool operator()(const Value& v, uint64_t& out) const {
    std::optional<uint64_t> bps;
    if (v.node.IsScalar()) bps = parse_rate(v.node.Scalar());
    if (!bps || *bps < kMinRateBps || *bps > kMaxRateBps) {
      v.error(fmt::format("expected a rate in bits/s from {} to {}: an integer, or a number with a suffix k, M, G or T "
                          "(1.5G = 1500000000), got {}",
                          kMinRateBps, format_rate(kMaxRateBps), describe(v.node)));
      return false;
    }
    out = *bps;
    return true;
  }
};

// A mapping whose keys are data rather than schema (match fields, set_field fields): visits each entry in order
// as `bool(const std::string& key, const Value& value)`. Non-mappings, non-scalar keys and repeated keys are
// errors here. A missing or null mapping is empty.
template <typename Visit>
bool for_each_entry(const Value& v, std::string_view expected, Visit&& visit) {
  if (v.node.IsNull()) return true;
  if (!v.node.IsMap()) {
    v.error(fmt::format("expected {}, got {}", expected, describe(v.node)));
    return false;
  }
  bool ok = true;
  std::vector<std::pair<std::string, int>> seen;  // key, line: these mappings are small
  for (auto it = v.node.begin(); it != v.node.end(); ++it) {
    const YAML::Node key = it->first;
    const Loc key_loc = to_loc(key.Mark());
    if (!key.IsScalar() || key.Scalar().empty()) {
      v.diag->error(v.path, key_loc, fmt::format("expected a field name, got {}", describe(key)));
      ok = false;
      continue;
    }
    auto same = std::find_if(seen.begin(), seen.end(), [&](const auto& s) { return s.first == key.Scalar(); });
    if (same != seen.end()) {
      v.diag->error(child_path(v.path, key.Scalar()), key_loc,
                    fmt::format("duplicate key {}; first on line {}", quoted(key.Scalar()), same->second));
      ok = false;
      continue;
    }
    seen.emplace_back(key.Scalar(), key_loc.line);
    const YAML::Node value = it->second;
    const Loc loc = value.IsNull() ? key_loc : to_loc(value.Mark());
    ok = visit(key.Scalar(), v.child(child_path(v.path, key.Scalar()), value, loc)) && ok;
  }
  return ok;
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

// A letter, then letters, digits and `extra` characters, `max_len` in all.
bool is_name(std::string_view text, size_t max_len, std::string_view extra) {
  return !text.empty() && text.size() <= max_len && is_ascii_alpha(text.front()) &&
         std::all_of(text.begin(), text.end(),
                     [&](char c) { return is_ascii_alnum(c) || extra.find(c) != std::string_view::npos; });
}

std::optional<std::string> check_api_version(std::string& text) {
  if (text == kApiVersion) return std::nullopt;
  return fmt::format("expected {}, got {}", quoted(kApiVersion), quoted(text));
}

std::optional<std::string> check_port_name(std::string& text) {
  if (is_name(text, kMaxPortNameLen, "_-")) return std::nullopt;
  return fmt::format("{} is not a valid port name; expected a letter followed by at most {} letters, digits, '_' or '-'",
                     quoted(text), kMaxPortNameLen - 1);
}

std::optional<std::string> check_vport_name(std::string& text) {
  if (is_name(text, kMaxVportNameLen, "_-")) return std::nullopt;
  if (is_name(text, std::numeric_limits<size_t>::max(), "_-")) {
    return fmt::format("{} is {} characters long; a vport name has at most {} (its representor netdev is \"rep-{}\" "
                       "and Linux netdev names have at most {})",
                       quoted(text), text.size(), kMaxVportNameLen, text, kMaxPortNameLen);
  }
  return fmt::format(
      "{} is not a valid port name; expected a letter followed by at most {} letters, digits, '_' or '-'", quoted(text),
      kMaxVportNameLen - 1);
}

// Names of meters, tables and rules: what `what` says ("meter", ...).
auto check_identifier(std::string_view what) {
  return [what](std::string& text) -> std::optional<std::string> {
    if (is_name(text, kMaxIdentifierLen, "_-.")) return std::nullopt;
    return fmt::format("{} is not a valid {} name; expected a letter followed by at most {} letters, digits, '_', '-' "
                       "or '.'",
                       quoted(text), what, kMaxIdentifierLen - 1);
  };
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

std::optional<std::string> check_api_socket(std::string& text) {
  const bool ok = text.empty() || (text.front() == '/' && text.back() != '/' && text.size() <= kMaxUnixPathLen &&
                                   text.find('\0') == std::string::npos);
  if (ok) return std::nullopt;
  return fmt::format("{} is not a valid socket path; expected an absolute file path of at most {} bytes (a Unix "
                     "socket address), or \"\" for no API socket",
                     quoted(text), kMaxUnixPathLen);
}

std::optional<std::string> check_group(std::string& text) {
  const bool ok = text.empty() || all_digits(text) ||
                  (text.size() <= kMaxGroupNameLen && (is_ascii_alpha(text.front()) || text.front() == '_') &&
                   std::all_of(text.begin(), text.end(),
                               [](char c) { return is_ascii_alnum(c) || c == '_' || c == '-' || c == '.'; }));
  if (ok) return std::nullopt;
  return fmt::format("{} is not a group; expected a group name (a letter or '_', then at most {} letters, digits, "
                     "'_', '-' or '.'), a numeric gid, or \"\" for the process's group",
                     quoted(text), kMaxGroupNameLen - 1);
}

// An IPv4 or IPv6 address or prefix, as bound to a vport. IPv4 sits in the first 4 bytes.
struct IpPrefix {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};
  int len = 0;

  int bits() const { return v6 ? 128 : 32; }
  // Whether the first `n` bits of both are equal.
  bool same_first_bits(const IpPrefix& other, int n) const {
    for (int i = 0; i < n; i += 8) {
      const int take = std::min(8, n - i);
      const uint8_t mask = static_cast<uint8_t>(0xff00 >> take);
      if ((bytes[i / 8] & mask) != (other.bytes[i / 8] & mask)) return false;
    }
    return true;
  }
  bool contains(const IpPrefix& other) const { return len <= other.len && same_first_bits(other, len); }
  IpPrefix network() const {
    IpPrefix out = *this;
    for (int i = 0; i < bits(); ++i) {
      if (i >= len) out.bytes[i / 8] &= static_cast<uint8_t>(~(0x80 >> (i % 8)));
    }
    return out;
  }
  std::string address_text() const {
    char buffer[INET6_ADDRSTRLEN] = {};
    inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buffer, sizeof(buffer));
    return buffer;
  }
  // Canonical: RFC 5952 for IPv6, no "/32" or "/128" on a single address.
  std::string text() const { return len == bits() ? address_text() : fmt::format("{}/{}", address_text(), len); }
};

// Strict dotted quad: four decimal octets without leading zeros (inet_aton would read "010" as octal).
bool parse_ipv4(std::string_view text, std::array<uint8_t, 16>& out) {
  for (int i = 0; i < 4; ++i) {
    const size_t dot = text.find('.');
    if ((i < 3) != (dot != std::string_view::npos)) return false;
    const std::string_view part = text.substr(0, dot);
    if (!all_digits(part) || part.size() > 3 || (part.size() > 1 && part.front() == '0')) return false;
    int n = 0;
    std::from_chars(part.data(), part.data() + part.size(), n);
    if (n > 255) return false;
    out[static_cast<size_t>(i)] = static_cast<uint8_t>(n);
    text.remove_prefix(dot == std::string_view::npos ? text.size() : dot + 1);
  }
  return true;
}

bool parse_ipv6(std::string_view text, std::array<uint8_t, 16>& out) {
  return !text.empty() && text.size() < INET6_ADDRSTRLEN &&
         inet_pton(AF_INET6, std::string(text).c_str(), out.data()) == 1;
}

// "addr" or "addr/len", any valid spelling; no checks beyond the syntax.
std::optional<IpPrefix> parse_prefix(std::string_view text, bool v6) {
  IpPrefix p;
  p.v6 = v6;
  const size_t slash = text.find('/');
  const std::string_view address = text.substr(0, slash);
  if (!(v6 ? parse_ipv6(address, p.bytes) : parse_ipv4(address, p.bytes))) return std::nullopt;
  p.len = p.bits();
  if (slash != std::string_view::npos) {
    const std::string_view len = text.substr(slash + 1);
    if (!all_digits(len) || len.size() > 3 || (len.size() > 1 && len.front() == '0')) return std::nullopt;
    std::from_chars(len.data(), len.data() + len.size(), p.len);
  }
  return p;
}

// Why an address (or a prefix's network address) cannot be bound to a vport, if it cannot.
std::optional<std::string_view> unbindable(const IpPrefix& p) {
  const auto& b = p.bytes;
  if (!p.v6) {
    if (b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] == 0) return "the unspecified address";
    if (b[0] == 127) return "a loopback address";
    if (b[0] >= 224 && b[0] < 240) return "a multicast address";
    if (b[0] >= 240) return "a reserved or broadcast address (240.0.0.0/4)";
    return std::nullopt;
  }
  const auto zero = [](uint8_t x) { return x == 0; };
  if (std::all_of(b.begin(), b.end(), zero)) return "the unspecified address";
  if (std::all_of(b.begin(), b.end() - 1, zero) && b[15] == 1) return "the loopback address";
  if (b[0] == 0xff) return "a multicast address";
  if (std::all_of(b.begin(), b.begin() + 10, zero) && b[10] == 0xff && b[11] == 0xff) {
    return "an IPv4-mapped address";
  }
  return std::nullopt;
}

// A bound address or prefix; puts it in canonical form.
std::optional<std::string> check_binding(std::string& text, bool v6) {
  const std::optional<IpPrefix> parsed = parse_prefix(text, v6);
  if (!parsed) {
    const size_t slash = text.find('/');
    if (slash != std::string::npos && parse_prefix(std::string_view(text).substr(0, slash), v6)) {
      return fmt::format("{} has an invalid prefix length; expected /1 to /{}", quoted(text), v6 ? 128 : 32);
    }
    return v6 ? fmt::format("{} is not an IPv6 address or prefix; expected an address like \"2001:db8::1\" or a "
                            "prefix like \"2001:db8:1::/64\"",
                            quoted(text))
              : fmt::format("{} is not an IPv4 address or prefix; expected an address like \"198.18.0.1\" or a "
                            "prefix like \"198.18.1.0/24\"",
                            quoted(text));
  }
  const IpPrefix& p = *parsed;
  if (p.len < 1 || p.len > p.bits()) {
    return fmt::format("{} has an invalid prefix length; expected /1 to /{}{}", quoted(text), p.bits(),
                       p.len == 0 ? " (to let a vport send from any address, set spoofchk: false)" : "");
  }
  if (std::optional<std::string_view> why = unbindable(p)) {
    if (v6 && why->starts_with("an IPv4-mapped")) {
      IpPrefix v4;
      std::copy(p.bytes.begin() + 12, p.bytes.end(), v4.bytes.begin());
      v4.len = 32;
      return fmt::format("{} is {}; bind {} under ipv4 instead", quoted(text), *why, v4.address_text());
    }
    return fmt::format("{} is {}; a vport is bound to unicast addresses", quoted(text), *why);
  }
  const IpPrefix network = p.network();
  if (network.bytes != p.bytes) {
    return fmt::format("{} has host bits set; the prefix is {} (or bind the address alone: {})", quoted(text),
                       network.text(), p.address_text());
  }
  text = p.text();
  return std::nullopt;
}

std::optional<std::string> check_ipv4_binding(std::string& text) { return check_binding(text, false); }
std::optional<std::string> check_ipv6_binding(std::string& text) { return check_binding(text, true); }

// ---------------------------------------------------------------------------------------------------------------
// Rule items: match and actions

bool is_true(const YAML::Node& node) {
  return is_plain(node) && (node.Scalar() == "true" || node.Scalar() == "True" || node.Scalar() == "TRUE");
}
bool is_false(const YAML::Node& node) {
  return is_plain(node) && (node.Scalar() == "false" || node.Scalar() == "False" || node.Scalar() == "FALSE");
}

// `field: value` pairs; `keyword: true` (or no value) for keywords. Names and values are the rule compiler's
// business (dataplane/fields.h): here only the shape is checked.
bool read_match(const Value& v, std::vector<MatchItem>& out) {
  std::vector<MatchItem> items;
  constexpr std::string_view kExpected = "a mapping of field: value (e.g. {tcp: true, tcp_dst: 80})";
  const bool ok = for_each_entry(v, kExpected, [&](const std::string& field, const Value& value) {
    MatchItem item{field, "", value.loc};
    if (value.node.IsScalar() && is_false(value.node)) {
      value.error(fmt::format("expected a value, or true for a keyword such as tcp: true, got false; leave {} out "
                              "to not match on it",
                              quoted(field)));
      return false;
    }
    if (value.node.IsScalar() && !is_true(value.node)) {
      if (value.node.Scalar().find_first_not_of(" \t") == std::string::npos) {
        value.error(fmt::format("expected a value, or true for a keyword such as tcp: true, got {}",
                                quoted(value.node.Scalar())));
        return false;
      }
      item.value = value.node.Scalar();
    } else if (!value.node.IsNull() && !value.node.IsScalar()) {
      value.error(fmt::format("expected a value such as 80 or 198.18.0.0/24, or true for a keyword, got {}",
                              describe(value.node)));
      return false;
    }
    items.push_back(std::move(item));
    return true;
  });
  out = std::move(items);
  return ok;
}

enum class ActionArg {
  kNone,          // `- drop`
  kPort,          // `- output: vm1`
  kOptionalPort,  // `- to_representor` or `- to_representor: vm1`
  kTable,         // `- goto_table: 1` or a table name
  kMeter,         // `- meter: m1`
  kVlan,          // `- push_vlan: 100` or `- push_vlan: {vid: 100, pcp: 3}`
  kFields,        // `- set_field: {eth_dst: 02:00:00:00:00:01, ipv4_dst: 198.18.0.9}`
};

struct ActionSpec {
  std::string_view name;
  ActionArg arg;
  bool in_miss;  // allowed among a table's miss actions (no goto, nothing that changes the key)
  std::string_view usage;
};

constexpr ActionSpec kActions[] = {
    {"output", ActionArg::kPort, true, "output: <port>"},
    {"mirror", ActionArg::kPort, true, "mirror: <port>"},
    {"to_representor", ActionArg::kOptionalPort, true, "to_representor or to_representor: <vport>"},
    {"drop", ActionArg::kNone, true, "drop"},
    {"count", ActionArg::kNone, true, "count"},
    {"meter", ActionArg::kMeter, true, "meter: <meter name>"},
    {"goto_table", ActionArg::kTable, false, "goto_table: <table id or name>"},
    {"set_field", ActionArg::kFields, false, "set_field: {<field>: <value>}"},
    {"set_register", ActionArg::kFields, false, "set_register: {reg0: <value>}"},
    {"dec_ttl", ActionArg::kNone, true, "dec_ttl"},
    {"push_vlan", ActionArg::kVlan, false, "push_vlan: <vid> or push_vlan: {vid: <vid>, pcp: <pcp>}"},
    {"pop_vlan", ActionArg::kNone, false, "pop_vlan"},
};

const ActionSpec* find_action(std::string_view name) {
  for (const ActionSpec& spec : kActions) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

std::string unknown_action_message(std::string_view name) {
  std::string message = fmt::format("unknown action {}", quoted(name));
  const size_t colon = name.find(':');
  if (colon != std::string_view::npos && find_action(name.substr(0, colon))) {
    return message + fmt::format("; write {}: {} (a space after the colon makes it a mapping)",
                                 name.substr(0, colon), name.substr(colon + 1));
  }
  std::optional<std::string_view> best;
  size_t best_distance = std::min<size_t>(2, name.size() / 2);
  std::vector<std::string_view> names;
  for (const ActionSpec& spec : kActions) {
    names.push_back(spec.name);
    if (size_t d = edit_distance(name, spec.name); d <= best_distance) {
      best = spec.name;
      best_distance = d;
    }
  }
  if (best) message += fmt::format("; did you mean {}?", quoted(*best));
  return message + fmt::format("; valid actions: {}", fmt::join(names, ", "));
}

bool read_push_vlan(const Value& v, std::string& out) {
  constexpr Integer<uint16_t> kVid{.min = 0, .max = 4094};
  uint16_t vid = 0;
  if (!v.node.IsMap()) {
    if (!kVid(v, vid)) return false;
    out = std::to_string(vid);
    return true;
  }
  std::optional<uint16_t> pcp;
  const bool ok = read_map(v, [&](MapReader& m) {
    m.required("vid", vid, kVid);
    m.optional("pcp", pcp, Integer<uint16_t>{.min = 0, .max = 7});
  });
  if (ok) out = pcp ? fmt::format("{}/{}", vid, *pcp) : std::to_string(vid);
  return ok;
}

// One item of an action list: a bare name or a one-key mapping. Appends what it reads to `out` (several actions
// for a set_field of several fields).
bool read_action(const Value& v, int index, bool miss, std::vector<ActionConfig>& out) {
  std::string name;
  std::optional<Value> arg;
  if (v.node.IsScalar()) {
    name = v.node.Scalar();
  } else if (v.node.IsMap() && v.node.size() == 1 && v.node.begin()->first.IsScalar()) {
    const YAML::Node key = v.node.begin()->first;
    const YAML::Node value = v.node.begin()->second;
    name = key.Scalar();
    if (find_action(name)) {
      arg = v.child(child_path(v.path, name), value, value.IsNull() ? to_loc(key.Mark()) : to_loc(value.Mark()));
    }
  } else {
    const std::string keys = v.node.IsMap() && v.node.size() > 1
                                 ? fmt::format(" with {} keys; write one action per list item", v.node.size())
                                 : std::string();
    v.error(fmt::format("expected an action: a name such as drop, or a one-key mapping such as output: uplink0, "
                        "got {}{}",
                        describe(v.node), keys));
    return false;
  }
  const ActionSpec* spec = find_action(name);
  if (spec == nullptr) {
    v.error(unknown_action_message(name));
    return false;
  }
  if (miss && !spec->in_miss) {
    v.error(fmt::format("{} cannot be a miss action (a miss ends the walk and cannot change the packet's key); use a "
                        "rule with priority 0 and no match for that",
                        spec->name));
    return false;
  }
  ActionConfig action{std::string(spec->name), "", v.loc, index};
  if (!arg || (spec->arg == ActionArg::kOptionalPort && arg->node.IsNull())) {
    if (spec->arg != ActionArg::kNone && spec->arg != ActionArg::kOptionalPort) {
      v.error(fmt::format("{} needs an argument; write {}", spec->name, spec->usage));
      return false;
    }
    out.push_back(std::move(action));
    return true;
  }
  action.loc = arg->loc;
  switch (spec->arg) {
    case ActionArg::kNone:
      v.error(fmt::format("{} takes no argument; write {} alone as a list item", spec->name, spec->name));
      return false;
    case ActionArg::kPort:
    case ActionArg::kOptionalPort:
    case ActionArg::kMeter:
      if (!Text{.non_empty = true}(*arg, action.arg)) return false;
      break;
    case ActionArg::kTable:
      if (arg->node.IsScalar() && is_plain(arg->node) && looks_like_integer(arg->node.Scalar())) {
        uint32_t id = 0;
        if (!Integer<uint32_t>{.min = 0, .max = kMaxTableId}(*arg, id)) return false;
        action.arg = std::to_string(id);
      } else if (!Text{.non_empty = true}(*arg, action.arg)) {  // a table name, resolved by check_tables()
        return false;
      }
      break;
    case ActionArg::kVlan:
      if (!read_push_vlan(*arg, action.arg)) return false;
      break;
    case ActionArg::kFields: {
      const size_t before = out.size();
      const bool ok = for_each_entry(*arg, fmt::format("a mapping of field: value, as in {}", spec->usage),
                                     [&](const std::string& field, const Value& value) {
                                       std::string text;
                                       if (!Text{.non_empty = true}(value, text)) return false;
                                       out.push_back(ActionConfig{action.name, field + "=" + text, value.loc, index});
                                       return true;
                                     });
      if (ok && out.size() == before) {
        arg->error(fmt::format("{} needs at least one field; write {}", spec->name, spec->usage));
        return false;
      }
      return ok;
    }
  }
  out.push_back(std::move(action));
  return true;
}

// A rule's actions (`miss` false: at least one) or a table's miss actions (may be empty: to_representor).
struct ActionList {
  bool miss = false;

  bool operator()(const Value& v, std::vector<ActionConfig>& out) const {
    std::vector<ActionConfig> actions;
    bool ok = true;
    if (v.node.IsSequence()) {
      bool after_goto = false;
      int index = 0;
      for (auto it = v.node.begin(); it != v.node.end(); ++it, ++index) {
        const YAML::Node node = *it;
        const Value item = v.child(index_path(v.path, static_cast<size_t>(index)), node, to_loc(node.Mark()));
        if (!read_action(item, index, miss, actions)) {
          ok = false;
          continue;
        }
        if (after_goto) {
          item.error("nothing may follow goto_table: the packet continues in the next table, whose rules act on it");
          ok = false;
          after_goto = false;  // once is enough
        }
        if (!actions.empty() && actions.back().name == "goto_table") after_goto = true;
      }
    } else if (!v.node.IsNull()) {
      v.error(fmt::format("expected a list of actions, got {}", describe(v.node)));
      return false;
    }
    if (ok && actions.empty() && !miss) {
      v.error("a rule needs at least one action; write [drop] to drop what it matches");
      ok = false;
    }
    out = std::move(actions);
    return ok;
  }
};

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
    m.optional("max_rules", out.max_rules, Integer<uint32_t>{.min = 1024, .max = 4194304});
    m.optional("flow_cache_entries", out.flow_cache_entries,
               Integer<uint32_t>{.min = 256, .max = 1048576, .power_of_two = true});
    m.optional("flow_cache_insert_inv_prob", out.flow_cache_insert_inv_prob, Integer<uint32_t>{.min = 1, .max = 1000});
    m.optional("api_socket", out.api_socket, checked_text(check_api_socket));
    m.optional("api_socket_group", out.api_socket_group, checked_text(check_group));
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

bool read_rate(const Value& v, RateLimit& out) {
  if (v.node.IsNull()) return true;  // "rate:" alone: unlimited
  return read_map(v, [&](MapReader& m) {
    m.required("tx_max_bps", out.tx_max_bps, Rate{});
    m.optional("tx_burst_bytes", out.tx_burst_bytes, kBurstBytes);
  });
}

bool read_vport(const Value& v, VportConfig& out) {
  out.line = v.loc.line;
  return read_map(v, [&](MapReader& m) {
    m.required("name", out.name, checked_text(check_vport_name));
    m.optional("flavour", out.flavour, one_of({Flavour::kVf, Flavour::kSf}));
    m.optional("id", out.id, Integer<uint32_t>{});
    m.required("attach", out.attach, read_attachment);
    m.optional("hw_addr", out.hw_addr, checked_text(check_unicast_mac));
    m.optional("ipv4", out.ipv4, list_of(checked_text(check_ipv4_binding)));
    m.optional("ipv6", out.ipv6, list_of(checked_text(check_ipv6_binding)));
    m.optional("vlan", out.vlan, Integer<uint16_t>{.min = 1, .max = 4094});
    m.optional("state", out.state, one_of({VportState::kActive, VportState::kInactive}));
    m.optional("spoofchk", out.spoofchk, Bool{});
    m.optional("trust", out.trust, Bool{});
    m.optional("roce", out.roce, Bool{});
    m.optional("smc", out.smc, one_of({SmcPolicy::kAllow, SmcPolicy::kDeny}));
    m.optional("dhcp_client", out.dhcp_client, Bool{});
    m.optional("egress_multicast", out.egress_multicast, Bool{});
    m.optional("rate", out.rate, read_rate);
  });
}

bool read_representors(const Value& v, RepresentorConfig& out) {
  return read_map(v, [&](MapReader& m) {
    m.optional("kind", out.kind, one_of({RepresentorKind::kTap, RepresentorKind::kNone}));
  });
}

bool read_meter_type(const Value& v, bool& tr_tcm) {
  if (v.node.IsScalar() && (v.node.Scalar() == "srtcm" || v.node.Scalar() == "trtcm")) {
    tr_tcm = v.node.Scalar() == "trtcm";
    return true;
  }
  v.error(fmt::format("expected one of srtcm, trtcm, got {}", describe(v.node)));
  return false;
}

// Which keys belong to which type is checked by check_meters(), which can say so.
bool read_meter(const Value& v, MeterConfig& out) {
  out.loc = v.loc;
  return read_map(v, [&](MapReader& m) {
    m.required("name", out.name, checked_text(check_identifier("meter")));
    m.required("type", out.tr_tcm, read_meter_type);
    m.required("cir", out.cir_bps, Rate{});
    m.required("cbs", out.cbs_bytes, kBurstBytes);
    m.optional("ebs", out.ebs_bytes, Integer64{.min = 0, .max = kMaxBurstBytes});
    m.optional("pir", out.pir_bps, Rate{});
    m.optional("pbs", out.pbs_bytes, kBurstBytes);
  });
}

// The compact form of a rule, one string (OVS flow syntax), for big rule sets - yaml-cpp parses one scalar per
// rule several times faster than a mapping per rule:
//   "priority=10,name=web,in_port=vm1,ipv4_dst=198.18.0.0/24,tcp_dst=80 actions=count,output:uplink0"
// Match fields, values and action arguments are checked by the rule compiler (check_config), located at the
// string.
bool read_compact_rule(const Value& v, RuleConfig& out) {
  const std::string text = v.node.Scalar();
  const size_t act = text.find("actions=");
  if (act == std::string::npos || (act != 0 && text[act - 1] != ' ' && text[act - 1] != ',')) {
    v.error("a rule written as a string needs an \"actions=\" part, e.g. \"in_port=vm1,ipv4 actions=output:vm2\"");
    return false;
  }
  auto items = [](const std::string& s) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos <= s.size()) {
      size_t comma = s.find(',', pos);
      if (comma == std::string::npos) comma = s.size();
      std::string item = s.substr(pos, comma - pos);
      while (!item.empty() && item.front() == ' ') item.erase(item.begin());
      while (!item.empty() && item.back() == ' ') item.pop_back();
      if (!item.empty()) out.push_back(std::move(item));
      pos = comma + 1;
    }
    return out;
  };
  bool ok = true;
  for (const std::string& item : items(text.substr(0, act))) {
    const size_t eq = item.find('=');
    const std::string key = item.substr(0, eq);
    const std::string value = eq == std::string::npos ? std::string() : item.substr(eq + 1);
    if (key == "priority") {
      char* end = nullptr;
      const unsigned long p = std::strtoul(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || p > kMaxPriority) {
        v.error("priority=\"" + value + "\" is not an integer in 0.." + std::to_string(kMaxPriority));
        ok = false;
      }
      out.priority = static_cast<uint32_t>(p);
    } else if (key == "name") {
      out.name = value;
    } else {
      out.match.push_back({key, value, v.loc});
    }
  }
  int index = 0;
  for (const std::string& item : items(text.substr(act + 8))) {
    const size_t colon = item.find(':');
    ActionConfig a;
    a.name = item.substr(0, colon);
    if (colon != std::string::npos) a.arg = item.substr(colon + 1);
    a.loc = v.loc;
    a.index = index++;
    out.actions.push_back(std::move(a));
  }
  if (out.actions.empty()) {
    v.error("no actions after \"actions=\" (use actions=drop to drop)");
    ok = false;
  }
  return ok;
}

bool read_rule(const Value& v, RuleConfig& out) {
  out.loc = v.loc;
  if (v.node.IsScalar()) return read_compact_rule(v, out);
  return read_map(v, [&](MapReader& m) {
    m.optional("name", out.name, checked_text(check_identifier("rule")));
    m.optional("priority", out.priority, Integer<uint32_t>{.min = 0, .max = kMaxPriority});
    m.optional("match", out.match, read_match);
    m.required("actions", out.actions, ActionList{});
  });
}

bool read_table(const Value& v, TableConfig& out) {
  out.loc = v.loc;
  return read_map(v, [&](MapReader& m) {
    m.required("id", out.id, Integer<uint32_t>{.min = 0, .max = kMaxTableId});
    m.optional("name", out.name, checked_text(check_identifier("table")));
    m.optional("miss", out.miss, ActionList{.miss = true});
    m.optional("rules", out.rules, list_of(read_rule));
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
    m.optional("representors", out.representors, read_representors);
    m.optional("pipeline", out.pipeline, read_pipeline);
    m.optional("meters", out.meters, list_of(read_meter));
    m.optional("tables", out.tables, list_of(read_table));
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

// "no port named "x"; expected one of a, b" (or why there is none to expect).
std::string no_such(std::string_view what, std::string_view name, const std::vector<std::string_view>& valid,
                    std::string_view none) {
  if (valid.empty()) return fmt::format("no {} named {}; {}", what, quoted(name), none);
  return fmt::format("no {} named {}; expected one of {}", what, quoted(name), fmt::join(valid, ", "));
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

// VF and SF numbers: unique per flavour; an omitted id is the lowest one no other vport of its flavour has.
void assign_vport_ids(Config& config, Diagnostics& diag) {
  std::map<Flavour, std::vector<Site>> sites;
  std::map<Flavour, std::set<uint32_t>> taken;
  for (size_t i = 0; i < config.vports.size(); ++i) {
    const VportConfig& vport = config.vports[i];
    const std::string base = index_path("vports", i);
    if (!diag.clean(base + ".flavour") || !diag.in_source(base + ".id")) continue;
    add_site(sites[vport.flavour], diag, std::to_string(vport.id), base + ".id");
    taken[vport.flavour].insert(vport.id);
  }
  for (auto& [flavour, list] : sites) {
    check_unique(diag, std::move(list), fmt::format("{} id", to_string(flavour)), /*quote_key=*/false);
  }
  for (size_t i = 0; i < config.vports.size(); ++i) {
    VportConfig& vport = config.vports[i];
    if (diag.in_source(index_path("vports", i) + ".id")) continue;
    std::set<uint32_t>& used = taken[vport.flavour];
    uint32_t id = 0;
    while (used.contains(id)) ++id;
    vport.id = id;
    used.insert(id);
  }
}

void check_spoofchk(const Config& config, Diagnostics& diag) {
  for (size_t i = 0; i < config.vports.size(); ++i) {
    const VportConfig& vport = config.vports[i];
    const std::string base = index_path("vports", i);
    if (!vport.spoofchk || vport.hw_addr || !diag.clean(base + ".spoofchk") || !diag.clean(base + ".hw_addr") ||
        !diag.in_source(base)) {
      continue;
    }
    diag.error_at(base + ".hw_addr",
                  fmt::format("required while spoofchk is on{}: anti-spoofing checks the source MAC; add the vport's "
                              "MAC address or set spoofchk: false",
                              diag.in_source(base + ".spoofchk") ? "" : " (the default)"));
  }
}

// An address or prefix belongs to one vport, and a vport's prefix may not include another vport's addresses.
void check_bindings(const Config& config, Diagnostics& diag) {
  struct Bound {
    IpPrefix prefix;
    size_t vport;
    std::string path;
    Loc loc;
  };
  std::vector<Bound> bound;
  for (size_t i = 0; i < config.vports.size(); ++i) {
    const VportConfig& vport = config.vports[i];
    const std::string base = index_path("vports", i);
    auto add = [&](const std::vector<std::string>& list, bool v6) {
      for (size_t j = 0; j < list.size(); ++j) {
        std::string path = index_path(base + (v6 ? ".ipv6" : ".ipv4"), j);
        if (!diag.in_source(path) || !diag.clean(path)) continue;
        if (std::optional<IpPrefix> p = parse_prefix(list[j], v6)) {
          bound.push_back(Bound{*p, i, path, diag.location_of(path)});
        }
      }
    };
    add(vport.ipv4, false);
    add(vport.ipv6, true);
  }
  std::stable_sort(bound.begin(), bound.end(), [](const Bound& a, const Bound& b) { return before(a.loc, b.loc); });
  // Quadratic, but over bound addresses: a few per vport, at most 256 vports.
  for (size_t b = 0; b < bound.size(); ++b) {
    const Bound& later = bound[b];
    for (size_t a = 0; a < b; ++a) {
      const Bound& first = bound[a];
      if (first.prefix.v6 != later.prefix.v6) continue;
      const bool equal = first.prefix.len == later.prefix.len && first.prefix.contains(later.prefix);
      const std::string& first_name = config.vports[first.vport].name;
      const std::string& later_name = config.vports[later.vport].name;
      const std::string first_at = fmt::format("{} on line {}", first.path, first.loc.line);
      if (first.vport == later.vport) {
        if (!equal) continue;  // an address inside the vport's own prefix is redundant, not wrong
        diag.error(later.path, later.loc, fmt::format("duplicate address {}; first listed as {}",
                                                      later.prefix.text(), first_at));
      } else if (equal) {
        diag.error(later.path, later.loc,
                   fmt::format("{} is already bound to vport {} by {}; an address belongs to one vport",
                               later.prefix.text(), quoted(first_name), first_at));
      } else if (later.prefix.contains(first.prefix)) {
        diag.error(later.path, later.loc,
                   fmt::format("prefix {} of vport {} covers {}, bound to vport {} by {}; a vport's prefix cannot "
                               "include another vport's addresses",
                               later.prefix.text(), quoted(later_name), first.prefix.text(), quoted(first_name),
                               first_at));
      } else if (first.prefix.contains(later.prefix)) {
        diag.error(later.path, later.loc,
                   fmt::format("{} of vport {} is inside prefix {}, bound to vport {} by {}; a vport's prefix cannot "
                               "include another vport's addresses",
                               later.prefix.text(), quoted(later_name), first.prefix.text(), quoted(first_name),
                               first_at));
      } else {
        continue;
      }
      break;  // one error per address
    }
  }
}

void check_meters(const Config& config, Diagnostics& diag) {
  std::vector<Site> names;
  for (size_t i = 0; i < config.meters.size(); ++i) {
    const MeterConfig& meter = config.meters[i];
    const std::string base = index_path("meters", i);
    add_site(names, diag, meter.name, base + ".name");
    if (!diag.in_source(base + ".type") || !diag.clean(base + ".type")) continue;
    auto present = [&](std::string_view key) { return diag.in_source(fmt::format("{}.{}", base, key)); };
    if (meter.tr_tcm) {
      if (present("ebs")) {
        diag.error_at(base + ".ebs", "only for type: srtcm; a trtcm meter has cir, cbs, pir and pbs");
      }
      for (std::string_view key : {"pir", "pbs"}) {
        if (!present(key)) {
          diag.error_at(fmt::format("{}.{}", base, key),
                        "required key is missing (type: trtcm needs cir, cbs, pir and pbs)");
        }
      }
      if (present("pir") && present("cir") && diag.clean(base + ".pir") && diag.clean(base + ".cir") &&
          meter.pir_bps < meter.cir_bps) {
        diag.error_at(base + ".pir", fmt::format("pir {} is below cir {}; a trtcm meter's peak rate must be at least "
                                                 "its committed rate",
                                                 format_rate(meter.pir_bps), format_rate(meter.cir_bps)));
      }
    } else {
      for (std::string_view key : {"pir", "pbs"}) {
        if (present(key)) {
          diag.error_at(fmt::format("{}.{}", base, key),
                        "only for type: trtcm; an srtcm meter has cir, cbs and ebs");
        }
      }
    }
  }
  check_unique(diag, std::move(names), "meter name");
}

void check_pipeline(const Config& config, Diagnostics& diag) {
  std::vector<std::string_view> port_names;
  for (const UplinkConfig& uplink : config.uplinks) port_names.push_back(uplink.name);
  for (const VportConfig& vport : config.vports) port_names.push_back(vport.name);
  std::erase(port_names, std::string_view());
  const std::unordered_set<std::string_view> ports(port_names.begin(), port_names.end());

  auto check_reference = [&](const std::string& path, const std::string& name) {
    if (name.empty() || !diag.clean(path) || ports.contains(name)) return true;
    diag.error_at(path, no_such("port", name, port_names, "no uplinks or vports are defined"));
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

// Table ids and names, rule names, and what actions refer to: ports, meters, tables (goto by name becomes goto
// by id here).
void check_tables(Config& config, Diagnostics& diag) {
  std::vector<Site> ids, table_names, rule_names;
  std::map<uint32_t, size_t> declared;  // id -> first table with it
  std::unordered_map<std::string, uint32_t> id_by_name;
  for (size_t t = 0; t < config.tables.size(); ++t) {
    const TableConfig& table = config.tables[t];
    const std::string base = index_path("tables", t);
    const bool id_ok = diag.in_source(base + ".id") && diag.clean(base + ".id");
    if (id_ok) {
      add_site(ids, diag, std::to_string(table.id), base + ".id");
      declared.emplace(table.id, t);
    }
    add_site(table_names, diag, table.name, base + ".name");
    if (id_ok && !table.name.empty() && diag.clean(base + ".name")) id_by_name.emplace(table.name, table.id);
    for (size_t r = 0; r < table.rules.size(); ++r) {
      add_site(rule_names, diag, table.rules[r].name, rule_path(t, r) + ".name");
    }
  }
  check_unique(diag, std::move(ids), "table id", /*quote_key=*/false);
  check_unique(diag, std::move(table_names), "table name");
  check_unique(diag, std::move(rule_names), "rule name");

  std::vector<std::string_view> port_names, vport_names, meter_names, declared_names;
  std::unordered_set<std::string_view> uplinks;
  for (const UplinkConfig& uplink : config.uplinks) {
    if (uplink.name.empty()) continue;
    port_names.push_back(uplink.name);
    uplinks.insert(uplink.name);
  }
  for (const VportConfig& vport : config.vports) {
    if (vport.name.empty()) continue;
    port_names.push_back(vport.name);
    vport_names.push_back(vport.name);
  }
  // A name that failed its own check is not in the model: references that may mean it are not reported again.
  bool meter_name_failed = false, table_name_failed = false;
  for (size_t i = 0; i < config.meters.size(); ++i) {
    if (!config.meters[i].name.empty()) meter_names.push_back(config.meters[i].name);
    meter_name_failed |= !diag.clean(index_path("meters", i) + ".name");
  }
  for (size_t t = 0; t < config.tables.size(); ++t) {
    table_name_failed |= !diag.clean(index_path("tables", t) + ".name");
  }
  for (const auto& [name, id] : id_by_name) declared_names.push_back(name);
  std::sort(declared_names.begin(), declared_names.end());
  const std::unordered_set<std::string_view> ports(port_names.begin(), port_names.end());
  const std::unordered_set<std::string_view> vports(vport_names.begin(), vport_names.end());
  const std::unordered_set<std::string_view> meters(meter_names.begin(), meter_names.end());
  std::vector<uint32_t> declared_ids;
  for (const auto& [id, index] : declared) declared_ids.push_back(id);

  auto check_actions = [&](std::vector<ActionConfig>& actions, const std::string& list_path,
                           int64_t own_table) {  // -1: the table's own id is not valid
    for (ActionConfig& action : actions) {
      const std::string path = action_path(list_path, action);
      if (action.arg.empty() || !diag.clean(path)) continue;
      auto fail = [&](std::string message) { diag.error(path, action.loc, std::move(message)); };
      if (action.name == "output" || action.name == "mirror") {
        if (!ports.contains(action.arg)) {
          fail(no_such("port", action.arg, port_names, "no uplinks or vports are defined"));
        }
      } else if (action.name == "to_representor") {
        if (uplinks.contains(action.arg)) {
          fail(fmt::format("{} is an uplink and only vports have representors; {}", quoted(action.arg),
                           vport_names.empty() ? std::string("no vports are defined")
                                               : fmt::format("expected one of {}", fmt::join(vport_names, ", "))));
        } else if (!vports.contains(action.arg)) {
          fail(no_such("vport", action.arg, vport_names, "no vports are defined"));
        }
      } else if (action.name == "meter") {
        if (!meters.contains(action.arg) && !meter_name_failed) {
          fail(no_such("meter", action.arg, meter_names, "no meters are defined"));
        }
      } else if (action.name == "goto_table") {
        uint32_t target = 0;
        if (looks_like_integer(action.arg)) {
          std::from_chars(action.arg.data(), action.arg.data() + action.arg.size(), target);
        } else if (auto it = id_by_name.find(action.arg); it != id_by_name.end()) {
          target = it->second;
          action.arg = std::to_string(target);
        } else {
          if (!table_name_failed) fail(no_such("table", action.arg, declared_names, "no table has a name"));
          continue;
        }
        if (!declared.contains(target)) {
          fail(declared_ids.empty() ? fmt::format("table {} is not declared; no tables are declared", target)
                                    : fmt::format("table {} is not declared; declared tables: {}", target,
                                                  fmt::join(declared_ids, ", ")));
        } else if (own_table >= 0 && target <= own_table) {
          fail(fmt::format("goto_table {} from table {}: a rule can only go to a table with a higher id (no loops)",
                           target, own_table));
        }
      }
    }
  };

  for (size_t t = 0; t < config.tables.size(); ++t) {
    TableConfig& table = config.tables[t];
    const std::string base = index_path("tables", t);
    const int64_t own = diag.in_source(base + ".id") && diag.clean(base + ".id") ? int64_t{table.id} : -1;
    check_actions(table.miss, base + ".miss", own);
    for (size_t r = 0; r < table.rules.size(); ++r) {
      check_actions(table.rules[r].actions, rule_path(t, r) + ".actions", own);
    }
  }
}

void check_limits(const Config& config, Diagnostics& diag) {
  const size_t representors = config.representors.kind == RepresentorKind::kTap ? config.vports.size() : 0;
  const size_t ports = config.uplinks.size() + config.vports.size() + representors;
  if (ports > kMaxPorts) {
    diag.error_at(config.vports.empty() ? "uplinks" : "vports",
                  fmt::format("too many ports: {} uplink(s) + {} vport(s) + {} tap representor(s) = {}; at most {}{}",
                              config.uplinks.size(), config.vports.size(), representors, ports, kMaxPorts,
                              representors > 0 ? " (representors.kind: none saves one port per vport)" : ""));
  }
  size_t rules = 0;
  for (const TableConfig& table : config.tables) rules += table.rules.size();
  if (rules > config.dataplane.max_rules && diag.clean("dataplane.max_rules")) {
    diag.error_at("tables", fmt::format("{} rules, more than dataplane.max_rules ({}{})", rules,
                                        config.dataplane.max_rules,
                                        diag.in_source("dataplane.max_rules") ? "" : ", its default"));
  }
}

// VportConfig::locs: everything read under "vports[i].", by the rest of its path.
void record_vport_locs(Config& config, const Diagnostics& diag) {
  constexpr std::string_view kPrefix = "vports[";
  diag.for_each_recorded([&](const std::string& path, Loc loc) {
    if (!path.starts_with(kPrefix)) return;
    const size_t close = path.find(']');
    size_t index = 0;
    const auto [end, ec] = std::from_chars(path.data() + kPrefix.size(), path.data() + close, index);
    if (ec != std::errc() || end != path.data() + close || index >= config.vports.size()) return;
    if (close + 2 > path.size() || path[close + 1] != '.') return;
    config.vports[index].locs[path.substr(close + 2)] = loc;
  });
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
  assign_vport_ids(config, diag);
  check_spoofchk(config, diag);
  check_bindings(config, diag);
  check_meters(config, diag);
  check_pipeline(config, diag);
  check_tables(config, diag);
  check_limits(config, diag);
  record_vport_locs(config, diag);

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
