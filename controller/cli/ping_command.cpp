// `tandem ping`: single-ended layer-4 ping (DESIGN.md §3). Parses flags into a PingOptions, runs
// the engine, prints one line per probe and a ping(8)-style summary, optionally writes report.json.
#include <netdb.h>
#include <sys/socket.h>

#include <atomic>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>

#include "common/probe/spec.hpp"
#include "controller/cli/command.hpp"
#include "controller/ping/ping_engine.hpp"
#include "controller/ping/ping_report.hpp"

namespace tandem::cli {
namespace {

std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) { g_interrupted.store(true); }

struct PingArgs {
  std::string target;
  std::optional<std::uint16_t> port;
  bool tcp = false, udp = false, icmp = false, want_v6 = false, want_v4 = false;
  std::uint32_t count = 5;
  std::optional<double> rate;
  std::optional<double> interval;
  std::string sport = "random";
  std::string tcp_options = "none";  // ping sends what it is told; bisect starts from linux
  std::optional<std::string> tos, dscp;
  std::optional<int> ttl;
  bool df = false;
  std::optional<int> window;
  std::optional<std::string> flags;
  std::optional<int> icmp_type, icmp_code;
  std::size_t data_len = 0;
  double timeout = 1.0;
  std::optional<std::string> until;
  std::string json_path;
  std::string device = "any";
  bool quiet = false;
  bool count_given = false;
};

// Resolves TARGET: a literal address is taken as is (its family decides -4/-6); a name is looked up
// with getaddrinfo in the requested family (IPv4 unless -6).
Result<packet::IpAddr> resolve_target(const std::string& text, bool want_v6, bool want_v4) {
  std::string host = text;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (auto lit = packet::IpAddr::parse(host)) {
    if (want_v6 && lit->is_v4()) return make_error(Errc::usage, "ping", "-6 given but " + text + " is an IPv4 address");
    if (want_v4 && !lit->is_v4()) return make_error(Errc::usage, "ping", "-4 given but " + text + " is an IPv6 address");
    return *lit;
  }
  addrinfo hints{};
  hints.ai_family = want_v6 ? AF_INET6 : AF_INET;
  hints.ai_socktype = SOCK_RAW;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr) {
    return make_error(Errc::usage, "ping", "cannot resolve '" + text + "': " + gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, freeaddrinfo);
  if (res->ai_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(res->ai_addr);  // NOLINT: sockaddr API
    return packet::IpAddr::v4_bytes(reinterpret_cast<const std::uint8_t*>(&sin->sin_addr));  // NOLINT
  }
  const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(res->ai_addr);  // NOLINT: sockaddr API
  return packet::IpAddr::v6_bytes(sin6->sin6_addr.s6_addr);
}

// "S", "SA", "FPU": tcpdump's letters (FSRPAUEC).
Result<std::uint8_t> parse_tcp_flags(const std::string& text) {
  static constexpr std::string_view kLetters = "FSRPAUEC";
  std::uint8_t flags = 0;
  for (char c : text) {
    auto pos = kLetters.find(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    if (pos == std::string_view::npos) {
      return make_error(Errc::usage, "ping", "--flags: unknown TCP flag '" + std::string(1, c) + "' (letters FSRPAUEC)");
    }
    flags = static_cast<std::uint8_t>(flags | (1u << pos));
  }
  if (text.empty()) return make_error(Errc::usage, "ping", "--flags needs at least one letter of FSRPAUEC");
  return flags;
}

Result<ping::PingOptions> to_options(const PingArgs& a) {
  ping::PingOptions o;
  auto target = resolve_target(a.target, a.want_v6, a.want_v4);
  if (!target) return target.error();
  o.target = *target;

  auto l4 = a.udp ? probe::ProbeSpec::L4::udp : a.icmp ? probe::ProbeSpec::L4::icmp : probe::ProbeSpec::L4::tcp;
  o.spec = probe::default_spec(l4, o.target.version);
  probe::ProbeSpec& s = o.spec;
  if (a.port) s.dport = *a.port;
  if (a.icmp_type) s.icmp_type = static_cast<std::uint8_t>(*a.icmp_type);
  if (a.icmp_code) s.icmp_code = static_cast<std::uint8_t>(*a.icmp_code);
  auto opts = probe::parse_tcp_options(a.tcp_options);
  if (!opts) return opts.error();
  if (s.l4 != probe::ProbeSpec::L4::tcp && !opts->empty()) {
    return make_error(Errc::usage, "ping", "--tcp-options applies to TCP probes only");
  }
  s.tcp_options = std::move(opts).value();
  auto sport = probe::parse_sport(a.sport);
  if (!sport) return sport.error();
  s.sport = *sport;
  if (a.tos) {
    auto tos = probe::parse_tos(*a.tos);
    if (!tos) return tos.error();
    s.tos = *tos;
  }
  if (a.dscp) {
    auto dscp = probe::parse_dscp(*a.dscp);
    if (!dscp) return dscp.error();
    s.tos = static_cast<std::uint8_t>(*dscp << 2);
  }
  if (a.ttl) s.ttl = static_cast<std::uint8_t>(*a.ttl);
  s.df = a.df;
  if (a.window) s.window = static_cast<std::uint16_t>(*a.window);
  if (a.flags) {
    auto f = parse_tcp_flags(*a.flags);
    if (!f) return f.error();
    s.tcp_flags = *f;
  }
  s.payload_len = a.data_len;

  o.count = a.count;
  if (a.rate) o.rate_pps = *a.rate;
  if (a.interval) o.interval_s = *a.interval;
  o.timeout_s = a.timeout;
  if (a.until) {
    auto st = ping::parse_state(*a.until);
    if (!st) return make_error(Errc::usage, "ping", "--until takes open, closed or filtered, not '" + *a.until + "'");
    o.until = *st;
    if (a.count == 5 && !a.count_given) o.count = 0;
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
  sub->add_option("-p,--port", args->port, "Destination port (default 80 for TCP, 33434 for UDP)");
  auto* tcp = sub->add_flag("--tcp", args->tcp, "TCP SYN probes (default)");
  auto* udp = sub->add_flag("--udp", args->udp, "UDP probes");
  auto* icmp = sub->add_flag("--icmp", args->icmp, "ICMP echo probes (or --icmp-type)");
  tcp->excludes(udp)->excludes(icmp);
  udp->excludes(icmp);
  auto* flag_v6 = sub->add_flag("-6", args->want_v6, "Use IPv6");
  auto* flag_v4 = sub->add_flag("-4", args->want_v4, "Use IPv4 (default for host names)");
  flag_v6->excludes(flag_v4);
  auto* count = sub->add_option("-c,--count", args->count, "Probes to send (0 = until stopped or --until)")->capture_default_str();
  auto* rate = sub->add_option("--rate", args->rate, "Probes per second (exact pacing, up to 100k+)")->check(CLI::PositiveNumber);
  auto* interval = sub->add_option("-i,--interval", args->interval, "Seconds between probes (default 1)")->check(CLI::PositiveNumber);
  rate->excludes(interval);
  sub->add_option("--sport", args->sport, "Source port: random (per probe), N (pinned), or A-B")->capture_default_str();
  sub->add_option("--tcp-options", args->tcp_options, "TCP options in order, e.g. mss=1460,sack,ts,nop,ws=7; none; linux")
      ->capture_default_str();
  auto* tos = sub->add_option("--tos", args->tos, "IP TOS / traffic class byte (0-255, decimal or 0x..)");
  auto* dscp = sub->add_option("--dscp", args->dscp, "DSCP value (0-63) or name (ef, af41, cs1, ...)");
  tos->excludes(dscp);
  sub->add_option("--ttl", args->ttl, "IP TTL / hop limit (default 64)")->check(CLI::Range(1, 255));
  sub->add_flag("--df", args->df, "Set IPv4 don't-fragment");
  sub->add_option("--window", args->window, "TCP window (default 64240)")->check(CLI::Range(0, 65535));
  sub->add_option("--flags", args->flags, "TCP flags, e.g. S (default), SA, A, F, R, SE (letters FSRPAUEC)");
  sub->add_option("--icmp-type", args->icmp_type, "ICMP type for --icmp (default echo request)")->check(CLI::Range(0, 255));
  sub->add_option("--icmp-code", args->icmp_code, "ICMP code for --icmp")->check(CLI::Range(0, 255));
  sub->add_option("--data-len", args->data_len, "Payload bytes (UDP/ICMP carry at least a 12-byte probe tag)")
      ->check(CLI::Range(0, 1400));
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
