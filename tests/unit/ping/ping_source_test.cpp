// `tandem ping -S/-e`: which source address is chosen, and which bad values are refused with what
// (DESIGN.md §3). choose_source is pure: the host's addresses and the kernel's route answer are
// made up here, so every rule is tested without a network.
#include "controller/ping/ping_source.hpp"

#include <gtest/gtest.h>

namespace tandem::ping {
namespace {

packet::IpAddr addr(const char* text) { return *packet::IpAddr::parse(text); }

// A client host: eth0 with two v4 and two v6 addresses (plus a link-local one listed first), eth1
// with one of each, lo, and an interface holding only IPv4.
HostFacts host(Result<packet::IpAddr> route) {
  return HostFacts{{{"lo", addr("127.0.0.1")},
                    {"lo", addr("::1")},
                    {"eth0", addr("10.77.1.2")},
                    {"eth0", addr("10.77.1.3")},
                    {"eth0", addr("fe80::2")},
                    {"eth0", addr("fd77:1::2")},
                    {"eth0", addr("fd77:1::3")},
                    {"eth1", addr("10.88.0.5")},
                    {"eth1", addr("fd88::5")},
                    {"v4only", addr("10.99.0.1")}},
                   std::move(route)};
}

Error no_route() {
  return make_error(Errc::environment, "route", "no route to 10.77.2.2: Network is unreachable");
}

const packet::IpAddr kTarget4 = addr("10.77.2.2");
const packet::IpAddr kTarget6 = addr("fd77:2::2");

TEST(ChooseSource, NothingGivenIsTheRoutesChoice) {
  auto r = choose_source(kTarget4, std::nullopt, "any", host(addr("10.77.1.2")));
  ASSERT_TRUE(r.ok()) << r.error().text();
  EXPECT_EQ(*r, addr("10.77.1.2"));
  auto e = choose_source(kTarget4, std::nullopt, "", host(no_route()));
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code, Errc::environment);
  EXPECT_EQ(e.error().text(), "route: no route to 10.77.2.2: Network is unreachable");
}

TEST(ChooseSource, SourceOfThisHostIsTaken) {
  for (const char* iface : {"any", "eth0", "eth1"}) {  // -S wins over the interface's own address
    auto r = choose_source(kTarget4, "10.77.1.3", iface, host(addr("10.77.1.2")));
    ASSERT_TRUE(r.ok()) << r.error().text();
    EXPECT_EQ(*r, addr("10.77.1.3"));
  }
  auto v6 = choose_source(kTarget6, "[fd77:1::3]", "any", host(no_route()));  // no route needed
  ASSERT_TRUE(v6.ok()) << v6.error().text();
  EXPECT_EQ(*v6, addr("fd77:1::3"));
  auto lo = choose_source(kTarget4, "127.0.0.1", "any", host(addr("10.77.1.2")));  // any interface of ours
  ASSERT_TRUE(lo.ok());
}

TEST(ChooseSource, ForeignSourceIsAUsageErrorNamingIt) {
  auto r = choose_source(kTarget4, "10.9.9.9", "any", host(addr("10.77.1.2")));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::usage);
  EXPECT_EQ(r.error().text(), "ping: --source 10.9.9.9 is not an address of this host");
  auto v6 = choose_source(kTarget6, "fd77:1::9", "eth0", host(addr("fd77:1::2")));
  ASSERT_FALSE(v6.ok());
  EXPECT_EQ(v6.error().text(), "ping: --source fd77:1::9 is not an address of this host");
}

TEST(ChooseSource, SourceMustMatchTheTargetsVersion) {
  auto r = choose_source(kTarget4, "fd77:1::2", "any", host(addr("10.77.1.2")));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::usage);
  EXPECT_EQ(r.error().text(), "ping: --source fd77:1::2 is IPv6 but the target 10.77.2.2 is IPv4");
  auto v6 = choose_source(kTarget6, "10.77.1.2", "any", host(addr("fd77:1::2")));
  ASSERT_FALSE(v6.ok());
  EXPECT_EQ(v6.error().text(), "ping: --source 10.77.1.2 is IPv4 but the target fd77:2::2 is IPv6");
}

TEST(ChooseSource, SourceMustBeAnAddress) {
  for (const char* bad : {"client.example", "10.77.1", "", "fd77:1::2%eth0"}) {
    auto r = choose_source(kTarget4, std::string(bad), "any", host(addr("10.77.1.2")));
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, Errc::usage);
    EXPECT_EQ(r.error().text(), "ping: --source '" + std::string(bad) + "' is not an IP address");
  }
}

TEST(ChooseSource, InterfaceKeepsTheRoutesSourceWhenItIsOnTheInterface) {
  auto r = choose_source(kTarget4, std::nullopt, "eth0", host(addr("10.77.1.3")));
  ASSERT_TRUE(r.ok()) << r.error().text();
  EXPECT_EQ(*r, addr("10.77.1.3"));  // not eth0's first address: the kernel's pick stands
}

TEST(ChooseSource, InterfaceOtherwiseGivesItsOwnAddress) {
  // The route (through eth1's bound lookup) still picked eth0's address: eth1's own is used.
  auto r = choose_source(kTarget4, std::nullopt, "eth1", host(addr("10.77.1.2")));
  ASSERT_TRUE(r.ok()) << r.error().text();
  EXPECT_EQ(*r, addr("10.88.0.5"));
  // No route through the interface at all (IPv6 refuses): its address of the target's version,
  // global before link-local even though fe80::2 is listed first.
  auto v6 = choose_source(kTarget6, std::nullopt, "eth0", host(no_route()));
  ASSERT_TRUE(v6.ok()) << v6.error().text();
  EXPECT_EQ(*v6, addr("fd77:1::2"));
  // A link-local target gets the link-local source.
  auto ll = choose_source(addr("fe80::1"), std::nullopt, "eth0", host(no_route()));
  ASSERT_TRUE(ll.ok());
  EXPECT_EQ(*ll, addr("fe80::2"));
}

TEST(ChooseSource, LinkLocalOnlyInterfaceHasNoSourceForAGlobalTarget) {
  HostFacts facts{{{"eth0", addr("fd77:1::2")}, {"dummy0", addr("fe80::1c")}}, addr("fd77:1::2")};
  auto r = choose_source(kTarget6, std::nullopt, "dummy0", facts);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().text(), "ping: --interface dummy0 has no IPv6 address to send from (give --source)");
}

TEST(ChooseSource, InterfaceWithoutAnAddressOfTheVersionIsAnEnvironmentError) {
  auto r = choose_source(kTarget6, std::nullopt, "v4only", host(addr("fd77:1::2")));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::environment);
  EXPECT_EQ(r.error().text(), "ping: --interface v4only has no IPv6 address to send from (give --source)");
}

TEST(SelectSource, UnknownInterfaceIsNamed) {
  // Reads this namespace only (if_nametoindex): no privilege, nothing sent.
  auto r = select_source(kTarget4, std::nullopt, "tdmnodev0");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::environment);
  EXPECT_EQ(r.error().text(), "ping: --interface tdmnodev0: no such interface on this host");
  auto lo = select_source(addr("127.0.0.1"), std::nullopt, "lo");
  ASSERT_TRUE(lo.ok()) << lo.error().text();
  EXPECT_EQ(*lo, addr("127.0.0.1"));
}

TEST(InterfaceGiven, AnyMeansNone) {
  EXPECT_FALSE(interface_given(""));
  EXPECT_FALSE(interface_given("any"));
  EXPECT_TRUE(interface_given("eth0"));
}

}  // namespace
}  // namespace tandem::ping
