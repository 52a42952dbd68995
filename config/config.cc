#include "config/config.h"

#include <fmt/format.h>

namespace esw::cfg {

std::string Error::to_string() const {
  std::string out = path.empty() ? message : fmt::format("{}: {}", path, message);
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

}  // namespace esw::cfg
