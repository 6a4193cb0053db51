// The stages after the main one (docs/bisect.md): the MSS threshold (probabilistic bisection over t in
// "fails iff MSS > t"), the window-scale values (--wscale-values) and the option order
// (--option-order: "option K must come first").
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

int Experiment::mss_feature() const {
  for (std::size_t i = 0; i < features_.size(); ++i) {
    if (features_[i].mss) return static_cast<int>(i);
  }
  return -1;
}

int Experiment::wscale_feature() const {
  for (std::size_t i = 0; i < features_.size(); ++i) {
    if (features_[i].wscale) return static_cast<int>(i);
  }
  return -1;
}

int Experiment::first_option(const VariantDef& d) const {
  if (option_idx_.empty()) return -1;
  if (d.rotation > 0) return static_cast<int>(option_idx_[static_cast<std::size_t>(d.rotation) % option_idx_.size()]);
  for (std::size_t i : option_idx_) {
    if (d.mask >> i & 1) return static_cast<int>(i);
  }
  return -1;
}

bool Experiment::order_fail(const VariantDef& d, std::size_t j) const {
  const int f = first_option(d);
  return f >= 0 && static_cast<std::size_t>(f) != option_idx_[j];
}

std::pair<Counts, Counts> Experiment::split_order(std::size_t j) const {
  Counts f, p;
  for (const auto& v : variants_) {
    Counts& c = order_fail(v.def, j) ? f : p;
    c.failed += v.counts.failed;
    c.sent += v.counts.sent;
  }
  return {f, p};
}

std::vector<Experiment::TInterval> Experiment::threshold_intervals() const {
  const int mf = mss_feature();
  const int full = *features_[mf].mss;
  std::vector<int> xs;
  for (const auto& v : variants_) {
    if ((v.def.mask & decided_) == decided_ && v.counts.sent) xs.push_back(v.def.mss ? *v.def.mss : full);
  }
  xs.push_back(full);
  std::sort(xs.begin(), xs.end());
  xs.erase(std::unique(xs.begin(), xs.end()), xs.end());
  std::vector<TInterval> out;
  int lo = kMssFloor - 1;
  for (int x : xs) {
    if (x - 1 >= lo) {
      auto [f, p] = split(decided_, lo);
      out.push_back({lo, x - 1, std::log(double(x - lo)) + log_evidence_two_rates(f, p, config_.min_effect)});
    }
    lo = x;
  }
  double norm = kNegInf;
  for (const auto& i : out) norm = log_add(norm, i.logp);
  for (auto& i : out) i.logp -= norm;
  return out;
}

Experiment::Round Experiment::plan_threshold() {
  auto iv = threshold_intervals();
  std::vector<std::size_t> idx = {variant_for(0)};
  std::size_t best = 0;
  for (std::size_t i = 1; i < iv.size(); ++i) if (iv[i].logp > iv[best].logp) best = i;
  const int full = *features_[mss_feature()].mss;
  auto add_x = [&](int x) {
    x = std::clamp(x, int{kMssFloor}, full);
    idx.push_back(x == full ? variant_for(decided_) : variant_for(decided_, static_cast<std::uint16_t>(x)));
  };
  // The values bracketing the leading interval, then posterior quartiles of t (probabilistic
  // bisection: each tested value X splits the mass at "t >= X", i.e. X passes).
  if (iv[best].lo >= kMssFloor) add_x(iv[best].lo);
  add_x(iv[best].hi + 1);
  for (double q : {0.5, 0.25, 0.75}) {
    double acc = 0;
    for (const auto& i : iv) {
      double p = std::exp(i.logp);
      if (acc + p >= q) {
        double frac = (q - acc) / p;
        add_x(i.lo + static_cast<int>(std::floor(frac * (i.hi - i.lo + 1))) + 1);
        break;
      }
      acc += p;
    }
  }
  std::sort(idx.begin(), idx.end());
  idx.erase(std::unique(idx.begin(), idx.end()), idx.end());
  Round r = sized(idx);
  if (r.variants.empty() || !config_.predictive_round_size) return r;
  // Predictive draws: a threshold t (an interval by its weight, t uniform in it); each tested value
  // fails iff it is above t, at the decided set's pooled failing rate, the others at its passing rate.
  std::vector<double> cum;
  double acc = 0;
  for (const auto& i : iv) cum.push_back(acc += std::exp(i.logp));
  // Entropy of t (nats), every value of an interval equally likely.
  auto entropy = [](const std::vector<TInterval>& ivs) {
    double h = 0;
    for (const auto& i : ivs) {
      const double p = std::exp(i.logp);
      if (p > 0) h -= p * (i.logp - std::log(double(i.hi - i.lo + 1)));
    }
    return h;
  };
  auto [f, p] = split(decided_, iv[best].lo);
  const RateMeans means = posterior_means_two_rates(f, p, config_.min_effect);
  std::vector<int> value(r.variants.size());
  std::vector<bool> carries(r.variants.size());
  for (std::size_t v = 0; v < r.variants.size(); ++v) {
    const auto& d = variants_[r.variants[v]].def;
    value[v] = d.mss ? *d.mss : full;
    carries[v] = (d.mask & decided_) == decided_;
  }
  std::vector<double> out(r.variants.size());
  r.count = predictive_size(
      variants_, r.variants, r.count, (used_ << 8) ^ rounds_,
      [&](double pick) -> const std::vector<double>& {
        const std::size_t k = std::min<std::size_t>(
            static_cast<std::size_t>(std::lower_bound(cum.begin(), cum.end(), pick * cum.back()) - cum.begin()),
            iv.size() - 1);
        const double within = pick * cum.back() - (k ? cum[k - 1] : 0.0);
        const double frac = std::clamp(within / std::max(cum[k] - (k ? cum[k - 1] : 0.0), 1e-300), 0.0, 1.0);
        const int t = std::min(iv[k].hi, iv[k].lo + static_cast<int>(frac * (iv[k].hi - iv[k].lo + 1)));
        for (std::size_t v = 0; v < out.size(); ++v) out[v] = carries[v] && value[v] > t ? means.failing : means.passing;
        return out;
      },
      [&] {
        for (const auto& i : threshold_intervals()) {
          if (std::exp(i.logp) >= config_.confidence && i.hi - i.lo + 1 <= config_.mss_resolution) return true;
        }
        return false;
      },
      entropy(iv), [&] { return entropy(threshold_intervals()); });
  return r;
}

