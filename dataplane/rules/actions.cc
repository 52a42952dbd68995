#include "dataplane/rules/actions.h"

#include <bit>
#include <charconv>
#include <cstring>

#include <fmt/format.h>

#include "config/net_text.h"
#include "dataplane/fastpath/proto.h"

namespace esw::dp {

bool parse_action_text(std::string_view text, std::vector<ActionItem>& out, std::string& error) {
  out.clear();
  size_t pos = 0, index = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view item = text.substr(pos, comma - pos);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.empty()) {
      error = fmt::format("actions[{}]: empty action", index);
      return false;
    }
    const size_t colon = item.find(':');
    ActionItem a;
    a.name = std::string(item.substr(0, colon));
    if (colon != std::string_view::npos) a.arg = std::string(item.substr(colon + 1));
    out.push_back(std::move(a));
    pos = comma + 1;
    ++index;
  }
  return true;
}

namespace {

std::string list_bytes(const ActionList& l) {
  std::string k(reinterpret_cast<const char*>(l.actions.data()), l.actions.size() * sizeof(Action));
  return k;
}

bool parse_uint(std::string_view s, uint64_t max, uint64_t& out) {
  int base = 10;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    s.remove_prefix(2);
    base = 16;
  }
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return ec == std::errc() && p == s.data() + s.size() && out <= max;
}

// The integer a field covers in a FlowKey, host order (vid, pcp, dscp, ...).
uint32_t field_int(const FieldDef& f, const FlowKey& k) {
  if (f.width > 4) return 0;  // MACs and IPv6 addresses are bytes, not integers
  const auto* b = reinterpret_cast<const uint8_t*>(&k) + f.offset;
  uint32_t v = 0;
  for (unsigned i = 0; i < f.width; ++i) v = f.big_endian ? (v << 8 | b[i]) : (v | uint32_t(b[i]) << (8 * i));
  return f.bits == 0 ? v : (v & f.bits) >> std::countr_zero(f.bits);
}

void merge_rewrite(KeyRewrite& rw, const MaskedKey& exact) {
  uint64_t* v = key_words(rw.value);
  uint64_t* m = key_words(rw.mask);
  const uint64_t* ev = key_words(exact.value);
  const uint64_t* em = key_words(exact.mask);
  for (size_t i = 0; i < kFlowKeyWords; ++i) {
    v[i] = (v[i] & ~em[i]) | ev[i];
    m[i] |= em[i];
  }
}

void set_tci_rewrite(KeyRewrite& rw, uint16_t tci_host) {
  rw.value.vlan_tci[0] = to_be16(tci_host);
  rw.mask.vlan_tci[0] = 0xffff;
}

}  // namespace

const ActionList* ActionInterner::intern(ActionList list) {
  std::string key = list_bytes(list);
  auto it = lists_.find(key);
  if (it != lists_.end()) return it->second.get();
  auto owned = std::make_unique<ActionList>(std::move(list));
  const ActionList* p = owned.get();
  lists_.emplace(std::move(key), std::move(owned));
  return p;
}

