#pragma once
// JSON string literals of big texts (an apply's YAML: ~10 MB for 100k rules), written and read without
// nlohmann::json's per-byte machinery (its serializer and lexer take ~100 ms each for 10 MB). Used by both ends
// of the API (control/api_client.cc writes, dataplane/daemon/api_request.cc reads) and by eswitchd's state
// store. Header-only, no JSON library.
//
// Both take only the easy case and say so, so that the caller leaves everything else to nlohmann::json and the
// result is always the one nlohmann::json gives:
//  - append_json_ascii_string: a text of ASCII bytes only, written exactly as dump() writes it (ensure_ascii
//    off: '"' '\\' and \b \f \n \r \t escaped, other control characters as \u00xx, everything else as is).
//  - decode_json_simple_string: a literal of printable ASCII (0x20-0x7e) and the escapes \" \\ \/ \b \f \n \r \t
//    (what append_json_ascii_string writes for a text without other control characters), decoded as the
//    parser decodes it.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace esw::api {

// Appends `text` as a JSON string literal (quotes included) when every byte is < 0x80; returns false and leaves
// `out` as it was otherwise.
inline bool append_json_ascii_string(std::string& out, std::string_view text) {
  for (const char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  out.reserve(out.size() + text.size() + text.size() / 16 + 2);
  out += '"';
  size_t run = 0;  // start of the bytes not copied yet
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(text.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default: {
        constexpr char kHex[] = "0123456789abcdef";
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xf];
      }
    }
  }
  out.append(text.data() + run, text.size() - run);
  out += '"';
  return true;
}

// `text` starts with the opening quote of a string literal. When the literal holds only printable ASCII and the
// escapes \" \\ \/ \b \f \n \r \t, its value is appended to `out` and the literal's length (quotes included) is
// returned; otherwise 0, and `out` is as it was.
inline size_t decode_json_simple_string(std::string_view text, std::string& out) {
  if (text.empty() || text[0] != '"') return 0;
  const size_t old = out.size();
  if (text.size() >= 4096) out.reserve(old + text.size());  // a big text: no regrowth (fresh pages are costly)
  size_t run = 1;
  for (size_t i = 1; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') continue;
    out.append(text.data() + run, i - run);
    if (c == '"') return i + 1;
    if (c != '\\' || i + 1 >= text.size()) break;
    char decoded = 0;
    switch (text[i + 1]) {
      case '"': decoded = '"'; break;
      case '\\': decoded = '\\'; break;
      case '/': decoded = '/'; break;
      case 'b': decoded = '\b'; break;
      case 'f': decoded = '\f'; break;
      case 'n': decoded = '\n'; break;
      case 'r': decoded = '\r'; break;
      case 't': decoded = '\t'; break;
      default: break;
    }
    if (decoded == 0) break;  // \uXXXX or an invalid escape: the parser's
    out += decoded;
    ++i;
    run = i + 1;
  }
  out.resize(old);
  return 0;
}

}  // namespace esw::api
