#include "control/render.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace esw::ctl {

using json = nlohmann::json;

void Table::print(FILE* out) const {
  std::vector<size_t> width(columns_.size(), 0);
  for (size_t i = 0; i < columns_.size(); ++i) width[i] = columns_[i].title.size();
  for (const auto& r : rows_) {
    for (size_t i = 0; i < r.size() && i < width.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (size_t i = 0; i < columns_.size(); ++i) {
      const std::string& c = i < cells.size() ? cells[i] : std::string();
      const bool last = i + 1 == columns_.size();
      if (i > 0) s += "  ";
      if (columns_[i].right) s += fmt::format("{:>{}}", c, width[i]);
      else if (last) s += c;
      else s += fmt::format("{:<{}}", c, width[i]);
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    fmt::print(out, "{}\n", s);
  };
  std::vector<std::string> titles;
  for (const auto& c : columns_) titles.push_back(c.title);
  line(titles);
  for (const auto& r : rows_) line(r);
}

std::string format_config_error(const std::string& file, const json& e) {
  const int line = e.value("line", 0);
  const int col = e.value("column", 0);
  const std::string path = e.value("path", "");
  std::string out = file;
  if (line > 0) out += fmt::format(":{}:{}", line, col);
  out += ": ";
  if (!path.empty()) out += path + ": ";
  std::string message = e.value("message", "");
  // Whole-source problems (YAML syntax) already name the source: do not say the file name twice.
  if (path.empty() && !file.empty() && message.rfind(file + ": ", 0) == 0) message.erase(0, file.size() + 2);
  out += message;
  return out;
}

void print_api_error(FILE* out, const std::string& file, const json& error) {
  const json errors = error.value("errors", json::array());
  for (const auto& e : errors) fmt::print(out, "{}\n", format_config_error(file, e));
  fmt::print(out, "error: {}\n", error.value("message", error.dump()));
}

std::string format_diff_item(const json& d) {
  const std::string detail = d.value("detail", "");
  return fmt::format("{} {:<9} {}{}", d.value("op", "?"), d.value("kind", ""), d.value("name", ""),
                     detail.empty() ? "" : "  " + detail);
}

std::string si(double v, const char* unit) {
  static constexpr const char* kSuffix[] = {"", "k", "M", "G", "T"};
  int i = 0;
  double a = std::fabs(v);
  while (a >= 1000 && i < 4) {
    a /= 1000;
    v /= 1000;
    ++i;
  }
  if (i == 0) return fmt::format("{:.0f}{}", v, unit);
  return fmt::format("{:.2f}{}{}", v, kSuffix[i], unit);
}

std::string to_str(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "-";
  if (v.is_array()) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ",") + to_str(x);
    return s.empty() ? "-" : s;
  }
  return v.dump();
}

}  // namespace esw::ctl
