// The statistics of `tandem bisect` (docs/bisect.md "Statistics"): binomial confidence intervals
// for a failure rate, and the model evidence (log marginal likelihood) of a split of the variants
// into a failing and a passing group, which the experiment turns into a posterior over triggers.
// Pure functions; every input is a count, no state.
#pragma once

#include <cstdint>

namespace tandem::bisect {

struct Interval {
  double lo = 0.0;
  double hi = 1.0;
};

// Φ⁻¹(p) for 0 < p < 1 (Acklam's rational approximation refined by one Halley step; |error| < 1e-12).
double normal_quantile(double p);

// Two-sided Wilson score interval for k failures in n trials at `confidence` (e.g. 0.95).
// n == 0 gives [0, 1].
Interval wilson(std::uint64_t k, std::uint64_t n, double confidence);

// Two-sided Clopper-Pearson ("exact") interval, equal tails; n == 0 gives [0, 1].
Interval clopper_pearson(std::uint64_t k, std::uint64_t n, double confidence);

// log P(X <= k) and log P(X >= k) for X ~ Binomial(n, p).
double log_binom_cdf(std::uint64_t k, std::uint64_t n, double p);
double log_binom_sf(std::uint64_t k, std::uint64_t n, double p);

// Counts of one group of probes.
struct Counts {
  std::uint64_t failed = 0;
  std::uint64_t sent = 0;  // decided probes (answered + failed)
};

// Model evidence of "all these probes share one failure rate p", p ~ Uniform(0, 1):
// log ∫ p^k (1-p)^(n-k) dp = log Beta(k+1, n-k+1).
double log_evidence_one_rate(Counts all);

// Model evidence of "the failing group has rate pf, the passing group rate p0, pf >= p0 + delta",
// (p0, pf) uniform on that triangle. `delta` is the smallest failure-rate increase worth naming
// (--min-effect); it is what lets a clean path win over "a trigger with a tiny effect".
// Computed on a midpoint grid (kEvidenceGrid² cells); relative error well below the decisions'.
inline constexpr int kEvidenceGrid = 120;
double log_evidence_two_rates(Counts failing, Counts passing, double delta);

// Posterior means of the two rates of that model (same prior and grid): what the failing and the
// passing group are expected to do on their next probe. The experiment's planner predicts outcomes
// from them.
struct RateMeans {
  double failing = 0.0;
  double passing = 0.0;
};
RateMeans posterior_means_two_rates(Counts failing, Counts passing, double delta);

// log(exp(a) + exp(b)) without overflow.
double log_add(double a, double b);

}  // namespace tandem::bisect
