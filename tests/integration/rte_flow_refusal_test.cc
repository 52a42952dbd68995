// The rte_flow tier's refusal path on the virtual PMDs this machine has (dataplane/offload/rte_flow_rule.h): real
// EAL, real started ethdevs (net_ring, net_null). Neither implements rte_flow, so every translated rule must be
// refused by rte_flow_validate with the PMD's reason, leave nothing installed, and report no COUNT - the state in
// which the rule keeps running in software. (Creation on a NIC that accepts rules never ran here.)
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <rte_dev.h>

#include "common/ring_harness.h"
#include "dataplane/offload/rte_flow_rule.h"

namespace {

using namespace esw::dp;
using namespace esw::dp::offload;

uint16_t start_port(const std::string& name, rte_mempool* pool) {
  uint16_t pid = RTE_MAX_ETHPORTS;
  EXPECT_EQ(rte_eth_dev_get_port_by_name(name.c_str(), &pid), 0) << name;
  rte_eth_conf conf{};
  EXPECT_EQ(rte_eth_dev_configure(pid, 1, 1, &conf), 0);
  EXPECT_EQ(rte_eth_rx_queue_setup(pid, 0, 256, SOCKET_ID_ANY, nullptr, pool), 0);
  EXPECT_EQ(rte_eth_tx_queue_setup(pid, 0, 256, SOCKET_ID_ANY, nullptr), 0);
  EXPECT_EQ(rte_eth_dev_start(pid), 0);
  return pid;
}

void expect_refused(uint16_t pid, const char* pmd) {
  RuleSpec drop_rule;
  drop_rule.id = 1;
  drop_rule.value.eth_type = htons(0x0800);
  drop_rule.mask.eth_type = 0xffff;
  drop_rule.value.ipv4_src = htonl(0xc6120063);
  drop_rule.mask.ipv4_src = 0xffffffff;
  ActionList drop;
  drop.actions.push_back(Action{ActionType::kDrop});
  drop.has_fate = true;
  ActionList out;
  Action o{ActionType::kOutput};
  o.port = 1;
  out.actions.push_back(o);
  out.has_fate = true;
  for (const ActionList* a : {&drop, &out}) {
    RteFlowRule f;
    ASSERT_EQ(f.translate(drop_rule, *a, {}), "");
    InstalledFlow installed;
    const std::string why = offer_flow(pid, f, installed);
    EXPECT_NE(why.find("rte_flow_validate refused it"), std::string::npos) << pmd << ": '" << why << "'";
    EXPECT_EQ(installed.flow, nullptr) << pmd;
    uint64_t hits = 7, bytes = 7;
    EXPECT_FALSE(query_flow_count(installed, hits, bytes)) << pmd;
    destroy_flow(installed);  // nothing to destroy: must be harmless
    std::printf("%s refuses a %s rule: %s\n", pmd, flow_fate_name(f.fate()), why.c_str());
  }
}

TEST(RteFlowRefusal, VirtualPmdsRefuseAndNothingIsInstalled) {
  rte_mempool* pool = rte_pktmbuf_pool_create("rtef_pool", 2047, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  ASSERT_NE(pool, nullptr);
  {
    esw::test::RingPort ring("rtef");
    const uint16_t pid = start_port(ring.devname, pool);
    expect_refused(pid, "net_ring");
    rte_eth_dev_stop(pid);
    rte_eth_dev_close(pid);
  }
  ASSERT_EQ(rte_dev_probe("net_null_rtef"), 0);
  const uint16_t pid = start_port("net_null_rtef", pool);
  expect_refused(pid, "net_null");
  rte_eth_dev_stop(pid);
  rte_eth_dev_info info{};
  rte_device* dev = rte_eth_dev_info_get(pid, &info) == 0 ? info.device : nullptr;
  rte_eth_dev_close(pid);
  if (dev != nullptr) rte_dev_remove(dev);
  rte_mempool_free(pool);
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new esw::test::EalEnv("rtef"));
  return RUN_ALL_TESTS();
}
