#include <gtest/gtest.h>

#include "common/proto/clock_sync.hpp"

namespace tandem::proto {
namespace {

TEST(ClockSync, SymmetricPathGivesExactOffset) {
  // Agent clock 5 ms ahead; 1 ms each way; agent holds the probe 100 us.
  ClockSample s{1'000'000'000, 1'006'000'000, 1'006'100'000, 1'002'100'000};
  EXPECT_EQ(s.rtt(), 2'000'000);
  EXPECT_EQ(s.offset(), 5'000'000);
  auto e = estimate_clock(std::span<const ClockSample>(&s, 1));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->offset_ns, 5'000'000);
  EXPECT_EQ(e->error_ns, 1'000'000);
}

TEST(ClockSync, PicksTheMinimumRttSample) {
  const std::vector<ClockSample> samples = {
      {0, 10'000 + 3'000, 10'000 + 3'000, 9'000},      // rtt 9 us, asymmetric: offset 3.5 us
      {100'000, 110'500, 110'600, 101'100},           // rtt 1 us: offset 10 us exactly
      {200'000, 215'000, 215'000, 230'000},           // rtt 30 us
  };
  auto e = estimate_clock(samples);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->rtt_ns, 1'000);
  EXPECT_EQ(e->offset_ns, 10'000);
  EXPECT_EQ(e->error_ns, 500);
  EXPECT_EQ(e->samples, 3u);
}

TEST(ClockSync, AsymmetryStaysWithinTheErrorBound) {
  // True offset -2 ms; forward 3 ms, return 1 ms.
  const Nanos off = -2'000'000;
  const Nanos t1 = 5'000'000'000, t2 = t1 + 3'000'000 + off, t3 = t2 + 50'000, t4 = t3 - off + 1'000'000;
  ClockSample s{t1, t2, t3, t4};
  auto e = estimate_clock(std::span<const ClockSample>(&s, 1));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->offset_ns, off + 1'000'000);  // biased by half the asymmetry
  EXPECT_LE(std::llabs(e->offset_ns - off), e->error_ns);
  EXPECT_EQ(e->error_ns, 2'000'000);
}

TEST(ClockSync, OddRttRoundsTheBoundUp) {
  ClockSample s{0, 0, 0, 3};
  auto e = estimate_clock(std::span<const ClockSample>(&s, 1));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->error_ns, 2);
}

TEST(ClockSync, ImpossibleSamplesAreSkipped) {
  const std::vector<ClockSample> bad = {
      {100, 50, 40, 200},   // agent sent before it received
      {100, 0, 1000, 150},  // hold time longer than the round trip: negative rtt
      {100, 0, 0, 50},      // received before sent
  };
  auto e = estimate_clock(bad);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code, Errc::peer);
  EXPECT_FALSE(estimate_clock({}).ok());
}

}  // namespace
}  // namespace tandem::proto
