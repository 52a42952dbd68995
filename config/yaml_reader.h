#pragma once
// The loader's YAML reading kit (internal to config/): located errors (Diagnostics), a YAML node with its path
// (Value), value parsers - callables `bool(const Value&, T& out)` that report their own errors at the value
// (Integer, Text, CheckedText, OneOf, ListOf, Bool, Integer64, Rate) - and MapReader, which reads one mapping
// and rejects unknown keys. A section of the schema (config/schema.h) is built from these pieces.

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "config/config.h"
#include "config/schema_limits.h"
#include "config/yaml_doc.h"
#include "config/suggest.h"

namespace esw::cfg::detail {

// ---- locations, paths, diagnostics ----

Loc to_loc(const YAML::Mark& mark);
bool before(Loc a, Loc b);  // in file order
std::string child_path(std::string_view parent, std::string_view key);
std::string index_path(std::string_view parent, size_t index);
// User text in a message: quoted and escaped, cut after kMaxShownLen characters.
std::string quoted(std::string_view text);

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
  // Room for `more` records (a list of 100k rules would rehash the map many times over).
  void reserve_records(size_t more) { where_.reserve(where_.size() + more); }
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
  bool none_failed() const { return failed_.empty(); }  // clean() of every path (no need to format one)

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
  Node node;
  std::string path;
  Loc loc;
  Diagnostics* diag;

  void error(std::string message) const { diag->error(path, loc, std::move(message)); }

  Value child(std::string child_at, const Node& child_node, Loc child_loc) const {
    diag->record(child_at, child_loc);
    return Value{child_node, std::move(child_at), child_loc, diag};
  }
};

bool is_plain(const Node& node);  // unquoted and untagged
bool looks_like_integer(std::string_view text);

// What the user wrote, for "expected X, got Y".
std::string describe(const Node& node);

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
    if (items.size() >= 1024) v.diag->reserve_records(items.size());
    bool ok = true;
    size_t i = 0;
    for (auto it = v.node.begin(); it != v.node.end(); ++it, ++i) {
      const Node item = *it;
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

bool all_digits(std::string_view text);

// "1000", "10G", "1.5G", "100M", "64k" (SI: k = 1000) -> bits/s. Nothing if malformed, overflowing or not a whole
// number of bits/s.
std::optional<uint64_t> parse_rate(std::string_view text);

// The shortest exact spelling parse_rate() reads back: 10000000000 -> "10G", 1500000 -> "1500k".
std::string format_rate(uint64_t bps);

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

// The keys of one mapping so far, for "duplicate key": linear in the mapping's size (a scan while it is small, a
// hash set beyond). insert() returns 0 for a new key, else the line of its first occurrence.
class FirstSeen {
 public:
  static constexpr size_t kSmall = 16;
  explicit FirstSeen(size_t expected) {
    if (expected > kSmall) index_.reserve(expected);
  }
  int insert(const std::string& key, int line) {
    if (index_.empty() && keys_.size() < kSmall) {
      for (const auto& [k, l] : keys_) {
        if (k == key) return l;
      }
      keys_.emplace_back(key, line);
      return 0;
    }
    if (index_.empty()) {
      for (const auto& [k, l] : keys_) index_.emplace(k, l);
    }
    auto [it, inserted] = index_.emplace(key, line);
    return inserted ? 0 : it->second;
  }

 private:
  std::vector<std::pair<std::string, int>> keys_;
  std::unordered_map<std::string, int> index_;
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
  FirstSeen seen(v.node.size());
  for (auto it = v.node.begin(); it != v.node.end(); ++it) {
    const Node key = it->first;
    const Loc key_loc = to_loc(key.Mark());
    if (!key.IsScalar() || key.Scalar().empty()) {
      v.diag->error(v.path, key_loc, fmt::format("expected a field name, got {}", describe(key)));
      ok = false;
      continue;
    }
    if (const int first_line = seen.insert(key.Scalar(), key_loc.line); first_line != 0) {
      v.diag->error(child_path(v.path, key.Scalar()), key_loc,
                    fmt::format("duplicate key {}; first on line {}", quoted(key.Scalar()), first_line));
      ok = false;
      continue;
    }
    const Node value = it->second;
    const Loc loc = value.IsNull() ? key_loc : to_loc(value.Mark());
    ok = visit(key.Scalar(), v.child(child_path(v.path, key.Scalar()), value, loc)) && ok;
  }
  return ok;
}

template <typename T>
struct IsOptional : std::false_type {};
template <typename T>
struct IsOptional<std::optional<T>> : std::true_type {};

// Reads one YAML mapping. Each optional()/required() call names a valid key and reads its value with a parser;
// finish() then rejects every key no call asked for, listing the valid ones. A missing or null mapping reads as
// empty, so that defaults apply.
class MapReader {
 public:
  explicit MapReader(const Value& map) : map_(map), seen_(map.node.size()) {
    if (map.node.IsNull()) return;
    if (!map.node.IsMap()) {
      map.error(fmt::format("expected a mapping, got {}", describe(map.node)));
      is_map_ = false;
      return;
    }
    for (auto it = map.node.begin(); it != map.node.end(); ++it) {
      const Node key = it->first;
      const Loc key_loc = to_loc(key.Mark());
      if (!key.IsScalar()) {
        map.diag->error(map.path, key_loc, fmt::format("expected a key name, got {}", describe(key)));
        continue;
      }
      if (const int first_line = seen_.insert(key.Scalar(), key_loc.line); first_line != 0) {
        map.diag->error(child_path(map.path, key.Scalar()), key_loc,
                        fmt::format("duplicate key {}; first on line {}", quoted(key.Scalar()), first_line));
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
    Node value;
    bool claimed = false;
  };

  Entry* claim(std::string_view key) {
    valid_.push_back(key);
    // Keys are unique in entries_ (repeats were rejected) and claims are few (the schema's keys): a linear scan
    // while the mapping is small, an index once it is not (100k unknown keys must not cost 100k x claims).
    if (entries_.size() > FirstSeen::kSmall) {
      if (by_key_.empty()) {
        by_key_.reserve(entries_.size());
        for (size_t i = 0; i < entries_.size(); ++i) by_key_.emplace(entries_[i].key, i);
      }
      auto it = by_key_.find(key);
      if (it == by_key_.end()) return nullptr;
      entries_[it->second].claimed = true;
      return &entries_[it->second];
    }
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
  FirstSeen seen_;
  std::unordered_map<std::string_view, size_t> by_key_;  // into entries_ (not resized after the constructor)
  std::vector<std::string_view> valid_;
};

template <typename Fill>
bool read_map(const Value& v, Fill&& fill) {
  MapReader reader(v);
  if (!reader.is_map()) return false;
  fill(reader);
  return reader.finish();
}

}  // namespace esw::cfg::detail
