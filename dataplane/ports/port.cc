#include "dataplane/ports/port.h"

#include <map>

#include <fmt/format.h>

#include "dataplane/error.h"
#include "dataplane/ports/ethdev.h"

namespace esw::dp {

const char* port_role_name(PortRole r) {
  switch (r) {
    case PortRole::kUplink: return "uplink";
    case PortRole::kVport: return "vport";
    case PortRole::kRepresentor: return "representor";
  }
  return "?";
}

namespace {
std::map<std::string, PortFactory>& kinds() {
  static std::map<std::string, PortFactory> k{{"ethdev", [] { return std::unique_ptr<Port>(new EthdevPort); }}};
  return k;
}
}  // namespace

void register_port_kind(const std::string& kind, PortFactory factory) { kinds()[kind] = factory; }

std::unique_ptr<Port> make_port(const std::string& kind) {
  auto it = kinds().find(kind);
  if (it == kinds().end()) throw Error(fmt::format("unknown port kind '{}'", kind));
  return it->second();
}

}  // namespace esw::dp
