#include "config/net_text.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

namespace esw::cfg {

namespace {

int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool all_digits(std::string_view s) noexcept {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Decimal without leading zeros, at most `max_digits` digits.
bool plain_decimal(std::string_view s, size_t max_digits, int& out) noexcept {
  if (!all_digits(s) || s.size() > max_digits || (s.size() > 1 && s.front() == '0')) return false;
  std::from_chars(s.data(), s.data() + s.size(), out);
  return true;
}

}  // namespace

bool parse_mac(std::string_view text, uint8_t out[6]) noexcept {
  for (int i = 0; i < 6; ++i) {
    size_t n = 0;
    unsigned v = 0;
    for (; n < text.size() && n < 3 && text[n] != ':'; ++n) {
      const int d = hex_digit(text[n]);
      if (d < 0) return false;
      v = v * 16 + static_cast<unsigned>(d);
    }
    if (n == 0 || n > 2) return false;
    out[i] = static_cast<uint8_t>(v);
    text.remove_prefix(n);
    if (i < 5) {
      if (text.empty() || text[0] != ':') return false;
      text.remove_prefix(1);
    }
  }
  return text.empty();
}

std::string mac_text(const uint8_t* m) {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5]);
}

bool parse_ipv4(std::string_view text, uint8_t out[4]) noexcept {
  for (int i = 0; i < 4; ++i) {
    const size_t dot = text.find('.');
    if ((i < 3) != (dot != std::string_view::npos)) return false;
    int n = 0;
    if (!plain_decimal(text.substr(0, dot), 3, n) || n > 255) return false;
    out[i] = static_cast<uint8_t>(n);
    text.remove_prefix(dot == std::string_view::npos ? text.size() : dot + 1);
  }
  return true;
}

std::string ipv4_text(const uint8_t* a) { return fmt::format("{}.{}.{}.{}", a[0], a[1], a[2], a[3]); }

bool parse_ipv6(std::string_view text, uint8_t out[16]) noexcept {
  char buffer[INET6_ADDRSTRLEN];
  if (text.empty() || text.size() >= sizeof(buffer)) return false;
  std::copy(text.begin(), text.end(), buffer);
  buffer[text.size()] = '\0';
  return inet_pton(AF_INET6, buffer, out) == 1;
}

std::string ipv6_text(const uint8_t* a) {
  char buffer[INET6_ADDRSTRLEN] = {};
  inet_ntop(AF_INET6, a, buffer, sizeof(buffer));
  return buffer;
}

bool IpPrefix::same_first_bits(const IpPrefix& other, int n) const {
  for (int i = 0; i < n; i += 8) {
    const int take = std::min(8, n - i);
    const uint8_t mask = static_cast<uint8_t>(0xff00 >> take);
    if ((bytes[i / 8] & mask) != (other.bytes[i / 8] & mask)) return false;
  }
  return true;
}

IpPrefix IpPrefix::network() const {
  IpPrefix out = *this;
  for (int i = 0; i < bits(); ++i) {
    if (i >= len) out.bytes[i / 8] &= static_cast<uint8_t>(~(0x80 >> (i % 8)));
  }
  return out;
}

std::string IpPrefix::address_text() const { return v6 ? ipv6_text(bytes.data()) : ipv4_text(bytes.data()); }

std::string IpPrefix::text() const {
  return len == bits() ? address_text() : fmt::format("{}/{}", address_text(), len);
}

std::optional<IpPrefix> parse_prefix(std::string_view text, bool v6) {
  IpPrefix p;
  p.v6 = v6;
  const size_t slash = text.find('/');
  const std::string_view address = text.substr(0, slash);
  if (!(v6 ? parse_ipv6(address, p.bytes.data()) : parse_ipv4(address, p.bytes.data()))) return std::nullopt;
  p.len = p.bits();
  if (slash != std::string_view::npos && !plain_decimal(text.substr(slash + 1), 3, p.len)) return std::nullopt;
  return p;
}

}  // namespace esw::cfg
