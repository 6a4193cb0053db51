// Records the largest single operator-new allocation made while an AllocScope is alive, so tests can
// prove that a lying length field never turns into a large allocation (threat T7).
#pragma once

#include <cstddef>

namespace tandem::proto::testing {

void alloc_probe_start();
std::size_t alloc_probe_stop();  // returns the largest allocation seen since start

struct AllocScope {
  AllocScope() { alloc_probe_start(); }
  ~AllocScope() { (void)alloc_probe_stop(); }
  std::size_t largest() const;
};

}  // namespace tandem::proto::testing
