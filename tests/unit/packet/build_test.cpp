// Golden bytes below were produced by scapy 2.5 (python3-scapy) with the same fields and checked
// by hand against RFC 791/8200/9293/768/792/4443 layouts.
#include <gtest/gtest.h>

#include "common/packet/build.hpp"
#include "common/packet/checksum.hpp"
#include "common/packet/decode.hpp"
#include "tests/unit/packet/hex.hpp"

namespace tandem::packet {
namespace {

using test::from_hex;
using test::to_hex;

IpAddr addr(const char* s) { return *IpAddr::parse(s); }

IpSpec v4_spec() {
  IpSpec ip;
  ip.src = addr("10.77.1.2");
  ip.dst = addr("10.77.2.2");
  return ip;
}

IpSpec v6_spec() {
  IpSpec ip;
  ip.src = addr("fd77:1::2");
  ip.dst = addr("fd77:2::2");
  return ip;
}

TcpSpec syn_spec() {
  TcpSpec t;
  t.sport = 40000;
  t.dport = 21;
  t.seq = 0x11223344;
  t.options = {TcpOption::mss(1460), TcpOption::sack_perm(), TcpOption::timestamp(0x01020304, 0),
               TcpOption::nop(), TcpOption::wscale(7)};
  return t;
}

std::vector<std::uint8_t> bytes(std::string_view s) {
  return {s.begin(), s.end()};
}

TEST(BuildTcp, Ipv4SynWithLinuxOptionsIsGolden) {
  IpSpec ip = v4_spec();
  ip.tos = 0xb8;  // DSCP ef
  ip.ip_id = 0x1234;
  ip.df = true;
  auto p = build_tcp(ip, syn_spec());
  ASSERT_TRUE(p.ok()) << p.error().text();
  EXPECT_EQ(to_hex(*p),
            "45b8003c12344000400610330a4d01020a4d0202"
            "9c4000151122334400000000a002faf050b00000"
            "020405b40402080a010203040000000001030307");
}

TEST(BuildTcp, Ipv6SynWithLinuxOptionsIsGolden) {
  IpSpec ip = v6_spec();
  ip.tos = 0xb8;
  ip.flow_label = 0x12345;
  auto p = build_tcp(ip, syn_spec());
  ASSERT_TRUE(p.ok()) << p.error().text();
  EXPECT_EQ(to_hex(*p),
            "6b81234500280640fd770001000000000000000000000002fd770002000000000000000000000002"
            "9c4000151122334400000000a002faf06d570000"
            "020405b40402080a010203040000000001030307");
}

TEST(BuildTcp, PaddedOptionsAreGolden) {
  IpSpec ip = v4_spec();
  ip.ip_id = 0x1234;
  ip.df = true;
  TcpSpec t = syn_spec();
  t.options = {TcpOption::mss(1460), TcpOption::wscale(7)};
  auto p = build_tcp(ip, t);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(to_hex(*p),
            "4500003012344000400610f70a4d01020a4d0202"
            "9c40001511223344000000007002faf08ad50000020405b403030700");
}

TEST(BuildTcp, ChecksumsVerifyWithPayload) {
  const auto payload = bytes("GET / HTTP/1.0\r\n\r\n!");  // odd length
  for (const IpSpec& ip : {v4_spec(), v6_spec()}) {
    auto p = build_tcp(ip, syn_spec(), payload);
    ASSERT_TRUE(p.ok());
    const Decoded d = decode_ip(*p);
    ASSERT_EQ(d.l4, L4::tcp);
    EXPECT_TRUE(d.anomalies.empty());
    const std::uint32_t ps = pseudo_header_sum(ip.src, ip.dst, kProtoTcp,
                                               static_cast<std::uint32_t>(d.ip.payload.size()));
    EXPECT_EQ(checksum_finish(checksum_add(ps, d.ip.payload)), 0);
    EXPECT_EQ(std::vector<std::uint8_t>(d.tcp.payload.begin(), d.tcp.payload.end()), payload);
  }
}

TEST(BuildTcp, Errors) {
  IpSpec mixed = v4_spec();
  mixed.dst = addr("fd77:2::2");
  auto e1 = build_tcp(mixed, syn_spec());
  ASSERT_FALSE(e1.ok());
  EXPECT_EQ(e1.error().code, Errc::usage);
  EXPECT_EQ(e1.error().text(),
            "packet: source 10.77.1.2 and destination fd77:2::2 are of different IP versions");

  TcpSpec big = syn_spec();
  big.options.push_back(TcpOption::raw(30, std::vector<std::uint8_t>(19)));
  auto e2 = build_tcp(v4_spec(), big);
  ASSERT_FALSE(e2.ok());
  EXPECT_EQ(e2.error().message, "options take 41 bytes, more than the 40-byte TCP option space");

  IpSpec fl = v6_spec();
  fl.flow_label = 0x100000;
  EXPECT_FALSE(build_tcp(fl, syn_spec()).ok());

  std::vector<std::uint8_t> huge(65535 - 20 - 40 + 1);
  EXPECT_FALSE(build_tcp(v4_spec(), syn_spec(), huge).ok());
  huge.pop_back();
  EXPECT_TRUE(build_tcp(v4_spec(), syn_spec(), huge).ok());
}

TEST(BuildUdp, Golden) {
  IpSpec ip4 = v4_spec();
  ip4.ip_id = 7;
  auto p4 = build_udp(ip4, 5353, 53, bytes("hello"));
  ASSERT_TRUE(p4.ok());
  EXPECT_EQ(to_hex(*p4), "4500002100070000401163280a4d01020a4d020214e90035000d8f4668656c6c6f");
  auto p6 = build_udp(v6_spec(), 5353, 53, bytes("hello"));
  ASSERT_TRUE(p6.ok());
  EXPECT_EQ(to_hex(*p6),
            "60000000000d1140fd770001000000000000000000000002fd770002000000000000000000000002"
            "14e90035000dabed68656c6c6f");
}

TEST(BuildIcmp, EchoGolden) {
  IpSpec ip4 = v4_spec();
  ip4.ip_id = 1;
  auto p4 = icmp_echo(ip4, 0x4242, 7, bytes("abcd"));
  ASSERT_TRUE(p4.ok());
  EXPECT_EQ(to_hex(*p4), "45000020000100004001633f0a4d01020a4d02020800f0ef4242000761626364");
  auto p6 = icmp_echo(v6_spec(), 0x4242, 7, bytes("abcd"));
  ASSERT_TRUE(p6.ok());
  EXPECT_EQ(to_hex(*p6),
            "60000000000c3a40fd770001000000000000000000000002fd770002000000000000000000000002"
            "80007db24242000761626364");
}

TEST(BuildIcmp, GenericTypeUsesRestOfHeader) {
  auto p = build_icmp(v4_spec(), 13, 0, 0xdeadbeef);  // timestamp request, no payload
  ASSERT_TRUE(p.ok());
  const Decoded d = decode_ip(*p);
  ASSERT_EQ(d.l4, L4::icmp);
  EXPECT_EQ(d.icmp.type, 13);
  EXPECT_EQ(d.icmp.rest, 0xdeadbeefu);
  EXPECT_EQ(internet_checksum(d.ip.payload), 0);
}

TEST(PatchTcpProbe, EqualsFreshBuildV4AndV6) {
  for (IpSpec ip : {v4_spec(), v6_spec()}) {
    ip.df = true;
    auto tmpl = build_tcp(ip, syn_spec());
    ASSERT_TRUE(tmpl.ok());
    for (std::uint32_t i = 0; i < 200; ++i) {
      const auto sport = static_cast<std::uint16_t>(1024 + i * 313);
      const std::uint32_t seq = 0x9e3779b9u * i;
      const auto id = static_cast<std::uint16_t>(i * 7919);
      const std::uint32_t fl = (i * 4099) & 0xfffff;
      ASSERT_TRUE(patch_tcp_probe(*tmpl, sport, seq, id, fl));
      IpSpec ip2 = ip;
      TcpSpec t2 = syn_spec();
      t2.sport = sport;
      t2.seq = seq;
      if (ip.src.is_v4()) ip2.ip_id = id;
      else ip2.flow_label = fl;
      auto fresh = build_tcp(ip2, t2);
      ASSERT_TRUE(fresh.ok());
      // Identical bytes, including 0x0000 vs 0xffff checksum forms.
      ASSERT_EQ(to_hex(*tmpl), to_hex(*fresh)) << "i=" << i;
    }
  }
}

TEST(PatchTcpProbe, RejectsNonTcp) {
  auto udp = build_udp(v4_spec(), 1, 2);
  ASSERT_TRUE(udp.ok());
  const auto before = *udp;
  EXPECT_FALSE(patch_tcp_probe(*udp, 3, 4, 5, 6));
  EXPECT_EQ(*udp, before);
  std::vector<std::uint8_t> tiny = {0x45, 0, 0};
  EXPECT_FALSE(patch_tcp_probe(tiny, 1, 1, 1, 1));
  EXPECT_FALSE(patch_tcp_probe({}, 1, 1, 1, 1));
}

}  // namespace
}  // namespace tandem::packet
