// Clocks. Wire and capture timestamps are int64 nanoseconds since the Unix epoch (CLOCK_REALTIME,
// the clock libpcap stamps packets with); intervals and pacing use CLOCK_MONOTONIC.
#pragma once

#include <cstdint>
#include <ctime>

namespace tandem {

using Nanos = std::int64_t;

inline Nanos realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<Nanos>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

inline Nanos monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<Nanos>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace tandem
