#pragma once
// The schema readers (internal to config/): pass 1 of the loader. Each reads one part of the YAML into the
// model with the pieces of config/yaml_reader.h, checks each value on its own and reports unknown keys.

#include "config/config.h"
#include "config/yaml_reader.h"

namespace esw::cfg::detail {

// The whole document (schema.cc).
bool read_config(const Value& v, Config& out);

// One entry of `tables:` with its rules (schema_rules.cc).
bool read_table(const Value& v, TableConfig& out);

// The compact form of a rule, one string (rule_text.cc).
bool read_compact_rule(const Value& v, RuleConfig& out);

}  // namespace esw::cfg::detail
