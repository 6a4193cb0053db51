// The deduction and stopping rules on simulated per-variant outcomes: single option, combination,
// MSS threshold, window-scale value, option order, clean path, all-or-nothing, 30 % intermittent
// loss, client-only classification.
#include <cmath>
#include <iostream>

#include <gtest/gtest.h>

#include "common/probe/spec.hpp"
#include "controller/bisect/experiment.hpp"
#include "controller/bisect/render.hpp"
#include "controller/bisect/simulate.hpp"

namespace tandem::bisect {
namespace {

Experiment linux_experiment(Config c = {}) {
  auto opts = probe::linux_syn_options();
  return Experiment(opts, option_features(opts), c);
}

bool has(const VariantDef& d, std::string_view item) {
  return d.tcp_options.find(item) != std::string::npos;
}

TEST(Features, NopsGoWithTheNextOption) {
  auto f = option_features(probe::linux_syn_options());
  ASSERT_EQ(f.size(), 4u);
  EXPECT_EQ(f[0].name, "mss");
  EXPECT_EQ(f[0].mss, 1460);
  EXPECT_EQ(f[1].name, "sack_perm");
  EXPECT_EQ(f[2].name, "timestamp");
  EXPECT_EQ(f[3].name, "wscale");
  EXPECT_EQ(f[3].options.size(), 2u);  // nop, ws=7
}

TEST(Experiment, FirstRoundHasBaselineFullSinglesAndLeaveOneOuts) {
  auto e = linux_experiment();
  auto r = e.plan_round();
  EXPECT_EQ(r.variants.size(), 10u);
  EXPECT_EQ(e.variants()[0].def.name, "baseline");
  EXPECT_EQ(e.variants()[0].def.tcp_options, "");
  EXPECT_EQ(e.variants()[1].def.tcp_options, "mss=1460,sack,ts,nop,ws=7");
  EXPECT_GE(r.count, 40u);
}

struct Case {
  const char* name;
  std::function<double(const VariantDef&)> rate;
  BisectResult::Kind kind;
  std::string trigger;
};

// The most misses a stopping rule that keeps the design's promise can make in n independent seeds
// without this test failing more often than once in a thousand such rule sets: the smallest k with
// P(Binomial(n, p) > k) <= 0.001, p = 0.05 (docs/bisect.md: at --confidence 0.95 at most 5 % of the
// answers are wrong; an undetermined answer counts as a miss too). Derived from the promise, not
// from the count today's code happens to reach: 10 seeds -> 4, 20 -> 5, 30 -> 6, 40 -> 7.
int miss_limit(int n, double p = 0.05, double alpha = 0.001) {
  for (int k = 0; k <= n; ++k) {
    double tail = 0;
    for (int j = k + 1; j <= n; ++j) {
      tail += std::exp(std::lgamma(n + 1.0) - std::lgamma(j + 1.0) - std::lgamma(n - j + 1.0) + j * std::log(p) +
                       (n - j) * std::log1p(-p));
    }
    if (tail <= alpha) return k;
  }
  return n;
}

TEST(MissLimit, BinomialQuantilesOfTheFivePercentPromise) {
  EXPECT_EQ(miss_limit(20), 5);
  EXPECT_EQ(miss_limit(30), 6);
  EXPECT_EQ(miss_limit(40), 7);
  EXPECT_EQ(miss_limit(10), 4);
  EXPECT_EQ(miss_limit(40, 0.0), 0);
}

// Runs `seeds` simulated bisections and prints every miss and the tally whether or not the test
// passes. Statistical cases (some rate strictly between 0 and 1) may miss up to miss_limit(seeds);
// all-or-nothing cases (every rate 0 or 1) have no sampling noise to excuse a miss: limit 0.
void expect_case(const Case& c, int seeds, bool statistical, Config cfg = {}) {
  const int limit = statistical ? miss_limit(seeds) : 0;
  int wrong = 0, undetermined = 0;
  for (int s = 1; s <= seeds; ++s) {
    auto e = linux_experiment(cfg);
    auto r = simulate(e, c.rate, static_cast<std::uint64_t>(s) * 7919);
    bool ok = r.kind == c.kind && (c.kind != BisectResult::Kind::trigger || e.trigger_text(r) == c.trigger);
    if (!ok) {
      (r.kind == BisectResult::Kind::undetermined ? undetermined : wrong)++;
      std::cout << "  miss: " << c.name << " seed " << s << ": " << kind_name(r.kind) << " " << e.trigger_text(r)
                << " posterior " << r.posterior << " after " << r.probes_used << " probes\n";
    }
    if (ok && c.kind == BisectResult::Kind::trigger) {
      EXPECT_EQ(r.failure_fate, "lost_forward");
      EXPECT_GE(r.posterior, 0.95);
    }
  }
  std::cout << c.name << ": " << wrong << " wrong + " << undetermined << " undetermined of " << seeds
            << " seeds (limit " << limit << ")\n";
  EXPECT_LE(wrong + undetermined, limit) << c.name;
}

TEST(Experiment, SingleOptionThirtyPercent) {
  // bench/bisect measures about 1.3 % wrong answers here (a superset such as mss+wscale whose
  // distinguishing probes all passed by chance).
  expect_case({"wscale 30 %", [](const VariantDef& d) { return has(d, "ws=") ? 0.3 : 0.0; },
               BisectResult::Kind::trigger, "wscale"},
              30, true);
}

TEST(Experiment, SingleOptionAllOrNothing) {
  expect_case({"sack 100 %", [](const VariantDef& d) { return has(d, "sack") ? 1.0 : 0.0; },
               BisectResult::Kind::trigger, "sack_perm"},
              20, false);
}

TEST(Experiment, CombinationBothNeeded) {
  expect_case({"sack+ts", [](const VariantDef& d) { return has(d, "sack") && has(d, "ts") ? 1.0 : 0.0; },
               BisectResult::Kind::trigger, "sack_perm+timestamp"},
              20, false);
}

TEST(Experiment, CombinationThirtyPercentWithBackgroundLoss) {
  expect_case({"sack+ts 30 % over 5 % noise",
               [](const VariantDef& d) { return has(d, "sack") && has(d, "ts") ? 0.35 : 0.05; },
               BisectResult::Kind::trigger, "sack_perm+timestamp"},
              20, true, Config{.budget = 1500});
}

TEST(Experiment, MssThreshold) {
  auto rate = [](const VariantDef& d) {
    auto p = d.tcp_options.find("mss=");
    if (p == std::string::npos) return 0.0;
    return std::stoi(d.tcp_options.substr(p + 4)) > 1400 ? 1.0 : 0.0;
  };
  for (int s = 1; s <= 10; ++s) {
    auto e = linux_experiment(Config{.budget = 1500});
    auto r = simulate(e, rate, s);
    EXPECT_EQ(r.kind, BisectResult::Kind::trigger);
    EXPECT_EQ(e.trigger_text(r), "mss>1400") << "seed " << s << " after " << r.probes_used;
    ASSERT_TRUE(r.mss_above.has_value());
    EXPECT_EQ(*r.mss_above, 1400);
  }
}

TEST(Experiment, CleanPathNoFalseBlame) {
  expect_case({"clean", [](const VariantDef&) { return 0.0; }, BisectResult::Kind::clean, ""}, 20, false);
}

TEST(Experiment, UniformLossIsNotBlamedOnAnOption) {
  // The hardest case for the stopping rule (no difference vs a difference of at least --min-effect at
  // a 30 % base rate): bench/bisect measures about 4 % undetermined within 30 rounds and 1.6 % wrong
  // over 2000 seeds.
  expect_case({"30 % everywhere", [](const VariantDef&) { return 0.3; }, BisectResult::Kind::all_fail, ""}, 40, true,
              Config{.budget = 3000});
}

TEST(Experiment, BudgetStopsUndetermined) {
  auto e = linux_experiment(Config{.budget = 30});
  auto r = simulate(e, [](const VariantDef& d) { return has(d, "ws=") ? 0.3 : 0.0; }, 1);
  EXPECT_EQ(r.kind, BisectResult::Kind::undetermined);
  EXPECT_LE(r.probes_used, 30u);
  EXPECT_TRUE(r.budget_exhausted);
}

TEST(Experiment, StopsAsSoonAsConfident) {
  // 100 % drop of one option is settled in very few rounds.
  auto e = linux_experiment();
  auto r = simulate(e, [](const VariantDef& d) { return has(d, "ws=") ? 1.0 : 0.0; }, 3);
  EXPECT_EQ(e.trigger_text(r), "wscale");
  EXPECT_LE(r.rounds, 2u);
}

// The window-scale value stage (Config::refine_wscale): which shift counts fail.
int ws_of(const VariantDef& d) {
  auto p = d.tcp_options.find("ws=");
  return p == std::string::npos ? -1 : std::stoi(d.tcp_options.substr(p + 3));
}

Experiment ws_experiment(std::string_view options, Config c) {
  c.refine_wscale = true;
  auto opts = probe::parse_tcp_options(options);
  EXPECT_FALSE(!opts);
  return Experiment(*opts, option_features(*opts), c);
}

TEST(Features, WscaleValueIsKept) {
  auto f = option_features(probe::linux_syn_options());
  EXPECT_EQ(f[3].wscale, 7);
  EXPECT_FALSE(f[0].wscale.has_value());
}

TEST(WscaleValue, OnlyFourteenFails) {
  int wrong = 0;
  for (int s = 1; s <= 10; ++s) {
    auto e = ws_experiment("mss=1460,sack,ts,nop,ws=14", Config{.budget = 1500});
    auto r = simulate(e, [](const VariantDef& d) { return ws_of(d) == 14 ? 1.0 : 0.0; }, static_cast<std::uint64_t>(s));
    EXPECT_EQ(r.kind, BisectResult::Kind::trigger);
    if (e.trigger_text(r) != "wscale=14") {
      ++wrong;
      ADD_FAILURE() << "seed " << s << ": " << e.trigger_text(r) << " after " << r.probes_used;
      continue;
    }
    ASSERT_TRUE(r.wscale_range.has_value());
    EXPECT_EQ(*r.wscale_range, (WscaleRange{14, 14}));
    EXPECT_GE(r.wscale_posterior, 0.95);
    // Only ws=14 variants fail; ws=15 was tried (it tells "= 14" from ">= 14").
    bool tried15 = false;
    for (const auto& v : e.variants()) tried15 = tried15 || (ws_of(v.def) == 15 && v.counts.sent > 0);
    EXPECT_TRUE(tried15);
    auto b = bisect_block(e, r);
    EXPECT_EQ(b["trigger"], nlohmann::ordered_json::parse(R"([{"option":"wscale","value":14}])"));
    EXPECT_TRUE(b.contains("wscale_posterior"));
  }
  EXPECT_EQ(wrong, 0);
}

TEST(WscaleValue, AtLeastTenFails) {
  for (int s = 1; s <= 10; ++s) {
    auto e = ws_experiment("mss=1460,sack,ts,nop,ws=14", Config{.budget = 1500});
    auto r = simulate(e, [](const VariantDef& d) { return ws_of(d) >= 10 ? 1.0 : 0.0; }, static_cast<std::uint64_t>(s));
    EXPECT_EQ(e.trigger_text(r), "wscale>=10") << "seed " << s << " after " << r.probes_used;
    if (r.wscale_range) {
      auto b = bisect_block(e, r);
      EXPECT_EQ(b["trigger"], nlohmann::ordered_json::parse(R"([{"option":"wscale","at_least":10}])"));
    }
  }
}

TEST(WscaleValue, AnyValueFailsIsPlainWscale) {
  for (int s = 1; s <= 10; ++s) {
    auto e = ws_experiment("mss=1460,sack,ts,nop,ws=7", Config{.budget = 1500});
    auto r = simulate(e, [](const VariantDef& d) { return ws_of(d) >= 0 ? 1.0 : 0.0; }, static_cast<std::uint64_t>(s));
    EXPECT_EQ(e.trigger_text(r), "wscale") << "seed " << s;
    ASSERT_TRUE(r.wscale_range.has_value());
    EXPECT_EQ(*r.wscale_range, WscaleRange{});
    EXPECT_EQ(bisect_block(e, r)["trigger"], nlohmann::ordered_json::parse(R"([{"option":"wscale"}])"));
  }
}

TEST(WscaleValue, FourteenOnlyThirtyPercent) {
  int wrong = 0;
  for (int s = 1; s <= 10; ++s) {
    auto e = ws_experiment("mss=1460,sack,ts,nop,ws=14", Config{.budget = 4000});
    auto r = simulate(e, [](const VariantDef& d) { return ws_of(d) == 14 ? 0.3 : 0.0; },
                      static_cast<std::uint64_t>(s) * 7919);
    if (e.trigger_text(r) != "wscale=14" || !r.wscale_range) {
      ++wrong;
      std::cout << "  miss: seed " << s << ": " << e.trigger_text(r) << " after " << r.probes_used << "\n";
    }
  }
  std::cout << "wscale=14 30 %: " << wrong << " of 10 seeds missed (limit " << miss_limit(10) << ")\n";
  EXPECT_LE(wrong, miss_limit(10));
}

TEST(WscaleValue, VariantsCarryTheOverride) {
  auto e = ws_experiment("mss=1460,sack,ts,nop,ws=14", Config{.budget = 1500});
  simulate(e, [](const VariantDef& d) { return ws_of(d) == 14 ? 1.0 : 0.0; }, 1);
  bool found = false;
  for (const auto& v : e.variants()) {
    if (v.def.wscale && *v.def.wscale == 3) {
      found = true;
      EXPECT_EQ(v.def.name, "wscale=3");
      EXPECT_EQ(v.def.tcp_options, "nop,ws=3");
    }
  }
  EXPECT_TRUE(found);
}

TEST(WscaleValue, OffByDefault) {
  auto e = linux_experiment();
  auto r = simulate(e, [](const VariantDef& d) { return has(d, "ws=") ? 1.0 : 0.0; }, 3);
  EXPECT_EQ(e.trigger_text(r), "wscale");
  EXPECT_FALSE(r.wscale_range.has_value());
  for (const auto& v : e.variants()) EXPECT_FALSE(v.def.wscale.has_value());
}

TEST(WscaleValue, AfterTheMssThreshold) {
  // Both needed: MSS above 1400 and ws = 14 exactly.
  auto e = ws_experiment("mss=1460,sack,ts,nop,ws=14", Config{.budget = 3000});
  auto r = simulate(e, [](const VariantDef& d) {
    auto p = d.tcp_options.find("mss=");
    bool mss = p != std::string::npos && std::stoi(d.tcp_options.substr(p + 4)) > 1400;
    return mss && ws_of(d) == 14 ? 1.0 : 0.0;
  }, 11);
  EXPECT_EQ(e.trigger_text(r), "mss>1400+wscale=14") << r.probes_used;
}

// Option order (Config::refine_order): a middlebox that drops SYNs whose first option is not the MSS.
double first_not_mss(const VariantDef& d, double rate) {
  if (d.tcp_options.empty()) return 0.0;
  return d.tcp_options.rfind("mss=", 0) == 0 ? 0.0 : rate;
}

Experiment order_experiment(std::string_view options, Config c) {
  c.refine_order = true;
  auto opts = probe::parse_tcp_options(options);
  EXPECT_FALSE(!opts);
  return Experiment(*opts, option_features(*opts), c);
}

TEST(OptionOrder, RotationsOfTheFullSet) {
  auto e = order_experiment("sack,ts,mss=1460,nop,ws=7", Config{});
  auto r = e.plan_round();
  EXPECT_EQ(r.variants.size(), 2u + 2 * 4 + 3);  // baseline, full, singles, leave-one-outs, 3 rotations
  bool found = false;
  for (const auto& v : e.variants()) {
    if (v.def.rotation == 2) {
      found = true;
      EXPECT_EQ(v.def.tcp_options, "mss=1460,nop,ws=7,sack,ts");
      EXPECT_EQ(v.def.name, "rot2:mss-first");
    }
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(e.posterior().size(), 16u + 4u);
  EXPECT_EQ(linux_experiment().posterior().size(), 16u);  // off by default
}

TEST(OptionOrder, FirstOptionMustBeMss) {
  for (int s = 1; s <= 10; ++s) {
    auto e = order_experiment("sack,ts,mss=1460,nop,ws=7", Config{});
    auto r = simulate(e, [](const VariantDef& d) { return first_not_mss(d, 1.0); }, static_cast<std::uint64_t>(s));
    EXPECT_EQ(r.kind, BisectResult::Kind::trigger) << "seed " << s;
    EXPECT_EQ(e.trigger_text(r), "order:mss-first") << "seed " << s << " after " << r.probes_used;
    if (r.order_first) {
      EXPECT_EQ(bisect_block(e, r)["trigger"], nlohmann::ordered_json::parse(R"([{"order":"mss first"}])"));
      EXPECT_EQ(r.failure_fate, "lost_forward");
      EXPECT_EQ(r.passing.failed, 0u);
    }
  }
}

TEST(OptionOrder, FirstOptionMustBeMssThirtyPercent) {
  int wrong = 0;
  for (int s = 1; s <= 10; ++s) {
    auto e = order_experiment("sack,ts,mss=1460,nop,ws=7", Config{.budget = 1500});
    auto r = simulate(e, [](const VariantDef& d) { return first_not_mss(d, 0.3); }, static_cast<std::uint64_t>(s) * 7919);
    if (r.kind != BisectResult::Kind::trigger || e.trigger_text(r) != "order:mss-first") {
      ++wrong;
      std::cout << "  miss: seed " << s << ": " << kind_name(r.kind) << " " << e.trigger_text(r) << " after "
                << r.probes_used << "\n";
    }
  }
  std::cout << "order:mss-first 30 %: " << wrong << " of 10 seeds missed (limit " << miss_limit(10) << ")\n";
  EXPECT_LE(wrong, miss_limit(10));
}

TEST(OptionOrder, OptionTriggersAreNotBlamedOnTheOrder) {
  Config c{.budget = 1500, .refine_order = true};
  auto check = [&](const char* name, std::function<double(const VariantDef&)> rate, std::string want) {
    for (int s = 1; s <= 10; ++s) {
      auto e = linux_experiment(c);
      auto r = simulate(e, rate, static_cast<std::uint64_t>(s) * 7919);
      EXPECT_EQ(e.trigger_text(r), want) << name << " seed " << s << " " << kind_name(r.kind);
    }
  };
  check("wscale", [](const VariantDef& d) { return has(d, "ws=") ? 1.0 : 0.0; }, "wscale");
  check("sack+ts", [](const VariantDef& d) { return has(d, "sack") && has(d, "ts") ? 1.0 : 0.0; }, "sack_perm+timestamp");
  check("clean", [](const VariantDef&) { return 0.0; }, "(none)");
}

TEST(Classify, ServerAndClientOnly) {
  correlate::ProbeRecord p;
  p.fate = correlate::Fate::reply_lost;
  EXPECT_EQ(classify(p, true).first, Outcome::failed);
  EXPECT_EQ(classify(p, true).second, "reply_lost");
  p.fate = correlate::Fate::unknown;
  EXPECT_EQ(classify(p, true).first, Outcome::excluded);
  p.reply = "";
  EXPECT_EQ(classify(p, false).second, "no_answer");
  p.reply = "syn_ack";
  EXPECT_EQ(classify(p, false).first, Outcome::answered);
  p.reply = "rst";
  EXPECT_EQ(classify(p, false).second, "rst");
  p.reply = "icmp:3/13";
  EXPECT_EQ(classify(p, false).second, "icmp_error");
  p.fate = correlate::Fate::not_sent;
  EXPECT_EQ(classify(p, false).first, Outcome::excluded);
}

TEST(BisectBlock, ShapeOfDesignSection5) {
  auto e = linux_experiment();
  auto r = simulate(e, [](const VariantDef& d) { return has(d, "ws=") ? 1.0 : 0.0; }, 5);
  auto b = bisect_block(e, r);
  EXPECT_EQ(b["trigger"], nlohmann::ordered_json::parse(R"([{"option":"wscale"}])"));
  EXPECT_EQ(b["failure_fate"], "lost_forward");
  ASSERT_TRUE(b["variants"].is_array());
  const auto& v0 = b["variants"][0];
  for (const char* k : {"tcp_options", "sent", "failed", "rate", "ci95"}) EXPECT_TRUE(v0.contains(k)) << k;
  EXPECT_EQ(b["result"], "trigger");
}

// Non-option features (--bisect-dscp, --bisect-sport, --bisect-ttl): variants carry the feature's
// value only when the feature is in their mask, and the trigger is named as the feature.
Experiment with_extras(Config c = {}) {
  auto opts = probe::linux_syn_options();
  auto f = option_features(opts);
  Feature d;
  d.kind = Feature::Kind::dscp;
  d.name = "dscp";
  d.tos = 46 << 2;
  Feature s;
  s.kind = Feature::Kind::sport;
  s.name = "sport";
  s.sport = "41000-41099";
  Feature t;
  t.kind = Feature::Kind::ttl;
  t.name = "ttl";
  t.ttl = 255;
  f.push_back(d);
  f.push_back(s);
  f.push_back(t);
  return Experiment(opts, f, c, 0, "random", 64);
}

TEST(NonOptionFeatures, VariantsCarryTheirValuesOnlyWhenPresent) {
  auto e = with_extras();
  e.plan_round();
  ASSERT_EQ(e.features().size(), 7u);
  bool saw_ttl = false;
  for (const auto& v : e.variants()) {
    const auto& d = v.def;
    EXPECT_EQ(d.ttl, (d.mask >> 6 & 1) ? 255 : 0) << d.name;
    EXPECT_EQ(d.tos, (d.mask >> 4 & 1) ? 46 << 2 : 0) << d.name;
    EXPECT_EQ(d.sport, (d.mask >> 5 & 1) ? "41000-41099" : "random") << d.name;
    saw_ttl = saw_ttl || d.name == "ttl";
  }
  EXPECT_TRUE(saw_ttl);
  const auto table = variant_table(e);
  EXPECT_EQ(table.find("also"), std::string::npos);  // nothing sent yet: no rows, no extra column
}

TEST(NonOptionFeatures, EachIsNamedAsTheTrigger) {
  struct C {
    const char* trigger;
    int bit;
    const char* json;
  };
  for (const C& c : {C{"dscp=46", 4, R"([{"feature":"dscp","value":46}])"},
                     C{"sport=41000-41099", 5, R"([{"feature":"sport","value":"41000-41099"}])"},
                     C{"ttl=255", 6, R"([{"feature":"ttl","value":255}])"}}) {
    // 30 % intermittent loss over 7 features (128 trigger sets): at confidence 0.95 a wrong set is
    // possible by design (at most 5 %): miss_limit(10) of these seeds may miss, all-or-nothing never.
    int wrong = 0;
    for (int seed = 1; seed <= 10; ++seed) {
      auto e = with_extras();
      auto r = simulate(e, [&](const VariantDef& d) { return (d.mask >> c.bit & 1) ? 0.3 : 0.0; },
                        static_cast<std::uint64_t>(seed) * 104729);
      ASSERT_EQ(r.kind, BisectResult::Kind::trigger) << c.trigger << " seed " << seed;
      if (e.trigger_text(r) != c.trigger) {
        ++wrong;
        std::cout << "  miss: " << c.trigger << " seed " << seed << ": " << e.trigger_text(r) << "\n";
        continue;
      }
      EXPECT_EQ(bisect_block(e, r)["trigger"], nlohmann::ordered_json::parse(c.json)) << "seed " << seed;
    }
    std::cout << c.trigger << " 30 %: " << wrong << " of 10 seeds missed (limit " << miss_limit(10) << ")\n";
    EXPECT_LE(wrong, miss_limit(10)) << c.trigger;
    // All-or-nothing: always exact.
    auto e = with_extras();
    auto r = simulate(e, [&](const VariantDef& d) { return (d.mask >> c.bit & 1) ? 1.0 : 0.0; }, 17);
    EXPECT_EQ(e.trigger_text(r), c.trigger);
  }
}

TEST(NonOptionFeatures, TableShowsWhatEachVariantSends) {
  auto e = with_extras();
  auto r = simulate(e, [](const VariantDef& d) { return d.ttl == 255 ? 1.0 : 0.0; }, 3);
  ASSERT_EQ(e.trigger_text(r), "ttl=255");
  const auto table = variant_table(e);
  EXPECT_NE(table.find("also"), std::string::npos) << table;
  EXPECT_NE(table.find("dscp=0 sport=random ttl=64"), std::string::npos) << table;    // baseline
  EXPECT_NE(table.find("dscp=46 sport=41000-41099 ttl=255"), std::string::npos) << table;  // full
  const auto b = bisect_block(e, r);
  for (const auto& v : b["variants"]) {
    EXPECT_TRUE(v["ttl"].is_null() || v["ttl"] == 255) << v.dump();
  }
}

}  // namespace
}  // namespace tandem::bisect
