#pragma once
// Terminal-safe text: user input echoed in a message (an error's path, a key, a value, a name) never carries a
// raw control character to a terminal or a log. One function for every place that echoes: the config loader's
// paths and errors (here in config/), the management API's error replies (dataplane/daemon/api_server.cc) and
// eswitchctl's output (control/). Header-only, no dependencies.
//
//   escape_control("a\x1b[2Jb")  ->  a\x1b[2Jb  (the four characters '\', 'x', '1', 'b')
//
// C0 controls (0x00-0x1f), DEL (0x7f) and the UTF-8 encoded C1 controls (U+0080-U+009F, which terminals also
// interpret, e.g. U+009B as CSI) become \xHH or \u00HH; \t, \n and \r become \t, \n and \r. Everything else,
// including the backslash and valid or invalid UTF-8 bytes above 0x7f, is copied as is.

#include <string>
#include <string_view>

namespace esw {

inline bool has_control(std::string_view text) {
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) return true;
    if (c == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
      return true;
    }
  }
  return false;
}

inline std::string escape_control(std::string_view text) {
  if (!has_control(text)) return std::string(text);
  constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size() + 16);
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else if (c == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
               static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
      const auto c1 = static_cast<unsigned char>(text[++i]);
      out += "\\u00";
      out += kHex[c1 >> 4];
      out += kHex[c1 & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

}  // namespace esw
