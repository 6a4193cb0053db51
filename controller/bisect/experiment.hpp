// The bisection experiment of DESIGN.md §6 (docs/bisect.md): which variants to send next, what the
// per-variant counts say, and when to stop. Pure state machine, no I/O: the CLI runs each round
// (one two-ended run with the round's variants interleaved) and feeds every probe's outcome back;
// the bench and the unit tests feed simulated outcomes instead.
//
// Model. The probe's features (each TCP option with the NOPs that pad it, and on request DSCP, a
// source-port range and a TTL) are bits of a mask; a variant is a mask (plus, while refining, an MSS value).
// A trigger T is a set of features: a variant fails iff it carries all of T (one option: T = {k};
// a combination: T = {a, b}). Variants that carry T fail at one rate pf, the others at p0, with
// pf >= p0 + min_effect; T = {} means "no feature matters" (every variant shares one rate: a clean
// path, or a path that drops everything alike). Each T gets a posterior (uniform prior over all
// 2^n sets, evidence from stats.hpp); the experiment stops when one T reaches --confidence.
// When T holds the MSS, a second stage finds the threshold t (variants fail iff MSS > t) by
// probabilistic bisection over t with the same evidence. When T holds the window scale and
// Config::refine_wscale is set, a value stage then tries other shift counts: hypotheses "fails iff
// lo <= ws <= hi" (lo <= v, hi = v or 255, v the probe's value), same evidence and stopping rule.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/packet/tcp_option.hpp"
#include "controller/bisect/stats.hpp"
#include "controller/correlate/model.hpp"

namespace tandem::bisect {

using Mask = std::uint32_t;
inline constexpr std::size_t kMaxFeatures = 8;
inline constexpr std::uint16_t kMssFloor = 64;  // lowest MSS the threshold search tries
inline constexpr int kWscaleMax = 255;          // the shift count field's range is 0-255

// Window-scale values that fail: lo <= ws <= hi. {0, 255} = any value (the trigger is just wscale).
struct WscaleRange {
  int lo = 0;
  int hi = kWscaleMax;
  bool operator==(const WscaleRange&) const = default;
};

struct Feature {
  enum class Kind { option, dscp, sport, ttl, source };
  Kind kind = Kind::option;
  std::string name;                          // JSON name: mss, sack_perm, timestamp, wscale, kind<N>, dscp, sport, ttl, source
  std::vector<packet::TcpOption> options;    // option: the option and the NOPs/EOLs that pad it
  std::uint8_t tos = 0;                      // dscp: TOS byte when the feature is present
  std::string sport;                         // sport: the range when present
  std::uint8_t ttl = 0;                      // ttl: IPv4 TTL / IPv6 hop limit when present
  std::string source;                        // source: the address probes leave from when present
  std::optional<std::uint16_t> mss;          // the MSS feature's value
  std::optional<std::uint8_t> wscale;        // the window-scale feature's shift count
};

// One feature per option of `options` other than NOP/EOL; a NOP/EOL goes with the option after it
// (the last ones with the option before). Order is kept.
std::vector<Feature> option_features(const std::vector<packet::TcpOption>& options);

struct Config {
  double confidence = 0.95;
  std::uint64_t budget = 600;       // probes, all rounds
  std::uint32_t per_round = 60;     // probes per round (raised to 4 per variant)
  std::uint32_t max_rounds = 30;
  double min_effect = 0.10;         // smallest failure-rate increase worth naming
  bool refine_mss = true;
  bool refine_wscale = false;       // value stage for the window scale (--wscale-values)
  bool refine_order = false;        // option-order hypotheses and rotations of the full set (--option-order)
  std::size_t max_variants_per_round = 6;
  // Rounds after the first (and the MSS threshold stage's) may use a quarter or half of per_round when
  // the posterior predictive says that is nearly as likely to decide, or to make as much progress
  // (fewer probes, sometimes more rounds). Off: every round per_round probes.
  bool predictive_round_size = true;
  std::uint16_t mss_resolution = 1; // the threshold stage stops when t is known to this width
};

struct VariantDef {
  Mask mask = 0;
  std::optional<std::uint16_t> mss;  // MSS override (threshold stage)
  std::optional<std::uint8_t> wscale; // window-scale override (value stage)
  int rotation = 0;                  // full set with its option features rotated left by this many (order)
  std::string name;                  // "baseline", "full", "wscale", "sack_perm+timestamp", "mss=1400", "-wscale"
  std::string tcp_options;           // canonical text, "" = no options
  std::uint8_t tos = 0;
  std::string sport;
  std::uint8_t ttl = 0;              // 0 = the run's TTL (--ttl, else the OS default)
  std::string source;                // "" = the base vantage; else the --bisect-source address
};

struct VariantStats {
  VariantDef def;
  Counts counts;
  std::uint64_t excluded = 0;                  // not_sent / unknown: no on-path outcome
  std::map<std::string, std::uint64_t> fates;  // failed probes by fate
};

enum class Outcome { answered, failed, excluded };

// A probe's outcome for the experiment. With the server capture, correlate's fate decides
// (lost_forward, unanswered, reply_lost, injected, icmp_error = failed; answered; not_sent,
// unknown = excluded). Client-only, the client's own capture decides: a SYN-ACK = answered; no
// reply ("no_answer"), an RST ("rst") or an ICMP error ("icmp_error") = failed. The string is the
// fate name counted for the failure.
std::pair<Outcome, std::string> classify(const correlate::ProbeRecord& p, bool server_present);

struct BisectResult {
  enum class Kind { trigger, clean, all_fail, undetermined };
  Kind kind = Kind::undetermined;
  Mask trigger = 0;                      // the MAP feature set (also when undetermined)
  double posterior = 0.0;                // of that set
  std::optional<std::uint16_t> mss_above; // threshold stage: fails iff MSS > this
  double threshold_posterior = 0.0;
  std::optional<WscaleRange> wscale_range; // value stage: fails iff lo <= ws <= hi
  double wscale_posterior = 0.0;
  std::optional<std::size_t> order_first;  // order trigger: fails unless this feature's option comes first
  std::string failure_fate;              // most common fate of the failing variants' failures
  std::map<std::string, std::uint64_t> failing_fates;
  Counts failing, passing;               // pooled by the final hypothesis
  std::uint32_t rounds = 0;
  std::uint64_t probes_used = 0;
  bool budget_exhausted = false;
};
std::string_view kind_name(BisectResult::Kind k);

class Experiment {
 public:
  // `full_options`: the failing probe's option list as the user gave it; `features` from
  // option_features() plus any dscp/sport/ttl features (at most kMaxFeatures).
  Experiment(std::vector<packet::TcpOption> full_options, std::vector<Feature> features, Config config,
             std::uint8_t base_tos = 0, std::string base_sport = "random", std::uint8_t base_ttl = 0);

