#include <gtest/gtest.h>

#include "agent/session/session.hpp"

namespace tandem::agent {
namespace {

using proto::MsgType;
using S = proto::SessionState;

const std::string kA = "controller-a";
const std::string kB = "controller-b";

Connection conn(const std::string& key, bool hello = true) {
  Connection c;
  c.key = key;
  c.hello = hello;
  return c;
}

TEST(Session, StateFollowsHelloAndTheKeysRun) {
  EXPECT_EQ(connection_state(conn(kA, false), "", RunPhase::none), S::start);
  EXPECT_EQ(connection_state(conn(kA), "", RunPhase::none), S::ready);
  EXPECT_EQ(connection_state(conn(kA), kA, RunPhase::armed), S::armed);
  EXPECT_EQ(connection_state(conn(kA), kA, RunPhase::capturing), S::capturing);
  EXPECT_EQ(connection_state(conn(kA), kA, RunPhase::stopped), S::stopped);
  EXPECT_EQ(connection_state(conn(kB), kA, RunPhase::capturing), S::ready);  // not B's run
}

TEST(Session, Transitions) {
  struct Case {
    RunPhase phase;
    bool hello;
    MsgType type;
    Verdict verdict;
    S to;
  };
  const Case cases[] = {
      {RunPhase::none, false, MsgType::hello, Verdict::handle, S::ready},
      {RunPhase::none, false, MsgType::status, Verdict::invalid, S::invalid},
      {RunPhase::none, false, MsgType::run_setup, Verdict::invalid, S::invalid},
      {RunPhase::none, true, MsgType::hello, Verdict::invalid, S::invalid},
      {RunPhase::none, true, MsgType::clock_probe, Verdict::handle, S::ready},
      {RunPhase::none, true, MsgType::run_setup, Verdict::handle, S::armed},
      {RunPhase::none, true, MsgType::fetch_capture, Verdict::handle, S::ready},
      {RunPhase::none, true, MsgType::capture_start, Verdict::invalid, S::invalid},
      {RunPhase::none, true, MsgType::run_end, Verdict::invalid, S::invalid},
      {RunPhase::armed, true, MsgType::capture_start, Verdict::handle, S::capturing},
      {RunPhase::armed, true, MsgType::send_plan, Verdict::invalid, S::invalid},
      {RunPhase::armed, true, MsgType::run_end, Verdict::handle, S::ready},
      {RunPhase::armed, true, MsgType::run_setup, Verdict::invalid, S::invalid},
      {RunPhase::capturing, true, MsgType::send_plan, Verdict::handle, S::capturing},
      {RunPhase::capturing, true, MsgType::status, Verdict::handle, S::capturing},
      {RunPhase::capturing, true, MsgType::capture_stop, Verdict::handle, S::stopped},
      {RunPhase::capturing, true, MsgType::fetch_capture, Verdict::invalid, S::invalid},
      {RunPhase::capturing, true, MsgType::run_end, Verdict::handle, S::ready},
      {RunPhase::stopped, true, MsgType::fetch_capture, Verdict::handle, S::stopped},
      {RunPhase::stopped, true, MsgType::capture_start, Verdict::invalid, S::invalid},
      {RunPhase::stopped, true, MsgType::run_end, Verdict::handle, S::ready},
      // Replies are never requests.
      {RunPhase::capturing, true, MsgType::hello_ok, Verdict::invalid, S::invalid},
      {RunPhase::none, true, MsgType::error, Verdict::invalid, S::invalid},
      {RunPhase::stopped, true, MsgType::capture_chunk, Verdict::invalid, S::invalid},
      {RunPhase::capturing, true, MsgType::bye, Verdict::close, S::closed},
      {RunPhase::none, false, MsgType::bye, Verdict::close, S::closed},
  };
  for (const auto& c : cases) {
    auto owner = c.phase == RunPhase::none ? std::string() : kA;
    Decision d = decide(conn(kA, c.hello), owner, c.phase, c.type, "");
    EXPECT_EQ(d.verdict, c.verdict) << proto::message_name(c.type) << " in phase " << static_cast<int>(c.phase);
    if (c.verdict == Verdict::handle || c.verdict == Verdict::close) {
      EXPECT_EQ(d.to, c.to) << proto::message_name(c.type);
    }
  }
}

TEST(Session, OtherControllersGetBusyOnlyForRunSetup) {
  EXPECT_EQ(decide(conn(kB), kA, RunPhase::capturing, MsgType::run_setup, "").verdict, Verdict::busy);
  EXPECT_EQ(decide(conn(kB), kA, RunPhase::capturing, MsgType::status, "").verdict, Verdict::handle);
  EXPECT_EQ(decide(conn(kB), kA, RunPhase::capturing, MsgType::capture_stop, "").verdict, Verdict::invalid);
  EXPECT_EQ(decide(conn(kB), kA, RunPhase::stopped, MsgType::run_end, "").verdict, Verdict::invalid);
}

TEST(Session, RunRequestsAfterLeaseEndSayLeaseExpired) {
  for (auto t : {MsgType::capture_start, MsgType::capture_stop, MsgType::send_plan, MsgType::run_end})
    EXPECT_EQ(decide(conn(kA), "", RunPhase::none, t, kA).verdict, Verdict::lease_expired) << proto::message_name(t);
  EXPECT_EQ(decide(conn(kB), "", RunPhase::none, MsgType::run_end, kA).verdict, Verdict::invalid);
  EXPECT_EQ(decide(conn(kA), "", RunPhase::none, MsgType::run_setup, kA).verdict, Verdict::handle);
}

TEST(Lease, DeadlineAndSilence) {
  const Nanos s = 1'000'000'000;
  Lease l(100 * s, 10 * s, 0);
  EXPECT_EQ(l.check(50 * s, 5 * s, false), Lease::End::none);
  EXPECT_EQ(l.check(100 * s, 5 * s, false), Lease::End::deadline);
  EXPECT_EQ(l.check(50 * s, 11 * s, false), Lease::End::silent);
  EXPECT_EQ(l.check(50 * s, 11 * s, true), Lease::End::none);  // the agent owes a slow reply
  l.touch(9 * s);
  EXPECT_EQ(l.check(50 * s, 18 * s, false), Lease::End::none);
  EXPECT_EQ(l.check(50 * s, 20 * s, false), Lease::End::silent);
  EXPECT_EQ(l.check(100 * s, 0, true), Lease::End::deadline);  // the deadline is absolute
}

// While a plan is sending, 3 s of silence ends the lease whatever the policy's idle timeout (a lost
// controller must not leave probes going out); otherwise the idle timeout rules, also below 3 s.
TEST(Lease, SendingSilenceLimitIsThreeSeconds) {
  const Nanos s = 1'000'000'000;
  Lease l(10'000 * s, 15 * s, 0);
  EXPECT_EQ(l.silence_limit(true), 3 * s);
  EXPECT_EQ(l.silence_limit(false), 15 * s);
  EXPECT_EQ(l.check(50 * s, 3 * s, false, true), Lease::End::none);
  EXPECT_EQ(l.check(50 * s, 3 * s + 1, false, true), Lease::End::silent);
  EXPECT_EQ(l.check(50 * s, 3 * s + 1, false, false), Lease::End::none);
  EXPECT_EQ(l.check(50 * s, 3 * s + 1, true, true), Lease::End::none);  // the agent owes a slow reply
  l.touch(100 * s);
  EXPECT_EQ(l.check(50 * s, 102 * s, false, true), Lease::End::none);  // a heartbeat renewed it
  Lease short_idle(10'000 * s, 1 * s, 0);
  EXPECT_EQ(short_idle.silence_limit(true), 1 * s);
  EXPECT_EQ(short_idle.check(50 * s, 2 * s, false, true), Lease::End::silent);
}

}  // namespace
}  // namespace tandem::agent