bool Experiment::enter_wscale_stage() {
  const int wf = wscale_feature();
  if (!config_.refine_wscale || decided_ == 0 || wf < 0 || !(decided_ >> wf & 1)) return false;
  const int v = *features_[wf].wscale;
  ws_hyps_.clear();
  for (int lo = 0; lo <= v; ++lo) {
    ws_hyps_.push_back({lo, kWscaleMax});
    if (v < kWscaleMax) ws_hyps_.push_back({lo, v});
  }
  threshold_stage_ = false;
  wscale_stage_ = true;
  update_wscale_posterior();
  return true;
}

void Experiment::update_wscale_posterior() {
  const int mss_t = mss_t_ ? *mss_t_ : kNoThreshold;
  std::vector<double> lp(ws_hyps_.size());
  double norm = kNegInf;
  for (std::size_t i = 0; i < ws_hyps_.size(); ++i) {
    auto [f, p] = split(decided_, mss_t, &ws_hyps_[i]);
    lp[i] = log_evidence_two_rates(f, p, config_.min_effect);
    norm = log_add(norm, lp[i]);
  }
  ws_post_.resize(lp.size());
  for (std::size_t i = 0; i < lp.size(); ++i) ws_post_[i] = std::exp(lp[i] - norm);
}

Experiment::Round Experiment::plan_wscale() {
  const int v = *features_[wscale_feature()].wscale;
  const int top = std::min(v + 1, kWscaleMax);
  std::vector<std::size_t> idx = {variant_for(0), variant_for(decided_)};
  const std::size_t map = static_cast<std::size_t>(std::max_element(ws_post_.begin(), ws_post_.end()) - ws_post_.begin());
  auto in = [](const WscaleRange& h, int x) { return x >= h.lo && x <= h.hi; };
  struct Cand { int x; double score; std::uint64_t sent; };
  std::vector<Cand> cands;
  bool first = true;  // no value other than v tried yet: try them all (when few)
  for (int x = 0; x <= top; ++x) {
    if (x == v) continue;
    double s = 0;
    for (std::size_t i = 0; i < ws_hyps_.size(); ++i) {
      if (in(ws_hyps_[i], x) != in(ws_hyps_[map], x)) s += ws_post_[i];
    }
    std::uint64_t sent = 0;
    for (const auto& vs : variants_) {
      if (vs.def.mask == decided_ && !vs.def.mss && vs.def.wscale && *vs.def.wscale == x) sent = vs.counts.sent;
    }
    first = first && sent == 0;
    cands.push_back({x, s, sent});
  }
  if (first && cands.size() <= 2 * config_.max_variants_per_round + 4) {
    for (const auto& c : cands) idx.push_back(variant_for(decided_, std::nullopt, static_cast<std::uint8_t>(c.x)));
    return sized(std::move(idx));
  }
  std::sort(cands.begin(), cands.end(), [v](const Cand& a, const Cand& b) {
    if (std::fabs(a.score - b.score) > 1e-9) return a.score > b.score;
    if (a.sent != b.sent) return a.sent < b.sent;
    return std::abs(a.x - v) < std::abs(b.x - v);
  });
  for (const auto& c : cands) {
    if (idx.size() >= config_.max_variants_per_round + 2) break;
    if (c.score < (1 - config_.confidence) / 20) break;
    idx.push_back(variant_for(decided_, std::nullopt, static_cast<std::uint8_t>(c.x)));
  }
  return sized(std::move(idx));
}

}  // namespace tandem::bisect
