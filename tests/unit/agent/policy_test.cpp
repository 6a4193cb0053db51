#include <fstream>

#include <gtest/gtest.h>

#include "agent/policy/policy.hpp"
#include "common/transport/curve.hpp"

namespace tandem::agent {
namespace {

Result<Policy> parse(const std::string& text) { return parse_policy(text, "p.toml", "."); }

std::string error_of(const std::string& text) {
  auto p = parse(text);
  EXPECT_FALSE(p) << text;
  return p ? std::string() : p.error().text();
}

TEST(Policy, DefaultsAreSafe) {
  auto p = parse("");
  ASSERT_TRUE(p) << p.error().text();
  EXPECT_TRUE(p->controller_keys.empty());
  EXPECT_TRUE(p->destinations.empty());  // nowhere to send until the operator says so
  EXPECT_FALSE(p->destination_allowed(*packet::IpAddr::parse("127.0.0.1")));
  EXPECT_TRUE(p->protocol_allowed(proto::L4::tcp));
  EXPECT_FALSE(p->protocol_allowed(proto::L4::udp));
  EXPECT_FALSE(p->protocol_allowed(proto::L4::icmp));
  EXPECT_EQ(p->snaplen, 256u);
  EXPECT_TRUE(p->scrub_payload);
  EXPECT_FALSE(p->allow_filter_text);
  EXPECT_FALSE(p->agent_id.empty());
}

TEST(Policy, FullExampleParses) {
  auto kp = *transport::CurveKeypair::generate();
  auto p = parse("agent_id = \"far-1\"\n[controllers]\nkeys = [\"" + kp.public_z85 +
                 "\"]\n[send]\nenabled = true\ndestinations = [\"192.0.2.0/24\", \"2001:db8::/32\", \"198.51.100.7\"]\n"
                 "protocols = [\"tcp\", \"udp\"]\nports = [21, \"8000-8100\"]\nmax_rate_pps = 500\nmax_packets = 2000\n"
                 "[lease]\nmax_duration_s = 120\nidle_timeout_s = 20\nmax_drain_ms = 3000\n"
                 "[capture]\nsnaplen = 128\nscrub_payload = false\nquota_bytes = 1000000\nallow_filter_text = true\n");
  ASSERT_TRUE(p) << p.error().text();
  EXPECT_EQ(p->agent_id, "far-1");
  ASSERT_EQ(p->controller_keys.size(), 1u);
  EXPECT_EQ(p->destinations.size(), 3u);
  EXPECT_TRUE(p->destination_allowed(*packet::IpAddr::parse("192.0.2.200")));
  EXPECT_TRUE(p->destination_allowed(*packet::IpAddr::parse("198.51.100.7")));
  EXPECT_FALSE(p->destination_allowed(*packet::IpAddr::parse("198.51.100.8")));
  EXPECT_TRUE(p->destination_allowed(*packet::IpAddr::parse("2001:db8:ffff::1")));
  EXPECT_FALSE(p->destination_allowed(*packet::IpAddr::parse("2001:db9::1")));
  EXPECT_TRUE(p->protocol_allowed(proto::L4::udp));
  EXPECT_FALSE(p->protocol_allowed(proto::L4::icmp));
  EXPECT_TRUE(p->port_allowed(21));
  EXPECT_TRUE(p->port_allowed(8050));
  EXPECT_FALSE(p->port_allowed(22));
  EXPECT_EQ(p->max_rate_pps, 500u);
  EXPECT_EQ(p->max_packets, 2000u);
  EXPECT_EQ(p->max_duration_s, 120u);
  EXPECT_EQ(p->idle_timeout_s, 20u);
  EXPECT_EQ(p->max_drain_ms, 3000u);
  EXPECT_EQ(p->snaplen, 128u);
  EXPECT_FALSE(p->scrub_payload);
  EXPECT_EQ(p->quota_bytes, 1000000u);
  EXPECT_TRUE(p->allow_filter_text);
  EXPECT_NE(summary(*p).find("192.0.2.0/24"), std::string::npos);
  EXPECT_LE(summary(*p).size(), proto::kMaxPolicySummaryLen);
}

TEST(Policy, KeyFilesResolveAgainstThePolicyDirectory) {
  auto dir = std::filesystem::temp_directory_path() / ("tandem-policy-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto kp = *transport::CurveKeypair::generate();
  ASSERT_TRUE(transport::save_keypair(kp, (dir / "alice").string(), true));
  std::ofstream(dir / "policy.toml") << "[controllers]\nkey_files = [\"alice.pub\"]\n";
  auto p = load_policy((dir / "policy.toml").string());
  ASSERT_TRUE(p) << p.error().text();
  ASSERT_EQ(p->controller_keys.size(), 1u);
  EXPECT_EQ(p->controller_keys[0], kp.public_z85);
  std::ofstream(dir / "bad.toml") << "[controllers]\nkey_files = [\"missing.pub\"]\n";
  auto b = load_policy((dir / "bad.toml").string());
  ASSERT_FALSE(b);
  EXPECT_NE(b.error().text().find("controllers.key_files"), std::string::npos);
  std::filesystem::remove_all(dir);
  auto none = load_policy("/nonexistent/policy.toml");
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Errc::config);
}

TEST(Policy, EveryErrorNamesItsKey) {
  struct Case {
    std::string text, needle;
  };
  const Case cases[] = {
      {"this is not toml", "p.toml:1"},
      {"colour = 1", "colour: unknown key"},
      {"agent_id = 5", "agent_id: must be a string"},
      {"agent_id = \"has space\"", "agent_id: must be 1-64"},
      {"agent_id = \".hidden\"", "agent_id: must be 1-64"},
      {"controllers = 1", "controllers: must be a table"},
      {"[controllers]\nkeys = \"abc\"", "controllers.keys: must be an array"},
      {"[controllers]\nkeys = [1]", "controllers.keys: must be an array of strings"},
      {"[controllers]\nkeys = [\"short\"]", "is not a 40-character Z85"},
      {"[controllers]\nother = []", "controllers.other: unknown key"},
      {"[send]\nenabled = \"yes\"", "send.enabled: must be true or false"},
      {"[send]\ndestinations = [\"10.0.0.0/33\"]", "prefix length must be 0..32"},
      {"[send]\ndestinations = [\"10.0.0.1/8\"]", "host bits set; did you mean 10.0.0.0/8?"},
      {"[send]\ndestinations = [\"example.com\"]", "bad address"},
      {"[send]\ndestinations = [\"2001:db8::/129\"]", "prefix length must be 0..128"},
      {"[send]\nprotocols = [\"sctp\"]", "unknown protocol 'sctp'"},
      {"[send]\nports = [0]", "port 0 is out of range"},
      {"[send]\nports = [\"90-80\"]", "'90-80' is not a port"},
      {"[send]\nports = [\"http\"]", "'http' is not a port"},
      {"[send]\nports = [1.5]", "send.ports: must be an array"},
      {"[send]\nports = 80", "send.ports: must be an array"},
      {"[send]\nmax_rate_pps = 0", "send.max_rate_pps: 0 is out of range"},
      {"[send]\nmax_rate_pps = \"fast\"", "send.max_rate_pps: must be an integer"},
      {"[send]\nmax_packets = -1", "send.max_packets: -1 is out of range"},
      {"[send]\nburst = 1", "send.burst: unknown key"},
      {"[lease]\nmax_duration_s = 0", "lease.max_duration_s: 0 is out of range"},
      {"[lease]\nidle_timeout_s = 100000", "lease.idle_timeout_s"},
      {"[lease]\nmax_drain_ms = 70000", "lease.max_drain_ms"},
      {"[lease]\nforever = true", "lease.forever: unknown key"},
      {"[capture]\nsnaplen = 10", "capture.snaplen: 10 is out of range"},
      {"[capture]\nscrub_payload = 1", "capture.scrub_payload: must be true or false"},
      {"[capture]\nquota_bytes = 1", "capture.quota_bytes"},
      {"[capture]\nallow_filter_text = \"no\"", "capture.allow_filter_text"},
      {"[capture]\npromisc = true", "capture.promisc: unknown key"},
  };
  for (const auto& c : cases) {
    std::string e = error_of(c.text);
    EXPECT_NE(e.find(c.needle), std::string::npos) << c.text << "\n -> " << e;
    EXPECT_EQ(e.rfind("policy: ", 0), 0u) << e;
  }
}

TEST(Cidr, ContainsAndFormats) {
  auto c = *Cidr::parse("10.1.0.0/16");
  EXPECT_TRUE(c.contains(*packet::IpAddr::parse("10.1.255.3")));
  EXPECT_FALSE(c.contains(*packet::IpAddr::parse("10.2.0.1")));
  EXPECT_FALSE(c.contains(*packet::IpAddr::parse("::ffff:10.1.0.1")));  // no v4-mapped leaks
  EXPECT_EQ(c.to_string(), "10.1.0.0/16");
  auto odd = *Cidr::parse("10.1.0.128/25");
  EXPECT_TRUE(odd.contains(*packet::IpAddr::parse("10.1.0.200")));
  EXPECT_FALSE(odd.contains(*packet::IpAddr::parse("10.1.0.127")));
  auto all = *Cidr::parse("0.0.0.0/0");
  EXPECT_TRUE(all.contains(*packet::IpAddr::parse("203.0.113.1")));
  EXPECT_EQ(Cidr::parse("192.0.2.9")->prefix_len, 32u);
}

TEST(Policy, SpecialDestinationsNeverAllowed) {
  Policy p;
  p.destinations = {*Cidr::parse("0.0.0.0/0"), *Cidr::parse("::/0")};
  EXPECT_TRUE(p.destination_allowed(*packet::IpAddr::parse("198.51.100.1")));
  for (const char* a : {"0.0.0.0", "255.255.255.255", "224.0.0.1", "239.1.2.3", "::", "ff02::1"})
    EXPECT_FALSE(p.destination_allowed(*packet::IpAddr::parse(a))) << a;
}

// --- run and plan checks ---

Policy loopback_policy() {
  Policy p;
  p.destinations = {*Cidr::parse("127.0.0.0/8")};
  p.max_rate_pps = 100;
  p.max_packets = 50;
  p.max_duration_s = 60;
  p.ports = {PortRange{80, 80}, PortRange{8000, 8010}};
  return p;
}

proto::RunSetup setup(Nanos now) {
  proto::RunSetup s;
  s.run_id = "r1";
  s.lease_deadline_ns = now + 30'000'000'000;
  s.role = proto::Role::client;
  s.flows = {proto::Flow{"127.0.0.1", "127.0.0.2", proto::L4::tcp, 0, 0, 80}};
  s.plan.count = 10;
  s.plan.rate_pps = 10;
  s.plan.dst = "127.0.0.2";
  s.plan.dport = 80;
  s.plan.tcp_options = "linux";
  return s;
}

std::string refusal(const Policy& p, const proto::RunSetup& s, Nanos now) {
  auto st = check_run_setup(p, s, now);
  return st ? std::string("accepted") : st.error().text();
}

TEST(PolicyCheck, RunSetupRefusals) {
  Policy p = loopback_policy();
  Nanos now = 1'000'000'000'000;
  EXPECT_EQ(refusal(p, setup(now), now), "accepted");
  auto s = setup(now);
  s.lease_deadline_ns = now - 1;
  EXPECT_EQ(refusal(p, s, now), "policy: lease deadline in the past not allowed (must be after the agent's clock)");
  s = setup(now);
  s.lease_deadline_ns = now + 61'000'000'000;
  EXPECT_EQ(refusal(p, s, now), "policy: run duration 61 s not allowed (max 60 s)");
  s = setup(now);
  s.snaplen = 1500;
  EXPECT_EQ(refusal(p, s, now), "policy: snaplen 1500 not allowed (max 256)");
  s = setup(now);
  s.capture_filter = "tcp";
  EXPECT_NE(refusal(p, s, now).find("capture filter text not allowed"), std::string::npos);
  s = setup(now);
  s.flows.clear();
  EXPECT_EQ(refusal(p, s, now), "policy: a run without flows not allowed (at least one flow is required)");
  s = setup(now);
  s.flows[0].dst = "10.0.0.1";
  EXPECT_EQ(refusal(p, s, now), "policy: destination 10.0.0.1 not allowed (destinations: 127.0.0.0/8)");
  s = setup(now);
  s.flows[0].dport = 0;
  EXPECT_EQ(refusal(p, s, now), "policy: flow 0 dport 0 (any) not allowed (a destination port is required)");
  s = setup(now);
  s.flows[0].dport = 22;
  EXPECT_EQ(refusal(p, s, now), "policy: flow 0 dport 22 not allowed (ports: 80,8000-8010)");
  s = setup(now);
  s.flows[0].l4 = proto::L4::udp;
  EXPECT_EQ(refusal(p, s, now), "policy: flow 0 protocol udp not allowed (protocols: tcp)");
  s = setup(now);
  s.flows[0].dst = "not-an-ip";
  EXPECT_NE(refusal(p, s, now).find("an IP address is required"), std::string::npos);
  s = setup(now);
  s.flows[0].src = "::1";
  EXPECT_NE(refusal(p, s, now).find("mixed IP versions"), std::string::npos);
  s = setup(now);
  s.flows[0].sport_min = 9;
  s.flows[0].sport_max = 1;
  EXPECT_NE(refusal(p, s, now).find("sport range 9-1"), std::string::npos);
  // A server-role run's flows name the server itself: not checked against destinations.
  s = setup(now);
  s.role = proto::Role::server;
  s.flows[0].dst = "10.0.0.1";
  s.plan = {};
  EXPECT_EQ(refusal(p, s, now), "accepted");
  // A capture-only agent refuses client runs.
  Policy q = p;
  q.send_enabled = false;
  EXPECT_EQ(refusal(q, setup(now), now), "policy: client role (sending) not allowed (send.enabled = false)");
  // The plan must fit the lease.
  s = setup(now);
  s.lease_deadline_ns = now + 2'000'000'000;
  s.plan.count = 50;
  EXPECT_NE(refusal(p, s, now).find("longer than the run's lease"), std::string::npos);
}

std::string plan_refusal(const Policy& p, const proto::ProbePlan& plan, std::uint64_t sent = 0) {
  auto st = check_plan(p, plan, setup(0).flows, sent);
  return st ? std::string("accepted") : st.error().text();
}

TEST(PolicyCheck, PlanRefusals) {
  Policy p = loopback_policy();
  proto::ProbePlan base = setup(0).plan;
  EXPECT_EQ(plan_refusal(p, base), "accepted");
  auto pl = base;
  pl.rate_pps = 101;
  EXPECT_EQ(plan_refusal(p, pl), "policy: rate 101 pps not allowed (max 100 pps)");
  pl = base;
  pl.rate_pps = 0;
  pl.interval_us = 5000;  // 200 pps
  EXPECT_EQ(plan_refusal(p, pl), "policy: rate 200 pps not allowed (max 100 pps)");
  pl.interval_us = 0;
  EXPECT_EQ(plan_refusal(p, pl), "policy: unpaced sending not allowed (max 100 pps)");
  pl = base;
  EXPECT_EQ(plan_refusal(p, pl, 45), "policy: 55 packets not allowed (max 50 per run)");
  pl = base;
  pl.dst = "127.0.0.3";  // inside destinations but not the declared peer
  EXPECT_EQ(plan_refusal(p, pl), "policy: destination 127.0.0.3 tcp/80 not allowed (not a flow of this run)");
  pl = base;
  pl.dst = "8.8.8.8";
  EXPECT_EQ(plan_refusal(p, pl), "policy: destination 8.8.8.8 not allowed (destinations: 127.0.0.0/8)");
  pl = base;
  pl.ip_version = 6;
  EXPECT_NE(plan_refusal(p, pl).find("ip_version 6"), std::string::npos);
  pl = base;
  pl.l4 = proto::L4::icmp;
  EXPECT_EQ(plan_refusal(p, pl), "policy: protocol icmp not allowed (protocols: tcp)");
  pl = base;
  pl.tcp_options = "mss=99999";
  EXPECT_NE(plan_refusal(p, pl).find("tcp options 'mss=99999' not allowed"), std::string::npos);
  pl = base;
  pl.variants = {proto::ProbeVariant{"ws=7", 0, "70000"}};
  EXPECT_NE(plan_refusal(p, pl).find("sport '70000' not allowed"), std::string::npos);
  pl = base;
  pl.count = 0;
  EXPECT_EQ(plan_refusal(p, pl), "policy: an empty plan not allowed (count >= 1)");
  Policy q = p;
  q.send_enabled = false;
  EXPECT_EQ(plan_refusal(q, base), "policy: sending not allowed (send.enabled = false)");
}

}  // namespace
}  // namespace tandem::agent

namespace tandem::agent {
namespace {
TEST(Policy, ShippedExampleParses) {
  auto p = load_policy(std::string(TANDEM_SOURCE_DIR) + "/deploy/agent/policy.toml");
  ASSERT_TRUE(p) << p.error().text();
  EXPECT_TRUE(p->destination_allowed(*packet::IpAddr::parse("192.0.2.10")));
  EXPECT_TRUE(p->port_allowed(443));
  EXPECT_FALSE(p->port_allowed(22));
}
}  // namespace
}  // namespace tandem::agent