bool compile_actions(const std::vector<ActionItem>& items, const ActionContext& ctx, CompiledActions& out,
                     std::string& error) {
  out = CompiledActions{};
  ActionList& list = out.list;
  list.actions.reserve(items.size());
  static const PortNames kNoNames;
  const PortNames& names = ctx.ports != nullptr ? *ctx.ports : kNoNames;

  for (size_t i = 0; i < items.size(); ++i) {
    const ActionItem& it = items[i];
    auto fail = [&](const std::string& why) {
      error = fmt::format("actions[{}] ({}{}{}): {}", i, it.name, it.arg.empty() ? "" : ": ", it.arg, why);
      return false;
    };
    auto need_arg = [&](bool want) {
      if (want && it.arg.empty()) return fail("needs an argument");
      if (!want && !it.arg.empty()) return fail("takes no argument");
      return true;
    };
    auto port_arg = [&](uint16_t& port) {
      std::optional<uint16_t> p;
      if (names.index_of) p = names.index_of(it.arg);
      uint64_t n = 0;
      if (!p && parse_uint(it.arg, 0xfffe, n)) p = static_cast<uint16_t>(n);
      if (!p || *p >= ctx.nb_ports) return fail(fmt::format("unknown port '{}'", it.arg));
      port = *p;
      return true;
    };
    if (out.goto_table != kNoTable) return fail("nothing may follow goto_table");
    Action a;
    const std::string& n = it.name;
    if (n == "output") {
      if (!need_arg(true) || !port_arg(a.port)) return false;
      a.type = ActionType::kOutput;
      list.has_fate = true;
    } else if (n == "mirror") {
      if (!need_arg(true) || !port_arg(a.port)) return false;
      a.type = ActionType::kMirror;
      list.has_mirror = true;
    } else if (n == "to_representor") {
      a.type = ActionType::kToRepresentor;
      a.port = kIngressRepresentor;
      if (!it.arg.empty() && !port_arg(a.port)) return false;
      list.has_fate = true;
    } else if (n == "drop") {
      if (!need_arg(false)) return false;
      a.type = ActionType::kDrop;
      list.has_fate = true;
    } else if (n == "count") {
      if (!need_arg(false)) return false;
      a.type = ActionType::kCount;
      list.has_count = true;
    } else if (n == "meter") {
      uint64_t m = 0;
      if (!need_arg(true)) return false;
      if (!parse_uint(it.arg, UINT32_MAX, m) || m >= ctx.nb_meters) {
        return fail(fmt::format("unknown meter '{}' ({} meters configured)", it.arg, ctx.nb_meters));
      }
      a.type = ActionType::kMeter;
      a.arg = static_cast<uint32_t>(m);
      list.has_meter = true;
    } else if (n == "goto_table" || n == "goto") {
      uint64_t t = 0;
      if (!need_arg(true)) return false;
      if (!parse_uint(it.arg, kMaxTables - 1, t)) {
        return fail(fmt::format("'{}' is not a table number (0..{})", it.arg, kMaxTables - 1));
      }
      out.goto_table = static_cast<uint8_t>(t);
      continue;  // not an action of the list: the classifier follows it
    } else if (n == "dec_ttl") {
      if (!need_arg(false)) return false;
      a.type = ActionType::kDecTtl;
      list.modifies = true;
    } else if (n == "pop_vlan") {
      if (!need_arg(false)) return false;
      a.type = ActionType::kPopVlan;
      list.modifies = true;
      // Later tables see an untagged frame (for a double-tagged frame they would need the inner tag shifted
      // out, which a constant rewrite cannot express: documented limitation).
      set_tci_rewrite(out.rewrite, 0);
      out.rewrite.value.vlan_tci[0] = 0;
      out.has_rewrite = true;
    } else if (n == "push_vlan") {
      // push_vlan: VID[/PCP] (TPID 0x8100)
      if (!need_arg(true)) return false;
      uint64_t vid = 0, pcp = 0;
      const size_t slash = it.arg.find('/');
      if (!parse_uint(std::string_view(it.arg).substr(0, slash), 4095, vid) ||
          (slash != std::string::npos && !parse_uint(std::string_view(it.arg).substr(slash + 1), 7, pcp))) {
        return fail("expected VID (0..4095) or VID/PCP (PCP 0..7)");
      }
      a.type = ActionType::kPushVlan;
      a.arg = uint32_t(kEthTypeVlan) << 16 | uint32_t(pcp << 13 | vid);
      list.modifies = true;
      set_tci_rewrite(out.rewrite, static_cast<uint16_t>(pcp << 13 | vid | kVlanPresentHost));
      out.has_rewrite = true;
    } else if (n == "set_field" || n == "set_register") {
      const size_t eq = it.arg.find('=');
      if (eq == std::string::npos) return fail("expected FIELD=VALUE");
      const std::string_view fname = std::string_view(it.arg).substr(0, eq);
      const std::string_view fval = std::string_view(it.arg).substr(eq + 1);
      const FieldDef* f = find_field(fname);
      if (f == nullptr) return fail(fmt::format("unknown field '{}'", fname));
      MaskedKey exact;
      std::string ferr;
      if (!parse_field_value(*f, fval, names, exact, ferr)) return fail(ferr);
      const auto* src = reinterpret_cast<const uint8_t*>(&exact.value) + f->offset;
      switch (f->id) {
        case FieldId::kEthSrc: a.type = ActionType::kSetEthSrc; break;
        case FieldId::kEthDst: a.type = ActionType::kSetEthDst; break;
        case FieldId::kIpv4Src: a.type = ActionType::kSetIpv4Src; break;
        case FieldId::kIpv4Dst: a.type = ActionType::kSetIpv4Dst; break;
        case FieldId::kIpv6Src: a.type = ActionType::kSetIpv6Src; break;
        case FieldId::kIpv6Dst: a.type = ActionType::kSetIpv6Dst; break;
        case FieldId::kTcpSrc:
        case FieldId::kUdpSrc:
        case FieldId::kTpSrc: a.type = ActionType::kSetTpSrc; break;
        case FieldId::kTcpDst:
        case FieldId::kUdpDst:
        case FieldId::kTpDst: a.type = ActionType::kSetTpDst; break;
        case FieldId::kVlanVid: a.type = ActionType::kSetVlanVid; break;
        case FieldId::kVlanPcp: a.type = ActionType::kSetVlanPcp; break;
        case FieldId::kDscp: a.type = ActionType::kSetDscp; break;
        case FieldId::kEcn: a.type = ActionType::kSetEcn; break;
        case FieldId::kTtl: a.type = ActionType::kSetTtl; break;
        case FieldId::kReg0:
        case FieldId::kReg1:
        case FieldId::kReg2:
        case FieldId::kReg3:
          a.type = ActionType::kSetRegister;
          a.reg = static_cast<uint8_t>(static_cast<unsigned>(f->id) - static_cast<unsigned>(FieldId::kReg0));
          break;
        default: return fail(fmt::format("field '{}' cannot be set", f->name));
      }
      if (n == "set_register" && a.type != ActionType::kSetRegister) {
        return fail("set_register takes reg0..reg3");
      }
      std::memcpy(a.bytes, src, std::min<size_t>(f->width, sizeof(a.bytes)));
      a.arg = field_int(*f, exact.value);
      merge_rewrite(out.rewrite, exact);
      out.has_rewrite = true;
      if (action_modifies_packet(a.type)) list.modifies = true;
    } else {
      return fail("unknown action (valid: output, mirror, to_representor, drop, count, meter, goto_table, "
                  "set_field, set_register, dec_ttl, push_vlan, pop_vlan)");
    }
    list.actions.push_back(a);
  }
  return true;
}

