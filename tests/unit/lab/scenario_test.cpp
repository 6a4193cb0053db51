// Scenario parsing (DESIGN.md §4): the documented format, every error kind with file:line:col and
// key, and the [run] table turned into command flags.
#include <gtest/gtest.h>

#include <filesystem>

#include "controller/lab/scenario.hpp"
#include "controller/lab/state.hpp"

namespace tandem::lab {
namespace {

constexpr const char* kDesignExample = R"(name = "ftp-options"
description = "SYNs with window scale dropped 30 % in flight"
[middlebox]
nft = """
table inet imp {
  chain forw {
    type filter hook forward priority 0;
    ip daddr 10.77.2.2 tcp dport 21 tcp flags syn tcp option window exists numgen random mod 100 < 30 drop
  }
}
"""
[server]
listen = [21]
[run]
mode = "bisect"
target = "10.77.2.2:21"
tcp_options = "mss=1460,sack,ts,nop,ws=7"
budget = 400
rate = 200
)";

Error parse_error(std::string_view text) {
  auto r = parse_scenario(text, "t.toml");
  EXPECT_FALSE(r.ok()) << "expected an error for:\n" << text;
  return r.ok() ? Error{} : r.error();
}

TEST(Scenario, ParsesTheDesignExample) {
  auto r = parse_scenario(kDesignExample, "ftp.toml");
  ASSERT_TRUE(r.ok()) << r.error().text();
  const Scenario& s = *r;
  EXPECT_EQ(s.name, "ftp-options");
  EXPECT_EQ(s.source, "ftp.toml");
  EXPECT_NE(s.middlebox_nft.find("numgen random mod 100 < 30 drop"), std::string::npos);
  EXPECT_TRUE(s.server_nft.empty());
  EXPECT_EQ(s.listen_tcp, std::vector<std::uint16_t>{21});
  ASSERT_EQ(s.run.size(), 5U);
  EXPECT_EQ(s.run[0].key, "mode");
  EXPECT_EQ(s.run[4].key, "rate");
  EXPECT_EQ(s.run_mode(), "bisect");
  EXPECT_EQ(s.run_target(), "10.77.2.2:21");
  EXPECT_EQ(run_flags(s), (std::vector<std::string>{"--tcp-options", "mss=1460,sack,ts,nop,ws=7", "--budget", "400",
                                                     "--rate", "200"}));
}

TEST(Scenario, RunFlagsKeepFileOrderAndMapTypes) {
  auto r = parse_scenario(R"(name = "x"
[run]
mode = "ping"
rate = 200
tcp_options = "mss=1460"
df = true
until = "open"
timeout = 1.5
sport = "40000-40100"
ecn = false
count = 50
)", "t.toml");
  ASSERT_TRUE(r.ok()) << r.error().text();
  EXPECT_EQ(run_flags(*r), (std::vector<std::string>{"--rate", "200", "--tcp-options", "mss=1460", "--df", "--until",
                                                      "open", "--timeout", "1.5", "--sport", "40000-40100",
                                                      "--count", "50"}));
}

TEST(Scenario, OptionalTablesAndUdp) {
  auto r = parse_scenario(R"(name = "x"
[client]
nft = "table inet c { }"
[server]
nft = "table inet s { }"
listen = [21, 80]
listen_udp = [53]
)", "t.toml");
  ASSERT_TRUE(r.ok()) << r.error().text();
  EXPECT_EQ(r->client.nft, "table inet c { }");
  EXPECT_TRUE(r->client.addresses.empty());
  EXPECT_FALSE(r->client2.has_value());
  EXPECT_EQ(r->server_nft, "table inet s { }");
  EXPECT_EQ(r->listen_tcp, (std::vector<std::uint16_t>{21, 80}));
  EXPECT_EQ(r->listen_udp, std::vector<std::uint16_t>{53});
  EXPECT_TRUE(r->run.empty());
  EXPECT_FALSE(r->run_mode().has_value());
}

TEST(Scenario, Client2AndExtraAddresses) {
  auto r = parse_scenario(R"(name = "two-sites"
[client]
addresses = ["10.77.1.3", "fd77:1::3", "10.77.1.254", "FD77:1:0:0::a"]
[client2]
nft = "table inet c2 { }"
addresses = ["10.77.3.3", "fd77:3::3"]
)", "t.toml");
  ASSERT_TRUE(r.ok()) << r.error().text();
  EXPECT_TRUE(r->client.nft.empty());
  // File order kept, IPv6 in canonical text.
  EXPECT_EQ(r->client.addresses, (std::vector<std::string>{"10.77.1.3", "fd77:1::3", "10.77.1.254", "fd77:1::a"}));
  ASSERT_TRUE(r->client2.has_value());
  EXPECT_EQ(r->client2->nft, "table inet c2 { }");
  EXPECT_EQ(r->client2->addresses, (std::vector<std::string>{"10.77.3.3", "fd77:3::3"}));
}

TEST(Scenario, EmptyClient2TableTurnsTheSiteOn) {
  auto r = parse_scenario("name = \"x\"\n[client2]\n", "t.toml");
  ASSERT_TRUE(r.ok()) << r.error().text();
  ASSERT_TRUE(r->client2.has_value());
  EXPECT_TRUE(r->client2->nft.empty());
  EXPECT_TRUE(r->client2->addresses.empty());
}

TEST(Scenario, ExtraAddressesOutsideTheSiteAreOneLineErrorsNamingKeyAndAddress) {
  struct Case {
    const char* toml;
    const char* want;
  };
  const Case cases[] = {
      // Another site's subnet, on either side.
      {"[client]\naddresses = [\"10.77.3.3\"]", "t.toml:3:1: key '[client] addresses': address 10.77.3.3 is outside the client site's subnet 10.77.1.0/24"},
      {"[client2]\naddresses = [\"10.77.1.3\"]", "key '[client2] addresses': address 10.77.1.3 is outside the client2 site's subnet 10.77.3.0/24"},
      {"[client2]\naddresses = [\"fd77:1::3\"]", "key '[client2] addresses': address fd77:1::3 is outside the client2 site's subnet fd77:3::/64"},
      {"[client]\naddresses = [\"fd77:1:0:1::3\"]", "address fd77:1:0:1::3 is outside the client site's subnet fd77:1::/64"},
      {"[client]\naddresses = [\"10.77.2.9\"]", "address 10.77.2.9 is outside"},
      {"[client]\naddresses = [\"192.0.2.1\"]", "address 192.0.2.1 is outside"},
      // Addresses the link already uses or cannot use.
      {"[client]\naddresses = [\"10.77.1.0\"]", "address 10.77.1.0 is the network address of 10.77.1.0/24"},
      {"[client]\naddresses = [\"10.77.1.255\"]", "address 10.77.1.255 is the broadcast address"},
      {"[client]\naddresses = [\"10.77.1.1\"]", "address 10.77.1.1 is the middlebox's address"},
      {"[client2]\naddresses = [\"fd77:3::1\"]", "address fd77:3::1 is the middlebox's address"},
      {"[client]\naddresses = [\"fd77:1::\"]", "address fd77:1:: is the network address of fd77:1::/64"},
      {"[client]\naddresses = [\"10.77.1.2\"]", "address 10.77.1.2 is already the client namespace's primary address"},
      {"[client2]\naddresses = [\"fd77:3::2\"]", "address fd77:3::2 is already the client2 namespace's primary address"},
      {"[client]\naddresses = [\"10.77.1.3\", \"10.77.1.3\"]", "address 10.77.1.3 listed twice"},
      {"[client]\naddresses = [\"fd77:1::3\", \"fd77:1:0::3\"]", "address fd77:1:0::3 listed twice"},
      // Not addresses.
      {"[client]\naddresses = [\"10.77.1.3/24\"]", "'10.77.1.3/24' is not an IPv4 or IPv6 address (write it without a prefix length)"},
      {"[client]\naddresses = [\"client.example\"]", "'client.example' is not an IPv4 or IPv6 address"},
      {"[client]\naddresses = [\"10.77.1.3\\nX\"]", "'10.77.1.3\\x0aX' is not an IPv4 or IPv6 address"},
      {"[client]\naddresses = \"10.77.1.3\"", "key '[client] addresses': expected an array of addresses, got a string"},
      {"[client]\naddresses = [3]", "expected address strings, got an integer"},
  };
  for (const auto& c : cases) {
    const std::string text = std::string("name = \"x\"\n") + c.toml + "\n";
    const Error e = parse_error(text);
    EXPECT_EQ(e.code, Errc::config) << text;
    EXPECT_NE(e.text().find(c.want), std::string::npos) << "want: " << c.want << "\ngot:  " << e.text();
    EXPECT_EQ(e.text().find('\n'), std::string::npos) << e.text();  // one line
  }
}

TEST(Scenario, Client2UnknownKeysAndTypesRejected) {
  EXPECT_NE(parse_error("name = \"x\"\n[client2]\nlisten = [21]\n").text().find(
                "t.toml:3:1: key '[client2] listen': unknown key (expected nft, addresses)"),
            std::string::npos);
  EXPECT_NE(parse_error("name = \"x\"\n[client]\naddress = [\"10.77.1.3\"]\n").text().find("[client] address': unknown key"),
            std::string::npos);
  EXPECT_NE(parse_error("name = \"x\"\nclient2 = true\n").text().find("key 'client2': expected a table"),
            std::string::npos);
  EXPECT_NE(parse_error("name = \"x\"\n[client3]\n").text().find(
                "unknown top-level key 'client3' (expected name, description, middlebox, server, client, client2, run)"),
            std::string::npos);
  EXPECT_NE(parse_error("name = \"x\"\n[middlebox]\naddresses = [\"10.77.1.3\"]\n").text().find("[middlebox] addresses"),
            std::string::npos);
}

TEST(Scenario, SyntaxErrorNamesFileLineAndColumn) {
  const Error e = parse_error("name = \"x\"\n[server\nlisten = [21]\n");
  EXPECT_EQ(e.code, Errc::config);
  EXPECT_NE(e.text().find("t.toml:2:"), std::string::npos) << e.text();
}

TEST(Scenario, UnknownTopLevelKeyRejected) {
  const Error e = parse_error("name = \"x\"\n\nmiddlebx = 3\n");
  EXPECT_EQ(e.code, Errc::config);
  EXPECT_NE(e.text().find("t.toml:3:1"), std::string::npos) << e.text();
  EXPECT_NE(e.text().find("middlebx"), std::string::npos) << e.text();
}

TEST(Scenario, UnknownTableKeysRejected) {
  EXPECT_NE(parse_error("name = \"x\"\n[middlebox]\nnftables = \"\"\n").text().find("[middlebox] nftables"),
            std::string::npos);
  EXPECT_NE(parse_error("name = \"x\"\n[server]\nlisten_tcp = [1]\n").text().find("t.toml:3:1: key '[server] listen_tcp'"),
            std::string::npos);
  EXPECT_NE(parse_error("name = \"x\"\n[client]\nrules = \"\"\n").text().find("[client] rules"), std::string::npos);
}

TEST(Scenario, TypesChecked) {
  EXPECT_NE(parse_error("name = 3\n").text().find("key 'name': expected a string, got an integer"), std::string::npos);
  EXPECT_NE(parse_error("name = \"x\"\nmiddlebox = \"nft\"\n").text().find("expected a table"), std::string::npos);
  EXPECT_NE(parse_error("name = \"x\"\n[middlebox]\nnft = [1]\n").text().find("expected a string, got an array"),
            std::string::npos);
  EXPECT_NE(parse_error("name = \"x\"\n[server]\nlisten = 21\n").text().find("expected an array of ports"),
            std::string::npos);
  EXPECT_NE(parse_error("name = \"x\"\n[server]\nlisten = [\"21\"]\n").text().find("expected port numbers"),
            std::string::npos);
  EXPECT_NE(parse_error("name = \"x\"\n[run]\ncount = [1, 2]\n").text().find("key '[run] count'"), std::string::npos);
  EXPECT_NE(parse_error("name = \"x\"\n[run]\nwhen = 1979-05-27\n").text().find("got a date/time"), std::string::npos);
}

TEST(Scenario, PortsValidated) {
  EXPECT_NE(parse_error("name = \"x\"\n[server]\nlisten = [0]\n").text().find("out of range"), std::string::npos);
  EXPECT_NE(parse_error("name = \"x\"\n[server]\nlisten = [65536]\n").text().find("out of range"), std::string::npos);
  EXPECT_NE(parse_error("name = \"x\"\n[server]\nlisten = [21, 21]\n").text().find("listed twice"), std::string::npos);
}

TEST(Scenario, RunValuesValidated) {
  EXPECT_NE(parse_error("name = \"x\"\n[run]\nmode = \"scan\"\n").text().find("t.toml:3:1: key '[run] mode'"),
            std::string::npos);
  EXPECT_NE(parse_error("name = \"x\"\n[run]\nmode = 1\n").text().find("[run] mode"), std::string::npos);
  EXPECT_NE(parse_error("name = \"x\"\n[run]\ntarget = \"10.77.2.2:99999\"\n").text().find("port must be 1-65535"),
            std::string::npos);
  EXPECT_NE(parse_error("name = \"x\"\n[run]\ntarget = 5\n").text().find("[run] target"), std::string::npos);
  EXPECT_NE(parse_error("name = \"x\"\n[run]\nTcp-Options = \"mss\"\n").text().find("not a flag name"),
            std::string::npos);
  EXPECT_NE(parse_error("name = \"x\"\n[run]\nout = \"/tmp\"\n").text().find("set by `tandem lab run`"),
            std::string::npos);
}

TEST(Scenario, NameRequired) {
  EXPECT_NE(parse_error("description = \"d\"\n").text().find("missing required key 'name'"), std::string::npos);
}

TEST(Scenario, MissingFile) {
  auto r = load_scenario("/nonexistent/tandem.toml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::config);
  EXPECT_NE(r.error().text().find("/nonexistent/tandem.toml: cannot open"), std::string::npos);
}

TEST(Scenario, ShippedScenariosParse) {
  const std::filesystem::path dir = std::filesystem::path(TANDEM_SOURCE_DIR) / "deploy" / "scenarios";
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".toml") continue;
    auto r = load_scenario(e.path());
    EXPECT_TRUE(r.ok()) << r.error().text();
    if (r.ok()) {
      EXPECT_TRUE(r->run_target().has_value()) << e.path();
    }
    ++n;
  }
  EXPECT_GE(n, 4);
  auto ftp = load_scenario(dir / "ftp-options.toml");
  ASSERT_TRUE(ftp.ok());
  EXPECT_EQ(run_flags(*ftp), (std::vector<std::string>{"--tcp-options", "mss=1460,sack,ts,nop,ws=7", "--count", "200",
                                                        "--rate", "200"}));
}

