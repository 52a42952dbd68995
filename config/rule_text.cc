#include <charconv>
#include <optional>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "config/formats.h"
#include "config/schema_limits.h"
#include "config/schema.h"

namespace esw::cfg::detail {

namespace {

// The one parser of the compact form, for both of its users: a string under tables[].rules (read_compact_rule)
// and the runtime `rules` method (parse_rule_text, which also takes "table=N": the YAML form's table is the
// mapping it is in). Every error is reported at `v` and names the item it is about.
bool parse_compact(const Value& v, const std::string& text, RuleConfig& out, uint32_t* table) {
  const size_t act = text.find("actions=");
  if (act == std::string::npos || (act != 0 && text[act - 1] != ' ' && text[act - 1] != ',')) {
    v.error("a rule written as a string needs an \"actions=\" part, e.g. \"in_port=vm1,ipv4 actions=output:vm2\"");
    return false;
  }
  // The comma-separated items of `s`, trimmed of spaces, empty ones left out (views into `text`: a 100k-rule
  // config has a million of them).
  auto items = [](std::string_view s) {
    std::vector<std::string_view> out;
    size_t pos = 0;
    while (pos <= s.size()) {
      size_t comma = s.find(',', pos);
      if (comma == std::string_view::npos) comma = s.size();
      std::string_view item = s.substr(pos, comma - pos);
      while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
      while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
      if (!item.empty()) out.push_back(item);
      pos = comma + 1;
    }
    return out;
  };
  // A decimal integer in 0..max, nothing else (no sign, no suffix, no spaces), as the mapping form's Integer.
  auto number = [&](std::string_view key, std::string_view value, int64_t max, uint32_t& n) {
    uint64_t parsed = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), parsed);
    if (value.empty() || ec != std::errc() || end != value.data() + value.size() ||
        parsed > static_cast<uint64_t>(max)) {
      v.error(fmt::format("{}={} is not an integer in 0..{}", key, quoted(value), max));
      return false;
    }
    n = static_cast<uint32_t>(parsed);
    return true;
  };
  bool ok = true;
  const std::string_view all(text);
  for (const std::string_view item : items(all.substr(0, act))) {
    const size_t eq = item.find('=');
    const std::string_view key = item.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
    if (key == "priority") {
      ok = number(key, value, kMaxPriority, out.priority) && ok;
    } else if (key == "table" && table != nullptr) {
      ok = number(key, value, kMaxTableId, *table) && ok;
    } else if (key == "name") {
      std::string name(value);
      if (std::optional<std::string> problem = check_identifier("rule")(name)) {
        v.error("name: " + *problem);
        ok = false;
      }
      out.name = std::move(name);
    } else {
      out.match.push_back({std::string(key), std::string(value), v.loc});
    }
  }
  int index = 0;
  for (const std::string_view item : items(all.substr(act + 8))) {
    const size_t colon = item.find(':');
    ActionConfig a;
    a.name = std::string(item.substr(0, colon));
    if (colon != std::string_view::npos) a.arg = std::string(item.substr(colon + 1));
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

}  // namespace

// The compact form of a rule, one string (OVS flow syntax), for big rule sets - yaml-cpp parses one scalar per
// rule several times faster than a mapping per rule:
//   "priority=10,name=web,in_port=vm1,ipv4_dst=198.18.0.0/24,tcp_dst=80 actions=count,output:uplink0"
// Match fields, values and action arguments are checked by the rule compiler (check_config), located at the
// string.
bool read_compact_rule(const Value& v, RuleConfig& out) { return parse_compact(v, v.node.Scalar(), out, nullptr); }

}  // namespace esw::cfg::detail

namespace esw::cfg {

bool parse_rule_text(std::string_view text, const std::string& path, RuleConfig& out, uint32_t& table,
                     std::vector<Error>& errors) {
  out = RuleConfig{};
  table = 0;
  detail::Diagnostics diag("<rule>");
  const std::string copy(text);
  const detail::Value v{{}, path, Loc{}, &diag};
  const bool ok = detail::parse_compact(v, copy, out, &table);
  const bool clean = ok && !diag.has_errors();
  for (Error& e : diag.take_in_file_order()) errors.push_back(std::move(e));
  return clean;
}

}  // namespace esw::cfg
