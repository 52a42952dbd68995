#include "dataplane/fastpath/action_types.h"

namespace esw::dp {

const char* action_name(ActionType t) noexcept {
  switch (t) {
    case ActionType::kOutput: return "output";
    case ActionType::kToRepresentor: return "to_representor";
    case ActionType::kDrop: return "drop";
    case ActionType::kMirror: return "mirror";
    case ActionType::kCount: return "count";
    case ActionType::kMeter: return "meter";
    case ActionType::kSetEthSrc: return "set_field:eth_src";
    case ActionType::kSetEthDst: return "set_field:eth_dst";
    case ActionType::kSetIpv4Src: return "set_field:ipv4_src";
    case ActionType::kSetIpv4Dst: return "set_field:ipv4_dst";
    case ActionType::kSetIpv6Src: return "set_field:ipv6_src";
    case ActionType::kSetIpv6Dst: return "set_field:ipv6_dst";
    case ActionType::kSetTpSrc: return "set_field:tp_src";
    case ActionType::kSetTpDst: return "set_field:tp_dst";
    case ActionType::kSetVlanVid: return "set_field:vlan_vid";
    case ActionType::kSetVlanPcp: return "set_field:vlan_pcp";
    case ActionType::kSetDscp: return "set_field:dscp";
    case ActionType::kSetEcn: return "set_field:ecn";
    case ActionType::kSetTtl: return "set_field:ttl";
    case ActionType::kDecTtl: return "dec_ttl";
    case ActionType::kPushVlan: return "push_vlan";
    case ActionType::kPopVlan: return "pop_vlan";
    case ActionType::kSetRegister: return "set_register";
  }
  return "?";
}

bool action_modifies_packet(ActionType t) noexcept {
  switch (t) {
    case ActionType::kOutput:
    case ActionType::kToRepresentor:
    case ActionType::kDrop:
    case ActionType::kMirror:
    case ActionType::kCount:
    case ActionType::kMeter:
    case ActionType::kSetRegister: return false;
    default: return true;
  }
}

}  // namespace esw::dp
