// The experiment's core (docs/bisect.md): features, variants, the posterior over trigger sets, the
// round loop (plan_round / record / end_round) and the result. Round planning is in allocation.cpp,
// the MSS threshold, window-scale value and option-order stages in stages.cpp, the report in
// render.cpp.
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
#include "controller/bisect/internal.hpp"

namespace tandem::bisect {

using namespace detail;  // NOLINT(google-build-using-namespace): this library's own helpers

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
    if (f.kind == Feature::Kind::source) d.source = f.source;
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
    else if (f.kind == Feature::Kind::source) s += "source=" + f.source;
    else s += f.name;
  }
  return s;
}

}  // namespace tandem::bisect
