// `tandem bisect` (DESIGN.md §3, §6; docs/bisect.md): finds the minimal probe feature that makes
// probes fail. Each round is one two-ended run (orchestrate::run_trace via run_and_analyze) whose
// plan carries the round's variants interleaved in random order, random source port per probe;
// every probe's outcome goes into bisect::Experiment, which picks the next round's variants and
// stops at --confidence or --budget. The bundle is the final round's evidence (its captures and
// probes) with the whole experiment in report.json's "bisect" block and the bisect verdict.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>

#include <fmt/format.h>

#include "common/probe/spec.hpp"
#include "controller/bisect/experiment.hpp"
#include "controller/bisect/render.hpp"
#include "controller/cli/bisect_evidence.hpp"
#include "controller/run/vantage.hpp"
#include "controller/cli/command.hpp"
#include "controller/cli/probe_flags.hpp"
#include "controller/cli/trace_common.hpp"
#include "controller/report/analyze_input.hpp"
#include "controller/report/bundle.hpp"
#include "controller/report/report.hpp"

namespace tandem::cli {

namespace {

struct BisectArgs {
  TraceArgs trace;
  std::uint64_t budget = 600;
  double confidence = 0.95;
  double min_effect = 0.10;
  std::uint32_t max_rounds = 30;
  bool client_only = false;
  bool no_refine_mss = false;
  bool wscale_values = false;
  bool option_order = false;
  std::string bisect_dscp, bisect_sport;
  int bisect_ttl = 0;
  std::string bisect_source;
  std::uint64_t seed = 0;  // 0 = a fresh random seed per round
};

int run_bisect(BisectArgs& a) {
  if (a.client_only) a.trace.servers.clear();
  if (a.trace.probe.tcp_options.empty()) a.trace.probe.tcp_options = "linux";
  auto req = trace_request(a.trace);
  if (!req) return report_error(req.error());
  if (req->plan.l4 != proto::L4::tcp) {
    return report_error(make_error(Errc::usage, "bisect", "bisect varies TCP SYN features: use a TCP probe"));
  }
  // One vantage per bisection, or two with --bisect-source (the base one and the feature's): the
  // experiment's failure rates must not mix vantages it does not tell apart.
  std::optional<packet::IpAddr> bisect_source;
  if (!a.bisect_source.empty()) {
    auto addr = packet::IpAddr::parse(a.bisect_source);
    if (!addr) return report_error(make_error(Errc::usage, "bisect", "--bisect-source '" + a.bisect_source + "': not an IP address"));
    if (std::find(req->sources.begin(), req->sources.end(), *addr) != req->sources.end())
      return report_error(make_error(Errc::usage, "bisect", "--bisect-source " + addr->to_string() + " is also a --source: nothing to compare"));
    bisect_source = *addr;
  }
  const std::size_t base_vantages = req->sources.empty() ? req->clients.size() : req->sources.size();
  const bool one_base = req->targets.size() == 1 && req->sources.size() <= 1 &&
                        (req->clients.size() == 1 || (bisect_source && req->clients.size() == 2 && req->sources.empty()));
  if (!one_base || base_vantages == 0) {
    return report_error(make_error(Errc::usage, "bisect",
                                   "one vantage per bisection (one --client, at most one --source, one --server), plus "
                                   "--bisect-source ADDR on the same or a second --client; run `tandem trace` with several "
                                   "to see which vantage fails"));
  }
  if (bisect_source) {
    req->sources.push_back(*bisect_source);
    // Without a --source the base vantage is the first client agent's routing default, even when
    // the --bisect-source address is one of its own too.
    if (req->sources.size() == 1) req->clients.front().also_default = true;
  }
  if (auto st = prepare_out_dir(a.trace.out, a.trace.force, "bisect"); !st) return report_error(st.error());
  auto opts = probe::parse_tcp_options(a.trace.probe.tcp_options);
  if (!opts) return report_error(opts.error());
  auto features = bisect::option_features(*opts);
  if (!a.bisect_dscp.empty()) {
    auto d = probe::parse_dscp(a.bisect_dscp);
    if (!d) return report_error(d.error());
    bisect::Feature f;
    f.kind = bisect::Feature::Kind::dscp;
    f.name = "dscp";
    f.tos = static_cast<std::uint8_t>(*d << 2);
    features.push_back(f);
  }
  if (!a.bisect_sport.empty()) {
    auto s = probe::parse_sport(a.bisect_sport);
    if (!s) return report_error(s.error());
    bisect::Feature f;
    f.kind = bisect::Feature::Kind::sport;
    f.name = "sport";
    f.sport = probe::format_sport(*s);
    features.push_back(f);
  }
  if (a.bisect_ttl != 0) {
    const int base_ttl = req->plan.ttl != 0 ? req->plan.ttl : 64;  // the probe builder's default
    if (a.bisect_ttl == base_ttl) {
      return report_error(make_error(Errc::usage, "bisect", fmt::format("--bisect-ttl {} equals --ttl: nothing to "
                                                                         "compare; pick another TTL", a.bisect_ttl)));
    }
    bisect::Feature f;
    f.kind = bisect::Feature::Kind::ttl;
    f.name = "ttl";
    f.ttl = static_cast<std::uint8_t>(a.bisect_ttl);
    features.push_back(f);
  }
  if (bisect_source) {
    bisect::Feature f;
    f.kind = bisect::Feature::Kind::source;
    f.name = "source";
    f.source = bisect_source->to_string();
    features.push_back(f);
  }
  if (features.empty()) {
    return report_error(make_error(Errc::usage, "bisect", "nothing to bisect: --tcp-options has no option "
                                                          "(and no --bisect-dscp / --bisect-sport / --bisect-ttl)"));
  }
  if (features.size() > bisect::kMaxFeatures) {
    return report_error(make_error(Errc::usage, "bisect", fmt::format("at most {} features", bisect::kMaxFeatures)));
  }
  bisect::Config cfg;
  cfg.confidence = a.confidence;
  cfg.budget = a.budget;
  cfg.per_round = a.trace.count;
  cfg.max_rounds = a.max_rounds;
  cfg.min_effect = a.min_effect;
  cfg.refine_mss = !a.no_refine_mss;
  cfg.refine_wscale = a.wscale_values;
  cfg.refine_order = a.option_order;
  bisect::Experiment exp(*opts, std::move(features), cfg, req->plan.tos, req->plan.sport,
                         req->plan.ttl != 0 ? req->plan.ttl : std::uint8_t{64});

  const bool tty = ::isatty(STDERR_FILENO);
  std::optional<Analysis> last;
  // Every round's probes and packets, for the bundle (the far admin must find a failing probe).
  BisectEvidence evidence;
  std::vector<report::VantageRow> vantages;
  std::vector<std::uint16_t> probe_vantage;
  for (;;) {
    auto round = exp.plan_round();
    if (round.variants.empty()) break;
    orchestrate::TraceRequest r = *req;
    r.plan.count = round.count;
    // A fresh seed (run key, schedule, ports) per round; with --seed S round k uses S + k, so a run
    // against a deterministic path (the lab's `numgen inc`) repeats exactly.
    r.plan.seed = a.seed == 0 ? 0 : a.seed + exp.rounds();
    r.plan.variants.clear();
    r.variant_names.clear();
    r.source_variants.clear();
    if (bisect_source) {
      // The base vantage sends the variants without the source feature, the --bisect-source one
      // those with it.
      const std::string base_key = req->sources.size() > 1 ? req->sources.front().to_string() : "";
      r.source_variants[base_key];
      r.source_variants[bisect_source->to_string()];
      for (std::size_t j = 0; j < round.variants.size(); ++j) {
        const auto& d = exp.variants()[round.variants[j]].def;
        r.source_variants[d.source.empty() ? base_key : d.source].push_back(static_cast<std::uint16_t>(j));
      }
    }
    for (std::size_t i : round.variants) {
      const auto& d = exp.variants()[i].def;
      r.plan.variants.push_back(proto::ProbeVariant{d.tcp_options, d.tos, d.sport, d.ttl});
      r.variant_names.push_back(
          correlate::Variant{d.name, d.tcp_options, d.tos, d.sport, d.ttl != 0 ? d.ttl : req->plan.ttl});
    }
    if (!a.trace.quiet) {
      std::fprintf(stderr, "[bisect] round %u: %u probes over %zu variants\n", exp.rounds() + 1, round.count,
                   round.variants.size());
    }
    auto an = run_and_analyze(r, "bisect", /*write=*/false, a.trace.force, nullptr, /*quiet=*/true);
    if (!an) return report_error(an.error());
    const bool server = an->correlation.server_present;
    for (const auto& p : an->correlation.probes) {
      if (p.variant >= round.variants.size()) continue;
      auto [outcome, fate] = bisect::classify(p, server);
      exp.record(round.variants[p.variant], outcome, fate);
    }
    exp.end_round();
    if (auto st = evidence.add_round(an->correlation, round.variants, an->client, an->server); !st) {
      return report_error(st.error());
    }
    // Per probe: its vantage (rows are the same cells every round, matched by source).
    for (std::size_t i = 0; i < an->correlation.probes.size(); ++i) {
      const auto& row = an->vantages[i < an->probe_vantage.size() ? an->probe_vantage[i] : 0];
      auto at = std::find_if(vantages.begin(), vantages.end(), [&](const report::VantageRow& v) {
        return v.src == row.src && v.client == row.client;
      });
      if (at == vantages.end()) {
        vantages.push_back(row);
        at = vantages.end() - 1;
      }
      probe_vantage.push_back(static_cast<std::uint16_t>(at - vantages.begin()));
    }
    last = std::move(an).value();
    if (!a.trace.quiet) {
      std::string table = bisect::variant_table(exp);
      std::fputs(table.c_str(), stderr);
      std::size_t best = 0;
      for (std::size_t i = 1; i < exp.posterior().size(); ++i) if (exp.posterior()[i] > exp.posterior()[best]) best = i;
      std::fprintf(stderr, "[bisect] leading: %s (%.1f %%), %llu/%llu probes used\n%s",
                   exp.leading_text().c_str(), 100 * exp.posterior()[best],
                   static_cast<unsigned long long>(exp.used()), static_cast<unsigned long long>(cfg.budget),
                   tty ? "" : "");
    }
  }
  if (!last) return report_error(make_error(Errc::usage, "bisect", "--budget too small for one round"));

  // The experiment's variants (later stages add some): the bundle's variant table.
  std::vector<correlate::Variant> all_variants;
  for (const auto& v : exp.variants()) {
    const auto& d = v.def;
    all_variants.push_back(correlate::Variant{d.name, d.tcp_options, d.tos, d.sport, d.ttl != 0 ? d.ttl : req->plan.ttl});
  }
  evidence.set_variants(std::move(all_variants));
  auto res = exp.result();
  auto block = bisect::bisect_block(exp, res);

  // The bundle: every round's probes (variant = the experiment's) and packets, with the
  // experiment's verdict and block.
  correlate::CaptureSide client_side = evidence.client();
  const correlate::CaptureSide& server_side = evidence.server();
  diagnose::Verdict v;
  v.code = "bisect_" + std::string(bisect::kind_name(res.kind));
  v.text = bisect::verdict_sentence(exp, res);
  v.problem = res.kind != bisect::BisectResult::Kind::clean;
  v.severity = v.problem ? diagnose::Severity::problem : diagnose::Severity::ok;
  report::ReportContext ctx;
  ctx.mode = "bisect";
  ctx.target = req->targets.front().address;
  ctx.dport = req->plan.dport;
  ctx.l4 = "tcp";
  // Who is who as the captures show it, as trace does (the server's own address under NAT).
  ctx.client = evidence.correlation().client;
  ctx.server = evidence.correlation().server;
  ctx.client_agent = req->clients.front().agent.endpoint;
  ctx.server_agent = req->targets.front().server ? req->targets.front().server->endpoint : "";
  ctx.count = static_cast<std::uint32_t>(evidence.correlation().probes.size());
  if (req->plan.rate_pps) ctx.rate_pps = req->plan.rate_pps;
  ctx.probe = fmt::format("tcp dport {} options {} (bisect)", req->plan.dport, a.trace.probe.tcp_options);
  ctx.bisect = block;
  ctx.client_capture = &client_side;
  ctx.server_capture = &server_side;
  ctx.vantages = vantages;
  ctx.probe_vantage = probe_vantage;
  {
    // Every round's probes per vantage (each row's counts over the whole bisection).
    run::Combined all;
    all.correlation.probes = evidence.correlation().probes;
    all.probe_vantage = probe_vantage;
    run::count_vantages(all, {}, ctx.vantages);
    for (auto& row : ctx.vantages) row.verdict.clear();
  }
  report::BundleOptions bo;
  bo.force = true;  // checked before the first round; the rounds' captures are in there now
  if (auto st = report::write_bundle(a.trace.out, evidence.correlation(), v, ctx, client_side, server_side, bo); !st) {
    return report_error(st.error());
  }
  std::fputs(bisect::variant_table(exp).c_str(), stdout);
  std::fputs(bisect::human_report(exp, res).c_str(), stdout);
  std::printf("  bundle:   %s (every round: %zu probes in report.json/report.html, captures of all %zu rounds)\n",
              a.trace.out.c_str(), evidence.correlation().probes.size(), evidence.rounds());
  return v.problem ? kExitProblemFound : 0;
}

}  // namespace

void register_bisect(CLI::App& app, CommandContext& ctx) {
  auto args = std::make_shared<BisectArgs>();
  args->trace.count = 60;
  auto* sub = app.add_subcommand("bisect", "Find the minimal probe feature (TCP option, value, order, DSCP, sport, TTL) that makes probes fail");
  sub->footer(
      "Rounds of two-ended runs with variants (baseline, full, single options, leave-one-outs, ...) interleaved\n"
      "in random order; stops when one trigger reaches --confidence or --budget is spent (docs/bisect.md).\n"
      "--tcp-options defaults to 'linux' (mss=1460,sack,ts,nop,ws=7). Without --server (or with --client-only)\n"
      "fates are coarser: answered / no_answer / rst / icmp_error.\n"
      "Exit: 0 no trigger (clean path), 1 usage, 2 environment, 3 agent/protocol, 4 trigger or loss found.");
  add_trace_flags(sub, args->trace, /*bisect=*/true);
  sub->add_option("--budget", args->budget, "Most probes to spend, all rounds")->capture_default_str()
      ->check(CLI::Range(std::uint64_t{10}, std::uint64_t{1'000'000}));
  sub->add_option("--confidence", args->confidence, "Posterior the named trigger must reach")->capture_default_str()
      ->check(CLI::Range(0.5, 0.9999));
  sub->add_option("--min-effect", args->min_effect, "Smallest failure-rate increase that counts as a trigger")
      ->capture_default_str()->check(CLI::Range(0.01, 0.9));
  sub->add_option("--max-rounds", args->max_rounds, "Most rounds")->capture_default_str()->check(CLI::Range(1u, 1000u));
  sub->add_flag("--client-only", args->client_only, "Ignore --server: client capture only (coarser fates)");
  sub->add_flag("--no-mss-threshold", args->no_refine_mss, "Do not search the MSS threshold when the MSS is the trigger");
  sub->add_flag("--wscale-values", args->wscale_values,
                "When the window scale is in the trigger, try other shift counts: which values fail (=N, >=N)");
  sub->add_flag("--option-order", args->option_order,
                "Also test the option order: rotations of the full set, trigger \"option K must come first\"");
  sub->add_option("--bisect-dscp", args->bisect_dscp, "Also test this DSCP (name or 0-63) as a feature");
  sub->add_option("--bisect-sport", args->bisect_sport, "Also test this source-port range A-B as a feature");
  sub->add_option("--bisect-ttl", args->bisect_ttl,
                  "Also test this IPv4 TTL / IPv6 hop limit (1-255) as a feature, against --ttl (default 64)")
      ->check(CLI::Range(1, 255));
  sub->add_option("--bisect-source", args->bisect_source,
                  "Also test the source address as a feature: probes with it leave from ADDR (an address of the "
                  "--client agent, or of a second --client), the others from the base vantage");
  sub->add_option("--seed", args->seed,
                  "Reproducible rounds: round k uses seed S+k for its run key, variant order and source ports "
                  "(default: fresh random seeds)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 62));
  sub->callback([args, &ctx] { ctx.exit_code = run_bisect(*args); });
}

}  // namespace tandem::cli
