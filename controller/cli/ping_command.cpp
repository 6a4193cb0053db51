// `tandem ping`: single-ended layer-4 ping (DESIGN.md §3). Parses flags into a PingOptions, runs
// the engine, prints one line per probe and a ping(8)-style summary, optionally writes report.json.
#include <atomic>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>

#include "common/probe/spec.hpp"
#include "controller/cli/command.hpp"
#include "controller/cli/probe_flags.hpp"
#include "controller/ping/ping_engine.hpp"
#include "controller/ping/ping_report.hpp"

namespace tandem::cli {
namespace {

std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) { g_interrupted.store(true); }

struct PingArgs {
  std::string target;
  ProbeFlags probe;
  std::uint32_t count = 5;
  double timeout = 1.0;
  std::optional<std::string> until;
  std::string json_path;
  std::string device = "any";
  bool quiet = false;
  bool count_given = false;
};

Result<ping::PingOptions> to_options(const PingArgs& a) {
  ping::PingOptions o;
  auto target = resolve_target(a.target, a.probe.want_v6, a.probe.want_v4);
  if (!target) return target.error();
  o.target = *target;
  auto spec = probe_spec_from(a.probe, o.target.version);
  if (!spec) return spec.error();
  o.spec = std::move(spec).value();
  o.count = a.count;
  if (a.probe.rate) o.rate_pps = *a.probe.rate;
  if (a.probe.interval) o.interval_s = *a.probe.interval;
  o.timeout_s = a.timeout;
  if (a.until) {
    auto st = ping::parse_state(*a.until);
    if (!st) return make_error(Errc::usage, "ping", "--until takes open, closed or filtered, not '" + *a.until + "'");
    o.until = *st;
    if (!a.count_given) o.count = 0;
  }
  o.device = a.device;
  return o;
}

}  // namespace

void register_ping(CLI::App& app, CommandContext& ctx) {
  auto args = std::make_shared<PingArgs>();
  auto* sub = app.add_subcommand("ping", "Single-ended layer-4 ping: TCP SYN, UDP or ICMP probes with per-probe state and RTT");
  sub->footer(
      "States (nmap's words): open = SYN-ACK / UDP reply / echo reply; closed = RST (or ICMP port\n"
      "unreachable for UDP); filtered = no answer or an ICMP error (its type, code and sender are shown);\n"
      "open|filtered = UDP probe with no answer.\n"
      "TCP options: --tcp-options mss=1460,sack,ts,nop,ws=7 | ts=VAL:ECR | eol | kind=30:0a0b | linux | none\n"
      "(see docs/probes.md). Needs CAP_NET_RAW (raw socket + capture).\n"
      "Exit: 0 every probe answered (or --until met), 1 usage, 2 environment/permission, 4 some probe unanswered.");
  sub->add_option("target", args->target, "Host name or address (IPv6 may be written [addr])")->required();
  args->probe.tcp_options = "none";  // ping sends exactly what it is told
  add_probe_flags(sub, args->probe);
  auto* count = sub->add_option("-c,--count", args->count, "Probes to send (0 = until stopped or --until)")->capture_default_str();
  sub->add_option("--timeout", args->timeout, "Seconds to wait for each probe's answer")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--until", args->until, "Stop at the first probe in this state: open, closed or filtered");
  sub->add_option("--json", args->json_path, "Write report.json (DESIGN.md §5, mode \"ping\") to this file");
  sub->add_option("--device", args->device, "Capture device (default any)")->capture_default_str();
  sub->add_flag("-q,--quiet", args->quiet, "Only the summary, no per-probe lines");

  sub->callback([args, count, &ctx] {
    args->count_given = count->count() > 0;
    auto opts = to_options(*args);
    if (!opts) {
      ctx.exit_code = report_error(opts.error());
      return;
    }
    opts->stop = &g_interrupted;
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);

    bool v6 = !opts->target.is_v4();
    bool quiet = args->quiet;
    auto result = ping::run_ping(
        *opts,
        [&](const ping::PingResult& header) {
          std::printf("%s\n", ping::format_header(*opts, header).c_str());
          std::fflush(stdout);
        },
        [&](const ping::ProbeOutcome& p) {
          if (quiet) return;
          std::printf("%s\n", ping::format_probe_line(p, v6).c_str());
          std::fflush(stdout);
        });
    if (!result) {
      ctx.exit_code = report_error(result.error());
      return;
    }
    std::printf("\n%s", ping::format_summary(*opts, *result).c_str());
    if (!args->json_path.empty()) {
      std::ofstream f(args->json_path);
      f << ping::to_json(*opts, *result).dump(2) << "\n";
      if (!f) {
        ctx.exit_code = report_error(make_error(Errc::environment, "ping", "cannot write " + args->json_path));
        return;
      }
    }
    ctx.exit_code = ping::verdict_of(*opts, *result).problem ? kExitProblemFound : 0;
  });
}

}  // namespace tandem::cli