std::string format_action(const Action& a, const PortNames& ports) {
  auto port = [&](uint16_t p) {
    std::string n = ports.name_of ? ports.name_of(p) : std::string();
    return n.empty() ? fmt::format("{}", p) : n;
  };
  switch (a.type) {
    case ActionType::kOutput: return "output:" + port(a.port);
    case ActionType::kMirror: return "mirror:" + port(a.port);
    case ActionType::kToRepresentor:
      return a.port == kIngressRepresentor ? std::string("to_representor") : "to_representor:" + port(a.port);
    case ActionType::kDrop: return "drop";
    case ActionType::kCount: return "count";
    case ActionType::kMeter: return fmt::format("meter:{}", a.arg);
    case ActionType::kDecTtl: return "dec_ttl";
    case ActionType::kPopVlan: return "pop_vlan";
    case ActionType::kPushVlan: return fmt::format("push_vlan:{}/{}", a.arg & 0xfff, (a.arg >> 13) & 7);
    case ActionType::kSetEthSrc:
    case ActionType::kSetEthDst:
      return fmt::format("{}={}", action_name(a.type), cfg::mac_text(a.bytes));
    case ActionType::kSetIpv4Src:
    case ActionType::kSetIpv4Dst:
      return fmt::format("{}={}", action_name(a.type), cfg::ipv4_text(a.bytes));
    case ActionType::kSetIpv6Src:
    case ActionType::kSetIpv6Dst: return fmt::format("{}={}", action_name(a.type), cfg::ipv6_text(a.bytes));
    case ActionType::kSetRegister: return fmt::format("set_register:reg{}={}", a.reg, a.arg);
    default: return fmt::format("{}={}", action_name(a.type), a.arg);
  }
}

std::string format_actions(const ActionList& list, const PortNames& ports, uint8_t goto_table) {
  std::string s;
  for (const Action& a : list.actions) {
    if (!s.empty()) s += ",";
    s += format_action(a, ports);
  }
  if (goto_table != kNoTable) s += fmt::format("{}goto_table:{}", s.empty() ? "" : ",", goto_table);
  return s.empty() ? "(none)" : s;
}

}  // namespace esw::dp
