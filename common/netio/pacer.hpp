// Pacing: an absolute send schedule and a waiter that follows it.
//
// Schedule is pure arithmetic: packet i is due at t0 + offset_ns(i), computed from i each time (never
// by adding up intervals), so rounding never accumulates and a run of N packets at R pps lasts
// (N-1)/R seconds to within one nanosecond of schedule arithmetic.
//
// Pacer turns the schedule into waits on CLOCK_MONOTONIC: clock_nanosleep(TIMER_ABSTIME) while the
// next deadline is far, a short spin when it is close (a sleeping thread wakes some µs late, tens of
// µs on a busy VM: a large part of the 10 µs period at 100 kpps), and when the sender has
// fallen behind it reports every packet that is already due so the caller can send them in one
// sendmmsg (catch-up) instead of drifting.
//
// Threading: Schedule is a value type. A Pacer belongs to one sending thread; the stop flag passed to
// wait_due() may be set from any thread (e.g. a SIGINT handler's flag).
#pragma once

#include <atomic>
#include <cstdint>

#include "common/base/clock.hpp"
#include "common/base/result.hpp"

namespace tandem::netio {

class Schedule {
 public:
  // Rates are kept as integer milli-pps so that offsets are exact integer arithmetic.
  // Valid range: 0.001 pps .. 100 Mpps. Errc::usage outside it.
  static Result<Schedule> from_rate(double packets_per_second);
  // Interval mode (`-i S`): one packet every `seconds` (>= 1 µs, <= 1 day). Errc::usage outside it.
  static Result<Schedule> from_interval(double seconds);
  static Schedule from_interval_ns(Nanos interval_ns);  // precondition: interval_ns > 0
  // No pacing: every packet is due at once (max-rate mode).
  static Schedule unlimited() { return Schedule{}; }

  bool is_unlimited() const { return rate_mpps_ == 0 && interval_ns_ == 0; }
  // Nominal rate in packets per second (0 when unlimited).
  double rate_pps() const;

  // Offset of packet i from t0: floor(i * 1e9 / rate) ns, or i * interval. 0 when unlimited.
  // Saturates at INT64_MAX instead of overflowing.
  Nanos offset_ns(std::uint64_t i) const;

  // Number of packets due at `elapsed_ns` after t0, i.e. #{ i : offset_ns(i) <= elapsed_ns }.
  // Consistent with offset_ns by construction. UINT64_MAX when unlimited; 0 for negative elapsed.
  std::uint64_t due_count(Nanos elapsed_ns) const;

 private:
  Schedule() = default;
  std::uint64_t rate_mpps_ = 0;  // rate in packets per 1000 s; 0 when interval-based or unlimited
  Nanos interval_ns_ = 0;        // fixed interval; 0 when rate-based or unlimited
};

struct PacerOptions {
  // Spin (busy-wait on clock_gettime) when the deadline is closer than this; sleep until
  // deadline - spin_ns otherwise. 0 means never spin (sleep only). Spinning costs a core; on a
  // busy machine a spinning thread is also the first to be preempted, so the window is short.
  Nanos spin_ns = 50'000;
};

// What wait_due() found when it returned.
struct Due {
  std::uint64_t count = 0;  // packets due now, starting at `next` (0 only when stopped)
  Nanos behind_ns = 0;      // how late packet `next` is (now - its deadline), >= 0
};

struct PacerStats {
  Nanos max_behind_ns = 0;         // worst lateness seen for a first-due packet
  std::uint64_t late_waits = 0;    // wait_due() calls that returned more than one packet due
  std::uint64_t sleeps = 0;        // clock_nanosleep calls
};

class Pacer {
 public:
  explicit Pacer(Schedule schedule, PacerOptions options = {});

  // Fixes t0 (CLOCK_MONOTONIC) and sets the calling thread's timer slack to 1 ns
  // (PR_SET_TIMERSLACK), so call it on the sending thread. wait_due() calls it if it was not called.
  void start(Nanos t0_monotonic = monotonic_ns());
  Nanos t0() const { return t0_; }
  const Schedule& schedule() const { return schedule_; }
  Nanos deadline_of(std::uint64_t i) const;  // absolute CLOCK_MONOTONIC deadline of packet i

  // Blocks until packet `next` is due (or `stop` becomes true, checked at least every 10 ms), then
  // returns how many packets from `next` on are due now, capped at max_count (>= 1).
  Due wait_due(std::uint64_t next, std::uint64_t max_count, const std::atomic<bool>* stop = nullptr);

  const PacerStats& stats() const { return stats_; }

 private:
  Schedule schedule_;
  PacerOptions options_;
  Nanos t0_ = 0;
  bool started_ = false;
  PacerStats stats_;
};

}  // namespace tandem::netio
