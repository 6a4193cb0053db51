#include "controller/cli/trace_common.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "common/base/clock.hpp"
#include "controller/cli/command.hpp"
#include "controller/correlate/correlate.hpp"
#include "controller/diagnose/diagnose.hpp"
#include "controller/report/analyze_input.hpp"
#include "controller/report/bundle.hpp"
#include "controller/report/report.hpp"

namespace tandem::cli {

std::string default_key_path() {
  if (const char* k = std::getenv("TANDEM_KEY"); k && *k) return k;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "/root") + "/.config/tandem/controller.key";
}

void add_trace_flags(CLI::App* sub, TraceArgs& a, bool bisect) {
  sub->add_option("--client", a.client, "Client agent: tcp://HOST:PORT/KEY as tandem-agent --print-address prints it (or #KEY, or --client-key)")->required();
  auto* server = sub->add_option("--server", a.server, "Server agent: tcp://HOST:PORT/KEY (or #KEY, or --server-key)");
  if (!bisect) server->required();
  sub->add_option("--client-key", a.client_key, "Client agent's public key file (.pub), if --client has no key");
  sub->add_option("--server-key", a.server_key, "Server agent's public key file (.pub), if --server has no key");
  sub->add_option("--key", a.key, "This controller's secret key file (tandem keygen); default $TANDEM_KEY or "
                                  "~/.config/tandem/controller.key");
  sub->add_option("--target", a.target, "HOST:PORT the client agent probes (IPv6: [ADDR]:PORT; HOST alone with --icmp)")
      ->required();
  sub->add_option("--server-target", a.server_target,
                  "Behind a DNAT: ADDR:PORT (or ADDR, or :PORT) the server sees the probes arrive on, so its agent "
                  "captures them (default: --target)");
  add_probe_flags(sub, a.probe, /*with_port=*/false, bisect ? ProbeScope::bisect : ProbeScope::trace);
  sub->add_option("-c,--count", a.count, bisect ? "Probes per round (later rounds may use a quarter or half)" : "Probes to send")->capture_default_str()
      ->check(CLI::Range(1u, 10'000'000u));
  sub->add_option("--tail", a.tail_s, "Seconds to wait for late replies after the last probe")->capture_default_str()
      ->check(CLI::Range(0.0, 60.0));
  sub->add_option("--out", a.out, "Directory for the evidence bundle")->required();
  sub->add_flag("--force", a.force, "Reuse a non-empty --out directory");
  sub->add_flag("-q,--quiet", a.quiet, "No progress line");
}

Result<orchestrate::TraceRequest> trace_request(const TraceArgs& a) {
  orchestrate::TraceRequest r;
  auto client = a.client_key.empty() ? transport::parse_agent_address(a.client)
                                     : transport::parse_agent_address(a.client, a.client_key);
  if (!client) return client.error();
  r.client = *client;
  if (!a.server.empty()) {
    auto server = a.server_key.empty() ? transport::parse_agent_address(a.server)
                                       : transport::parse_agent_address(a.server, a.server_key);
    if (!server) return server.error();
    r.server = *server;
  }
  std::string key_path = a.key.empty() ? default_key_path() : a.key;
  auto key = transport::CurveKeypair::load_secret_file(key_path);
  if (!key) return key.error();
  r.controller_key = *key;

  // The probe plan on the wire carries no TCP flags, ICMP type/code or payload length yet: refuse
  // them rather than run something other than what was asked.
  if (a.probe.flags || a.probe.icmp_type || a.probe.icmp_code || a.probe.data_len != 0) {
    return make_error(Errc::usage, "trace",
                      "--flags, --icmp-type, --icmp-code and --data-len work with `tandem ping` only so far");
  }
  // ICMP has no port: --target HOST (DESIGN.md §3); HOST:PORT is still accepted and the port unused.
  auto hp = split_host_port(a.target);
  if (!hp && !a.probe.icmp) return hp.error();
  auto target = resolve_target(hp ? hp->first : a.target, a.probe.want_v6, a.probe.want_v4);
  if (!target) return target.error();
  r.target = *target;
  ProbeFlags pf = a.probe;
  if (hp && !a.probe.icmp) pf.port = hp->second;
  auto spec = probe_spec_from(pf, r.target.version);
  if (!spec) return spec.error();

  proto::ProbePlan& p = r.plan;
  p.count = a.count;
  if (a.probe.rate) p.rate_pps = static_cast<std::uint32_t>(*a.probe.rate);
  else if (a.probe.interval) p.interval_us = static_cast<std::uint32_t>(*a.probe.interval * 1e6);
  else p.rate_pps = 100;
  if (a.probe.rate && *a.probe.rate < 1.0) {
    return make_error(Errc::usage, "trace", "--rate below 1 pps: use -i/--interval instead");
  }
  p.dport = spec->dport;
  p.l4 = spec->l4 == probe::ProbeSpec::L4::udp ? proto::L4::udp : spec->l4 == probe::ProbeSpec::L4::icmp ? proto::L4::icmp : proto::L4::tcp;
  p.tcp_options = spec->tcp_options.empty() ? "" : probe::format_tcp_options(spec->tcp_options);
  p.tos = spec->tos;
  p.ttl = spec->ttl.value_or(0);
  p.df = spec->df;
  p.window = spec->window;
  p.sport = probe::format_sport(spec->sport);
  if (!a.server_target.empty()) {
    if (a.server.empty()) return make_error(Errc::usage, "trace", "--server-target needs --server");
    std::string host = a.server_target, port;
    if (host.front() == ':') {
      port = host.substr(1);
      host.clear();
    } else if (host.front() == '[' || std::count(host.begin(), host.end(), ':') == 1) {
      auto hp2 = split_host_port(host);
      if (!hp2) return hp2.error();
      host = hp2->first;
      port = std::to_string(hp2->second);
    }
    if (!host.empty()) {
      std::string bare = host.size() > 2 && host.front() == '[' ? host.substr(1, host.size() - 2) : host;
      auto addr = packet::IpAddr::parse(bare);
      if (!addr) return make_error(Errc::usage, "trace", "--server-target '" + a.server_target + "': not an IP address");
      if (addr->version != r.target.version) {
        return make_error(Errc::usage, "trace", "--server-target " + addr->to_string() + " and --target " +
                                                    r.target.to_string() + " are not the same IP version");
      }
      r.server_sees_address = *addr;
    }
    if (!port.empty()) {
      unsigned v = 0;
      auto res = std::from_chars(port.data(), port.data() + port.size(), v);
      if (res.ec != std::errc{} || res.ptr != port.data() + port.size() || v < 1 || v > 65535)
        return make_error(Errc::usage, "trace", "--server-target '" + a.server_target + "': port must be 1-65535");
      r.server_sees_port = static_cast<std::uint16_t>(v);
    }
  }
  r.tail = std::chrono::milliseconds(static_cast<std::int64_t>(a.tail_s * 1000));
  r.out_dir = a.out;
  return r;
}

