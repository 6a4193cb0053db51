// Schedule arithmetic only: no clocks, no sleeping, no timed assertions.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

#include "common/netio/pacer.hpp"

namespace tandem::netio {
namespace {

Schedule rate(double pps) {
  auto s = Schedule::from_rate(pps);
  EXPECT_TRUE(s.ok());
  return *s;
}

TEST(Schedule, OffsetsAreAbsoluteNotAccumulated) {
  // 3 pps: 1e9/3 is not an integer; summing rounded intervals would drift by ~0.33 ns per packet.
  const Schedule s = rate(3);
  EXPECT_EQ(s.offset_ns(0), 0);
  EXPECT_EQ(s.offset_ns(1), 333'333'333);
  EXPECT_EQ(s.offset_ns(2), 666'666'666);
  EXPECT_EQ(s.offset_ns(3), 1'000'000'000);
  EXPECT_EQ(s.offset_ns(3'000'000), 1'000'000'000'000'000);
  EXPECT_EQ(s.offset_ns(3'000'001), 1'000'000'333'333'333);
}

TEST(Schedule, RunDurationMatchesRateExactly) {
  // N packets at R pps: last offset is (N-1)/R seconds, to the nanosecond.
  for (double pps : {1.0, 7.0, 1000.0, 10'000.0, 100'000.0, 123'457.0, 1'000'000.0}) {
    const Schedule s = rate(pps);
    const std::uint64_t n = 1'000'001;
    const double expect_ns = static_cast<double>(n - 1) * 1e9 / pps;
    EXPECT_NEAR(static_cast<double>(s.offset_ns(n - 1)), expect_ns, 1.0) << pps;
    EXPECT_DOUBLE_EQ(s.rate_pps(), pps);
  }
}

TEST(Schedule, FractionalRates) {
  const Schedule s = rate(0.5);  // one packet every 2 s
  EXPECT_EQ(s.offset_ns(1), 2'000'000'000);
  const Schedule t = rate(2.5);
  EXPECT_EQ(t.offset_ns(5), 2'000'000'000);
  EXPECT_EQ(t.offset_ns(1), 400'000'000);
}

TEST(Schedule, IntervalMode) {
  auto s = Schedule::from_interval(0.2);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->offset_ns(0), 0);
  EXPECT_EQ(s->offset_ns(1), 200'000'000);
  EXPECT_EQ(s->offset_ns(10), 2'000'000'000);
  EXPECT_DOUBLE_EQ(s->rate_pps(), 5.0);
  EXPECT_EQ(s->due_count(0), 1u);
  EXPECT_EQ(s->due_count(199'999'999), 1u);
  EXPECT_EQ(s->due_count(200'000'000), 2u);
}

TEST(Schedule, DueCountIsConsistentWithOffsets) {
  // due_count(e) == #{i : offset(i) <= e}: check at, just before and just after each deadline.
  for (double pps : {1.0, 3.0, 7.0, 999.0, 1000.0, 33'333.0, 100'000.0, 0.3}) {
    const Schedule s = rate(pps);
    for (std::uint64_t i = 1; i < 2000; ++i) {
      const Nanos d = s.offset_ns(i);
      EXPECT_EQ(s.due_count(d), i + 1) << pps << " i=" << i;
      EXPECT_EQ(s.due_count(d - 1), s.offset_ns(i - 1) <= d - 1 ? i : i - 1) << pps << " i=" << i;
      EXPECT_GE(s.due_count(d + 1), i + 1);
    }
  }
}

TEST(Schedule, DueCountCatchUp) {
  // A sender that wakes 1 ms late at 100 kpps finds 100 more packets due: the catch-up batch.
  const Schedule s = rate(100'000);
  EXPECT_EQ(s.due_count(s.offset_ns(50)), 51u);
  EXPECT_EQ(s.due_count(s.offset_ns(50) + 1'000'000), 151u);
  EXPECT_EQ(s.due_count(-1), 0u);
}

TEST(Schedule, Unlimited) {
  const Schedule s = Schedule::unlimited();
  EXPECT_TRUE(s.is_unlimited());
  EXPECT_EQ(s.offset_ns(12345), 0);
  EXPECT_EQ(s.due_count(0), std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(s.rate_pps(), 0.0);
}

TEST(Schedule, HugeIndicesSaturateInsteadOfOverflowing) {
  const Schedule slow = rate(0.001);
  EXPECT_EQ(slow.offset_ns(std::numeric_limits<std::uint64_t>::max()), std::numeric_limits<Nanos>::max());
  auto iv = Schedule::from_interval(86400);
  ASSERT_TRUE(iv.ok());
  EXPECT_EQ(iv->offset_ns(std::numeric_limits<std::uint64_t>::max()), std::numeric_limits<Nanos>::max());
  const Schedule fast = rate(100e6);
  EXPECT_EQ(fast.due_count(std::numeric_limits<Nanos>::max()),
            static_cast<std::uint64_t>(std::numeric_limits<Nanos>::max() / 10) + 1);  // ceil(2^63 / 10)
}

TEST(Schedule, RejectsOutOfRange) {
  for (double bad : {0.0, -1.0, 0.0009, 1e9, std::numeric_limits<double>::infinity(),
                     std::numeric_limits<double>::quiet_NaN()}) {
    auto s = Schedule::from_rate(bad);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.error().code, Errc::usage);
  }
  for (double bad : {0.0, -0.5, 1e-7, 1e6}) {
    auto s = Schedule::from_interval(bad);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.error().code, Errc::usage);
  }
}

TEST(Pacer, DeadlinesAreScheduleOffsetsFromT0) {
  Pacer p(rate(1000));
  p.start(5'000'000'000);
  EXPECT_EQ(p.deadline_of(0), 5'000'000'000);
  EXPECT_EQ(p.deadline_of(1000), 6'000'000'000);
}

}  // namespace
}  // namespace tandem::netio
