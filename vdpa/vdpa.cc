#include "vdpa/vdpa.h"

#include "vdpa/vhost_port.h"

namespace esw::vdpa {

void register_port_kinds() {
  dp::register_port_kind("vhost_user", [] { return std::unique_ptr<dp::Port>(new VhostUserPort); });
}

std::string vhost_user_devargs(const cfg::VhostUserAttachment& a) {
  return format_vhost_user_args({a.socket, a.client, a.queues, a.vdpa_device, a.mtu});
}

}  // namespace esw::vdpa
