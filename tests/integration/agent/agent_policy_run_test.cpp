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

}  // namespace
}  // namespace tandem::agent::test
