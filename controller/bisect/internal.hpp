// Internal to controller/bisect: constants and helpers the experiment's files share (the core in
// experiment.cpp, round planning in allocation.cpp, the MSS / window-scale / order stages in
// stages.cpp, the report in render.cpp). Not part of the library's interface.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/packet/tcp_option.hpp"
#include "controller/bisect/experiment.hpp"
#include "controller/bisect/stats.hpp"

namespace tandem::bisect::detail {

inline constexpr double kNegInf = -std::numeric_limits<double>::infinity();
inline constexpr int kNoThreshold = -1;  // main stage: every MSS value counts as "carries the option"
inline constexpr int kPredictiveDraws = 32;  // posterior-predictive draws per candidate round size

inline bool is_pad(const packet::TcpOption& o) { return o.kind == packet::kTcpOptNop || o.kind == packet::kTcpOptEol; }

inline std::uint16_t mss_of(const packet::TcpOption& o) {
  return o.data.size() == 2 ? static_cast<std::uint16_t>(o.data[0] << 8 | o.data[1]) : 0;
}

inline nlohmann::ordered_json interval_json(Interval i) {
  return nlohmann::ordered_json::array({std::round(i.lo * 1e4) / 1e4, std::round(i.hi * 1e4) / 1e4});
}

inline double rate(Counts c) { return c.sent ? double(c.failed) / double(c.sent) : 0.0; }

// Mutual information (nats) between the hypothesis and the failure count of m probes of one
// variant, when hypothesis h (posterior weight w[h]) predicts each probe fails at rate r[h]:
// H(Σ w Bin(m, r)) − Σ w H(Bin(m, r)).
double count_information(const std::vector<double>& w, const std::vector<double>& r, std::uint32_t m);

// The size of a later round (docs/bisect.md "Round size"): a quarter, half or all of `cap`, whichever
// minimises the expected cost C + (1 − P(stop after C)) · 1.5 cap. A further round is charged its
// probes plus half a round for its fixed cost (~1 s of setup), so a smaller round must be nearly as
// likely to decide; when even the full round decides with P < 0.5 smaller ones would only add
// rounds and are not tried. P(stop) is estimated from kPredictiveDraws draws of the posterior
// predictive: `draw(u)` (u uniform in [0, 1)) picks a hypothesis and returns each round variant's
// failure rate under it; the counts the round would add are added to `variants`, `decides()`
// applies the stage's stopping rule, and the counts are taken back. The same draws serve every
// size (common random numbers), seeded by `seed`: a plan is deterministic.
//
// A stage that needs several rounds whatever their size (the MSS threshold search: each round halves
// the candidates at best) passes `entropy()`, the posterior entropy after the added counts: when the
// full round is unlikely to decide, the smallest size whose expected entropy reduction is at least
// 90 % of the full round's is taken (the round gets nearly as far with fewer probes).
template <class Draw, class Decides, class Entropy>
std::uint32_t predictive_size(std::vector<VariantStats>& variants, const std::vector<std::size_t>& round,
                              std::uint32_t cap, std::uint64_t seed, Draw draw, Decides decides,
                              std::optional<double> entropy_now, Entropy entropy) {
  std::uint32_t best_c = cap;
  double best_cost = std::numeric_limits<double>::infinity();
  double full_gain = 0;
  std::uint32_t prev = 0;
  for (std::uint32_t c : {cap, cap / 2, cap / 4}) {
    c = std::max<std::uint32_t>(c, 4 * static_cast<std::uint32_t>(round.size()));
    if (c > cap || c == prev) break;
    const bool by_entropy = c < cap && best_cost > 1.5 * double(cap);
    if (by_entropy && !entropy_now) break;
    prev = c;
    double ent = 0;
    std::mt19937_64 rng(0x9e3779b97f4a7c15ULL ^ seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    int stops = 0;
    std::vector<Counts> added(round.size());
    for (int s = 0; s < kPredictiveDraws; ++s) {
      const std::vector<double>& r = draw(u(rng));
      std::fill(added.begin(), added.end(), Counts{});
      for (std::uint32_t j = 0; j < c; ++j) {
        const std::size_t v = j % round.size();
        ++added[v].sent;
        if (u(rng) < r[v]) ++added[v].failed;
      }
      for (std::size_t v = 0; v < round.size(); ++v) {
        variants[round[v]].counts.sent += added[v].sent;
        variants[round[v]].counts.failed += added[v].failed;
      }
      if (decides()) ++stops;
      if (entropy_now) ent += entropy() / kPredictiveDraws;
      for (std::size_t v = 0; v < round.size(); ++v) {
        variants[round[v]].counts.sent -= added[v].sent;
        variants[round[v]].counts.failed -= added[v].failed;
      }
    }
    if (c == cap && entropy_now) full_gain = *entropy_now - ent;
    if (by_entropy) {
      if (*entropy_now - ent >= 0.9 * full_gain) best_c = c;
      continue;
    }
    const double cost = double(c) + (1.0 - double(stops) / kPredictiveDraws) * (1.5 * double(cap));
    if (cost < best_cost - 1e-9) { best_cost = cost; best_c = c; }
  }
  return best_c;
}

inline std::string top_fate(const std::map<std::string, std::uint64_t>& f) {
  std::string best;
  std::uint64_t n = 0;
  for (const auto& [k, v] : f) {
    if (v > n) { best = k; n = v; }
  }
  return best;
}

}  // namespace tandem::bisect::detail
