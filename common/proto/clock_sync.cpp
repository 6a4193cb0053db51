#include "common/proto/clock_sync.hpp"

namespace tandem::proto {

Result<ClockEstimate> estimate_clock(std::span<const ClockSample> samples) {
  ClockEstimate best;
  bool have = false;
  for (const ClockSample& s : samples) {
    if (s.t3 < s.t2 || s.t4 < s.t1 || s.rtt() < 0) continue;
    ++best.samples;
    if (!have || s.rtt() < best.rtt_ns) {
      have = true;
      best.rtt_ns = s.rtt();
      best.offset_ns = s.offset();
      // Round up so the bound holds for odd round trips too.
      best.error_ns = (s.rtt() + 1) / 2;
    }
  }
  if (!have)
    return make_error(Errc::peer, "clock-sync",
                      "no usable CLOCK_REPLY among " + std::to_string(samples.size()) + " samples");
  return best;
}

}  // namespace tandem::proto
