#pragma once
// Test helper for the offload tiers' unit tests (rte_flow_rule_test, xdp_tier_test): classifier rules and action
// lists built by hand, as the rule compiler would hand them to dataplane/offload/*.

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

#include "dataplane/fastpath/action_types.h"
#include "dataplane/fastpath/classifier.h"

namespace esw::test {

inline dp::RuleSpec rule_spec(uint32_t id, uint32_t priority) {
  dp::RuleSpec r;
  r.id = id;
  r.priority = priority;
  return r;
}

inline dp::ActionList drop_list() {
  dp::ActionList a;
  a.actions.push_back(dp::Action{dp::ActionType::kDrop});
  a.has_fate = true;
  return a;
}

// `output: port`, with `count` after it when asked.
inline dp::ActionList output_list(uint16_t port, bool count = false) {
  dp::ActionList a;
  dp::Action o{dp::ActionType::kOutput};
  o.port = port;
  a.actions.push_back(o);
  if (count) {
    a.actions.push_back(dp::Action{dp::ActionType::kCount});
    a.has_count = true;
  }
  a.has_fate = true;
  return a;
}

// eth_type IPv6, exact.
inline void match_ipv6(dp::RuleSpec& r) {
  r.value.eth_type = htons(0x86dd);
  r.mask.eth_type = 0xffff;
}

// An IPv6 prefix into a rule's value / mask (16 bytes each).
inline void set_prefix6(uint8_t* v, uint8_t* m, const char* addr, int len) {
  ASSERT_EQ(inet_pton(AF_INET6, addr, v), 1) << addr;
  std::memset(m, 0, 16);
  for (int i = 0; i < len; ++i) m[i / 8] |= static_cast<uint8_t>(0x80 >> (i % 8));
}

}  // namespace esw::test
