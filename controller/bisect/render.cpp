// The experiment as the user sees it: the report.json "bisect" block, the verdict sentence, the
// live variant table and the human report (docs/bisect.md).
#include "controller/bisect/render.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "controller/bisect/internal.hpp"

namespace tandem::bisect {

using namespace detail;  // NOLINT(google-build-using-namespace): this library's own helpers

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
    } else if (f.kind == Feature::Kind::source) {
      item["feature"] = "source";
      item["value"] = f.source;
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
    if (!v.def.source.empty()) j["source"] = v.def.source;
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
  bool dscp = false, sport = false, ttl = false, source = false;
  for (const auto& f : e.features()) {
    dscp = dscp || f.kind == Feature::Kind::dscp;
    sport = sport || f.kind == Feature::Kind::sport;
    ttl = ttl || f.kind == Feature::Kind::ttl;
    source = source || f.kind == Feature::Kind::source;
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
    if (source) add("src=" + (d.source.empty() ? std::string("base") : d.source));
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
                      fmt::format("{:>5} {:>6} {:>6}  {}", "sent", "failed", "rate", "95 % CI (%)"));
  for (const auto& v : e.variants()) {
    if (!v.counts.sent && !v.excluded) continue;
    auto ci = wilson(v.counts.failed, v.counts.sent, 0.95);
    s += row(v.def.name, v.def.tcp_options.empty() ? "none" : v.def.tcp_options, others(v.def),
             fmt::format("{:>5} {:>6} {:>5.1f}%  [{:.1f}, {:.1f}]", v.counts.sent, v.counts.failed,
                         100 * rate(v.counts), 100 * ci.lo, 100 * ci.hi));
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