TEST(RunTarget, Forms) {
  auto v4 = parse_run_target("10.77.2.2:21");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->host, "10.77.2.2");
  EXPECT_EQ(v4->port, 21);
  auto v6 = parse_run_target("[fd77:2::2]:21");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "fd77:2::2");
  EXPECT_EQ(v6->port, 21);
  auto bare6 = parse_run_target("fd77:2::2");
  ASSERT_TRUE(bare6.ok());
  EXPECT_EQ(bare6->host, "fd77:2::2");
  EXPECT_FALSE(bare6->port.has_value());
  auto bare4 = parse_run_target("10.77.2.2");
  ASSERT_TRUE(bare4.ok());
  EXPECT_FALSE(bare4->port.has_value());
  for (const char* bad : {"", ":21", "10.77.2.2:", "10.77.2.2:0", "10.77.2.2:x", "[fd77::2", "[fd77::2]21", "[]:1"}) {
    EXPECT_FALSE(parse_run_target(bad).ok()) << bad;
  }
}

TEST(LabName, Validation) {
  EXPECT_TRUE(valid_prefix("tdm1a2b3c"));
  EXPECT_TRUE(valid_prefix("my-lab-2"));
  EXPECT_FALSE(valid_prefix(""));
  EXPECT_FALSE(valid_prefix("-x"));
  EXPECT_FALSE(valid_prefix("Lab"));
  EXPECT_FALSE(valid_prefix("a/b"));
  EXPECT_FALSE(valid_prefix("../etc"));
  EXPECT_FALSE(valid_prefix("abcdefghijklm"));  // 13 characters
}

}  // namespace
}  // namespace tandem::lab
