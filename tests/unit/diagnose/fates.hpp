// Test support for the verdict tests: a Correlation with n probes of each listed fate.
#pragma once

#include <initializer_list>
#include <utility>

#include "controller/correlate/model.hpp"

namespace tandem::diagnose {

// n probes of each listed fate (ids 0, 1, ... in order), both captures present, one variant.
inline correlate::Correlation with_fates(std::initializer_list<std::pair<correlate::Fate, int>> fates) {
  correlate::Correlation c;
  c.client_present = c.server_present = true;
  c.variants = {correlate::Variant{"default", "", 0, ""}};
  std::uint32_t id = 0;
  for (auto [f, n] : fates) {
    for (int i = 0; i < n; ++i) {
      correlate::ProbeRecord p;
      p.id = id++;
      p.fate = f;
      c.probes.push_back(p);
    }
  }
  return c;
}

}  // namespace tandem::diagnose
