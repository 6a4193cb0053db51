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
  sub->add_option("--client", a.clients,
                  "Client agent: tcp://HOST:PORT/KEY as tandem-agent --print-address prints it (or #KEY, or --client-key); "
                  "repeat for several sites")
      ->required();
  sub->add_option("--source", a.sources,
                  "Source address to probe from (repeatable): each goes to the client agent that owns it; every "
                  "(client agent, source) is a vantage, all interleaved in one run (default: each agent's routing "
                  "default)");
  auto* server = sub->add_option("--server", a.servers,
                                 "Server agent: tcp://HOST:PORT/KEY (or #KEY, or --server-key); repeat for an N x M matrix");
  if (!bisect) server->required();
  sub->add_option("--client-key", a.client_key, "Client agent's public key file (.pub), if --client has no key (one --client only)");
  sub->add_option("--server-key", a.server_key, "Server agent's public key file (.pub), if --server has no key (one --server only)");
  sub->add_option("--key", a.key, "This controller's secret key file (tandem keygen); default $TANDEM_KEY or "
                                  "~/.config/tandem/controller.key");
  sub->add_option("--target", a.targets,
                  "HOST:PORT the client agents probe (IPv6: [ADDR]:PORT; HOST alone with --icmp); one for every "
                  "--server, or one per --server in the same order")
      ->required();
  sub->add_option("--server-target", a.server_target,
                  "Behind a DNAT: ADDR:PORT (or ADDR, or :PORT) the server sees the probes arrive on, so its agent "
                  "captures them (default: --target; one --server only)");
  add_probe_flags(sub, a.probe, /*with_port=*/false, bisect ? ProbeScope::bisect : ProbeScope::trace);
  sub->add_option("-c,--count", a.count, bisect ? "Probes per round and vantage (later rounds may use a quarter or half)" : "Probes to send per vantage and target")->capture_default_str()
      ->check(CLI::Range(1u, 10'000'000u));
  sub->add_option("--tail", a.tail_s, "Seconds to wait for late replies after the last probe")->capture_default_str()
      ->check(CLI::Range(0.0, 60.0));
  sub->add_option("--out", a.out, "Directory for the evidence bundle")->required();
  sub->add_flag("--force", a.force, "Reuse a non-empty --out directory");
  sub->add_flag("-q,--quiet", a.quiet, "No progress line");
}

Result<orchestrate::TraceRequest> trace_request(const TraceArgs& a) {
  orchestrate::TraceRequest r;
  if (!a.client_key.empty() && a.clients.size() > 1) return make_error(Errc::usage, "trace", "--client-key works with one --client only");
  if (!a.server_key.empty() && a.servers.size() > 1) return make_error(Errc::usage, "trace", "--server-key works with one --server only");
  for (const auto& line : a.clients) {
    auto client = a.client_key.empty() ? transport::parse_agent_address(line) : transport::parse_agent_address(line, a.client_key);
    if (!client) return client.error();
    for (const auto& other : r.clients) {
      if (other.agent.endpoint == client->endpoint)
        return make_error(Errc::usage, "trace", "--client " + client->endpoint + " given twice");
    }
    r.clients.push_back(orchestrate::ClientEnd{*client, {}, false});
  }
  std::vector<transport::AgentAddress> servers;
  for (const auto& line : a.servers) {
    auto server = a.server_key.empty() ? transport::parse_agent_address(line) : transport::parse_agent_address(line, a.server_key);
    if (!server) return server.error();
    for (const auto& other : servers) {
      if (other.endpoint == server->endpoint) return make_error(Errc::usage, "trace", "--server " + server->endpoint + " given twice");
    }
    servers.push_back(*server);
  }
  if (a.targets.size() > 1 && a.targets.size() != servers.size()) {
    return make_error(Errc::usage, "trace",
                      fmt::format("{} --target for {} --server: give one --target for all servers or one per --server",
                                  a.targets.size(), servers.size()));
  }
  if (!a.server_target.empty() && servers.size() > 1) return make_error(Errc::usage, "trace", "--server-target works with one --server only");
  for (const auto& text : a.sources) {
    auto addr = packet::IpAddr::parse(text);
    if (!addr) return make_error(Errc::usage, "trace", "--source '" + text + "': not an IP address");
    if (std::find(r.sources.begin(), r.sources.end(), *addr) != r.sources.end())
      return make_error(Errc::usage, "trace", "--source " + addr->to_string() + " given twice");
    r.sources.push_back(*addr);
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
  std::optional<std::uint16_t> target_port;
  std::vector<packet::IpAddr> addresses;
  for (const auto& text : a.targets) {
    auto hp = split_host_port(text);
    if (!hp && !a.probe.icmp) return hp.error();
    auto target = resolve_target(hp ? hp->first : text, a.probe.want_v6, a.probe.want_v4);
    if (!target) return target.error();
    if (hp && !a.probe.icmp) {
      if (target_port && *target_port != hp->second)
        return make_error(Errc::usage, "trace", "every --target must have the same port (" + std::to_string(*target_port) + ")");
      target_port = hp->second;
    }
    addresses.push_back(*target);
  }
  if (addresses.empty()) return make_error(Errc::usage, "trace", "--target is required");
  for (std::size_t t = 0; t < std::max<std::size_t>(1, servers.size()); ++t) {
    orchestrate::TargetEnd end;
    end.address = addresses.size() == 1 ? addresses.front() : addresses[t];
    if (t < servers.size()) end.server = servers[t];
    r.targets.push_back(std::move(end));
  }
  ProbeFlags pf = a.probe;
  if (target_port) pf.port = *target_port;
  auto spec = probe_spec_from(pf, r.targets.front().address.version);
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
    if (servers.empty()) return make_error(Errc::usage, "trace", "--server-target needs --server");
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
      if (addr->version != r.targets.front().address.version) {
        return make_error(Errc::usage, "trace", "--server-target " + addr->to_string() + " and --target " +
                                                    r.targets.front().address.to_string() + " are not the same IP version");
      }
      r.targets.front().server_sees_address = *addr;
    }
    if (!port.empty()) {
      unsigned v = 0;
      auto res = std::from_chars(port.data(), port.data() + port.size(), v);
      if (res.ec != std::errc{} || res.ptr != port.data() + port.size() || v < 1 || v > 65535)
        return make_error(Errc::usage, "trace", "--server-target '" + a.server_target + "': port must be 1-65535");
      r.targets.front().server_sees_port = static_cast<std::uint16_t>(v);
    }
  }
  r.tail = std::chrono::milliseconds(static_cast<std::int64_t>(a.tail_s * 1000));
  r.out_dir = a.out;
  return r;
}

namespace {

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

}  // namespace

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
