#include "dataplane/offload/rte_flow_rule.h"

#include <netinet/in.h>
#include <rte_errno.h>

#include <cstring>

#include <fmt/format.h>

#include "dataplane/fastpath/bytes.h"

namespace esw::dp::offload {
namespace {

// Key fields no rte_flow item here expresses: a rule that masks any of them is refused, naming the field.
std::string unsupported_field(const FlowKey& m) {
  if (m.vlan_tci[1] != 0) return "inner VLAN";
  if (m.ip_tos != 0) return "ip_tos/dscp/ecn";
  if (m.ip_ttl != 0) return "ip_ttl";
  if (m.ip_frag != 0) return "ip_frag";
  if (m.tcp_flags != 0) return "tcp_flags";
  if (m.smc_option != 0) return "smc_option";
  if (!all_zero(m.nd_target, sizeof m.nd_target)) return "nd_target";
  if (!all_zero(m.arp_sha, sizeof m.arp_sha) || !all_zero(m.arp_tha, sizeof m.arp_tha)) {
    return "arp_sha/arp_tha (nd_sll/tll)";
  }
  if (m.tun_id != 0) return "tun_id";
  if (m.roce_dqp != 0) return "roce_dqp";
  if (m.flags != 0) return "parser flags";
  if (!all_zero(m.regs, sizeof m.regs)) return "registers";
  return "";
}

// The TCP or UDP item (their headers name the ports alike): only the ports, from the key's value and mask.
template <typename Item>
void l4_ports_item(Item& spec, Item& mask, const FlowKey& v, const FlowKey& m) {
  spec = {};
  mask = {};
  spec.hdr.src_port = v.tp_src;
  mask.hdr.src_port = m.tp_src;
  spec.hdr.dst_port = v.tp_dst;
  mask.hdr.dst_port = m.tp_dst;
}

}  // namespace

const char* flow_fate_name(FlowFate f) {
  switch (f) {
    case FlowFate::kDrop: return "drop";
    case FlowFate::kMark: return "mark";
    case FlowFate::kTransfer: return "transfer";
  }
  return "?";
}

std::string RteFlowRule::translate(const RuleSpec& r, const ActionList& al, const FlowOptions& opt) {
  pattern_.clear();
  actions_.clear();
  attr_ = rte_flow_attr{};
  const FlowKey& v = r.value;
  const FlowKey& m = r.mask;
  if (r.table != 0 || r.goto_table != kNoTable) return "rule is in a table other than 0 or jumps (goto)";
  if (r.rewrite != nullptr) return "rule rewrites the key (set_register)";
  if (std::string f = unsupported_field(m); !f.empty()) return fmt::format("matches {}, which rte_flow here cannot", f);
  if (al.modifies || al.has_mirror || al.has_meter) return "actions modify, mirror or meter packets";
  if (!al.has_fate) return "no fate action (drop/output)";

  // Actions: the fate first decides whether this is a transfer rule.
  const Action* fate = nullptr;
  int fates = 0;
  for (const Action& a : al.actions) {
    if (a.type == ActionType::kDrop || a.type == ActionType::kOutput || a.type == ActionType::kToRepresentor) {
      fate = &a;
      ++fates;
    }
  }
  if (fates != 1) return "more than one fate action (flood or several outputs)";
  uint16_t out_ethdev = UINT16_MAX;
  if (fate->type == ActionType::kDrop) {
    fate_ = FlowFate::kDrop;
  } else if (opt.transfer && fate->type == ActionType::kOutput) {
    if (fate->port >= opt.ethdev_of.size() || opt.ethdev_of[fate->port] == UINT16_MAX) {
      return "output port has no ethdev to represent";
    }
    out_ethdev = opt.ethdev_of[fate->port];
    fate_ = FlowFate::kTransfer;
  } else {
    fate_ = FlowFate::kMark;
  }
  attr_.ingress = fate_ == FlowFate::kTransfer ? 0 : 1;
  attr_.transfer = fate_ == FlowFate::kTransfer ? 1 : 0;
  // Higher eswitch priority wins; rte_flow: lower value wins. Groups and priority levels are PMD-limited:
  // every offloaded rule goes to group 0, priority 0 (offload is only offered for rules nothing above overlaps).
  attr_.group = 0;
  attr_.priority = 0;

  // Pattern.
  if (m.in_port != 0) {
    if (fate_ == FlowFate::kTransfer) {
      if (v.in_port >= opt.ethdev_of.size() || opt.ethdev_of[v.in_port] == UINT16_MAX) {
        return "in_port has no ethdev to represent";
      }
      in_port_.port_id = opt.ethdev_of[v.in_port];
      in_port_mask_.port_id = 0xffff;
      pattern_.push_back({RTE_FLOW_ITEM_TYPE_REPRESENTED_PORT, &in_port_, nullptr, &in_port_mask_});
    }
    // Ingress rules: the caller offers the rule to in_port's own ethdev only.
  }
  eth_ = {};
  eth_mask_ = {};
  std::memcpy(eth_.hdr.dst_addr.addr_bytes, v.eth_dst, 6);
  std::memcpy(eth_mask_.hdr.dst_addr.addr_bytes, m.eth_dst, 6);
  std::memcpy(eth_.hdr.src_addr.addr_bytes, v.eth_src, 6);
  std::memcpy(eth_mask_.hdr.src_addr.addr_bytes, m.eth_src, 6);
  const bool vlan = m.vlan_tci[0] != 0;
  // FlowKey.eth_type is the innermost ethertype: the ETH item's type only when no tag is matched (then the
  // frame is required untagged: has_vlan 0 under a set mask, so a tagged frame stays with software).
  if (!vlan) {
    eth_.hdr.ether_type = v.eth_type;
    eth_mask_.hdr.ether_type = m.eth_type;
    eth_.has_vlan = 0;
    eth_mask_.has_vlan = 1;
  } else {
    eth_.has_vlan = 1;
    eth_mask_.has_vlan = 1;
  }
  pattern_.push_back({RTE_FLOW_ITEM_TYPE_ETH, &eth_, nullptr, &eth_mask_});
  if (vlan) {
    vlan_ = {};
    vlan_mask_ = {};
    // kVlanPresentHost (the CFI bit) marks "tag present" in the key, not a wire bit: match the PCP/VID bits.
    const uint16_t present_be = rte_cpu_to_be_16(kVlanPresentHost);
    vlan_.hdr.vlan_tci = static_cast<rte_be16_t>(v.vlan_tci[0] & ~present_be);
    vlan_mask_.hdr.vlan_tci = static_cast<rte_be16_t>(m.vlan_tci[0] & ~present_be);
    vlan_.hdr.eth_proto = v.eth_type;
    vlan_mask_.hdr.eth_proto = m.eth_type;
    vlan_.has_more_vlan = 0;
    vlan_mask_.has_more_vlan = 1;
    if ((v.vlan_tci[0] & present_be) == 0) return "matches the absence of a VLAN tag together with its bits";
    pattern_.push_back({RTE_FLOW_ITEM_TYPE_VLAN, &vlan_, nullptr, &vlan_mask_});
  }

  const uint16_t et = m.eth_type == 0xffff ? rte_be_to_cpu_16(v.eth_type) : 0;
  const bool l3_fields = m.ipv4_src != 0 || m.ipv4_dst != 0 || m.ip_proto != 0 || !all_zero(m.ipv6_src, 16) ||
                         !all_zero(m.ipv6_dst, 16) || m.tp_src != 0 || m.tp_dst != 0;
  uint8_t proto = 0;
  bool proto_exact = false;
  if (et == RTE_ETHER_TYPE_IPV4) {
    ip4_ = {};
    ip4_mask_ = {};
    if (!all_zero(m.ipv6_src, 16) || !all_zero(m.ipv6_dst, 16)) return "IPv6 addresses on an IPv4 rule";
    ip4_.hdr.src_addr = v.ipv4_src;
    ip4_mask_.hdr.src_addr = m.ipv4_src;
    ip4_.hdr.dst_addr = v.ipv4_dst;
    ip4_mask_.hdr.dst_addr = m.ipv4_dst;
    ip4_.hdr.next_proto_id = v.ip_proto;
    ip4_mask_.hdr.next_proto_id = m.ip_proto;
    pattern_.push_back({RTE_FLOW_ITEM_TYPE_IPV4, &ip4_, nullptr, &ip4_mask_});
    proto = v.ip_proto;
    proto_exact = m.ip_proto == 0xff;
  } else if (et == RTE_ETHER_TYPE_IPV6) {
    ip6_ = {};
    ip6_mask_ = {};
    if (m.ipv4_src != 0 || m.ipv4_dst != 0) return "IPv4 addresses on an IPv6 rule";
    std::memcpy(ip6_.hdr.src_addr, v.ipv6_src, 16);
    std::memcpy(ip6_mask_.hdr.src_addr, m.ipv6_src, 16);
    std::memcpy(ip6_.hdr.dst_addr, v.ipv6_dst, 16);
    std::memcpy(ip6_mask_.hdr.dst_addr, m.ipv6_dst, 16);
    // FlowKey.ip_proto is the final next header (after extension headers); the IPv6 item's proto is the first.
    // They agree only without extension headers: require none when the protocol is matched.
    ip6_.hdr.proto = v.ip_proto;
    ip6_mask_.hdr.proto = m.ip_proto;
    if (m.ip_proto != 0) {
      ip6_mask_.has_hop_ext = ip6_mask_.has_route_ext = ip6_mask_.has_frag_ext = 1;
      ip6_mask_.has_auth_ext = ip6_mask_.has_esp_ext = ip6_mask_.has_dest_ext = 1;
    }
    pattern_.push_back({RTE_FLOW_ITEM_TYPE_IPV6, &ip6_, nullptr, &ip6_mask_});
    proto = v.ip_proto;
    proto_exact = m.ip_proto == 0xff;
  } else if (l3_fields) {
    return m.eth_type == 0xffff && et == RTE_ETHER_TYPE_ARP ? "matches ARP fields"
                                                            : "matches IP fields without an exact IPv4/IPv6 ethertype";
  }
  if (m.tp_src != 0 || m.tp_dst != 0) {
    if (!proto_exact || (proto != IPPROTO_TCP && proto != IPPROTO_UDP)) {
      return "matches L4 ports (or ICMP type/code) without an exact TCP or UDP protocol";
    }
    if (proto == IPPROTO_TCP) {
      l4_ports_item(tcp_, tcp_mask_, v, m);
      pattern_.push_back({RTE_FLOW_ITEM_TYPE_TCP, &tcp_, nullptr, &tcp_mask_});
    } else {
      l4_ports_item(udp_, udp_mask_, v, m);
      pattern_.push_back({RTE_FLOW_ITEM_TYPE_UDP, &udp_, nullptr, &udp_mask_});
    }
  }
  pattern_.push_back({RTE_FLOW_ITEM_TYPE_END, nullptr, nullptr, nullptr});

  // Actions.
  count_ = {};
  actions_.push_back({RTE_FLOW_ACTION_TYPE_COUNT, &count_});
  switch (fate_) {
    case FlowFate::kDrop:
      actions_.push_back({RTE_FLOW_ACTION_TYPE_DROP, nullptr});
      break;
    case FlowFate::kTransfer:
      out_port_.port_id = out_ethdev;
      actions_.push_back({RTE_FLOW_ACTION_TYPE_REPRESENTED_PORT, &out_port_});
      break;
    case FlowFate::kMark:
      mark_.id = r.id;
      actions_.push_back({RTE_FLOW_ACTION_TYPE_MARK, &mark_});
      if (opt.nb_rx_queues <= 1) {
        queue_.index = 0;
        actions_.push_back({RTE_FLOW_ACTION_TYPE_QUEUE, &queue_});
      } else {
        rss_queues_.clear();
        for (uint16_t q = 0; q < opt.nb_rx_queues; ++q) rss_queues_.push_back(q);
        rss_ = {};
        rss_.func = RTE_ETH_HASH_FUNCTION_DEFAULT;
        rss_.types = RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;
        rss_.queue_num = static_cast<uint32_t>(rss_queues_.size());
        rss_.queue = rss_queues_.data();
        actions_.push_back({RTE_FLOW_ACTION_TYPE_RSS, &rss_});
      }
      break;
  }
  actions_.push_back({RTE_FLOW_ACTION_TYPE_END, nullptr});
  return "";
}

bool rules_overlap(const RuleSpec& a, const RuleSpec& b) {
  if (a.table != b.table) return false;
  const KeyWord* av = key_words(a.value);
  const KeyWord* am = key_words(a.mask);
  const KeyWord* bv = key_words(b.value);
  const KeyWord* bm = key_words(b.mask);
  for (size_t i = 0; i < kFlowKeyWords; ++i) {
    if (((av[i] ^ bv[i]) & am[i] & bm[i]) != 0) return false;
  }
  return true;
}

std::string offer_flow(uint16_t port_id, const RteFlowRule& rule, InstalledFlow& out) {
  rte_flow_error err{};
  auto cause = [&](int rc) {
    if (err.message != nullptr) return std::string(err.message);
    return std::string(rte_strerror(rc < 0 ? -rc : rc));
  };
  int rc = rte_flow_validate(port_id, &rule.attr(), rule.pattern().data(), rule.actions().data(), &err);
  if (rc != 0) return fmt::format("rte_flow_validate refused it: {}", cause(rc));
  err = {};
  rte_flow* f = rte_flow_create(port_id, &rule.attr(), rule.pattern().data(), rule.actions().data(), &err);
  if (f == nullptr) return fmt::format("rte_flow_create failed: {}", cause(rte_errno));
  out.port_id = port_id;
  out.flow = f;
  return "";
}

bool query_flow_count(const InstalledFlow& f, uint64_t& hits, uint64_t& bytes) {
  if (f.flow == nullptr) return false;
  rte_flow_query_count q{};
  const rte_flow_action count[] = {{RTE_FLOW_ACTION_TYPE_COUNT, nullptr}, {RTE_FLOW_ACTION_TYPE_END, nullptr}};
  rte_flow_error err{};
  if (rte_flow_query(f.port_id, f.flow, count, &q, &err) != 0) return false;
  hits = q.hits_set ? q.hits : 0;
  bytes = q.bytes_set ? q.bytes : 0;
  return q.hits_set != 0;
}

void destroy_flow(InstalledFlow& f) noexcept {
  if (f.flow == nullptr) return;
  rte_flow_error err{};
  rte_flow_destroy(f.port_id, f.flow, &err);
  f.flow = nullptr;
}

}  // namespace esw::dp::offload
