#include "common/netio/pacer.hpp"

#include <sys/prctl.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include <fmt/format.h>

namespace tandem::netio {

namespace {

__extension__ using U128 = unsigned __int128;  // offsets need i * 1e12 before the division

constexpr std::uint64_t kMilliPerSecondNs = 1'000'000'000'000ULL;  // 1e9 ns * 1000 (milli-pps)
constexpr Nanos kMaxNanos = std::numeric_limits<Nanos>::max();
constexpr Nanos kStopPollNs = 10'000'000;  // a sleeping waiter re-checks the stop flag this often

Nanos saturate(U128 v) { return v > static_cast<U128>(kMaxNanos) ? kMaxNanos : static_cast<Nanos>(v); }

void sleep_until(Nanos deadline) {
  timespec ts{static_cast<time_t>(deadline / 1'000'000'000), static_cast<long>(deadline % 1'000'000'000)};
  // EINTR: the loop around us re-evaluates the deadline, so a signal just shortens one sleep.
  clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
}

}  // namespace

Result<Schedule> Schedule::from_rate(double packets_per_second) {
  if (!std::isfinite(packets_per_second) || packets_per_second < 0.001 || packets_per_second > 100e6) {
    return make_error(Errc::usage, "pacing",
                      fmt::format("rate {} pps is outside 0.001 .. 100000000", packets_per_second));
  }
  Schedule s;
  s.rate_mpps_ = static_cast<std::uint64_t>(std::llround(packets_per_second * 1000.0));
  return s;
}

Result<Schedule> Schedule::from_interval(double seconds) {
  if (!std::isfinite(seconds) || seconds < 1e-6 || seconds > 86400.0) {
    return make_error(Errc::usage, "pacing",
                      fmt::format("interval {} s is outside 0.000001 .. 86400", seconds));
  }
  return from_interval_ns(static_cast<Nanos>(std::llround(seconds * 1e9)));
}

Schedule Schedule::from_interval_ns(Nanos interval_ns) {
  Schedule s;
  s.interval_ns_ = interval_ns;
  return s;
}

double Schedule::rate_pps() const {
  if (rate_mpps_ != 0) return static_cast<double>(rate_mpps_) / 1000.0;
  if (interval_ns_ != 0) return 1e9 / static_cast<double>(interval_ns_);
  return 0.0;
}

Nanos Schedule::offset_ns(std::uint64_t i) const {
  if (rate_mpps_ != 0) return saturate(static_cast<U128>(i) * kMilliPerSecondNs / rate_mpps_);
  if (interval_ns_ != 0) return saturate(static_cast<U128>(i) * static_cast<std::uint64_t>(interval_ns_));
  return 0;
}

std::uint64_t Schedule::due_count(Nanos elapsed_ns) const {
  if (is_unlimited()) return std::numeric_limits<std::uint64_t>::max();
  if (elapsed_ns < 0) return 0;
  const U128 e1 = static_cast<U128>(elapsed_ns) + 1;
  U128 count = 0;
  if (rate_mpps_ != 0) {
    // floor(i*1e12/r) <= e  <=>  i*1e12 < (e+1)*r  <=>  i < ceil((e+1)*r / 1e12)
    const U128 num = e1 * rate_mpps_;
    count = (num + kMilliPerSecondNs - 1) / kMilliPerSecondNs;
  } else {
    // i*interval <= e  <=>  i <= e / interval
    count = static_cast<U128>(elapsed_ns) / static_cast<std::uint64_t>(interval_ns_) + 1;
  }
  return count > std::numeric_limits<std::uint64_t>::max() ? std::numeric_limits<std::uint64_t>::max()
                                                          : static_cast<std::uint64_t>(count);
}

Pacer::Pacer(Schedule schedule, PacerOptions options) : schedule_(schedule), options_(options) {}

void Pacer::start(Nanos t0_monotonic) {
  // The default timer slack (50 µs) lets clock_nanosleep return up to 50 µs late: half a period at
  // 10 kpps. 1 ns slack makes the sleep phase honour the deadline; it affects this thread only.
  (void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  t0_ = t0_monotonic;
  started_ = true;
}

Nanos Pacer::deadline_of(std::uint64_t i) const {
  const Nanos off = schedule_.offset_ns(i);
  return off > kMaxNanos - t0_ ? kMaxNanos : t0_ + off;
}

Due Pacer::wait_due(std::uint64_t next, std::uint64_t max_count, const std::atomic<bool>* stop) {
  if (!started_) start();
  max_count = std::max<std::uint64_t>(max_count, 1);
  const Nanos deadline = deadline_of(next);
  Nanos now = monotonic_ns();
  while (now < deadline) {
    if (stop != nullptr && stop->load(std::memory_order_relaxed)) return Due{0, 0};
    const Nanos left = deadline - now;
    if (left > options_.spin_ns) {
      // Wake spin_ns early so the last stretch is spun, and at least every kStopPollNs for `stop`.
      sleep_until(std::min(deadline - options_.spin_ns, now + kStopPollNs));
      ++stats_.sleeps;
    }
    now = monotonic_ns();
  }
  if (stop != nullptr && stop->load(std::memory_order_relaxed)) return Due{0, 0};
  const std::uint64_t due_total = schedule_.due_count(now - t0_);
  const std::uint64_t due = due_total > next ? std::min(due_total - next, max_count) : 1;
  const Nanos behind = now - deadline;
  stats_.max_behind_ns = std::max(stats_.max_behind_ns, behind);
  if (due > 1) ++stats_.late_waits;
  return Due{due, behind};
}

}  // namespace tandem::netio
