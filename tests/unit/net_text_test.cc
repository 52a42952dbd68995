// The one text form of MAC, IPv4, IPv6 addresses and prefixes (config/net_text.h), the config hash, and the
// binding built from a vport's config with them (dataplane/rules/binding_build.h). No EAL.
#include <gtest/gtest.h>

#include <cstring>

#include "config/config.h"
#include "config/net_text.h"
#include "dataplane/rules/binding_build.h"

namespace {

using esw::cfg::IpPrefix;
using esw::cfg::parse_prefix;

TEST(NetText, Mac) {
  uint8_t m[6];
  ASSERT_TRUE(esw::cfg::parse_mac("02:00:C6:12:00:01", m));
  EXPECT_EQ(esw::cfg::mac_text(m), "02:00:c6:12:00:01");
  ASSERT_TRUE(esw::cfg::parse_mac("2:0:c6:12:0:1", m));  // one digit per byte is fine here (OVS accepts it)
  EXPECT_EQ(esw::cfg::mac_text(m), "02:00:c6:12:00:01");
  for (const char* bad : {"", "02:00:c6:12:00", "02:00:c6:12:00:01:02", "02:00:c6:12:00:001", "02-00-c6-12-00-01",
                          "02:00:c6:12:00:0g", "02:00:c6:12::01", "02:00:c6:12:00:01 "}) {
    EXPECT_FALSE(esw::cfg::parse_mac(bad, m)) << bad;
  }
}

TEST(NetText, Ipv4IsAStrictDottedQuad) {
  uint8_t a[4];
  ASSERT_TRUE(esw::cfg::parse_ipv4("198.18.0.1", a));
  EXPECT_EQ(esw::cfg::ipv4_text(a), "198.18.0.1");
  ASSERT_TRUE(esw::cfg::parse_ipv4("0.0.0.0", a));
  for (const char* bad : {"", "198.18.0", "198.18.0.1.2", "198.18.0.256", "198.18.0.01", "198.18..1", "198.18.0.1 ",
                          "+198.18.0.1", "198.18.0.1/24", "0x7f.0.0.1"}) {
    EXPECT_FALSE(esw::cfg::parse_ipv4(bad, a)) << bad;
  }
}

TEST(NetText, Ipv6PrintsCanonically) {
  uint8_t a[16];
  ASSERT_TRUE(esw::cfg::parse_ipv6("2001:DB8:0:0:0:0:0:1", a));
  EXPECT_EQ(esw::cfg::ipv6_text(a), "2001:db8::1");
  EXPECT_FALSE(esw::cfg::parse_ipv6("", a));
  EXPECT_FALSE(esw::cfg::parse_ipv6("2001:db8::1/64", a));
  EXPECT_FALSE(esw::cfg::parse_ipv6("2001:db8::g", a));
  EXPECT_FALSE(esw::cfg::parse_ipv6(std::string(60, '1'), a));
}

TEST(NetText, Prefixes) {
  const std::optional<IpPrefix> p = parse_prefix("198.18.1.0/24", false);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->len, 24);
  EXPECT_EQ(p->text(), "198.18.1.0/24");
  const std::optional<IpPrefix> a = parse_prefix("198.18.1.7", false);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->len, 32);
  EXPECT_EQ(a->text(), "198.18.1.7");
  EXPECT_TRUE(p->contains(*a));
  EXPECT_FALSE(a->contains(*p));
  EXPECT_EQ(parse_prefix("198.18.1.7/24", false)->network().text(), "198.18.1.0/24");
  const std::optional<IpPrefix> v6 = parse_prefix("2001:db8:1::/64", true);
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->contains(*parse_prefix("2001:db8:1::5", true)));
  EXPECT_FALSE(v6->contains(*parse_prefix("2001:db8:2::5", true)));
  EXPECT_FALSE(parse_prefix("198.18.1.0/024", false));
  EXPECT_FALSE(parse_prefix("198.18.1.0/", false));
  EXPECT_FALSE(parse_prefix("2001:db8::/64", false));
  EXPECT_EQ(parse_prefix("198.18.1.0/99", false)->len, 99);  // the length is the caller's to check
}

// Pinned: eswitchd reports this hash of the running config and eswitchctl compares it with its own (the two are
// the same function: api_server_test).
TEST(NetText, ConfigHashIsStable) {
  EXPECT_EQ(esw::cfg::text_hash(""), "14650fb0739d0383");
  EXPECT_EQ(esw::cfg::text_hash("a"), "44bd8ad473cd9906");
}

TEST(BindingBuild, FromVportConfig) {
  esw::cfg::VportConfig v;
  v.name = "vm1";
  v.hw_addr = "02:00:c6:12:00:01";
  v.ipv4 = {"198.18.0.1", "198.18.4.0/22"};
  v.ipv6 = {"2001:db8::1", "2001:db8:1::/48"};
  esw::dp::Binding b;
  std::string e;
  ASSERT_TRUE(esw::dp::make_binding(v, b, e)) << e;
  EXPECT_TRUE(b.has_mac);
  const uint8_t mac[6] = {0x02, 0x00, 0xc6, 0x12, 0x00, 0x01};
  EXPECT_EQ(std::memcmp(b.mac.data(), mac, 6), 0);
  const std::array<uint8_t, 16> ll = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0xc6, 0xff, 0xfe, 0x12, 0x00, 0x01};
  EXPECT_EQ(b.link_local, ll);
  ASSERT_EQ(b.ipv4.size(), 2u);
  const uint8_t a0[4] = {198, 18, 0, 1}, m0[4] = {255, 255, 255, 255};
  const uint8_t a1[4] = {198, 18, 4, 0}, m1[4] = {255, 255, 252, 0};
  EXPECT_EQ(std::memcmp(&b.ipv4[0].addr, a0, 4), 0);
  EXPECT_EQ(std::memcmp(&b.ipv4[0].mask, m0, 4), 0);
  EXPECT_EQ(std::memcmp(&b.ipv4[1].addr, a1, 4), 0);
  EXPECT_EQ(std::memcmp(&b.ipv4[1].mask, m1, 4), 0);
  ASSERT_EQ(b.ipv6.size(), 2u);
  EXPECT_EQ(b.ipv6[0].mask[15], 0xff);
  EXPECT_EQ(b.ipv6[1].mask[5], 0xff);
  EXPECT_EQ(b.ipv6[1].mask[6], 0x00);

  v.ipv4 = {"198.18.0.300"};
  EXPECT_FALSE(esw::dp::make_binding(v, b, e));
  EXPECT_EQ(e, "vport vm1: ipv4[0] '198.18.0.300' is not an IPv4 address or prefix");
  v.ipv4.clear();
  v.hw_addr.reset();
  EXPECT_FALSE(esw::dp::make_binding(v, b, e));
  EXPECT_EQ(e, "vport vm1: spoofchk needs hw_addr");
}

}  // namespace
