#include <gtest/gtest.h>

#include "common/packet/tcp_option.hpp"
#include "common/probe/spec.hpp"

namespace tandem::probe {
namespace {

using packet::TcpOption;

std::string err(std::string_view text) {
  auto r = parse_tcp_options(text);
  if (r.ok()) return "(ok)";
  EXPECT_EQ(r.error().code, Errc::usage);
  EXPECT_EQ(r.error().subsystem, "probe-spec");
  return r.error().message;
}

TEST(ParseTcpOptions, LinuxListInOrder) {
  auto r = parse_tcp_options("mss=1460,sack,ts,nop,ws=7");
  ASSERT_TRUE(r.ok()) << r.error().text();
  EXPECT_EQ(*r, linux_syn_options());
  EXPECT_EQ(*parse_tcp_options("linux"), linux_syn_options());
  // Order is kept as given.
  auto rev = parse_tcp_options("ws=7,nop,ts,sack,mss=1460");
  ASSERT_TRUE(rev.ok());
  EXPECT_EQ(rev->front(), TcpOption::wscale(7));
  EXPECT_EQ(rev->back(), TcpOption::mss(1460));
}

TEST(ParseTcpOptions, EveryItem) {
  auto r = parse_tcp_options(
      " mss=0 , sackok,sack_perm,wscale=14,timestamp=5:6,ts=0x10:0,eol,kind=30:0a0b,kind=254");
  ASSERT_TRUE(r.ok()) << r.error().text();
  const std::vector<TcpOption> want = {
      TcpOption::mss(0),          TcpOption::sack_perm(),        TcpOption::sack_perm(),
      TcpOption::wscale(14),      TcpOption::timestamp(5, 6),    TcpOption::timestamp(16, 0),
      TcpOption::eol(),           TcpOption::raw(30, {0x0a, 0x0b}), TcpOption::raw(254, {})};
  EXPECT_EQ(*r, want);
  auto s = parse_tcp_options("sack=1-2;4294967295-0");
  ASSERT_TRUE(s.ok());
  const packet::SackBlock blocks[] = {{1, 2}, {0xffffffff, 0}};
  EXPECT_EQ(s->front(), TcpOption::sack(blocks));
  EXPECT_EQ(parse_tcp_options("ts")->front(), TcpOption::timestamp(kDefaultTsVal, kDefaultTsEcr));
  EXPECT_EQ(parse_tcp_options("MSS=1200")->front(), TcpOption::mss(1200));
  EXPECT_EQ(parse_tcp_options("kind=2:05")->front(), TcpOption::raw(2, {5}));
}

TEST(ParseTcpOptions, NoneIsEmpty) {
  auto r = parse_tcp_options("none");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
  EXPECT_EQ(err("none,mss=1460"), "'none' cannot be combined with other TCP options in 'none,mss=1460'");
}

TEST(ParseTcpOptions, ExactErrors) {
  EXPECT_EQ(err("foo"),
            "unknown TCP option 'foo' (expected mss, sack, ts, ws, nop, eol, kind=N[:HEX], none)");
  EXPECT_EQ(err("mss=1460,sak"),
            "unknown TCP option 'sak' (expected mss, sack, ts, ws, nop, eol, kind=N[:HEX], none)");
  EXPECT_EQ(err(""), "empty TCP option list (use 'none' for no options)");
  EXPECT_EQ(err("mss=1460,,ts"), "empty item in TCP option list 'mss=1460,,ts'");
  EXPECT_EQ(err("mss=1460,"), "empty item in TCP option list 'mss=1460,'");
  EXPECT_EQ(err("mss=65536"), "bad value in TCP option 'mss=65536': MSS must be 0-65535");
  EXPECT_EQ(err("mss=-1"), "bad value in TCP option 'mss=-1': MSS must be 0-65535");
  EXPECT_EQ(err("mss"), "TCP option 'mss' needs a value (mss=N)");
  EXPECT_EQ(err("ws=256"), "bad value in TCP option 'ws=256': window scale must be 0-255");
  EXPECT_EQ(err("ws=x"), "bad value in TCP option 'ws=x': window scale must be 0-255");
  EXPECT_EQ(err("ts=1"), "bad value in TCP option 'ts=1': expected ts=VAL:ECR with 32-bit values");
  EXPECT_EQ(err("ts=4294967296:0"),
            "bad value in TCP option 'ts=4294967296:0': expected ts=VAL:ECR with 32-bit values");
  EXPECT_EQ(err("sack=5"),
            "bad value in TCP option 'sack=5': expected sack=LEFT-RIGHT[;LEFT-RIGHT...] with "
            "32-bit edges");
  EXPECT_EQ(err("kind=256"), "bad value in TCP option 'kind=256': kind must be 0-255");
  EXPECT_EQ(err("kind=30:abc"),
            "bad value in TCP option 'kind=30:abc': expected an even number of hex digits after "
            "':'");
  EXPECT_EQ(err("kind=1:00"),
            "bad value in TCP option 'kind=1:00': kinds 0 (eol) and 1 (nop) are single bytes and "
            "carry no data");
  EXPECT_EQ(err("nop=1"), "TCP option 'nop=1' takes no value (write 'nop')");
}

TEST(ParseTcpOptions, FortyByteLimit) {
  // linux (20) + 20 NOPs = 40: fits exactly.
  std::string ok = "linux";
  for (int i = 0; i < 20; ++i) ok += ",nop";
  EXPECT_TRUE(parse_tcp_options(ok).ok());
  EXPECT_EQ(err(ok + ",nop"), "TCP options '" + ok + ",nop' take 41 bytes, more than the 40-byte option space");
  EXPECT_EQ(err("kind=30:" + std::string(78, 'a')),
            "TCP options 'kind=30:" + std::string(78, 'a') +
                "' take 41 bytes, more than the 40-byte option space");
  EXPECT_EQ(err("linux,linux,linux").substr(0, 43), "TCP options 'linux,linux,linux' take 60 byt");
}

TEST(FormatTcpOptions, CanonicalAndRoundTrips) {
  EXPECT_EQ(format_tcp_options(linux_syn_options()), "mss=1460,sack,ts,nop,ws=7");
  EXPECT_EQ(format_tcp_options({}), "none");
  const std::vector<std::string> texts = {
      "mss=1460,sack,ts,nop,ws=7",
      "none",
      "ws=15,mss=0,eol",
      "ts=5:6,kind=30:0a0b,kind=254",
      "sack=1-2;3-4",
      "kind=2:05,kind=3,kind=8:00",  // known kinds with odd lengths stay raw
      "nop,nop,nop",
  };
  for (const auto& t : texts) {
    auto r = parse_tcp_options(t);
    ASSERT_TRUE(r.ok()) << t << ": " << r.error().text();
    EXPECT_EQ(format_tcp_options(*r), t);
  }
  // Aliases format to the canonical spelling, which parses back to the same value.
  const auto aliases = *parse_tcp_options("sackok,wscale=3,timestamp=1:0,kind=4,kind=1,kind=0");
  EXPECT_EQ(format_tcp_options(aliases), "sack,ws=3,ts,sack,nop,eol");
  EXPECT_EQ(*parse_tcp_options(format_tcp_options(aliases)), aliases);
}

TEST(SportPolicy, Parse) {
  EXPECT_EQ(*parse_sport("random"), SportPolicy::random());
  EXPECT_EQ(*parse_sport("40000"), SportPolicy::fixed(40000));
  EXPECT_EQ(*parse_sport("40000-40100"), SportPolicy::range(40000, 40100));
  EXPECT_EQ(*parse_sport("5-5"), SportPolicy::fixed(5));
  EXPECT_EQ(parse_sport("0").error().message,
            "bad source port '0' (expected random, N or A-B with ports 1-65535)");
  EXPECT_FALSE(parse_sport("65536").ok());
  EXPECT_FALSE(parse_sport("1-").ok());
  EXPECT_FALSE(parse_sport("x").ok());
  EXPECT_EQ(parse_sport("200-100").error().message,
            "bad source port range '200-100': first port above last");
  for (const char* t : {"random", "1", "65535", "1024-2048"})
    EXPECT_EQ(format_sport(*parse_sport(t)), t);
}

TEST(Dscp, NamesAndNumbers) {
  EXPECT_EQ(*parse_dscp("ef"), 46);
  EXPECT_EQ(*parse_dscp("AF41"), 34);
  EXPECT_EQ(*parse_dscp("cs1"), 8);
  EXPECT_EQ(*parse_dscp("le"), 1);
  EXPECT_EQ(*parse_dscp("63"), 63);
  EXPECT_EQ(*parse_dscp("0x2e"), 46);
  EXPECT_EQ(parse_dscp("64").error().message,
            "bad DSCP '64' (expected 0-63, 0x00-0x3f or a name: ef, af11-af43, cs0-cs7, va, le)");
  EXPECT_FALSE(parse_dscp("af44").ok());
  EXPECT_EQ(dscp_name(46), "ef");
  EXPECT_EQ(dscp_name(34), "af41");
  EXPECT_EQ(dscp_name(7), "7");
}

TEST(Tos, NamesAndNumbers) {
  EXPECT_EQ(*parse_tos("ef"), 0xb8);
  EXPECT_EQ(*parse_tos("0xb8"), 0xb8);
  EXPECT_EQ(*parse_tos("184"), 0xb8);
  EXPECT_EQ(*parse_tos("255"), 255);
  EXPECT_EQ(parse_tos("256").error().message,
            "bad TOS '256' (expected 0-255, 0x00-0xff or a DSCP name like ef, af41, cs1)");
  EXPECT_FALSE(parse_tos("0x").ok());
  EXPECT_FALSE(parse_tos("-1").ok());
}

TEST(ProbeSpec, DefaultsAndDescribe) {
  const ProbeSpec s;
  EXPECT_EQ(s.l4, ProbeSpec::L4::tcp);
  EXPECT_EQ(s.tcp_options, linux_syn_options());
  EXPECT_EQ(s.tcp_flags, 0x02);
  EXPECT_EQ(describe(s),
            "tcp/ipv4 dport 80 flags S options mss=1460,sack,ts,nop,ws=7 window 64240 tos 0x00 "
            "ttl 64 sport random payload 0");
  ProbeSpec t = default_spec(ProbeSpec::L4::udp, packet::IpVersion::v6);
  t.tos = 0xb8;
  t.sport = SportPolicy::range(1000, 2000);
  EXPECT_EQ(describe(t),
            "udp/ipv6 dport 33434 tos 0xb8 (dscp ef) ttl 64 sport 1000-2000 payload 0");
  ProbeSpec i = default_spec(ProbeSpec::L4::icmp, packet::IpVersion::v6);
  EXPECT_EQ(i.icmp_type, 128);
  i.ttl = 3;
  EXPECT_EQ(describe(i), "icmp/ipv6 type 128 code 0 tos 0x00 ttl 3 payload 0");
  ProbeSpec d = default_spec(ProbeSpec::L4::tcp, packet::IpVersion::v4);
  d.df = true;
  d.tcp_flags = 0x12;
  d.tcp_options = {};
  d.dport = 21;
  EXPECT_EQ(describe(d),
            "tcp/ipv4 dport 21 flags SA options none window 64240 tos 0x00 ttl 64 df sport random "
            "payload 0");
  EXPECT_EQ(format_tcp_flags(0), "none");
  EXPECT_EQ(format_tcp_flags(0xff), "FSRPAUEC");
}

}  // namespace
}  // namespace tandem::probe