Status prepare_out_dir(const std::string& dir, bool force, const std::string& command) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(dir, ec) && !force) {
    if (!fs::is_directory(dir, ec)) return make_error(Errc::usage, command, "--out " + dir + " exists and is not a directory");
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      std::string name = e.path().filename();
      if (!report::is_bundle_file(name)) {
        return make_error(Errc::usage, command, "--out " + dir + " is not empty and not a tandem bundle (" + name +
                                                    "); choose another directory or pass --force");
      }
    }
  }
  // docs/report-format.md: the bundle directory is created with its parents.
  fs::create_directories(dir, ec);
  if (ec) return make_error(Errc::environment, command, "cannot create --out " + dir + ": " + ec.message());
  return ok_status();
}

namespace {

// "[trace] send 450/900 (50 %) 10.0/s, captured client 1350 server 1350, ETA 45 s": the send line
// comes at least once a second during sending (orchestrate::Progress); on a terminal it is
// rewritten in place, otherwise (logs) each is one line.
std::string send_line(const orchestrate::Progress& p) {
  std::string line = fmt::format("[trace] send {}/{} ({:.0f} %)", p.sent, p.total, p.total ? 100.0 * p.sent / p.total : 0.0);
  if (p.rate_pps > 0) line += fmt::format(" {:.1f}/s", p.rate_pps);
  if (p.client_captured || p.server_captured) {
    line += ", captured";
    if (p.client_captured) line += fmt::format(" client {}", *p.client_captured);
    if (p.server_captured) line += fmt::format(" server {}", *p.server_captured);
  }
  if (p.eta_s) line += fmt::format(", ETA {:.0f} s", *p.eta_s);
  if (!p.detail.empty()) line += " " + p.detail;
  return line;
}


// What a phase does, for the steps whose Progress carries no detail of its own.
const char* phase_words(const std::string& phase) {
  if (phase == "capture") return "starting the captures on both ends";
  if (phase == "send") return "sending";
  if (phase == "fetch") return "fetching both captures";
  if (phase == "end") return "ending the run on both agents";
  return "";
}

// One progress line on stderr: rewritten in place on a terminal; otherwise one line per phase and,
// while sending, a line at least once a second whenever the count moved (a log must show that a
// long run is alive, DESIGN.md §8 "Time is not a limit").
class ProgressPrinter {
 public:
  explicit ProgressPrinter(bool tty) : tty_(tty) {}
  void operator()(const orchestrate::Progress& p) {
    const std::string detail = p.detail.empty() ? phase_words(p.phase) : p.detail;
    std::string line = p.phase == "send" ? send_line(p) : fmt::format("[trace] {} {}", p.phase, detail);
    const Nanos now = monotonic_ns();
    if (tty_) {
      std::fprintf(stderr, "\r\033[K%s", line.c_str());
    } else if (p.phase != "send" || p.detail == "done" || !send_shown_ ||
               (p.sent != last_sent_ && now - last_print_ >= 1'000'000'000)) {
      send_shown_ = send_shown_ || p.phase == "send";
      std::fprintf(stderr, "%s\n", line.c_str());
      last_print_ = now;
      last_sent_ = p.sent;
    }
    std::fflush(stderr);
  }

 private:
  bool tty_;
  bool send_shown_ = false;
  Nanos last_print_ = 0;
  std::uint32_t last_sent_ = 0;
};

// SIGINT during `tandem trace`: the first one ends the run cleanly (orchestrate stops the sending,
// fetches what was captured, the bundle is written, exit kExitInterrupted); SA_RESETHAND makes a
// second one kill the process as usual.
std::atomic<bool> g_interrupted{false};
void on_sigint(int) { g_interrupted.store(true); }

void catch_sigint() {
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;
  ::sigaction(SIGINT, &sa, nullptr);
}

correlate::CaptureSide with_stats(correlate::CaptureSide side, const proto::CaptureStats& s) {
  side.stats.available = true;
  side.stats.received = s.received;
  side.stats.dropped = s.dropped;
  side.stats.if_dropped = s.if_dropped;
  if (!s.if_dropped_known) side.stats.unavailable_reason = "interface drops unknown";
  return side;
}

}  // namespace

Result<Analysis> run_and_analyze(const orchestrate::TraceRequest& req, const std::string& mode, bool write,
                                 bool force, const nlohmann::ordered_json& bisect_block, bool quiet) {
  if (write) {
    if (auto st = prepare_out_dir(req.out_dir, force, mode); !st) return st.error();
  }
  bool tty = !quiet && ::isatty(STDERR_FILENO);
  ProgressPrinter progress(tty);
  auto ev = orchestrate::run_trace(req, [&](const orchestrate::Progress& p) {
    if (!quiet) progress(p);
  });
  if (tty) std::fprintf(stderr, "\n");
  if (!ev) return ev.error();

  auto client = report::read_capture_file(ev->client.pcapng_path);
  if (!client) return client.error();
  correlate::CaptureSide client_side = with_stats(std::move(client).value(), ev->client.stats);
  client_side.local = req.client_source;
  // The agents captured the run's own flows for the whole run: an empty capture means nothing came.
  client_side.vouched = true;
  correlate::CaptureSide server_side;
  if (ev->server) {
    auto server = report::read_capture_file(ev->server->pcapng_path);
    if (!server) return server.error();
    server_side = with_stats(std::move(server).value(), ev->server->stats);
    server_side.vouched = true;
  }
  auto corr = correlate::correlate(client_side, server_side, ev->manifest);
  if (!corr) return corr.error();
  auto verdict = diagnose::diagnose(*corr);

  report::ReportContext ctx;
  ctx.mode = mode;
  ctx.target = req.target;
  ctx.dport = req.plan.dport;
  ctx.l4 = ev->manifest.l4;
  ctx.client = req.client_source;
  // Who is who as the captures show it (the server's own address differs from the target under NAT).
  if (!ctx.client) ctx.client = corr->client;
  ctx.server = corr->server;
  ctx.client_agent = req.client.endpoint;
  ctx.server_agent = req.server ? req.server->endpoint : "";
  ctx.count = req.plan.count;
  if (req.plan.rate_pps) ctx.rate_pps = req.plan.rate_pps;
  ctx.run_key = ev->manifest.run_key;
  ctx.probe = fmt::format("{} dport {} options {} tos {} sport {}", ev->manifest.l4, req.plan.dport,
                          req.plan.tcp_options.empty() ? "none" : req.plan.tcp_options, req.plan.tos, req.plan.sport);
  ctx.bisect = bisect_block;
  ctx.client_capture = &client_side;
  ctx.server_capture = &server_side;
  if (write) {
    report::BundleOptions bo;
    bo.force = true;  // checked above, before the run; our own fetched captures are in there now
    auto written = report::write_bundle(req.out_dir, *corr, verdict, ctx, client_side, server_side, bo);
    if (!written) return written.error();
    std::fputs(report::summary_text(*corr, verdict, ctx, req.out_dir, *written).c_str(), stdout);
  }
  Analysis a;
  a.correlation = std::move(corr).value();
  a.verdict_code = verdict.code;
  a.problem = verdict.problem;
  return a;
}

int run_trace_command(const TraceArgs& a, const std::string& mode) {
  auto req = trace_request(a);
  if (!req) return report_error(req.error());
  catch_sigint();
  req->interrupt = &g_interrupted;
  auto r = run_and_analyze(*req, mode, /*write=*/true, a.force, nullptr, a.quiet);
  if (g_interrupted.load()) {
    if (!r) report_error(r.error());
    else std::fprintf(stderr, "tandem: interrupted: the bundle covers the probes sent before Ctrl-C\n");
    return kExitInterrupted;
  }
  if (!r) return report_error(r.error());
  return r->problem ? kExitProblemFound : 0;
}

}  // namespace tandem::cli
