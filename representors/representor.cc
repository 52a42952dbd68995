#include "representors/representor.h"

#include "dataplane/ports/port.h"
#include "representors/tap.h"

namespace esw::rep {

std::string representor_name(const std::string& vport) { return "rep-" + vport; }

std::optional<RepresentorPlan> plan_representor(const cfg::RepresentorConfig& config, const cfg::VportConfig& vport) {
  switch (config.kind) {
    case cfg::RepresentorKind::kTap: {
      const std::string name = representor_name(vport.name);
      return RepresentorPlan{name, "tap", name};
    }
    case cfg::RepresentorKind::kNone: break;
  }
  return std::nullopt;
}

void register_port_kinds() {
  dp::register_port_kind("tap", [] { return std::unique_ptr<dp::Port>(new TapRepresentor); });
}

}  // namespace esw::rep