  struct Round {
    std::vector<std::size_t> variants;  // indices into variants(); empty = the experiment is over
    std::uint32_t count = 0;            // probes in the round, spread evenly over them
  };
  Round plan_round();
  void record(std::size_t variant, Outcome outcome, std::string_view fate);
  // Updates the posterior and decides whether to stop or to enter the threshold stage.
  void end_round();

  bool done() const { return done_; }
  const std::vector<VariantStats>& variants() const { return variants_; }
  const std::vector<Feature>& features() const { return features_; }
  const Config& config() const { return config_; }
  std::uint8_t base_ttl() const { return base_ttl_; }  // the run's TTL (display only; 0 = unknown)
  std::uint64_t used() const { return used_; }
  std::uint32_t rounds() const { return rounds_; }
  // Posterior over feature sets, indexed by mask (size 2^n); with Config::refine_order followed by one
  // "fails unless option k comes first" hypothesis per option feature k (in option order).
  const std::vector<double>& posterior() const { return posterior_; }
  // The leading hypothesis as trigger_text() writes it.
  std::string leading_text() const;
  BisectResult result() const;
  // "wscale", "sack_perm+timestamp", "mss>1400", "wscale=14", "wscale>=10", "(none)".
  std::string trigger_text(const BisectResult& r) const;

 private:
  std::size_t variant_for(Mask mask, std::optional<std::uint16_t> mss = std::nullopt,
                          std::optional<std::uint8_t> wscale = std::nullopt, int rotation = 0);
  // Order hypotheses: the feature whose option a variant sends first (-1: none), and whether the
  // hypothesis "option_idx_[j] must come first" predicts the variant fails.
  int first_option(const VariantDef& d) const;
  bool order_fail(const VariantDef& d, std::size_t j) const;
  std::pair<Counts, Counts> split_order(std::size_t j) const;
  std::size_t order_hypotheses() const { return config_.refine_order && option_idx_.size() >= 2 ? option_idx_.size() : 0; }
  bool predicted_fail(const VariantStats& v, Mask t, int mss_t, const WscaleRange* ws = nullptr) const;
  std::pair<Counts, Counts> split(Mask t, int mss_t, const WscaleRange* ws = nullptr) const;
  void update_posterior();
  // Threshold stage: intervals of t and their posterior; returns the MAP index.
  struct TInterval { int lo, hi; double logp; };
  std::vector<TInterval> threshold_intervals() const;
  Round plan_main();
  // Main stage after the first round: the variants (after the anchors in `idx`) whose outcomes are
  // expected to tell the hypotheses apart most (mutual information under the current posterior).
  Round plan_information(std::vector<std::size_t> idx);
  Round plan_threshold();
  // Window-scale value stage.
  bool enter_wscale_stage();
  void update_wscale_posterior();
  Round plan_wscale();
  int wscale_feature() const;
  Round sized(std::vector<std::size_t> idx);
  Mask full_mask() const { return (Mask{1} << features_.size()) - 1; }
  int mss_feature() const;

  std::vector<packet::TcpOption> full_options_;
  std::vector<Feature> features_;
  std::vector<std::size_t> option_idx_;  // indices of the option features, in option order
  Config config_;
  std::uint8_t base_tos_;
  std::string base_sport_;
  std::uint8_t base_ttl_;
  std::vector<VariantStats> variants_;
  std::vector<double> posterior_;
  std::uint64_t used_ = 0;
  std::uint32_t rounds_ = 0;
  bool done_ = false;
  bool budget_exhausted_ = false;
  bool threshold_stage_ = false;
  Mask decided_ = 0;
  double decided_posterior_ = 0.0;
  std::optional<int> mss_t_;           // the threshold, once decided
  double threshold_posterior_ = 0.0;
  bool wscale_stage_ = false;
  std::vector<WscaleRange> ws_hyps_;   // value stage hypotheses and their posterior
  std::vector<double> ws_post_;
  std::optional<WscaleRange> ws_decided_;
  double ws_posterior_ = 0.0;
  std::optional<std::size_t> order_decided_;  // position in option_idx_ of the decided order hypothesis
};

}  // namespace tandem::bisect
