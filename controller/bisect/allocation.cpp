// Which variants a round sends and how many probes (docs/bisect.md "Allocation", "Round size"):
// round 1's fixed design, later rounds by expected information, sized by the posterior predictive.
#include "controller/bisect/experiment.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include <fmt/format.h>

#include "controller/bisect/internal.hpp"

namespace tandem::bisect {

using namespace detail;  // NOLINT(google-build-using-namespace): this library's own helpers

namespace detail {

double count_information(const std::vector<double>& w, const std::vector<double>& r, std::uint32_t m) {
  std::vector<double> mix(m + 1, 0.0), pmf(m + 1), lchoose(m + 1);
  for (std::uint32_t k = 0; k <= m; ++k) {
    lchoose[k] = std::lgamma(m + 1.0) - std::lgamma(k + 1.0) - std::lgamma(double(m - k) + 1.0);
  }
  double cond = 0;
  for (std::size_t h = 0; h < w.size(); ++h) {
    if (w[h] < 1e-9) continue;
    const double p = std::clamp(r[h], 1e-9, 1 - 1e-9);
    const double lp = std::log(p), lq = std::log1p(-p);
    double ent = 0;
    for (std::uint32_t k = 0; k <= m; ++k) {
      pmf[k] = std::exp(lchoose[k] + k * lp + (m - k) * lq);
      if (pmf[k] > 0) ent -= pmf[k] * std::log(pmf[k]);
      mix[k] += w[h] * pmf[k];
    }
    cond += w[h] * ent;
  }
  double h_mix = 0;
  for (double x : mix) if (x > 0) h_mix -= x * std::log(x);
  return std::max(0.0, h_mix - cond);
}

}  // namespace detail

Experiment::Round Experiment::sized(std::vector<std::size_t> idx) {
  Round r;
  std::sort(idx.begin(), idx.end());
  idx.erase(std::unique(idx.begin(), idx.end()), idx.end());
  std::uint64_t left = config_.budget > used_ ? config_.budget - used_ : 0;
  std::uint64_t want = std::max<std::uint64_t>(config_.per_round, 4 * idx.size());
  want = std::min(want, left);
  if (want < idx.size() || rounds_ >= config_.max_rounds) {
    budget_exhausted_ = want < idx.size();
    done_ = true;
    return r;
  }
  r.variants = std::move(idx);
  r.count = static_cast<std::uint32_t>(want);
  return r;
}

Experiment::Round Experiment::plan_main() {
  const Mask full = full_mask();
  const std::size_t n = features_.size();
  if (rounds_ > 0) {
    // The baseline stays in every round as the anchor (path noise of the round hits it too); the
    // rest is chosen by expected information.
    return plan_information({variant_for(0)});
  }
  // First look: baseline, full, every single feature and every leave-one-out.
  std::vector<std::size_t> idx = {variant_for(0), variant_for(full)};
  for (std::size_t i = 0; i < n; ++i) {
    idx.push_back(variant_for(Mask{1} << i));
    idx.push_back(variant_for(full & ~(Mask{1} << i)));
  }
  // Order: the full set's rotations (each option feature first once).
  if (order_hypotheses()) {
    for (std::size_t r = 1; r < option_idx_.size(); ++r) idx.push_back(variant_for(full, std::nullopt, std::nullopt, static_cast<int>(r)));
  }
  return sized(std::move(idx));
}

Experiment::Round Experiment::plan_information(std::vector<std::size_t> idx) {
  // Each hypothesis's prediction for a probe of a variant: its failing group's posterior mean rate if
  // it says the variant fails, its passing group's otherwise.
  const Mask full = full_mask();
  const std::size_t nmask = std::size_t{1} << features_.size();
  const std::size_t nh = posterior_.size();
  std::vector<RateMeans> means(nh);
  {
    Counts all;
    for (const auto& v : variants_) { all.failed += v.counts.failed; all.sent += v.counts.sent; }
    const double one = (double(all.failed) + 1) / (double(all.sent) + 2);
    means[0] = {one, one};
  }
  for (std::size_t h = 1; h < nh; ++h) {
    if (posterior_[h] < 1e-9) continue;
    auto [f, p] = h < nmask ? split(static_cast<Mask>(h), kNoThreshold) : split_order(h - nmask);
    means[h] = posterior_means_two_rates(f, p, config_.min_effect);
  }
  struct Cand { Mask m; int rot; std::vector<double> r; double gain = 0; };
  std::vector<Cand> cands;
  const int rots = order_hypotheses() ? static_cast<int>(option_idx_.size()) : 1;
  for (int rot = 0; rot < rots; ++rot) {
    for (Mask v = rot ? full : 0; v <= full; ++v) {
      VariantDef def;
      def.mask = v;
      def.rotation = rot;
      Cand c{v, rot, std::vector<double>(nh), 0};
      for (std::size_t h = 0; h < nh; ++h) {
        const bool fail = h < nmask ? h != 0 && (v & h) == h : order_fail(def, h - nmask);
        c.r[h] = fail ? means[h].failing : means[h].passing;
      }
      cands.push_back(std::move(c));
    }
  }
  const std::size_t anchors = idx.size();
  const std::uint32_t count = config_.per_round;
  // Choose how many variants share the round: the k most informative, each with count/k probes,
  // maximising the summed information (it ignores overlap between variants, so it favours spreading
  // a little; the cap keeps rounds readable).
  std::size_t best_k = 1;
  double best_val = -1;
  std::vector<std::size_t> best_order;
  const std::size_t kmax = std::min<std::size_t>(config_.max_variants_per_round, cands.size());
  for (std::size_t k = 1; k <= kmax; ++k) {
    const std::uint32_t m = std::max<std::uint32_t>(1, count / static_cast<std::uint32_t>(k + anchors));
    for (auto& c : cands) c.gain = count_information(posterior_, c.r, m);
    std::vector<std::size_t> order(cands.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return cands[a].gain > cands[b].gain; });
    double val = 0;
    for (std::size_t i = 0; i < k; ++i) val += cands[order[i]].gain;
    if (val > best_val * (1 + 1e-6)) { best_val = val; best_k = k; best_order = order; }
  }
  for (std::size_t i = 0; i < best_k; ++i) {
    const auto& c = cands[best_order[i]];
    idx.push_back(variant_for(c.m, std::nullopt, std::nullopt, c.rot));
  }
  std::sort(idx.begin(), idx.end());
  idx.erase(std::unique(idx.begin(), idx.end()), idx.end());
  Round r = sized(idx);
  if (r.variants.empty() || !config_.predictive_round_size) return r;
  std::vector<const std::vector<double>*> rates;
  for (std::size_t i : r.variants) {
    const auto& d = variants_[i].def;
    rates.push_back(&cands[d.rotation == 0 ? d.mask : full + 1 + static_cast<Mask>(d.rotation - 1)].r);
  }
  const std::vector<double> saved = posterior_;
  std::vector<double> cum(saved.size());
  std::partial_sum(saved.begin(), saved.end(), cum.begin());
  std::vector<double> out(r.variants.size());
  r.count = predictive_size(
      variants_, r.variants, r.count, (used_ << 8) ^ rounds_,
      [&](double pick) -> const std::vector<double>& {
        // A hypothesis by its posterior weight; each variant at the rate it predicts.
        const std::size_t h = std::min<std::size_t>(
            static_cast<std::size_t>(std::lower_bound(cum.begin(), cum.end(), pick * cum.back()) - cum.begin()),
            saved.size() - 1);
        for (std::size_t v = 0; v < out.size(); ++v) out[v] = (*rates[v])[h];
        return out;
      },
      [&] {
        update_posterior();
        return *std::max_element(posterior_.begin(), posterior_.end()) >= config_.confidence;
      },
      std::nullopt, [] { return 0.0; });
  posterior_ = saved;
  return r;
}

}  // namespace tandem::bisect
