// Controller-side clock offset estimation from CLOCK_PROBE / CLOCK_REPLY exchanges (NTP's on-wire
// arithmetic, RFC 5905 §8). All times are CLOCK_REALTIME nanoseconds:
//   t1 controller sends CLOCK_PROBE, t2 agent receives it, t3 agent sends CLOCK_REPLY, t4 controller receives it.
// offset = agent clock - controller clock. The sample with the smallest round trip is the least
// disturbed by queueing, so it is the one used; the true offset lies within +/- rtt/2 of its
// estimate whatever the path asymmetry, hence error = rtt/2.
#pragma once

#include <cstddef>
#include <span>

#include "common/base/clock.hpp"
#include "common/base/result.hpp"

namespace tandem::proto {

struct ClockSample {
  Nanos t1 = 0;
  Nanos t2 = 0;
  Nanos t3 = 0;
  Nanos t4 = 0;

  // Network round trip: total elapsed minus the agent's hold time.
  Nanos rtt() const { return (t4 - t1) - (t3 - t2); }
  // ((t2 - t1) + (t3 - t4)) / 2, rounded toward zero.
  Nanos offset() const { return ((t2 - t1) + (t3 - t4)) / 2; }
};

struct ClockEstimate {
  Nanos offset_ns = 0;  // add to a controller timestamp to get the agent's clock
  Nanos error_ns = 0;   // |true offset - offset_ns| <= error_ns (half the chosen sample's rtt)
  Nanos rtt_ns = 0;     // round trip of the chosen sample
  std::size_t samples = 0;  // usable samples seen
};

// Picks the minimum-RTT sample. Samples with a negative RTT or a negative agent hold time (clock
// stepped mid-exchange, or a lying agent) are skipped. Fails (Errc::peer) if none is usable.
Result<ClockEstimate> estimate_clock(std::span<const ClockSample> samples);

}  // namespace tandem::proto
