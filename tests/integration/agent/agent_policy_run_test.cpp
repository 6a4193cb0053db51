// The per-run packet cap on the real daemon: max_packets is summed over every SEND_PLAN of one run
// (daemon.cpp keeps the run's total, check_plan adds the next plan), so a controller cannot split a
// big burst into several small plans. Oracle: the agent's own SEND_REPORTs (packets it says it
// sent) and its audit log, against a cap chosen here.
#include "tests/integration/agent/fixture.hpp"

namespace tandem::agent::test {
namespace {

using namespace std::chrono_literals;

constexpr std::uint32_t kCap = 30;

class AgentRunCap : public AgentFixture {
 protected:
  void tune(Policy& p) override { p.max_packets = kCap; }
};

proto::ProbePlan plan_of(std::uint32_t count) {
  proto::ProbePlan p;
  p.count = count;
  p.rate_pps = 1000;
  p.seed = 0x5eed;
  p.dport = 9;  // nothing listens: the loopback kernel answers RST, which does not matter here
  p.dst = "127.0.0.1";
  p.ip_version = 4;
  p.l4 = proto::L4::tcp;
  p.sport = "random";
  return p;
}

TEST_F(AgentRunCap, PacketCapIsPerRunAcrossSeveralPlans) {
  if (!have_raw()) GTEST_SKIP() << "needs root (raw sockets, capture)";
  auto c = hello_client(ctl_a_);
  proto::RunSetup s;
  s.run_id = "cap-1";
  s.lease_deadline_ns = realtime_ns() + 30'000'000'000;
  s.role = proto::Role::client;
  s.flows = {proto::Flow{"127.0.0.1", "127.0.0.1", proto::L4::tcp, 0, 0, 9}};
  ASSERT_TRUE(c->request_as<proto::RunOk>(s));
  ASSERT_TRUE(c->request_as<proto::CaptureStats>(proto::CaptureStart{}));

  // 10 + 10 + 10 = the cap exactly: all accepted and sent.
  std::uint32_t sent = 0;
  for (int i = 0; i < 3; ++i) {
    auto r = c->request_as<proto::SendReport>(proto::SendPlan{plan_of(10)}, 10s);
    ASSERT_TRUE(r) << "plan " << i << ": " << r.error().text();
    sent += r->sent + r->failed;
  }
  EXPECT_EQ(sent, kCap);
  // One more packet in a fourth plan is over the run's total, though the plan alone is tiny.
  auto over = c->request(proto::SendPlan{plan_of(1)});
  ASSERT_TRUE(over);
  ASSERT_TRUE(std::holds_alternative<proto::ErrorReply>(over->message));
  const auto& e = std::get<proto::ErrorReply>(over->message);
  EXPECT_EQ(e.code, proto::ErrorCode::policy_refused);
  EXPECT_EQ(e.text, "policy: 31 packets not allowed (max 30 per run)");
  EXPECT_TRUE(audit_has("audit send_refused key=" + ctl_a_.public_z85 + " run=cap-1"));
  ASSERT_TRUE(c->request_as<proto::RunOk>(proto::RunEnd{}));

  // A new run starts from zero.
  s.run_id = "cap-2";
  s.lease_deadline_ns = realtime_ns() + 30'000'000'000;
  ASSERT_TRUE(c->request_as<proto::RunOk>(s));
  ASSERT_TRUE(c->request_as<proto::CaptureStats>(proto::CaptureStart{}));
  auto again = c->request_as<proto::SendReport>(proto::SendPlan{plan_of(kCap)}, 10s);
  ASSERT_TRUE(again) << again.error().text();
  EXPECT_EQ(again->sent + again->failed, kCap);
  ASSERT_TRUE(c->request_as<proto::RunOk>(proto::RunEnd{}));
}

// Sending from an address that is not the agent's own (DESIGN.md §3: a client agent sends only from
// its own addresses): refused at RUN_SETUP (a flow from it) and at SEND_PLAN (a stream from it),
// each with one line naming the address; HELLO_OK lists where it may send from, loopback included.
class AgentSources : public AgentFixture {
 protected:
  void tune(Policy& p) override { p.max_packets = kCap; }
};

TEST_F(AgentSources, ForeignSourceRefusedNamingTheAddress) {
  auto c = client(ctl_a_);
  auto hello = c->request_as<proto::HelloOk>(proto::Hello{1, 1, "test", {}});
  ASSERT_TRUE(hello) << hello.error().text();
  EXPECT_NE(std::find(hello->sources.begin(), hello->sources.end(), "127.0.0.1"), hello->sources.end());
  EXPECT_EQ(std::find(hello->sources.begin(), hello->sources.end(), "192.0.2.77"), hello->sources.end());

  proto::RunSetup s;
  s.run_id = "src-1";
  s.lease_deadline_ns = realtime_ns() + 30'000'000'000;
  s.role = proto::Role::client;
  s.flows = {proto::Flow{"192.0.2.77", "127.0.0.1", proto::L4::tcp, 0, 0, 9}};
  auto r = c->request(s);
  ASSERT_TRUE(r);
  ASSERT_TRUE(std::holds_alternative<proto::ErrorReply>(r->message));
  EXPECT_EQ(std::get<proto::ErrorReply>(r->message).code, proto::ErrorCode::policy_refused);
  EXPECT_EQ(std::get<proto::ErrorReply>(r->message).text, "policy: source 192.0.2.77 not allowed (not an address of this host)");

  // A run from its own address; then a plan whose stream claims the foreign source.
  if (!have_raw()) GTEST_SKIP() << "needs root (raw sockets, capture)";
  s.flows = {proto::Flow{"127.0.0.1", "127.0.0.1", proto::L4::tcp, 0, 0, 9},
             proto::Flow{"", "127.0.0.1", proto::L4::tcp, 0, 0, 9}};
  ASSERT_TRUE(c->request_as<proto::RunOk>(s));
  ASSERT_TRUE(c->request_as<proto::CaptureStats>(proto::CaptureStart{}));
  proto::ProbePlan p = plan_of(4);
  p.streams = {proto::ProbeStream{"127.0.0.1", "127.0.0.1", 9, 1, 2, {}}, proto::ProbeStream{"192.0.2.77", "127.0.0.1", 9, 2, 2, {}}};
  auto over = c->request(proto::SendPlan{p});
  ASSERT_TRUE(over);
  ASSERT_TRUE(std::holds_alternative<proto::ErrorReply>(over->message));
  // The run declared no flow from that address (the agent filled the empty one with its routing
  // default), so the stream is refused before the address check, still naming the address.
  EXPECT_EQ(std::get<proto::ErrorReply>(over->message).text,
            "policy: destination 127.0.0.1 tcp/9 from 192.0.2.77 not allowed (not a flow of this run)");
  // Both streams from its own address: sent, 2 + 2.
  p.streams[1].src = "127.0.0.1";
  auto ok = c->request_as<proto::SendReport>(proto::SendPlan{p}, 10s);
  ASSERT_TRUE(ok) << ok.error().text();
  EXPECT_EQ(ok->sent + ok->failed, 4u);
  ASSERT_TRUE(c->request_as<proto::RunOk>(proto::RunEnd{}));
}

}  // namespace
}  // namespace tandem::agent::test
