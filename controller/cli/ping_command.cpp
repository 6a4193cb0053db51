// `tandem ping`: single-ended layer-4 ping (DESIGN.md §3). Parses flags into a PingOptions, runs
// the engine, prints one line per probe and a ping(8)-style summary, optionally writes report.json.
#include <atomic>
#include <cctype>
#include <csignal>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>

#include "common/probe/spec.hpp"
#include "controller/cli/command.hpp"
#include "controller/cli/probe_flags.hpp"
#include "controller/ping/ping_engine.hpp"
#include "controller/ping/ping_report.hpp"
#include "controller/ping/ping_source.hpp"

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
  std::string json_lines;  // "" none, "-" stdout, else a file
  bool timestamps = false;
  std::string time_format = "epoch";
  std::string interface = "any";
  std::optional<std::string> source;
  bool quiet = false;
  bool count_given = false;
};

Result<ping::PingOptions> to_options(const PingArgs& a) {
  ping::PingOptions o;
  // A host name is looked up in the family of --source when that is an IPv6 address (-4 still wins
  // and then meets the version check below); a literal target keeps its own family.
  bool want_v6 = a.probe.want_v6;
  if (a.source && !a.probe.want_v4) {
    auto src = ping::parse_address(*a.source);
    if (src && !src->is_v4() && !ping::parse_address(a.target)) want_v6 = true;
  }
  auto target = resolve_target(a.target, want_v6, a.probe.want_v4);
  if (!target) return target.error();
  o.target = *target;
  auto spec = probe_spec_from(a.probe, o.target.version);
  if (!spec) return spec.error();
  o.spec = std::move(spec).value();
  if (o.spec.l4 == probe::ProbeSpec::L4::tcp) {
    if (auto kind = ping::tcp_probe_kind(o.spec.tcp_flags); !kind) return kind.error();
  }
  o.count = a.count;
  if (a.probe.rate) o.rate_pps = *a.probe.rate;
  if (a.probe.interval) o.interval_s = *a.probe.interval;
  o.timeout_s = a.timeout;
  if (a.until) {
    auto st = ping::parse_state(*a.until);
    if (!st) {
      return make_error(Errc::usage, "ping",
                        "--until takes open, closed, filtered, open|filtered or unfiltered, not '" + *a.until + "'");
    }
    o.until = *st;
    if (!a.count_given) o.count = 0;
  }
  o.interface = a.interface;
  auto src = ping::select_source(o.target, a.source, a.interface);
  if (!src) return src.error();
  o.source = *src;
  return o;
}

}  // namespace

void register_ping(CLI::App& app, CommandContext& ctx) {
  auto args = std::make_shared<PingArgs>();
  auto* sub = app.add_subcommand("ping", "Single-ended layer-4 ping: TCP SYN, UDP or ICMP probes with per-probe state and RTT");
  sub->footer(
      "States (nmap's words): open = SYN-ACK / UDP reply / echo reply; closed = RST (or ICMP port\n"
      "unreachable for UDP); filtered = no answer or an ICMP error (its type, code and sender are shown);\n"
      "open|filtered = UDP, FIN, NULL or Xmas probe with no answer; unfiltered = ACK probe answered by RST.\n"
      "TCP options: --tcp-options mss=1460,sack,ts,nop,ws=7 | ts=VAL:ECR | eol | kind=30:0a0b | linux | none\n"
      "(see docs/probes.md). Needs CAP_NET_RAW (raw socket + capture).\n"
      "Exit: 0 every probe got the healthy answer (open; unfiltered for --flags A; closed for F/none/FPU) or\n"
      "--until was met, 1 usage (e.g. a --source that is not this host's), 2 environment/permission (e.g.\n"
      "no such --interface), 4 otherwise (closed, filtered, lost).");
  sub->add_option("target", args->target, "Host name or address (IPv6 may be written [addr])")->required();
  args->probe.tcp_options = "none";  // ping sends exactly what it is told
  add_probe_flags(sub, args->probe);
  auto* count = sub->add_option("-c,--count", args->count, "Probes to send (0 = until stopped or --until)")->capture_default_str();
  sub->add_option("--timeout", args->timeout, "Seconds to wait for each probe's answer")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--until", args->until, "Stop at the first probe in this state: open, closed, filtered, unfiltered");
  sub->add_option("--json", args->json_path, "Write report.json (DESIGN.md §5, mode \"ping\") to this file");
  sub->add_option("--json-lines", args->json_lines,
                  "Write one JSON object per probe as it completes to FILE (- = stdout; the text then goes to stderr)");
  sub->add_flag("-D,--timestamp", args->timestamps, "Print the send time before each probe line (like ping -D)");
  sub->add_option("--time-format", args->time_format, "Timestamp format for -D: epoch (seconds.micro) or iso (ISO 8601 UTC)")
      ->check(CLI::IsMember({"epoch", "iso"}))
      ->capture_default_str();
  sub->add_option("-S,--source", args->source,
                  "Source address of the probes: an address of this host of the target's IP version "
                  "(default: the route's)");
  sub->add_option("-e,--interface,--device", args->interface,
                  "Interface to send through and capture on (--device is the same option); without -S the "
                  "probes carry the route's source if it is on IF, else IF's own address. any = the routes "
                  "decide, capture on all")
      ->capture_default_str();
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
    // With --json-lines - the JSON owns stdout; the human text moves to stderr.
    const bool lines_to_stdout = args->json_lines == "-";
    std::FILE* text = lines_to_stdout ? stderr : stdout;
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> lines_file(nullptr, std::fclose);
    std::FILE* lines = lines_to_stdout ? stdout : nullptr;
    if (!args->json_lines.empty() && !lines_to_stdout) {
      lines_file.reset(std::fopen(args->json_lines.c_str(), "w"));
      if (!lines_file) {
        ctx.exit_code = report_error(make_error(Errc::environment, "ping", "cannot write " + args->json_lines + ": " +
                                                                                 std::strerror(errno)));
        return;
      }
      lines = lines_file.get();
    }
    const auto tf = args->time_format == "iso" ? ping::TimeFormat::iso : ping::TimeFormat::epoch;
    auto result = ping::run_ping(
        *opts,
        [&](const ping::PingResult& header) {
          std::fprintf(text, "%s\n", ping::format_header(*opts, header).c_str());
          std::fflush(text);
        },
        [&](const ping::ProbeOutcome& p) {
          if (lines) {
            std::fprintf(lines, "%s\n", ping::probe_json(p, v6).dump().c_str());
            std::fflush(lines);
          }
          if (quiet || lines_to_stdout) return;
          std::string line = ping::format_probe_line(p, v6);
          if (args->timestamps) line = ping::format_timestamp(p.sent_ns, tf) + " " + line;
          std::fprintf(text, "%s\n", line.c_str());
          std::fflush(text);
        });
    if (!result) {
      ctx.exit_code = report_error(result.error());
      return;
    }
    std::fprintf(text, "\n%s", ping::format_summary(*opts, *result).c_str());
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
