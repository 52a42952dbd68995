#include "config/yaml_reader.h"
#include "config/text_escape.h"

#include <tuple>

namespace esw::cfg::detail {

Loc to_loc(const YAML::Mark& mark) {
  if (mark.is_null()) return {};
  return {mark.line + 1, mark.column + 1};
}

bool before(Loc a, Loc b) { return std::tie(a.line, a.column) < std::tie(b.line, b.column); }

std::string child_path(std::string_view parent, std::string_view key) {
  // A key is user text: one holding a control character is shown quoted and escaped in the path (and so in every
  // message), never raw.
  const std::string shown = has_control(key) ? "\"" + escape_control(key) + "\"" : std::string(key);
  return parent.empty() ? shown : fmt::format("{}.{}", parent, shown);
}

std::string index_path(std::string_view parent, size_t index) { return fmt::format("{}[{}]", parent, index); }

std::string quoted(std::string_view text) {
  if (text.size() > kMaxShownLen) return fmt::format("{:?}...", text.substr(0, kMaxShownLen));
  return fmt::format("{:?}", text);
}

bool is_plain(const Node& node) { return node.Tag() == "?"; }  // unquoted and untagged

bool looks_like_integer(std::string_view text) {
  if (!text.empty() && text.front() == '-') text.remove_prefix(1);
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string describe(const Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar: {
      const std::string& text = node.Scalar();
      if (!looks_like_integer(text) || text.size() > kMaxShownLen) return quoted(text);
      return is_plain(node) ? text : fmt::format("the string {}", quoted(text));
    }
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

namespace {

uint64_t pow10(size_t n) {
  uint64_t p = 1;
  while (n-- > 0) p *= 10;
  return p;
}

}  // namespace

std::optional<uint64_t> parse_rate(std::string_view text) {
  size_t exponent = 0;
  if (!text.empty()) {
    switch (text.back()) {
      case 'k':
      case 'K': exponent = 3; break;
      case 'M': exponent = 6; break;
      case 'G': exponent = 9; break;
      case 'T': exponent = 12; break;
      default: break;
    }
    if (exponent != 0) text.remove_suffix(1);
  }
  const size_t dot = text.find('.');
  const std::string_view whole = text.substr(0, dot);
  const std::string_view fraction = dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1);
  if (!all_digits(whole) || whole.size() > 14 || fraction.size() > 12) return std::nullopt;
  if (dot != std::string_view::npos && (exponent == 0 || !all_digits(fraction))) return std::nullopt;
  uint64_t value = 0;
  std::from_chars(whole.data(), whole.data() + whole.size(), value);
  if (__builtin_mul_overflow(value, pow10(exponent), &value)) return std::nullopt;
  if (!fraction.empty()) {
    uint64_t part = 0;
    std::from_chars(fraction.data(), fraction.data() + fraction.size(), part);
    if (fraction.size() > exponent) {
      const uint64_t divisor = pow10(fraction.size() - exponent);
      if (part % divisor != 0) return std::nullopt;
      part /= divisor;
    } else {
      part *= pow10(exponent - fraction.size());
    }
    value += part;
  }
  return value;
}

std::string format_rate(uint64_t bps) {
  static constexpr std::pair<uint64_t, char> kUnits[] = {
      {1'000'000'000'000, 'T'}, {1'000'000'000, 'G'}, {1'000'000, 'M'}, {1'000, 'k'}};
  for (const auto& [unit, suffix] : kUnits) {
    if (bps >= unit && bps % unit == 0) return fmt::format("{}{}", bps / unit, suffix);
  }
  return std::to_string(bps);
}

}  // namespace esw::cfg::detail
