#pragma once
// vdpa/: what the daemon needs from this folder — the port kinds it registers and how a vport's
// `attach.vhost_user` becomes the devargs of its port (dataplane/daemon/switch.cc plans ports with them).

#include <string>

#include "config/config.h"

namespace esw::vdpa {

// Registers the "vhost_user" port kind with the port layer. Idempotent.
void register_port_kinds();

// The canonical devargs of a vhost-user port: "socket=/abs/path,mode=server|client,queues=N".
std::string vhost_user_devargs(const cfg::VhostUserAttachment& a);

}  // namespace esw::vdpa
