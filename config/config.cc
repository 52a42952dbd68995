#include "config/config.h"
#include "config/text_escape.h"

#include <fmt/format.h>

namespace esw::cfg {

std::string text_hash(std::string_view text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return fmt::format("{:016x}", h);
}

std::string Error::to_string() const {
  // Paths and messages echo user text (keys, values): never a raw control character to a terminal.
  std::string out = escape_control(path.empty() ? message : fmt::format("{}: {}", path, message));
  if (line > 0) out += fmt::format(" (line {}, col {})", line, column);
  return out;
}

const char* to_string(HugepageMode mode) {
  switch (mode) {
    case HugepageMode::kAuto: return "auto";
    case HugepageMode::kOn: return "on";
    case HugepageMode::kOff: return "off";
  }
  return "?";
}

const char* to_string(PipelineMode mode) {
  switch (mode) {
    case PipelineMode::kL2: return "l2";
    case PipelineMode::kCrossConnect: return "cross_connect";
  }
  return "?";
}

const char* to_string(Flavour flavour) {
  switch (flavour) {
    case Flavour::kVf: return "vf";
    case Flavour::kSf: return "sf";
  }
  return "?";
}

const char* to_string(VportState state) {
  switch (state) {
    case VportState::kActive: return "active";
    case VportState::kInactive: return "inactive";
  }
  return "?";
}

const char* to_string(SmcPolicy policy) {
  switch (policy) {
    case SmcPolicy::kAllow: return "allow";
    case SmcPolicy::kDeny: return "deny";
  }
  return "?";
}

const char* to_string(RepresentorKind kind) {
  switch (kind) {
    case RepresentorKind::kTap: return "tap";
    case RepresentorKind::kNone: return "none";
  }
  return "?";
}

std::string rule_path(size_t table_index, size_t rule_index) {
  return fmt::format("tables[{}].rules[{}]", table_index, rule_index);
}

std::string match_path(const std::string& rule_path, const MatchItem& item) {
  return fmt::format("{}.match.{}", rule_path, item.field);
}

// Mirrors how the loader reads an action item: a bare name is the item itself, a one-key mapping is read at its
// key, and set_field/set_register one level further down, at the field.
std::string action_path(const std::string& list_path, const ActionConfig& action) {
  std::string path = action.index >= 0 ? fmt::format("{}[{}]", list_path, action.index) : list_path;
  if (action.arg.empty()) return path;
  path += "." + action.name;
  if (action.name == "set_field" || action.name == "set_register") {
    path += "." + action.arg.substr(0, action.arg.find('='));
  }
  return path;
}

}  // namespace esw::cfg
