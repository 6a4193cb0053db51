#include "controller/bisect/stats.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <vector>

namespace tandem::bisect {

namespace {
constexpr double kNegInf = -std::numeric_limits<double>::infinity();

double log_choose(std::uint64_t n, std::uint64_t k) {
  return std::lgamma(double(n) + 1) - std::lgamma(double(k) + 1) - std::lgamma(double(n - k) + 1);
}

// Finds p in [0, 1] with f(p) = target for f increasing in p (60 halvings: 1e-18 resolution).
template <class F>
double solve_increasing(F f, double target) {
  double lo = 0.0, hi = 1.0;
  for (int i = 0; i < 60; ++i) {
    double mid = 0.5 * (lo + hi);
    if (f(mid) < target) lo = mid; else hi = mid;
  }
  return 0.5 * (lo + hi);
}
}  // namespace

double log_add(double a, double b) {
  if (a == kNegInf) return b;
  if (b == kNegInf) return a;
  double m = std::max(a, b);
  return m + std::log1p(std::exp(-std::fabs(a - b)));
}

double normal_quantile(double p) {
  // Acklam (2003): rational approximations in the central and tail regions.
  static constexpr double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                                 1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
  static constexpr double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                                 6.680131188771972e+01, -1.328068155288572e+01};
  static constexpr double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                                 -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
  static constexpr double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                                 3.754408661907416e+00};
  if (p <= 0.0) return -std::numeric_limits<double>::infinity();
  if (p >= 1.0) return std::numeric_limits<double>::infinity();
  double x;
  if (p < 0.02425) {
    double q = std::sqrt(-2 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p > 1 - 0.02425) {
    double q = std::sqrt(-2 * std::log(1 - p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else {
    double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  }
  // One Halley step against the exact CDF brings the 1e-9 approximation to full precision.
  double e = 0.5 * std::erfc(-x / std::sqrt(2.0)) - p;
  double u = e * std::sqrt(2 * M_PI) * std::exp(x * x / 2);
  return x - u / (1 + x * u / 2);
}

Interval wilson(std::uint64_t k, std::uint64_t n, double confidence) {
  if (n == 0) return {};
  double z = normal_quantile(1 - (1 - confidence) / 2);
  double nn = double(n), p = double(k) / nn, z2 = z * z;
  double denom = 1 + z2 / nn;
  double center = (p + z2 / (2 * nn)) / denom;
  double half = z / denom * std::sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn));
  return {std::max(0.0, center - half), std::min(1.0, center + half)};
}

double log_binom_cdf(std::uint64_t k, std::uint64_t n, double p) {
  if (k >= n) return 0.0;
  if (p <= 0) return 0.0;
  if (p >= 1) return kNegInf;
  double acc = kNegInf, lp = std::log(p), lq = std::log1p(-p);
  for (std::uint64_t i = 0; i <= k; ++i) acc = log_add(acc, log_choose(n, i) + double(i) * lp + double(n - i) * lq);
  return std::min(acc, 0.0);
}

double log_binom_sf(std::uint64_t k, std::uint64_t n, double p) {
  if (k == 0) return 0.0;
  if (k > n) return kNegInf;
  return k - 1 >= n ? kNegInf : std::log(std::max(0.0, -std::expm1(log_binom_cdf(k - 1, n, p))));
}

Interval clopper_pearson(std::uint64_t k, std::uint64_t n, double confidence) {
  if (n == 0) return {};
  double tail = (1 - confidence) / 2, lt = std::log(tail);
  Interval r;
  // lower: P(X >= k | p) = tail (increasing in p); upper: P(X <= k | p) = tail (decreasing in p).
  r.lo = k == 0 ? 0.0 : solve_increasing([&](double p) { return log_binom_sf(k, n, p); }, lt);
  r.hi = k == n ? 1.0 : solve_increasing([&](double p) { return -log_binom_cdf(k, n, p); }, -lt);
  return r;
}

double log_evidence_one_rate(Counts all) {
  double k = double(all.failed), n = double(all.sent);
  return std::lgamma(k + 1) + std::lgamma(n - k + 1) - std::lgamma(n + 2);
}

namespace {
constexpr int G = kEvidenceGrid;

// log p and log(1-p) at the grid's midpoints.
const std::array<std::array<double, 2>, G>& log_grid() {
  static const auto grid = [] {
    std::array<std::array<double, 2>, G> g{};
    for (int i = 0; i < G; ++i) {
      double p = (i + 0.5) / G;
      g[i] = {std::log(p), std::log1p(-p)};
    }
    return g;
  }();
  return grid;
}

// Log likelihood of the counts at every grid rate.
std::array<double, G> log_lik(Counts c) {
  const auto& grid = log_grid();
  std::array<double, G> l{};
  for (int i = 0; i < G; ++i) l[i] = double(c.failed) * grid[i][0] + double(c.sent - c.failed) * grid[i][1];
  return l;
}
}  // namespace

RateMeans posterior_means_two_rates(Counts failing, Counts passing, double delta) {
  const auto lf = log_lik(failing), lp = log_lik(passing);
  const auto& grid = log_grid();
  const int shift = static_cast<int>(std::ceil(delta * G - 1e-9));
  if (shift >= G) return {};
  // In logs throughout: the counts can make every cell's weight underflow a double.
  std::array<double, G + 1> suffix{}, psuffix{};  // log Σ_{j' >= j} w_f(j') and log Σ p_j' w_f(j')
  suffix[G] = psuffix[G] = kNegInf;
  for (int j = G - 1; j >= 0; --j) {
    suffix[j] = log_add(suffix[j + 1], lf[j]);
    psuffix[j] = log_add(psuffix[j + 1], lf[j] + grid[j][0]);
  }
  double z = kNegInf, ef = kNegInf, ep = kNegInf;
  for (int i = 0; i + shift < G; ++i) {
    const int j0 = std::max(i + shift, 0);
    z = log_add(z, lp[i] + suffix[j0]);
    ef = log_add(ef, lp[i] + psuffix[j0]);
    ep = log_add(ep, lp[i] + grid[i][0] + suffix[j0]);
  }
  if (z == kNegInf) return {};
  return {std::exp(ef - z), std::exp(ep - z)};
}

double log_evidence_two_rates(Counts failing, Counts passing, double delta) {
  const auto lf = log_lik(failing), lp = log_lik(passing);
  // suffix[j] = log Σ_{j' >= j} exp(lf[j']).
  std::array<double, G + 1> suffix{};
  suffix[G] = kNegInf;
  for (int j = G - 1; j >= 0; --j) suffix[j] = log_add(suffix[j + 1], lf[j]);
  double acc = kNegInf;
  std::uint64_t cells = 0;
  const int shift = static_cast<int>(std::ceil(delta * G - 1e-9));
  for (int i = 0; i + shift < G; ++i) {
    int j0 = std::max(i + shift, 0);
    acc = log_add(acc, lp[i] + suffix[j0]);
    cells += static_cast<std::uint64_t>(G - j0);
  }
  if (cells == 0) return kNegInf;
  return acc - std::log(double(cells));
}

}  // namespace tandem::bisect
