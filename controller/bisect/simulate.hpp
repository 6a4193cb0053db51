// Runs an Experiment against simulated outcomes (no network): each probe of a variant fails with
// the probability `fail_rate(variant)` returns. Used by the unit tests and bench/bisect.
#pragma once

#include <cstdint>
#include <functional>
#include <random>

#include "controller/bisect/experiment.hpp"

namespace tandem::bisect {

inline BisectResult simulate(Experiment& e, const std::function<double(const VariantDef&)>& fail_rate,
                             std::uint64_t seed, std::string_view fate = "lost_forward") {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (;;) {
    auto round = e.plan_round();
    if (round.variants.empty()) break;
    for (std::uint32_t i = 0; i < round.count; ++i) {
      std::size_t v = round.variants[i % round.variants.size()];
      bool failed = u(rng) < fail_rate(e.variants()[v].def);
      e.record(v, failed ? Outcome::failed : Outcome::answered, fate);
    }
    e.end_round();
    if (e.done()) break;
  }
  return e.result();
}

}  // namespace tandem::bisect
