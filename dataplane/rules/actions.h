#pragma once
// The action compiler (control side): action items as written -> ActionList (dataplane/fastpath/action_types.h,
// whose comment states the semantics), interned; formatting back to text.

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/fastpath/action_types.h"
#include "dataplane/fastpath/classifier.h"
#include "dataplane/fastpath/flow_key.h"
#include "dataplane/rules/fields.h"

namespace esw::dp {

// ---- control side: compiling action items ----

// One action as written by a user: `output: uplink0` -> {"output", "uplink0"}; `set_field: eth_dst=...` ->
// {"set_field", "eth_dst=..."}; `count` -> {"count", ""}.
struct ActionItem {
  std::string name;
  std::string arg;
};

// "count,output:uplink0,set_field:eth_dst=02:00:00:00:00:01,goto_table:1" -> items (split on commas, then on
// the first ':'). Returns false with an error naming the item on an empty item.
bool parse_action_text(std::string_view text, std::vector<ActionItem>& out, std::string& error);

// Identical action lists are stored once: 100k ACL rules usually share a handful of lists.
class ActionInterner {
 public:
  const ActionList* intern(ActionList list);
  size_t size() const { return lists_.size(); }

 private:
  std::map<std::string, std::unique_ptr<ActionList>> lists_;  // keyed by the lists' bytes
};

struct CompiledActions {
  ActionList list;             // not yet interned
  KeyRewrite rewrite{};        // what set_field/set_register/push/pop do to the key seen by later tables
  bool has_rewrite = false;
  uint8_t goto_table = kNoTable;
};

struct ActionContext {
  const PortNames* ports = nullptr;
  uint16_t nb_ports = 0;
  uint32_t nb_meters = 0;
};

// Compiles items in order. On error returns false, `error` names the item: "actions[2] (output: vmx): unknown
// port 'vmx'".
bool compile_actions(const std::vector<ActionItem>& items, const ActionContext& ctx, CompiledActions& out,
                     std::string& error);

std::string format_actions(const ActionList& list, const PortNames& ports, uint8_t goto_table = kNoTable);
std::string format_action(const Action& a, const PortNames& ports);

}  // namespace esw::dp
