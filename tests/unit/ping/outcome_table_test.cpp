// OutcomeTable: probes leave the table in index order, each once its fate is final — including a
// probe the kernel refused (it must not hold back the probes after it) and an answer captured before
// the send was confirmed.
#include "controller/ping/outcome_table.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "common/packet/addr.hpp"

namespace tandem::ping {
namespace {

constexpr Nanos kSecond = 1'000'000'000;

struct Fixture {
  PingOptions opts;
  std::unique_ptr<probe::ProbeModule> module;
  explicit Fixture(std::uint32_t count = 3) {
    opts.target = *packet::IpAddr::parse("192.0.2.1");
    opts.spec = probe::default_spec(probe::ProbeSpec::L4::tcp, packet::IpVersion::v4);
    opts.spec.dport = 21;
    opts.count = count;
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

TEST(OutcomeTable, UnboundedRunReusesRingSlotsAndIgnoresStaleSightings) {
  Fixture f(0);  // count 0: --until or ^C, a ring of kRingSlots
  OutcomeTable t(*f.module, f.opts);
  constexpr auto kN = static_cast<std::uint32_t>(OutcomeTable::kRingSlots);
  std::vector<ProbeOutcome> out;
  for (std::uint32_t i = 0; i < kN; ++i) {
    t.reserve(i);
    t.on_sent(i, true, 1 * kSecond);
  }
  t.on_observation(f.reply(5), 1 * kSecond + 10, false);
  t.on_observation(f.reply(5), 1 * kSecond + 20, false);  // a duplicate
  t.collect_final(3 * kSecond, false, out);  // all timed out but probe 5
  ASSERT_EQ(out.size(), kN);
  EXPECT_EQ(out[5].state, PortState::open);
  EXPECT_EQ(out[5].duplicates, 1u);
  EXPECT_EQ(out[5].sport, f.module->sport(5));
  EXPECT_FALSE(out[6].answered);
  // Second lap: probe kN + 5 takes probe 5's slot; a late answer to probe 5 must not land on it.
  out.clear();
  for (std::uint32_t i = kN; i < kN + 10; ++i) {
    t.reserve(i);
    t.on_sent(i, true, 5 * kSecond);
  }
  t.on_observation(f.reply(5), 5 * kSecond + 10, false);
  t.on_observation(f.reply(kN + 7), 5 * kSecond + 30, false);
  t.collect_final(5 * kSecond + 100, /*sending_done=*/true, out);
  EXPECT_TRUE(out.empty()) << "probe kN is neither answered nor timed out";
  t.collect_final(7 * kSecond, true, out);
  ASSERT_EQ(out.size(), 10u);
  EXPECT_EQ(out[0].index, kN);
  EXPECT_FALSE(out[5].answered) << "the stale answer to probe 5 was taken for probe kN + 5";
  EXPECT_EQ(out[5].duplicates, 0u);
  EXPECT_TRUE(out[7].answered);
  EXPECT_EQ(out[7].rtt_us(), 0);
  EXPECT_TRUE(t.all_final(kN + 10));
}

// Three threads as in run_ping, on a ring that wraps: every probe comes out once, in order, with
// its own answer. The sender has to wait for the caller to free slots; nothing here depends on timing.
TEST(OutcomeTable, ThreadsAgreeAcrossRingWraps) {
  Fixture f(0);
  OutcomeTable t(*f.module, f.opts);
  const auto n = static_cast<std::uint32_t>(OutcomeTable::kRingSlots * 2 + 1000);
  std::atomic<std::uint32_t> sent{0};
  std::thread sender([&] {
    for (std::uint32_t i = 0; i < n; ++i) {
      t.reserve(i);
      t.on_sent(i, true, 1 * kSecond + i);
      sent.store(i + 1, std::memory_order_release);
    }
  });
  std::thread capture([&] {
    for (std::uint32_t i = 0; i < n; ++i) {
      while (sent.load(std::memory_order_acquire) <= i) std::this_thread::yield();
      t.on_observation(f.reply(i), 2 * kSecond + i, false);
    }
  });
  std::vector<ProbeOutcome> out;
  out.reserve(n);
  // `now` before every send time: nothing times out, so a probe is final only once answered.
  while (out.size() < n) {
    t.collect_final(0, false, out);
    std::this_thread::yield();
  }
  sender.join();
  capture.join();
  ASSERT_EQ(out.size(), n);
  std::uint32_t bad = 0;
  for (std::uint32_t i = 0; i < n; ++i) {
    const auto& p = out[i];
    if (p.index != i || !p.answered || !p.sent || p.duplicates != 0 || p.rtt_us() != 1'000'000) ++bad;
  }
  EXPECT_EQ(bad, 0u);
  EXPECT_TRUE(t.all_final(n));
}

}  // namespace
}  // namespace tandem::ping
