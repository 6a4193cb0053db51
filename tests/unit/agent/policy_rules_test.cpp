// Every send rule of the operator policy (agent/policy/policy.cpp check_plan/check_run_setup) at
// its boundary: the last allowed value is accepted and the first one past it refused with the rule's
// own message, so a dropped or loosened comparison fails here (tests/mutation/mutants.txt). The
// per-run packet total over several SEND_PLANs of one run is proven on the real daemon in
// tests/integration/agent/agent_policy_run_test.cpp.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/policy/policy.hpp"

namespace tandem::agent {
namespace {

// Destinations 10.1.2.0/24 and fd00:1::/64, tcp only, ports 80 and 8000-8010, 100 pps, 50
// packets per run, 60 s.
Policy policy() {
  Policy p;
  p.destinations = {*Cidr::parse("10.1.2.0/24"), *Cidr::parse("fd00:1::/64")};
  p.protocols = {true, false, false};
  p.ports = {PortRange{80, 80}, PortRange{8000, 8010}};
  p.max_rate_pps = 100;
  p.max_packets = 50;
  p.max_duration_s = 60;
  return p;
}

proto::Flow flow(const std::string& dst, std::uint16_t dport, proto::L4 l4 = proto::L4::tcp) {
  return proto::Flow{"", dst, l4, 0, 0, dport};
}

proto::ProbePlan plan(const std::string& dst, std::uint16_t dport, proto::L4 l4 = proto::L4::tcp) {
  proto::ProbePlan pl;
  pl.count = 10;
  pl.rate_pps = 10;
  pl.dst = dst;
  pl.ip_version = dst.find(':') == std::string::npos ? 4 : 6;
  pl.dport = dport;
  pl.l4 = l4;
  return pl;
}

// The plan checked against a run whose only flow is the plan's own destination.
std::string verdict(const Policy& p, const proto::ProbePlan& pl, std::uint64_t already_sent = 0) {
  auto st = check_plan(p, pl, {flow(pl.dst, pl.dport, pl.l4)}, already_sent);
  return st ? std::string("accepted") : st.error().text();
}

std::string verdict(const Policy& p, const proto::ProbePlan& pl, const std::vector<proto::Flow>& flows) {
  auto st = check_plan(p, pl, flows, 0);
  return st ? std::string("accepted") : st.error().text();
}

TEST(PolicyRules, PortRangeEdgesInsideAcceptedOutsideRefused) {
  Policy p = policy();
  for (std::uint16_t port : {std::uint16_t{80}, std::uint16_t{8000}, std::uint16_t{8005}, std::uint16_t{8010}}) EXPECT_EQ(verdict(p, plan("10.1.2.7", port)), "accepted") << port;
  for (int port : {79, 81, 7999, 8011, 443}) {
    EXPECT_EQ(verdict(p, plan("10.1.2.7", static_cast<std::uint16_t>(port))),
              "policy: port " + std::to_string(port) + " not allowed (ports: 80,8000-8010)");
  }
  // No [send] ports: any port.
  p.ports.clear();
  EXPECT_EQ(verdict(p, plan("10.1.2.7", 443)), "accepted");
}

TEST(PolicyRules, FlowPortsAreCheckedAtRunSetupToo) {
  Policy p = policy();
  proto::RunSetup s;
  s.run_id = "r";
  s.lease_deadline_ns = 2'000'000'000;
  s.role = proto::Role::client;
  s.flows = {flow("10.1.2.7", 8010)};
  EXPECT_TRUE(check_run_setup(p, s, 1'000'000'000));
  s.flows = {flow("10.1.2.7", 8011)};
  auto st = check_run_setup(p, s, 1'000'000'000);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().text(), "policy: flow 0 dport 8011 not allowed (ports: 80,8000-8010)");
}

// "A plan may only aim at a declared flow": same address, same protocol AND same port. Every
// other part of the plan is inside the policy, so only the flow match can refuse it.
TEST(PolicyRules, PlanMustMatchADeclaredFlowByAddressProtocolAndPort) {
  Policy p = policy();
  p.protocols = {true, true, true};
  const std::vector<proto::Flow> flows{flow("10.1.2.7", 80)};
  EXPECT_EQ(verdict(p, plan("10.1.2.7", 80), flows), "accepted");
  EXPECT_EQ(verdict(p, plan("10.1.2.7", 8000), flows),
            "policy: destination 10.1.2.7 tcp/8000 not allowed (not a flow of this run)");
  EXPECT_EQ(verdict(p, plan("10.1.2.8", 80), flows),
            "policy: destination 10.1.2.8 tcp/80 not allowed (not a flow of this run)");
  EXPECT_EQ(verdict(p, plan("10.1.2.7", 80, proto::L4::udp), flows),
            "policy: destination 10.1.2.7 udp/80 not allowed (not a flow of this run)");
  // Several flows: any one of them matching is enough.
  const std::vector<proto::Flow> two{flow("10.1.2.7", 80), flow("10.1.2.9", 8000, proto::L4::udp)};
  EXPECT_EQ(verdict(p, plan("10.1.2.9", 8000, proto::L4::udp), two), "accepted");
  EXPECT_EQ(verdict(p, plan("10.1.2.9", 80, proto::L4::udp), two),
            "policy: destination 10.1.2.9 udp/80 not allowed (not a flow of this run)");
  // ICMP has no port: address and protocol match.
  const std::vector<proto::Flow> ping{flow("10.1.2.7", 0, proto::L4::icmp)};
  EXPECT_EQ(verdict(p, plan("10.1.2.7", 0, proto::L4::icmp), ping), "accepted");
  EXPECT_EQ(verdict(p, plan("10.1.2.7", 0, proto::L4::icmp), flows),
            "policy: destination 10.1.2.7 icmp/0 not allowed (not a flow of this run)");
}

TEST(PolicyRules, ProtocolRefusedUnlessListed) {
  Policy p = policy();
  EXPECT_EQ(verdict(p, plan("10.1.2.7", 80)), "accepted");
  EXPECT_EQ(verdict(p, plan("10.1.2.7", 80, proto::L4::udp)), "policy: protocol udp not allowed (protocols: tcp)");
  EXPECT_EQ(verdict(p, plan("10.1.2.7", 0, proto::L4::icmp)), "policy: protocol icmp not allowed (protocols: tcp)");
  p.protocols = {false, true, false};
  EXPECT_EQ(verdict(p, plan("10.1.2.7", 80, proto::L4::udp)), "accepted");
  EXPECT_EQ(verdict(p, plan("10.1.2.7", 80)), "policy: protocol tcp not allowed (protocols: udp)");
}

TEST(PolicyRules, DestinationCidrEdges) {
  Policy p = policy();
  for (const char* a : {"10.1.2.1", "10.1.2.254", "fd00:1::1", "fd00:1::ffff:ffff:ffff:fffe"})
    EXPECT_EQ(verdict(p, plan(a, 80)), "accepted") << a;
  for (const char* a : {"10.1.1.255", "10.1.3.1", "11.1.2.1", "fd00:1:0:1::1", "fd00::1"}) {
    EXPECT_EQ(verdict(p, plan(a, 80)), std::string("policy: destination ") + a +
                                           " not allowed (destinations: 10.1.2.0/24,fd00:1::/64)");
  }
  // Server-role flows name the server itself and are not destinations; client-role ones are.
  proto::RunSetup s;
  s.run_id = "r";
  s.lease_deadline_ns = 2'000'000'000;
  s.role = proto::Role::client;
  s.flows = {flow("10.1.3.1", 80)};
  auto st = check_run_setup(p, s, 1'000'000'000);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().text(), "policy: destination 10.1.3.1 not allowed (destinations: 10.1.2.0/24,fd00:1::/64)");
  s.role = proto::Role::server;
  EXPECT_TRUE(check_run_setup(p, s, 1'000'000'000));
}

TEST(PolicyRules, RateCapIsInclusive) {
  Policy p = policy();
  auto pl = plan("10.1.2.7", 80);
  pl.rate_pps = 100;
  EXPECT_EQ(verdict(p, pl), "accepted");
  pl.rate_pps = 101;
  EXPECT_EQ(verdict(p, pl), "policy: rate 101 pps not allowed (max 100 pps)");
  pl.rate_pps = 0;
  pl.interval_us = 10'000;  // exactly 100 pps
  EXPECT_EQ(verdict(p, pl), "accepted");
  pl.interval_us = 9'990;  // 100.1 pps
  EXPECT_EQ(verdict(p, pl), "policy: rate 100 pps not allowed (max 100 pps)");
}

TEST(PolicyRules, PerPlanPacketCapIsInclusive) {
  Policy p = policy();
  auto pl = plan("10.1.2.7", 80);
  pl.count = 50;
  EXPECT_EQ(verdict(p, pl), "accepted");
  pl.count = 51;
  EXPECT_EQ(verdict(p, pl), "policy: 51 packets not allowed (max 50 per run)");
}

// max_packets is per run: what earlier plans of the run sent counts against the next one.
TEST(PolicyRules, PerRunPacketTotalCountsEarlierPlans) {
  Policy p = policy();
  auto pl = plan("10.1.2.7", 80);
  pl.count = 10;
  EXPECT_EQ(verdict(p, pl, 40), "accepted");  // 40 + 10 = 50
  EXPECT_EQ(verdict(p, pl, 41), "policy: 51 packets not allowed (max 50 per run)");
  pl.count = 1;
  EXPECT_EQ(verdict(p, pl, 49), "accepted");
  EXPECT_EQ(verdict(p, pl, 50), "policy: 51 packets not allowed (max 50 per run)");
}

TEST(PolicyRules, PlanDurationCapIsInclusive) {
  Policy p = policy();
  p.max_packets = 10'000;
  auto pl = plan("10.1.2.7", 80);
  pl.rate_pps = 10;
  pl.count = 601;  // 600 gaps of 100 ms = 60 s
  EXPECT_EQ(verdict(p, pl), "accepted");
  pl.count = 602;
  EXPECT_EQ(verdict(p, pl), "policy: plan of 60 s not allowed (max 60 s)");
}

}  // namespace
}  // namespace tandem::agent

namespace tandem::agent {
namespace {

// Multi-vantage plans (DESIGN.md §3): every stream is checked, a stream's source must be declared
// by a flow from that source, inside [send] sources, and (check_sources) one of this host's own.
TEST(PolicyRules, StreamsAreCheckedOneByOne) {
  Policy p = policy();
  proto::ProbePlan pl = plan("10.1.2.7", 80);
  pl.count = 20;
  pl.streams = {proto::ProbeStream{"10.9.0.2", "10.1.2.7", 80, 1, 10, {}},
                proto::ProbeStream{"10.9.0.3", "10.1.2.7", 8000, 2, 10, {}}};
  std::vector<proto::Flow> flows = {proto::Flow{"10.9.0.2", "10.1.2.7", proto::L4::tcp, 0, 0, 80},
                                    proto::Flow{"10.9.0.3", "10.1.2.7", proto::L4::tcp, 0, 0, 8000}};
  EXPECT_EQ(verdict(p, pl, flows), "accepted");
  // The second stream's port is refused even though the first one's is fine.
  pl.streams[1].dport = 443;
  flows[1].dport = 443;
  EXPECT_EQ(verdict(p, pl, flows), "policy: port 443 not allowed (ports: 80,8000-8010)");
  pl.streams[1].dport = 8000;
  flows[1].dport = 8000;
  // A stream from a source no flow declares.
  flows[1].src = "10.9.0.4";
  EXPECT_EQ(verdict(p, pl, flows), "policy: destination 10.1.2.7 tcp/8000 from 10.9.0.3 not allowed (not a flow of this run)");
  flows[1].src = "10.9.0.3";
  // [send] sources narrows where probes may come from.
  p.sources = {*Cidr::parse("10.9.0.2/32")};
  EXPECT_EQ(verdict(p, pl, flows), "policy: source 10.9.0.3 not allowed (sources: 10.9.0.2/32)");
  // Counts must add up.
  p.sources.clear();
  pl.count = 19;
  EXPECT_EQ(verdict(p, pl, flows), "policy: stream counts not allowed (must add up to the plan's count)");
}

TEST(PolicyRules, SourcesMustBeThisHostsAndAllowed) {
  Policy p = policy();
  auto a = [](const char* t) { return *packet::IpAddr::parse(t); };
  std::vector<packet::IpAddr> local = {a("10.77.1.2"), a("10.77.1.3"), a("fd77:1::2")};
  EXPECT_TRUE(check_sources(p, {a("10.77.1.2"), a("10.77.1.3"), a("fd77:1::2")}, local));
  auto st = check_sources(p, {a("10.77.1.2"), a("10.9.9.9")}, local);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().text(), "policy: source 10.9.9.9 not allowed (not an address of this host)");
  p.sources = {*Cidr::parse("10.77.1.2")};
  st = check_sources(p, {a("10.77.1.3")}, local);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().text(), "policy: source 10.77.1.3 not allowed (sources: 10.77.1.2/32)");
  EXPECT_TRUE(check_sources(p, {a("10.77.1.2")}, local));
}

TEST(PolicyRules, SendSourcesParsesAndRefusesAnEmptyList) {
  auto ok = parse_policy("[send]\ndestinations = [\"10.0.0.0/8\"]\nsources = [\"10.77.1.0/24\", \"fd77:1::/64\"]\n", "p.toml", ".");
  ASSERT_TRUE(ok) << ok.error().text();
  EXPECT_EQ(ok->sources.size(), 2u);
  EXPECT_NE(summary(*ok).find("from 10.77.1.0/24,fd77:1::/64"), std::string::npos) << summary(*ok);
  auto bad = parse_policy("[send]\nsources = []\n", "p.toml", ".");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().text().find("send.sources"), std::string::npos) << bad.error().text();
}

}  // namespace
}  // namespace tandem::agent
