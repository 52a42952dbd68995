#include <cstdlib>

#include "config/schema_limits.h"
#include "config/schema.h"

namespace esw::cfg::detail {

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

}  // namespace esw::cfg::detail
