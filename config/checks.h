#pragma once
// Pass 2 of the loader (internal to config/): the cross-field checks (duplicate names, MACs, devices and cores;
// addresses bound to two vports; references to ports, meters and tables; mode rules; limits). Assigns omitted
// vport ids and resolves goto_table by name on the way.

#include "config/config.h"
#include "config/yaml_reader.h"

namespace esw::cfg::detail {

void check_model(Config& config, Diagnostics& diag);

}  // namespace esw::cfg::detail
