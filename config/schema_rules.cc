// The schema of tables and rules: match items, action lists (the action table: name, argument shape, whether it
// may be a miss action) and the rule mapping. Values are the rule compiler's business (dataplane/rules/): here
// only the shape is checked.
#include "config/schema.h"

#include "config/formats.h"
#include "config/schema_limits.h"
#include "config/text_escape.h"

namespace esw::cfg::detail {

namespace {

bool is_true(const Node& node) {
  return is_plain(node) && (node.Scalar() == "true" || node.Scalar() == "True" || node.Scalar() == "TRUE");
}
bool is_false(const Node& node) {
  return is_plain(node) && (node.Scalar() == "false" || node.Scalar() == "False" || node.Scalar() == "FALSE");
}

// `field: value` pairs; `keyword: true` (or no value) for keywords. Names and values are the rule compiler's
// business (dataplane/fields.h): here only the shape is checked.
bool read_match(const Value& v, std::vector<MatchItem>& out) {
  std::vector<MatchItem> items;
  constexpr std::string_view kExpected = "a mapping of field: value (e.g. {tcp: true, tcp_dst: 80})";
  const bool ok = for_each_entry(v, kExpected, [&](const std::string& field, const Value& value) {
    MatchItem item{field, "", value.loc};
    if (value.node.IsScalar() && is_false(value.node)) {
      value.error(fmt::format("expected a value, or true for a keyword such as tcp: true, got false; leave {} out "
                              "to not match on it",
                              quoted(field)));
      return false;
    }
    if (value.node.IsScalar() && !is_true(value.node)) {
      if (value.node.Scalar().find_first_not_of(" \t") == std::string::npos) {
        value.error(fmt::format("expected a value, or true for a keyword such as tcp: true, got {}",
                                quoted(value.node.Scalar())));
        return false;
      }
      item.value = value.node.Scalar();
    } else if (!value.node.IsNull() && !value.node.IsScalar()) {
      value.error(fmt::format("expected a value such as 80 or 198.18.0.0/24, or true for a keyword, got {}",
                              describe(value.node)));
      return false;
    }
    items.push_back(std::move(item));
    return true;
  });
  out = std::move(items);
  return ok;
}

enum class ActionArg {
  kNone,          // `- drop`
  kPort,          // `- output: vm1`
  kOptionalPort,  // `- to_representor` or `- to_representor: vm1`
  kTable,         // `- goto_table: 1` or a table name
  kMeter,         // `- meter: m1`
  kVlan,          // `- push_vlan: 100` or `- push_vlan: {vid: 100, pcp: 3}`
  kFields,        // `- set_field: {eth_dst: 02:00:00:00:00:01, ipv4_dst: 198.18.0.9}`
};

struct ActionSpec {
  std::string_view name;
  ActionArg arg;
  bool in_miss;  // allowed among a table's miss actions (no goto, nothing that changes the key)
  std::string_view usage;
};

constexpr ActionSpec kActions[] = {
    {"output", ActionArg::kPort, true, "output: <port>"},
    {"mirror", ActionArg::kPort, true, "mirror: <port>"},
    {"to_representor", ActionArg::kOptionalPort, true, "to_representor or to_representor: <vport>"},
    {"drop", ActionArg::kNone, true, "drop"},
    {"count", ActionArg::kNone, true, "count"},
    {"meter", ActionArg::kMeter, true, "meter: <meter name>"},
    {"goto_table", ActionArg::kTable, false, "goto_table: <table id or name>"},
    {"set_field", ActionArg::kFields, false, "set_field: {<field>: <value>}"},
    {"set_register", ActionArg::kFields, false, "set_register: {reg0: <value>}"},
    {"dec_ttl", ActionArg::kNone, true, "dec_ttl"},
    {"push_vlan", ActionArg::kVlan, false, "push_vlan: <vid> or push_vlan: {vid: <vid>, pcp: <pcp>}"},
    {"pop_vlan", ActionArg::kNone, false, "pop_vlan"},
};

const ActionSpec* find_action(std::string_view name) {
  for (const ActionSpec& spec : kActions) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

std::string unknown_action_message(std::string_view name) {
  std::string message = fmt::format("unknown action {}", quoted(name));
  const size_t colon = name.find(':');
  if (colon != std::string_view::npos && find_action(name.substr(0, colon))) {
    return message + fmt::format("; write {}: {} (a space after the colon makes it a mapping)",
                                 name.substr(0, colon), escape_control(name.substr(colon + 1)));
  }
  std::optional<std::string_view> best;
  size_t best_distance = std::min<size_t>(2, name.size() / 2);
  std::vector<std::string_view> names;
  for (const ActionSpec& spec : kActions) {
    names.push_back(spec.name);
    if (size_t d = edit_distance(name, spec.name); d <= best_distance) {
      best = spec.name;
      best_distance = d;
    }
  }
  if (best) message += fmt::format("; did you mean {}?", quoted(*best));
  return message + fmt::format("; valid actions: {}", fmt::join(names, ", "));
}

bool read_push_vlan(const Value& v, std::string& out) {
  constexpr Integer<uint16_t> kVid{.min = 0, .max = 4094};
  uint16_t vid = 0;
  if (!v.node.IsMap()) {
    if (!kVid(v, vid)) return false;
    out = std::to_string(vid);
    return true;
  }
  std::optional<uint16_t> pcp;
  const bool ok = read_map(v, [&](MapReader& m) {
    m.required("vid", vid, kVid);
    m.optional("pcp", pcp, Integer<uint16_t>{.min = 0, .max = 7});
  });
  if (ok) out = pcp ? fmt::format("{}/{}", vid, *pcp) : std::to_string(vid);
  return ok;
}

// One item of an action list: a bare name or a one-key mapping. Appends what it reads to `out` (several actions
// for a set_field of several fields).
bool read_action(const Value& v, int index, bool miss, std::vector<ActionConfig>& out) {
  std::string name;
  std::optional<Value> arg;
  if (v.node.IsScalar()) {
    name = v.node.Scalar();
  } else if (v.node.IsMap() && v.node.size() == 1 && v.node.begin()->first.IsScalar()) {
    const Node key = v.node.begin()->first;
    const Node value = v.node.begin()->second;
    name = key.Scalar();
    if (find_action(name)) {
      arg = v.child(child_path(v.path, name), value, value.IsNull() ? to_loc(key.Mark()) : to_loc(value.Mark()));
    }
  } else {
    const std::string keys = v.node.IsMap() && v.node.size() > 1
                                 ? fmt::format(" with {} keys; write one action per list item", v.node.size())
                                 : std::string();
    v.error(fmt::format("expected an action: a name such as drop, or a one-key mapping such as output: uplink0, "
                        "got {}{}",
                        describe(v.node), keys));
    return false;
  }
  const ActionSpec* spec = find_action(name);
  if (spec == nullptr) {
    v.error(unknown_action_message(name));
    return false;
  }
  if (miss && !spec->in_miss) {
    v.error(fmt::format("{} cannot be a miss action (a miss ends the walk and cannot change the packet's key); use a "
                        "rule with priority 0 and no match for that",
                        spec->name));
    return false;
  }
  ActionConfig action{std::string(spec->name), "", v.loc, index};
  if (!arg || (spec->arg == ActionArg::kOptionalPort && arg->node.IsNull())) {
    if (spec->arg != ActionArg::kNone && spec->arg != ActionArg::kOptionalPort) {
      v.error(fmt::format("{} needs an argument; write {}", spec->name, spec->usage));
      return false;
    }
    out.push_back(std::move(action));
    return true;
  }
  action.loc = arg->loc;
  switch (spec->arg) {
    case ActionArg::kNone:
      v.error(fmt::format("{} takes no argument; write {} alone as a list item", spec->name, spec->name));
      return false;
    case ActionArg::kPort:
    case ActionArg::kOptionalPort:
    case ActionArg::kMeter:
      if (!Text{.non_empty = true}(*arg, action.arg)) return false;
      break;
    case ActionArg::kTable:
      if (arg->node.IsScalar() && is_plain(arg->node) && looks_like_integer(arg->node.Scalar())) {
        uint32_t id = 0;
        if (!Integer<uint32_t>{.min = 0, .max = kMaxTableId}(*arg, id)) return false;
        action.arg = std::to_string(id);
      } else if (!Text{.non_empty = true}(*arg, action.arg)) {  // a table name, resolved by check_tables()
        return false;
      }
      break;
    case ActionArg::kVlan:
      if (!read_push_vlan(*arg, action.arg)) return false;
      break;
    case ActionArg::kFields: {
      const size_t before = out.size();
      const bool ok = for_each_entry(*arg, fmt::format("a mapping of field: value, as in {}", spec->usage),
                                     [&](const std::string& field, const Value& value) {
                                       std::string text;
                                       if (!Text{.non_empty = true}(value, text)) return false;
                                       out.push_back(ActionConfig{action.name, field + "=" + text, value.loc, index});
                                       return true;
                                     });
      if (ok && out.size() == before) {
        arg->error(fmt::format("{} needs at least one field; write {}", spec->name, spec->usage));
        return false;
      }
      return ok;
    }
  }
  out.push_back(std::move(action));
  return true;
}

// A rule's actions (`miss` false: at least one) or a table's miss actions (may be empty: to_representor).
struct ActionList {
  bool miss = false;

  bool operator()(const Value& v, std::vector<ActionConfig>& out) const {
    std::vector<ActionConfig> actions;
    bool ok = true;
    if (v.node.IsSequence()) {
      bool after_goto = false;
      int index = 0;
      for (auto it = v.node.begin(); it != v.node.end(); ++it, ++index) {
        const Node node = *it;
        const Value item = v.child(index_path(v.path, static_cast<size_t>(index)), node, to_loc(node.Mark()));
        if (!read_action(item, index, miss, actions)) {
          ok = false;
          continue;
        }
        if (after_goto) {
          item.error("nothing may follow goto_table: the packet continues in the next table, whose rules act on it");
          ok = false;
          after_goto = false;  // once is enough
        }
        if (!actions.empty() && actions.back().name == "goto_table") after_goto = true;
      }
    } else if (!v.node.IsNull()) {
      v.error(fmt::format("expected a list of actions, got {}", describe(v.node)));
      return false;
    }
    if (ok && actions.empty() && !miss) {
      v.error("a rule needs at least one action; write [drop] to drop what it matches");
      ok = false;
    }
    out = std::move(actions);
    return ok;
  }
};

bool read_rule(const Value& v, RuleConfig& out) {
  out.loc = v.loc;
  if (v.node.IsScalar()) return read_compact_rule(v, out);
  return read_map(v, [&](MapReader& m) {
    m.optional("name", out.name, checked_text(check_identifier("rule")));
    m.optional("priority", out.priority, Integer<uint32_t>{.min = 0, .max = kMaxPriority});
    m.optional("match", out.match, read_match);
    m.required("actions", out.actions, ActionList{});
  });
}

}  // namespace

bool read_table(const Value& v, TableConfig& out) {
  out.loc = v.loc;
  return read_map(v, [&](MapReader& m) {
    m.required("id", out.id, Integer<uint32_t>{.min = 0, .max = kMaxTableId});
    m.optional("name", out.name, checked_text(check_identifier("table")));
    m.optional("miss", out.miss, ActionList{.miss = true});
    m.optional("rules", out.rules, list_of(read_rule));
  });
}

}  // namespace esw::cfg::detail
