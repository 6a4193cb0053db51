// Known values: R's binom.test (Clopper-Pearson), prop.test(correct = FALSE) (Wilson), qnorm.
#include <gtest/gtest.h>

#include <cmath>

#include "controller/bisect/stats.hpp"

namespace tandem::bisect {
namespace {

TEST(Stats, NormalQuantile) {
  EXPECT_NEAR(normal_quantile(0.975), 1.959963984540054, 1e-12);
  EXPECT_NEAR(normal_quantile(0.995), 2.575829303548901, 1e-12);
  EXPECT_NEAR(normal_quantile(0.5), 0.0, 1e-14);
  EXPECT_NEAR(normal_quantile(0.001), -3.090232306167814, 1e-11);
}

TEST(Stats, WilsonKnownValues) {
  auto a = wilson(5, 10, 0.95);
  EXPECT_NEAR(a.lo, 0.2365931, 1e-6);
  EXPECT_NEAR(a.hi, 0.7634069, 1e-6);
  auto b = wilson(0, 10, 0.95);
  EXPECT_NEAR(b.lo, 0.0, 1e-12);
  EXPECT_NEAR(b.hi, 0.2775328, 1e-6);
  auto c = wilson(1, 10, 0.95);
  EXPECT_NEAR(c.lo, 0.01787621, 1e-6);
  EXPECT_NEAR(c.hi, 0.40415002, 1e-6);
  auto d = wilson(10, 10, 0.95);
  EXPECT_NEAR(d.hi, 1.0, 1e-12);
  EXPECT_NEAR(d.lo, 0.7224672, 1e-6);
  auto e = wilson(0, 0, 0.95);
  EXPECT_EQ(e.lo, 0.0);
  EXPECT_EQ(e.hi, 1.0);
}

TEST(Stats, ClopperPearsonKnownValues) {
  auto a = clopper_pearson(5, 10, 0.95);
  EXPECT_NEAR(a.lo, 0.1870860, 1e-6);
  EXPECT_NEAR(a.hi, 0.8129140, 1e-6);
  auto b = clopper_pearson(0, 10, 0.95);
  EXPECT_EQ(b.lo, 0.0);
  EXPECT_NEAR(b.hi, 0.3084971, 1e-6);
  auto c = clopper_pearson(1, 10, 0.95);
  EXPECT_NEAR(c.lo, 0.002528579, 1e-8);
  EXPECT_NEAR(c.hi, 0.445016118, 1e-6);
  auto d = clopper_pearson(30, 100, 0.95);
  EXPECT_NEAR(d.lo, 0.2124064, 1e-6);
  EXPECT_NEAR(d.hi, 0.3998147, 1e-6);
}

TEST(Stats, BinomialTails) {
  EXPECT_NEAR(std::exp(log_binom_cdf(3, 10, 0.5)), 176.0 / 1024.0, 1e-12);
  EXPECT_NEAR(std::exp(log_binom_sf(8, 10, 0.5)), 56.0 / 1024.0, 1e-12);
  EXPECT_EQ(log_binom_sf(0, 10, 0.3), 0.0);
}

TEST(Stats, EvidenceOneRateIsTheBetaFunction) {
  // ∫ p (1-p) dp = 1/6; ∫ p^0 (1-p)^3 dp = 1/4.
  EXPECT_NEAR(std::exp(log_evidence_one_rate({1, 2})), 1.0 / 6, 1e-12);
  EXPECT_NEAR(std::exp(log_evidence_one_rate({0, 3})), 1.0 / 4, 1e-12);
}

TEST(Stats, EvidenceTwoRatesAgreesWithIntegral) {
  // No data: the mean of 1 over the triangle is 1.
  EXPECT_NEAR(log_evidence_two_rates({0, 0}, {0, 0}, 0.1), 0.0, 1e-9);
  // pf ≥ p0, one failure in the failing group and one pass in the passing group:
  // ∫∫_{pf≥p0} pf (1-p0) · 2 dp0 dpf = 2 · 5/24 = 5/12 (grid approximation).
  EXPECT_NEAR(std::exp(log_evidence_two_rates({1, 1}, {0, 1}, 0.0)), 5.0 / 12, 5e-3);
  // Data with a large difference favours two rates over one; equal data favours one rate.
  EXPECT_GT(log_evidence_two_rates({30, 100}, {0, 100}, 0.1), log_evidence_one_rate({30, 200}) + 10);
  EXPECT_LT(log_evidence_two_rates({10, 100}, {10, 100}, 0.1), log_evidence_one_rate({20, 200}) - 2);
}

TEST(Stats, PosteriorMeansTwoRates) {
  // No data, no gap: (p0, pf) uniform on pf >= p0, so E[pf] = 2/3 and E[p0] = 1/3.
  auto m = posterior_means_two_rates({0, 0}, {0, 0}, 0.0);
  EXPECT_NEAR(m.failing, 2.0 / 3, 3e-3);
  EXPECT_NEAR(m.passing, 1.0 / 3, 3e-3);
  // Clearly separated counts: close to the Beta(k+1, n-k+1) means, (31/102, 1/102).
  m = posterior_means_two_rates({30, 100}, {0, 100}, 0.1);
  EXPECT_NEAR(m.failing, 31.0 / 102, 5e-3);
  EXPECT_NEAR(m.passing, 1.0 / 102, 5e-3);
  // Counts against the ordering are pushed apart by at least the gap; many probes do not underflow.
  m = posterior_means_two_rates({0, 5000}, {5000, 5000}, 0.1);
  EXPECT_GE(m.failing, m.passing + 0.1 - 1e-9);
  EXPECT_GT(m.failing, 0.0);
}

}  // namespace
}  // namespace tandem::bisect
