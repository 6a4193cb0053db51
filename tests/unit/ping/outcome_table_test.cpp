// OutcomeTable: probes leave the table in index order, each once its fate is final — including a
// probe the kernel refused (it must not hold back the probes after it) and an answer captured before
// the send was confirmed.
#include "controller/ping/outcome_table.hpp"

#include <gtest/gtest.h>

#include "common/packet/addr.hpp"

namespace tandem::ping {
namespace {

constexpr Nanos kSecond = 1'000'000'000;

struct Fixture {
  PingOptions opts;
  std::unique_ptr<probe::ProbeModule> module;
  Fixture() {
    opts.target = *packet::IpAddr::parse("192.0.2.1");
    opts.spec = probe::default_spec(probe::ProbeSpec::L4::tcp, packet::IpVersion::v4);
    opts.spec.dport = 21;
    opts.count = 3;
    opts.timeout_s = 1.0;
    auto m = probe::make_probe_module(opts.spec, {*packet::IpAddr::parse("192.0.2.9"), opts.target},
                                      probe::RunKey{7}, opts.count);
    module = std::move(m).value();
  }
  probe::Observation reply(std::uint32_t index) const {
    return probe::Observation{probe::Observation::What::reply, index, probe::ReplyKind::syn_ack, 0, 0, opts.target};
  }
};

std::vector<std::uint32_t> ids(const std::vector<ProbeOutcome>& v) {
  std::vector<std::uint32_t> out;
  for (const auto& p : v) out.push_back(p.index);
  return out;
}

TEST(OutcomeTable, RefusedSendDoesNotHoldBackLaterProbes) {
  Fixture f;
  OutcomeTable t(*f.module, f.opts);
  t.on_sent(0, true, 1 * kSecond);
  t.on_sent(1, false, 0);  // ENOBUFS past the retries: never left
  t.on_sent(2, true, 1 * kSecond);
  t.on_observation(f.reply(0), 1 * kSecond + 100, false);
  t.on_observation(f.reply(2), 1 * kSecond + 200, false);
  std::vector<ProbeOutcome> out;
  t.collect_final(1 * kSecond + 300, /*sending_done=*/false, out);
  ASSERT_EQ(ids(out), (std::vector<std::uint32_t>{0, 1, 2}));
  EXPECT_TRUE(out[0].sent);
  EXPECT_FALSE(out[1].sent);
  EXPECT_TRUE(out[1].send_failed);
  EXPECT_EQ(out[2].state, PortState::open);
  EXPECT_TRUE(t.all_final(3));
}

TEST(OutcomeTable, AnswerBeforeSendConfirmationWaitsForIt) {
  Fixture f;
  OutcomeTable t(*f.module, f.opts);
  t.on_observation(f.reply(0), 5 * kSecond, false);  // the reply raced the sendmmsg return
  std::vector<ProbeOutcome> out;
  t.collect_final(5 * kSecond, false, out);
  EXPECT_TRUE(out.empty()) << "final before the send is confirmed";
  t.on_sent(0, true, 5 * kSecond - 50'000);
  t.collect_final(5 * kSecond, false, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].sent);
  EXPECT_EQ(out[0].state, PortState::open);
  EXPECT_EQ(out[0].rtt_us(), 50);
}

TEST(OutcomeTable, UnansweredProbeEndsAtItsTimeoutInOrder) {
  Fixture f;
  OutcomeTable t(*f.module, f.opts);
  t.on_sent(0, true, 10 * kSecond);
  t.on_sent(1, true, 10 * kSecond + 1000);
  t.on_observation(f.reply(1), 10 * kSecond + 5000, false);
  std::vector<ProbeOutcome> out;
  t.collect_final(10 * kSecond + kSecond / 2, false, out);
  EXPECT_TRUE(out.empty()) << "probe 1 is answered but probe 0 is still pending";
  t.collect_final(11 * kSecond, false, out);
  ASSERT_EQ(ids(out), (std::vector<std::uint32_t>{0, 1}));
  EXPECT_FALSE(out[0].answered);
  EXPECT_EQ(out[0].state, PortState::filtered);
  EXPECT_EQ(out[1].state, PortState::open);
}

TEST(OutcomeTable, OwnProbeSightingIsTheRttOrigin) {
  Fixture f;
  OutcomeTable t(*f.module, f.opts);
  probe::Observation leaving{probe::Observation::What::own_probe, 0, probe::ReplyKind::none, 0, 0,
                             *packet::IpAddr::parse("192.0.2.9")};
  t.on_observation(leaving, 20 * kSecond, false);
  t.on_sent(0, true, 20 * kSecond + 30'000);  // syscall returned later than the wire time
  t.on_observation(f.reply(0), 20 * kSecond + 80'000, false);
  t.on_observation(f.reply(0), 20 * kSecond + 90'000, false);  // a duplicate
  std::vector<ProbeOutcome> out;
  t.collect_final(20 * kSecond + 100'000, false, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].rtt_us(), 80);
  EXPECT_EQ(out[0].duplicates, 1u);
}

}  // namespace
}  // namespace tandem::ping
