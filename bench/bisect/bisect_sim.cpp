// Bisection efficiency (docs/benchmarks.md "Bisection efficiency"): probes and rounds the adaptive
// experiment needs, and how often it is wrong, over many seeds of simulated per-probe outcomes.
//  adaptive: bisect::Experiment at --confidence 0.95 (the code tandem bisect runs), many seeds:
//            mean/median/p95 probes and rounds, the share of wrong or undetermined answers.
//  fixed:    (wscale case only) one option at a time: baseline + each single option, N probes each,
//            one-sided Fisher exact test of each single vs the baseline at 0.05/4 (Bonferroni over the
//            4 options); the trigger is named when exactly one option is significant. N is the
//            smallest multiple of 5 that names the right option in >= 95 % of seeds (same confidence).
// Cases (options mss=1460,sack,ts,nop,ws=7; `rate` is the trigger's drop rate):
//  wscale      SYNs carrying window scale dropped at `rate`            -> wscale
//  sack-ts     SYNs carrying both sack-perm and timestamp, at `rate`   -> sack_perm+timestamp
//  sack-ts-bg  as sack-ts at `rate` + 5 %, every SYN also 5 %          -> sack_perm+timestamp
//  sack-all    SYNs carrying sack-perm always dropped (rate ignored)    -> sack_perm
//  mss         SYNs with MSS > 1400 always dropped (rate ignored)      -> mss>1400
//  mss-rate    SYNs with MSS > 1400 dropped at `rate`                   -> mss>1400
//  clean       nothing dropped                                          -> clean
//  uniform     every SYN dropped at `rate`                              -> all_fail
//  all         every case above, one line each
// Usage: tandem-bisect-sim [seeds=2000] [rate=0.3] [per_round=60] [case=wscale] [budget=5000] [full-rounds]
// (`full-rounds`: every round uses per_round probes, Config::predictive_round_size off)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
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

bool has(const bisect::VariantDef& d, std::string_view item) { return d.tcp_options.find(item) != std::string::npos; }

struct Case {
  std::string name;
  std::function<double(const bisect::VariantDef&)> rate;
  bisect::BisectResult::Kind kind;
  std::string trigger;  // trigger_text when kind is trigger
};

std::vector<Case> cases(double rate) {
  using K = bisect::BisectResult::Kind;
  auto mss_above = [](const bisect::VariantDef& d, double r) {
    auto p = d.tcp_options.find("mss=");
    if (p == std::string::npos) return 0.0;
    return std::stoi(d.tcp_options.substr(p + 4)) > 1400 ? r : 0.0;
  };
  return {
      {"wscale", [rate](const bisect::VariantDef& d) { return has(d, "ws=") ? rate : 0.0; }, K::trigger, "wscale"},
      {"sack-ts", [rate](const bisect::VariantDef& d) { return has(d, "sack") && has(d, "ts") ? rate : 0.0; },
       K::trigger, "sack_perm+timestamp"},
      {"sack-ts-bg",
       [rate](const bisect::VariantDef& d) { return has(d, "sack") && has(d, "ts") ? rate + 0.05 : 0.05; },
       K::trigger, "sack_perm+timestamp"},
      {"sack-all", [](const bisect::VariantDef& d) { return has(d, "sack") ? 1.0 : 0.0; }, K::trigger, "sack_perm"},
      {"mss", [=](const bisect::VariantDef& d) { return mss_above(d, 1.0); }, K::trigger, "mss>1400"},
      {"mss-rate", [=](const bisect::VariantDef& d) { return mss_above(d, rate); }, K::trigger, "mss>1400"},
      {"clean", [](const bisect::VariantDef&) { return 0.0; }, K::clean, ""},
      {"uniform", [rate](const bisect::VariantDef&) { return rate; }, K::all_fail, ""},
  };
}

struct Summary {
  double mean = 0, median = 0, p95 = 0, max = 0;
};
Summary summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  Summary s;
  for (double x : v) s.mean += x;
  s.mean /= double(v.size());
  s.median = v[v.size() / 2];
  s.p95 = v[v.size() * 95 / 100];
  s.max = v.back();
  return s;
}

struct CaseResult {
  Summary probes, rounds;
  int wrong = 0, undetermined = 0;
};

CaseResult run_case(const Case& c, int seeds, const bisect::Config& cfg) {
  auto opts = probe::linux_syn_options();
  std::vector<double> used, rounds;
  CaseResult out;
  for (int s = 1; s <= seeds; ++s) {
    bisect::Experiment e(opts, bisect::option_features(opts), cfg);
    auto r = bisect::simulate(e, c.rate, static_cast<std::uint64_t>(s));
    used.push_back(double(r.probes_used));
    rounds.push_back(double(r.rounds));
    if (r.kind == bisect::BisectResult::Kind::undetermined) ++out.undetermined;
    else if (r.kind != c.kind || (c.kind == bisect::BisectResult::Kind::trigger && e.trigger_text(r) != c.trigger)) ++out.wrong;
  }
  out.probes = summarize(used);
  out.rounds = summarize(rounds);
  return out;
}

void print_case(const std::string& name, const CaseResult& r, int seeds) {
  fmt::print("{:<11} probes mean {:6.1f} median {:4.0f} p95 {:4.0f} max {:4.0f} | rounds mean {:4.2f} median {:2.0f} "
             "p95 {:2.0f} max {:2.0f} | wrong {} ({:.2f} %), undetermined {}\n",
             name, r.probes.mean, r.probes.median, r.probes.p95, r.probes.max, r.rounds.mean, r.rounds.median,
             r.rounds.p95, r.rounds.max, r.wrong, 100.0 * r.wrong / seeds, r.undetermined);
}

}  // namespace

int main(int argc, char** argv) {
  const int seeds = argc > 1 ? std::atoi(argv[1]) : 2000;
  const double rate = argc > 2 ? std::atof(argv[2]) : 0.3;
  bisect::Config cfg;
  cfg.budget = argc > 5 ? static_cast<std::uint64_t>(std::atoll(argv[5])) : 5000;
  if (argc > 3) cfg.per_round = static_cast<std::uint32_t>(std::atoi(argv[3]));
  if (argc > 6 && std::string(argv[6]) == "full-rounds") cfg.predictive_round_size = false;
  const std::string which = argc > 4 ? argv[4] : "wscale";
  fmt::print("drop rate {:.0f} %, confidence {}, {} seeds, {} probes per round{}, budget {}\n", 100 * rate,
             cfg.confidence, seeds, cfg.per_round, cfg.predictive_round_size ? " (later rounds sized)" : "",
             cfg.budget);
  for (const auto& c : cases(rate)) {
    if (which != "all" && which != c.name) continue;
    print_case(c.name, run_case(c, seeds, cfg), seeds);
  }
  if (which != "wscale") return 0;
  // The fixed comparator (wscale only).
  const auto adaptive = run_case(cases(rate)[0], seeds, cfg);
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
  fmt::print("fixed one-at-a-time: N = {} per variant x 5 variants = {} probes (right answer in {:.1f} % of seeds)\n",
             fixed_n, fixed_total, 100 * fixed_ok);
  fmt::print("ratio adaptive mean / fixed = {:.3f}; p95 / fixed = {:.3f}\n", adaptive.probes.mean / fixed_total,
             adaptive.probes.p95 / fixed_total);
  return 0;
}
