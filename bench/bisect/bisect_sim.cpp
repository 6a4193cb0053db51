// Bisection efficiency (docs/benchmarks.md "Bisection efficiency"): the 30 % window-scale case.
//  adaptive: bisect::Experiment at --confidence 0.95 (the code tandem bisect runs), many seeds:
//            mean/median/p95 probes and the share of wrong or undetermined answers.
//  fixed:    one option at a time: baseline + each single option, N probes each, one-sided Fisher
//            exact test of each single vs the baseline at 0.05/4 (Bonferroni over the 4 options);
//            the trigger is named when exactly one option is significant. N is the smallest
//            multiple of 5 that names the right option in >= 95 % of seeds (the same confidence).
// Usage: tandem-bisect-sim [seeds=2000] [rate=0.3] [per_round=60]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include <fmt/format.h>

#include "common/probe/spec.hpp"
#include "controller/bisect/experiment.hpp"
#include "controller/bisect/simulate.hpp"

using namespace tandem;

namespace {

double log_choose(int n, int k) { return std::lgamma(n + 1.0) - std::lgamma(k + 1.0) - std::lgamma(n - k + 1.0); }

// One-sided Fisher exact p: P(X >= a) for X ~ Hypergeometric (a = failures in group 1 of n1,
// b in group 2 of n2), i.e. group 1 fails more.
double fisher_greater(int a, int n1, int b, int n2) {
  int k = a + b, n = n1 + n2;
  double p = 0;
  for (int x = a; x <= std::min(k, n1); ++x) p += std::exp(log_choose(n1, x) + log_choose(n2, k - x) - log_choose(n, k));
  return std::min(1.0, p);
}

bool fixed_design(int n, double rate, std::mt19937_64& rng) {
  std::binomial_distribution<int> hit(n, rate);
  int base = 0;  // baseline never fails
  int significant = 0;
  bool ws = false;
  for (int opt = 0; opt < 4; ++opt) {
    int f = opt == 3 ? hit(rng) : 0;
    if (fisher_greater(f, n, base, n) < 0.05 / 4) {
      ++significant;
      ws = ws || opt == 3;
    }
  }
  return significant == 1 && ws;
}

}  // namespace

int main(int argc, char** argv) {
  const int seeds = argc > 1 ? std::atoi(argv[1]) : 2000;
  const double rate = argc > 2 ? std::atof(argv[2]) : 0.3;
  auto opts = probe::linux_syn_options();
  std::vector<double> used;
  int wrong = 0, undetermined = 0;
  for (int s = 1; s <= seeds; ++s) {
    bisect::Config cfg;
    cfg.budget = 5000;
    if (argc > 3) cfg.per_round = static_cast<std::uint32_t>(std::atoi(argv[3]));
    bisect::Experiment e(opts, bisect::option_features(opts), cfg);
    auto r = bisect::simulate(
        e, [&](const bisect::VariantDef& d) { return d.tcp_options.find("ws=") != std::string::npos ? rate : 0.0; },
        static_cast<std::uint64_t>(s));
    used.push_back(double(r.probes_used));
    if (r.kind != bisect::BisectResult::Kind::trigger) ++undetermined;
    else if (e.trigger_text(r) != "wscale") ++wrong;
  }
  std::sort(used.begin(), used.end());
  double mean = 0;
  for (double u : used) mean += u;
  mean /= double(used.size());
  int fixed_n = 0;
  double fixed_ok = 0;
  std::mt19937_64 rng(12345);
  for (int n = 5; n <= 2000; n += 5) {
    int ok = 0;
    for (int s = 0; s < seeds; ++s) ok += fixed_design(n, rate, rng);
    if (ok >= 0.95 * seeds) {
      fixed_n = n;
      fixed_ok = double(ok) / seeds;
      break;
    }
  }
  const int fixed_total = 5 * fixed_n;
  fmt::print("wscale dropped {:.0f} %, confidence 0.95, {} seeds, {} probes per round\n", 100 * rate, seeds, argc > 3 ? std::atoi(argv[3]) : 60);
  fmt::print("adaptive: mean {:.1f} probes, median {:.0f}, p95 {:.0f}, max {:.0f}; wrong {} ({:.2f} %), undetermined {}\n",
             mean, used[used.size() / 2], used[used.size() * 95 / 100], used.back(), wrong, 100.0 * wrong / seeds,
             undetermined);
  fmt::print("fixed one-at-a-time: N = {} per variant x 5 variants = {} probes (right answer in {:.1f} % of seeds)\n",
             fixed_n, fixed_total, 100 * fixed_ok);
  fmt::print("ratio adaptive mean / fixed = {:.3f}; p95 / fixed = {:.3f}\n", mean / fixed_total,
             used[used.size() * 95 / 100] / fixed_total);
  return 0;
}
