// Meter run-time state (rte_meter): built by each worker for the profiles of its pipeline snapshot. The rule
// compiler checks profiles without DPDK (dataplane/rules/ruleset.h: meter_profile_valid); actions_test checks
// that both agree.
#include "dataplane/fastpath/action_types.h"

namespace esw::dp {

bool init_meter(const MeterProfile& p, MeterRuntime& rt) noexcept {
  rt.tr_tcm = p.tr_tcm;
  rt.configured = false;
  if (p.tr_tcm) {
    rte_meter_trtcm_params params{p.cir, p.pir, p.cbs, p.ebs_or_pbs};
    if (rte_meter_trtcm_profile_config(&rt.tr_profile, &params) != 0) return false;
    if (rte_meter_trtcm_config(&rt.tr, &rt.tr_profile) != 0) return false;
  } else {
    rte_meter_srtcm_params params{p.cir, p.cbs, p.ebs_or_pbs};
    if (rte_meter_srtcm_profile_config(&rt.sr_profile, &params) != 0) return false;
    if (rte_meter_srtcm_config(&rt.sr, &rt.sr_profile) != 0) return false;
  }
  rt.configured = true;
  return true;
}

}  // namespace esw::dp
