#pragma once
// Human output for eswitchctl: aligned tables, config errors in compiler style, diffs, rates.

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace esw::ctl {

// Columns are left-aligned text or right-aligned numbers; the last column is never padded (long match texts).
class Table {
 public:
  struct Column {
    std::string title;
    bool right = false;
  };
  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}
  void row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  size_t size() const { return rows_.size(); }
  void print(FILE* out) const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// "FILE:LINE:COL: path: message" (the parts that are known), one per error.
std::string format_config_error(const std::string& file, const nlohmann::json& error);

// The error object of a failed reply, for people: the message, then every located config error.
void print_api_error(FILE* out, const std::string& file, const nlohmann::json& error);

// One diff item: "+ rule     tables[0].rules[3]  detail".
std::string format_diff_item(const nlohmann::json& item);

// 1234567 -> "1.23M"; rates and sizes for people.
std::string si(double v, const char* unit = "");
std::string to_str(const nlohmann::json& v);  // strings unquoted, numbers and bools as JSON

}  // namespace esw::ctl
