#include "controller/bisect/experiment.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <tuple>

#include <fmt/format.h>

#include "common/probe/spec.hpp"

namespace tandem::bisect {

namespace {
constexpr double kNegInf = -std::numeric_limits<double>::infinity();
constexpr int kNoThreshold = -1;  // main stage: every MSS value counts as "carries the option"
constexpr int kPredictiveDraws = 32;  // posterior-predictive draws per candidate round size

bool is_pad(const packet::TcpOption& o) { return o.kind == packet::kTcpOptNop || o.kind == packet::kTcpOptEol; }

std::uint16_t mss_of(const packet::TcpOption& o) {
  return o.data.size() == 2 ? static_cast<std::uint16_t>(o.data[0] << 8 | o.data[1]) : 0;
}

nlohmann::ordered_json interval_json(Interval i) {
  return nlohmann::ordered_json::array({std::round(i.lo * 1e4) / 1e4, std::round(i.hi * 1e4) / 1e4});
}

double rate(Counts c) { return c.sent ? double(c.failed) / double(c.sent) : 0.0; }

// Mutual information (nats) between the hypothesis and the failure count of m probes of one
// variant, when hypothesis h (posterior weight w[h]) predicts each probe fails at rate r[h]:
// H(Σ w Bin(m, r)) − Σ w H(Bin(m, r)).
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

std::string top_fate(const std::map<std::string, std::uint64_t>& f) {
  std::string best;
  std::uint64_t n = 0;
  for (const auto& [k, v] : f) {
    if (v > n) { best = k; n = v; }
  }
  return best;
}
}  // namespace

std::string_view kind_name(BisectResult::Kind k) {
  switch (k) {
    case BisectResult::Kind::trigger: return "trigger";
    case BisectResult::Kind::clean: return "clean";
    case BisectResult::Kind::all_fail: return "all_fail";
    case BisectResult::Kind::undetermined: return "undetermined";
  }
  return "undetermined";
}

std::vector<Feature> option_features(const std::vector<packet::TcpOption>& options) {
  std::vector<Feature> out;
  std::vector<packet::TcpOption> pending;
  for (const auto& o : options) {
    if (is_pad(o)) { pending.push_back(o); continue; }
    Feature f;
    f.kind = Feature::Kind::option;
    f.name = packet::option_name(o.kind);
    f.options = std::move(pending);
    pending.clear();
    f.options.push_back(o);
    if (o.kind == packet::kTcpOptMss) f.mss = mss_of(o);
    if (o.kind == packet::kTcpOptWscale && o.data.size() == 1) f.wscale = o.data[0];
    out.push_back(std::move(f));
  }
  if (!pending.empty() && !out.empty()) {
    for (auto& o : pending) out.back().options.push_back(o);
  }
  return out;
}

std::pair<Outcome, std::string> classify(const correlate::ProbeRecord& p, bool server_present) {
  using correlate::Fate;
  if (p.fate == Fate::not_sent) return {Outcome::excluded, "not_sent"};
  if (!server_present) {
    // The client's capture alone: what came back, if anything.
    if (p.reply == "syn_ack") return {Outcome::answered, "answered"};
    if (p.reply.empty()) return {Outcome::failed, "no_answer"};
    if (p.reply == "rst") return {Outcome::failed, "rst"};
    if (p.reply.rfind("icmp", 0) == 0) return {Outcome::failed, "icmp_error"};
    return {Outcome::answered, "answered"};
  }
  switch (p.fate) {
    case Fate::answered: return {Outcome::answered, "answered"};
    case Fate::unknown:
    case Fate::not_sent: return {Outcome::excluded, std::string(correlate::fate_name(p.fate))};
    default: return {Outcome::failed, std::string(correlate::fate_name(p.fate))};
  }
}

Experiment::Experiment(std::vector<packet::TcpOption> full_options, std::vector<Feature> features, Config config,
                       std::uint8_t base_tos, std::string base_sport, std::uint8_t base_ttl)
    : full_options_(std::move(full_options)),
      features_(std::move(features)),
      config_(config),
      base_tos_(base_tos),
      base_sport_(std::move(base_sport)),
      base_ttl_(base_ttl) {
  if (features_.size() > kMaxFeatures) features_.resize(kMaxFeatures);
  for (std::size_t i = 0; i < features_.size(); ++i) {
    if (features_[i].kind == Feature::Kind::option) option_idx_.push_back(i);
  }
  const std::size_t h = (std::size_t{1} << features_.size()) + order_hypotheses();
  posterior_.assign(h, 1.0 / double(h));
}

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

std::size_t Experiment::variant_for(Mask mask, std::optional<std::uint16_t> mss, std::optional<std::uint8_t> wscale,
                                    int rotation) {
  // An override equal to the feature's own value is the plain variant.
  if (const int wf = wscale_feature(); wscale && wf >= 0 && *features_[wf].wscale == *wscale) wscale.reset();
  for (std::size_t i = 0; i < variants_.size(); ++i) {
    const auto& e = variants_[i].def;
    if (e.mask == mask && e.mss == mss && e.wscale == wscale && e.rotation == rotation) return i;
  }
  VariantDef d;
  d.rotation = rotation;
  d.mask = mask;
  d.mss = mss;
  d.wscale = wscale;
  d.tos = base_tos_;
  d.sport = base_sport_;
  std::vector<packet::TcpOption> opts;
  std::vector<std::string> names;
  bool any_dscp = false, any_sport = false;
  for (std::size_t i = 0; i < features_.size(); ++i) {
    const auto& f = features_[i];
    any_dscp = any_dscp || f.kind == Feature::Kind::dscp;
    any_sport = any_sport || f.kind == Feature::Kind::sport;
    if (!(mask >> i & 1)) continue;
    if (f.kind == Feature::Kind::dscp) d.tos = f.tos;
    if (f.kind == Feature::Kind::sport) d.sport = f.sport;
    if (f.kind == Feature::Kind::ttl) d.ttl = f.ttl;
    for (const auto& o : f.options) {
      if (mss && f.mss && !is_pad(o)) opts.push_back(packet::TcpOption::mss(*mss));
      else if (wscale && f.wscale && !is_pad(o)) opts.push_back(packet::TcpOption::wscale(*wscale));
      else opts.push_back(o);
    }
    if (mss && f.mss) names.push_back(fmt::format("mss={}", *mss));
    else if (wscale && f.wscale) names.push_back(fmt::format("wscale={}", *wscale));
    else names.push_back(f.name);
  }
  if (any_dscp && !(mask & [&] { Mask m = 0; for (std::size_t i = 0; i < features_.size(); ++i) if (features_[i].kind == Feature::Kind::dscp) m |= Mask{1} << i; return m; }())) {
    d.tos = 0;
  }
  if (any_sport) {
    bool has = false;
    for (std::size_t i = 0; i < features_.size(); ++i) has = has || (features_[i].kind == Feature::Kind::sport && (mask >> i & 1));
    if (!has) d.sport = "random";
  }
  // The full set goes out exactly as the user wrote it (padding and order included).
  bool options_full = true;
  for (std::size_t i = 0; i < features_.size(); ++i) {
    if (features_[i].kind == Feature::Kind::option && !(mask >> i & 1)) options_full = false;
  }
  const bool value_override = mss.has_value() || wscale.has_value();
  if (options_full && !value_override) opts = full_options_;
  if (rotation > 0 && !option_idx_.empty()) {
    // The same options, the option features rotated: padding stays with its option.
    opts.clear();
    for (std::size_t j = 0; j < option_idx_.size(); ++j) {
      const auto& f = features_[option_idx_[(static_cast<std::size_t>(rotation) + j) % option_idx_.size()]];
      opts.insert(opts.end(), f.options.begin(), f.options.end());
    }
  }
  d.tcp_options = opts.empty() ? "" : probe::format_tcp_options(opts);
  if (rotation > 0) {
    d.name = fmt::format("rot{}:{}-first", rotation, features_[static_cast<std::size_t>(first_option(d))].name);
  } else if (mask == 0) d.name = "baseline";
  else if (mask == full_mask() && !value_override) d.name = "full";
  else if (std::popcount(mask) + 1 == static_cast<int>(features_.size()) && !value_override && features_.size() > 2) {
    d.name = "-" + features_[std::countr_zero(~mask & full_mask())].name;
  } else {
    for (std::size_t i = 0; i < names.size(); ++i) d.name += (i ? "+" : "") + names[i];
  }
  variants_.push_back(VariantStats{d, {}, 0, {}});
  return variants_.size() - 1;
}

bool Experiment::predicted_fail(const VariantStats& v, Mask t, int mss_t, const WscaleRange* ws) const {
  if (t == 0) return false;
  if ((v.def.mask & t) != t) return false;
  int mf = mss_feature();
  if (mss_t != kNoThreshold && mf >= 0 && (t >> mf & 1)) {
    int value = v.def.mss ? *v.def.mss : *features_[mf].mss;
    if (value <= mss_t) return false;
  }
  int wf = wscale_feature();
  if (ws != nullptr && wf >= 0 && (t >> wf & 1)) {
    int value = v.def.wscale ? *v.def.wscale : *features_[wf].wscale;
    if (value < ws->lo || value > ws->hi) return false;
  }
  return true;
}

std::pair<Counts, Counts> Experiment::split(Mask t, int mss_t, const WscaleRange* ws) const {
  Counts f, p;
  for (const auto& v : variants_) {
    Counts& c = predicted_fail(v, t, mss_t, ws) ? f : p;
    c.failed += v.counts.failed;
    c.sent += v.counts.sent;
  }
  return {f, p};
}

void Experiment::update_posterior() {
  std::vector<double> lp(posterior_.size());
  for (Mask t = 0; t < (std::size_t{1} << features_.size()); ++t) {
    if (t == 0) {
      auto [f, p] = split(0, kNoThreshold);
      lp[t] = log_evidence_one_rate(p);
    } else {
      auto [f, p] = split(t, kNoThreshold);
      lp[t] = log_evidence_two_rates(f, p, config_.min_effect);
    }
  }
  const std::size_t nmask = std::size_t{1} << features_.size();
  for (std::size_t j = 0; j < order_hypotheses(); ++j) {
    auto [f, p] = split_order(j);
    lp[nmask + j] = log_evidence_two_rates(f, p, config_.min_effect);
  }
  double norm = kNegInf;
  for (double x : lp) norm = log_add(norm, x);
  for (std::size_t i = 0; i < lp.size(); ++i) posterior_[i] = std::exp(lp[i] - norm);
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

Experiment::Round Experiment::plan_round() {
  if (done_) return {};
  if (wscale_stage_) return plan_wscale();
  return threshold_stage_ ? plan_threshold() : plan_main();
}

void Experiment::record(std::size_t variant, Outcome outcome, std::string_view fate) {
  if (variant >= variants_.size()) return;
  auto& v = variants_[variant];
  ++used_;
  if (outcome == Outcome::excluded) { ++v.excluded; return; }
  ++v.counts.sent;
  if (outcome == Outcome::failed) {
    ++v.counts.failed;
    ++v.fates[std::string(fate)];
  }
}

void Experiment::end_round() {
  ++rounds_;
  if (wscale_stage_) {
    update_wscale_posterior();
    auto it = std::max_element(ws_post_.begin(), ws_post_.end());
    if (*it >= config_.confidence) {
      ws_decided_ = ws_hyps_[static_cast<std::size_t>(it - ws_post_.begin())];
      ws_posterior_ = *it;
      done_ = true;
    }
  } else if (!threshold_stage_) {
    update_posterior();
    auto it = std::max_element(posterior_.begin(), posterior_.end());
    const std::size_t nmask = std::size_t{1} << features_.size();
    if (*it >= config_.confidence && static_cast<std::size_t>(it - posterior_.begin()) >= nmask) {
      order_decided_ = static_cast<std::size_t>(it - posterior_.begin()) - nmask;
      decided_posterior_ = *it;
      done_ = true;
    } else if (*it >= config_.confidence) {
      decided_ = static_cast<Mask>(it - posterior_.begin());
      decided_posterior_ = *it;
      const int mf = mss_feature();
      if (config_.refine_mss && decided_ != 0 && mf >= 0 && (decided_ >> mf & 1) && *features_[mf].mss > kMssFloor) {
        threshold_stage_ = true;
      } else if (!enter_wscale_stage()) {
        done_ = true;
      }
    }
  } else {
    auto iv = threshold_intervals();
    for (const auto& i : iv) {
      if (std::exp(i.logp) >= config_.confidence && i.hi - i.lo + 1 <= config_.mss_resolution) {
        mss_t_ = i.lo;
        threshold_posterior_ = std::exp(i.logp);
      }
    }
    if (mss_t_ && !enter_wscale_stage()) done_ = true;
  }
  if (!done_ && (used_ >= config_.budget || rounds_ >= config_.max_rounds)) {
    done_ = true;
    budget_exhausted_ = true;
  }
}

BisectResult Experiment::result() const {
  BisectResult r;
  r.rounds = rounds_;
  r.probes_used = used_;
  r.budget_exhausted = budget_exhausted_;
  Mask t = decided_;
  double post = decided_posterior_;
  std::optional<std::size_t> order = order_decided_;
  if (decided_posterior_ == 0.0) {
    auto it = std::max_element(posterior_.begin(), posterior_.end());
    const std::size_t idx = static_cast<std::size_t>(it - posterior_.begin());
    const std::size_t nmask = std::size_t{1} << features_.size();
    if (idx >= nmask) {
      order = idx - nmask;
      t = 0;
    } else {
      t = static_cast<Mask>(idx);
    }
    post = *it;
  }
  r.trigger = t;
  if (order) {
    r.order_first = option_idx_[*order];
    r.posterior = post;
    std::tie(r.failing, r.passing) = split_order(*order);
    for (const auto& v : variants_) {
      if (order_fail(v.def, *order)) {
        for (const auto& [k, n] : v.fates) r.failing_fates[k] += n;
      }
    }
    r.failure_fate = top_fate(r.failing_fates);
    r.kind = decided_posterior_ == 0.0 ? BisectResult::Kind::undetermined : BisectResult::Kind::trigger;
    return r;
  }
  r.posterior = post;
  int mss_t = kNoThreshold;
  if (mss_t_ && *mss_t_ >= kMssFloor) {
    r.mss_above = static_cast<std::uint16_t>(*mss_t_);
    mss_t = *mss_t_;
  }
  r.threshold_posterior = threshold_posterior_;
  r.wscale_range = ws_decided_;
  r.wscale_posterior = ws_posterior_;
  const WscaleRange* ws = ws_decided_ ? &*ws_decided_ : nullptr;
  auto [f, p] = t == 0 ? std::pair<Counts, Counts>{} : split(t, mss_t, ws);
  if (t == 0) {
    for (const auto& v : variants_) { p.failed += v.counts.failed; p.sent += v.counts.sent; }
  }
  r.failing = f;
  r.passing = p;
  for (const auto& v : variants_) {
    if (t == 0 || predicted_fail(v, t, mss_t, ws)) {
      for (const auto& [k, n] : v.fates) r.failing_fates[k] += n;
    }
  }
  r.failure_fate = top_fate(r.failing_fates);
  if (decided_posterior_ == 0.0) {
    r.kind = BisectResult::Kind::undetermined;
  } else if (t != 0) {
    r.kind = BisectResult::Kind::trigger;
  } else {
    // No feature matters: clean unless the shared rate is itself clearly above zero.
    r.kind = wilson(p.failed, p.sent, config_.confidence).lo > 0.01 ? BisectResult::Kind::all_fail
                                                                    : BisectResult::Kind::clean;
  }
  return r;
}

std::string Experiment::leading_text() const {
  BisectResult tmp;
  const std::size_t idx = static_cast<std::size_t>(std::max_element(posterior_.begin(), posterior_.end()) - posterior_.begin());
  const std::size_t nmask = std::size_t{1} << features_.size();
  if (idx >= nmask) tmp.order_first = option_idx_[idx - nmask];
  else tmp.trigger = static_cast<Mask>(idx);
  return trigger_text(tmp);
}

std::string Experiment::trigger_text(const BisectResult& r) const {
  if (r.order_first) return fmt::format("order:{}-first", features_[*r.order_first].name);
  if (r.trigger == 0) return "(none)";
  std::string s;
  for (std::size_t i = 0; i < features_.size(); ++i) {
    if (!(r.trigger >> i & 1)) continue;
    if (!s.empty()) s += "+";
    const auto& f = features_[i];
    if (f.mss && r.mss_above) s += fmt::format("mss>{}", *r.mss_above);
    else if (f.wscale && r.wscale_range && !(*r.wscale_range == WscaleRange{})) {
      const auto& w = *r.wscale_range;
      if (w.lo == w.hi) s += fmt::format("wscale={}", w.lo);
      else if (w.hi == kWscaleMax) s += fmt::format("wscale>={}", w.lo);
      else s += fmt::format("wscale={}..{}", w.lo, w.hi);
    }
    else if (f.kind == Feature::Kind::dscp) s += fmt::format("dscp={}", f.tos >> 2);
    else if (f.kind == Feature::Kind::sport) s += "sport=" + f.sport;
    else if (f.kind == Feature::Kind::ttl) s += fmt::format("ttl={}", f.ttl);
    else s += f.name;
  }
  return s;
}

std::string_view fate_advice(std::string_view fate) {
  if (fate == "lost_forward") return "dropped on the way to the server: look at the path before the server (client side, transit, the server's upstream)";
  if (fate == "reply_lost") return "the server answered but its reply never arrived: look at the way back (the server's network and the return path)";
  if (fate == "unanswered") return "the SYN reached the server host, which did not answer: look at the server host itself (its firewall or stack)";
  if (fate == "injected") return "a middlebox answered in the server's name";
  if (fate == "icmp_error") return "a router or firewall rejected it with an ICMP error";
  if (fate == "no_answer") return "no reply at the client (client-only run: cannot tell the way there from the way back; add --server)";
  if (fate == "rst") return "reset (client-only run: cannot tell whether the server or a middlebox sent it)";
  return "";
}

nlohmann::ordered_json bisect_block(const Experiment& e, const BisectResult& r) {
  using nlohmann::ordered_json;
  ordered_json b;
  b["result"] = std::string(kind_name(r.kind));
  ordered_json trig = ordered_json::array();
  for (std::size_t i = 0; i < e.features().size(); ++i) {
    if (r.kind != BisectResult::Kind::trigger && r.kind != BisectResult::Kind::undetermined) break;
    if (!(r.trigger >> i & 1)) continue;
    const auto& f = e.features()[i];
    ordered_json item;
    if (f.kind == Feature::Kind::option) {
      item["option"] = f.name;
      if (f.mss && r.mss_above) item["above"] = *r.mss_above;
      if (f.wscale && r.wscale_range && !(*r.wscale_range == WscaleRange{})) {
        const auto& w = *r.wscale_range;
        if (w.lo == w.hi) {
          item["value"] = w.lo;
        } else if (w.hi == kWscaleMax) {
          item["at_least"] = w.lo;
        } else {
          item["from"] = w.lo;
          item["to"] = w.hi;
        }
      }
    } else if (f.kind == Feature::Kind::dscp) {
      item["feature"] = "dscp";
      item["value"] = f.tos >> 2;
    } else if (f.kind == Feature::Kind::ttl) {
      item["feature"] = "ttl";
      item["value"] = f.ttl;
    } else {
      item["feature"] = "sport";
      item["value"] = f.sport;
    }
    trig.push_back(item);
  }
  if (r.order_first && (r.kind == BisectResult::Kind::trigger || r.kind == BisectResult::Kind::undetermined)) {
    trig.push_back(ordered_json{{"order", e.features()[*r.order_first].name + " first"}});
  }
  if (r.kind == BisectResult::Kind::undetermined) {
    b["trigger"] = ordered_json::array();
    b["leading"] = trig;
  } else {
    b["trigger"] = trig;
  }
  b["failure_fate"] = r.failure_fate.empty() || r.kind == BisectResult::Kind::clean ? ordered_json(nullptr)
                                                                                   : ordered_json(r.failure_fate);
  b["failure_fates"] = r.failing_fates;
  b["confidence"] = e.config().confidence;
  b["posterior"] = std::round(r.posterior * 1e6) / 1e6;
  if (r.mss_above) b["threshold_posterior"] = std::round(r.threshold_posterior * 1e6) / 1e6;
  if (r.wscale_range) b["wscale_posterior"] = std::round(r.wscale_posterior * 1e6) / 1e6;
  b["min_effect"] = e.config().min_effect;
  b["rounds"] = r.rounds;
  b["probes_used"] = r.probes_used;
  b["budget"] = e.config().budget;
  auto group = [](Counts c) {
    ordered_json g;
    g["sent"] = c.sent;
    g["failed"] = c.failed;
    g["rate"] = std::round(rate(c) * 1e4) / 1e4;
    g["ci95"] = interval_json(wilson(c.failed, c.sent, 0.95));
    return g;
  };
  if (r.kind == BisectResult::Kind::trigger) {
    b["failing"] = group(r.failing);
    b["passing"] = group(r.passing);
  }
  ordered_json vars = ordered_json::array();
  for (const auto& v : e.variants()) {
    if (!v.counts.sent && !v.excluded) continue;
    ordered_json j;
    j["name"] = v.def.name;
    j["tcp_options"] = v.def.tcp_options;
    j["tos"] = v.def.tos;
    j["sport"] = v.def.sport;
    j["ttl"] = v.def.ttl == 0 ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(v.def.ttl);
    j["sent"] = v.counts.sent;
    j["failed"] = v.counts.failed;
    j["rate"] = std::round(rate(v.counts) * 1e4) / 1e4;
    j["ci95"] = interval_json(wilson(v.counts.failed, v.counts.sent, 0.95));
    if (v.excluded) j["excluded"] = v.excluded;
    j["fates"] = v.fates;
    vars.push_back(j);
  }
  b["variants"] = vars;
  b["verdict"] = verdict_sentence(e, r);
  return b;
}

std::string verdict_sentence(const Experiment& e, const BisectResult& r) {
  auto pct = [](Counts c) { return fmt::format("{:.0f} %", 100 * rate(c)); };
  switch (r.kind) {
    case BisectResult::Kind::trigger:
      if (r.order_first) {
        return fmt::format("Probes whose first option is not {} fail ({} of {}, {}; {}) while those that start with it "
                           "pass ({} of {}, {}): the option order matters; {:.1f} % posterior after {} probes.",
                           e.features()[*r.order_first].name, r.failing.failed, r.failing.sent, pct(r.failing),
                           r.failure_fate, r.passing.failed, r.passing.sent, pct(r.passing), 100 * r.posterior,
                           r.probes_used);
      }
      return fmt::format("Probes carrying {} fail ({} of {}, {}; {}) while the others pass ({} of {}, {}); {:.1f} % "
                         "posterior after {} probes.",
                         e.trigger_text(r), r.failing.failed, r.failing.sent, pct(r.failing), r.failure_fate,
                         r.passing.failed, r.passing.sent, pct(r.passing), 100 * r.posterior, r.probes_used);
    case BisectResult::Kind::clean:
      return fmt::format("No probe feature changes the failure rate: the path is clean ({} of {} probes failed).",
                         r.passing.failed, r.passing.sent);
    case BisectResult::Kind::all_fail:
      return fmt::format("Every variant fails alike ({} of {}, {}; {}): the loss does not depend on the TCP options.",
                         r.passing.failed, r.passing.sent, pct(r.passing), r.failure_fate);
    case BisectResult::Kind::undetermined:
      return fmt::format("Undetermined after {} probes: leading candidate {} at {:.1f} % (< {:.0f} %); raise --budget.",
                         r.probes_used, e.trigger_text(r), 100 * r.posterior, 100 * e.config().confidence);
  }
  return "";
}

std::string variant_table(const Experiment& e) {
  // With DSCP / source-port / TTL features, one more column says what each variant sends for them.
  bool dscp = false, sport = false, ttl = false;
  for (const auto& f : e.features()) {
    dscp = dscp || f.kind == Feature::Kind::dscp;
    sport = sport || f.kind == Feature::Kind::sport;
    ttl = ttl || f.kind == Feature::Kind::ttl;
  }
  auto others = [&](const VariantDef& d) {
    std::string o;
    auto add = [&o](const std::string& x) { o += (o.empty() ? "" : " ") + x; };
    if (dscp) add(fmt::format("dscp={}", d.tos >> 2));
    if (sport) add("sport=" + d.sport);
    if (ttl) {
      const int t = d.ttl != 0 ? d.ttl : e.base_ttl();
      add(t == 0 ? std::string("ttl=base") : fmt::format("ttl={}", t));
    }
    return o;
  };
  std::size_t opt_w = 11, name_w = 7, other_w = 0;
  for (const auto& v : e.variants()) {
    if (!v.counts.sent && !v.excluded) continue;
    opt_w = std::max(opt_w, v.def.tcp_options.size());
    name_w = std::max(name_w, v.def.name.size());
    other_w = std::max(other_w, others(v.def).size());
  }
  auto row = [&](std::string_view name, std::string_view opts, std::string_view other, std::string_view rest) {
    std::string r = fmt::format("{:<{}} {:<{}} ", name, name_w, opts, opt_w);
    if (other_w > 0) r += fmt::format("{:<{}} ", other, other_w);
    return r + std::string(rest) + "\n";
  };
  std::string s = row("variant", "tcp_options", other_w > 0 ? "also" : "",
                      fmt::format("{:>5} {:>6} {:>6}  {}", "sent", "failed", "rate", "95 % CI"));
  for (const auto& v : e.variants()) {
    if (!v.counts.sent && !v.excluded) continue;
    auto ci = wilson(v.counts.failed, v.counts.sent, 0.95);
    s += row(v.def.name, v.def.tcp_options.empty() ? "none" : v.def.tcp_options, others(v.def),
             fmt::format("{:>5} {:>6} {:>5.1f}%  [{:.2f}, {:.2f}]", v.counts.sent, v.counts.failed,
                         100 * rate(v.counts), ci.lo, ci.hi));
  }
  return s;
}

std::string human_report(const Experiment& e, const BisectResult& r) {
  std::string s = "bisect: " + verdict_sentence(e, r) + "\n";
  if (r.kind == BisectResult::Kind::trigger || r.kind == BisectResult::Kind::all_fail) {
    auto f = wilson(r.failing.failed, r.failing.sent, 0.95), p = wilson(r.passing.failed, r.passing.sent, 0.95);
    if (r.kind == BisectResult::Kind::trigger) {
      s += fmt::format("  trigger:  {}\n", e.trigger_text(r));
      s += fmt::format("  failing:  {}/{} = {:.1f} %  95 % CI [{:.1f}, {:.1f}] %\n", r.failing.failed, r.failing.sent,
                       100 * rate(r.failing), 100 * f.lo, 100 * f.hi);
    }
    s += fmt::format("  passing:  {}/{} = {:.1f} %  95 % CI [{:.1f}, {:.1f}] %\n", r.passing.failed, r.passing.sent,
                     100 * rate(r.passing), 100 * p.lo, 100 * p.hi);
    if (!r.failure_fate.empty()) s += fmt::format("  fate:     {}: {}\n", r.failure_fate, fate_advice(r.failure_fate));
  }
  s += fmt::format("  {} rounds, {} probes (budget {}), confidence {:.0f} %\n", r.rounds, r.probes_used,
                   e.config().budget, 100 * e.config().confidence);
  return s;
}

}  // namespace tandem::bisect
