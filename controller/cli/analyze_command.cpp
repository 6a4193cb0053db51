// `tandem analyze`: offline analysis of two captures taken by hand (DESIGN.md §3, docs/analyze.md).
// No network, no privileges: read both files, correlate, diagnose, write the bundle, print the
// summary. Exit 0 clean, 1 usage (a missing or garbage file is named), 4 a problem was found.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "controller/cli/command.hpp"
#include "controller/cli/probe_flags.hpp"
#include "controller/correlate/correlate.hpp"
#include "controller/diagnose/diagnose.hpp"
#include "controller/report/analyze_input.hpp"
#include "controller/report/bundle.hpp"
#include "controller/report/report.hpp"

namespace tandem::cli {
namespace {

struct AnalyzeArgs {
  std::string client_pcap, server_pcap, manifest, out;
  std::string client_addr, server_addr, target;
  bool force = false;
  bool json_only = false;
  bool quiet = false;
};

Result<std::optional<packet::IpAddr>> parse_addr_flag(const std::string& flag, const std::string& text) {
  if (text.empty()) return std::optional<packet::IpAddr>{};
  auto a = packet::IpAddr::parse(text);
  if (!a) return make_error(Errc::usage, "analyze", flag + " " + text + ": not an IPv4 or IPv6 address");
  return std::optional<packet::IpAddr>{*a};
}

std::string base_name(const std::string& path) { return std::filesystem::path(path).filename().string(); }

// --target ADDR:PORT ([ADDR]:PORT for IPv6) or a bare ADDR (ICMP): literal addresses only, since
// analyze never touches the network (no DNS).
Result<std::pair<std::optional<packet::IpAddr>, std::optional<std::uint16_t>>> parse_target_flag(const std::string& text) {
  using R = std::pair<std::optional<packet::IpAddr>, std::optional<std::uint16_t>>;
  if (text.empty()) return R{};
  if (auto bare = packet::IpAddr::parse(text)) return R{*bare, std::nullopt};
  auto hp = split_host_port(text);
  if (!hp) return make_error(Errc::usage, "analyze", "--target " + text + ": not ADDR:PORT, [ADDR]:PORT or ADDR");
  auto addr = packet::IpAddr::parse(hp->first);
  if (!addr) {
    return make_error(Errc::usage, "analyze", "--target " + text + ": '" + hp->first +
                      "' is not an IPv4 or IPv6 address (analyze resolves no names)");
  }
  return R{*addr, hp->second};
}

int run_analyze(const AnalyzeArgs& a) {
  auto client_addr = parse_addr_flag("--client-addr", a.client_addr);
  if (!client_addr) return report_error(client_addr.error());
  auto server_addr = parse_addr_flag("--server-addr", a.server_addr);
  if (!server_addr) return report_error(server_addr.error());
  auto target = parse_target_flag(a.target);
  if (!target) return report_error(target.error());

  auto client = report::read_capture_file(a.client_pcap);
  if (!client) return report_error(client.error());
  auto server = report::read_capture_file(a.server_pcap);
  if (!server) return report_error(server.error());
  if (!a.quiet) {
    // A file cut short is read up to its last complete packet; the report says so too.
    for (const auto& w : client->stats.warnings) std::fprintf(stderr, "tandem: warning: %s: %s\n", a.client_pcap.c_str(), w.c_str());
    for (const auto& w : server->stats.warnings) std::fprintf(stderr, "tandem: warning: %s: %s\n", a.server_pcap.c_str(), w.c_str());
  }

  report::AnalyzeManifest manifest;
  if (!a.manifest.empty()) {
    auto m = report::read_manifest_file(a.manifest);
    if (!m) return report_error(m.error());
    if (auto st = report::check_manifest_bounds(*m, *client, a.manifest); !st) return report_error(st.error());
    manifest = std::move(*m);
  } else {
    manifest.run.l4.clear();  // inferred from the client capture
  }
  // The flags win over the manifest; correlate() infers whatever neither says (docs/analyze.md):
  // the client, and the flow with the most probes.
  auto& run = manifest.run;
  if (*client_addr) run.client = *client_addr;
  if (target->first) run.target = target->first;
  if (target->second) run.dport = target->second;
  client->local = run.client;
  if (*server_addr) server->local = *server_addr;

  auto corr = correlate::correlate(*client, *server, run);
  if (!corr) return report_error(corr.error());
  auto verdict = diagnose::diagnose(*corr);

  report::ReportContext ctx;
  ctx.mode = "analyze";
  ctx.target = corr->target;
  ctx.dport = corr->dport;
  ctx.l4 = corr->l4;
  ctx.client = corr->client;
  ctx.server = corr->server;
  ctx.probe = manifest.probe;
  ctx.count = run.count;
  ctx.rate_pps = manifest.rate_pps;
  ctx.run_key = run.run_key;
  ctx.client_input = base_name(a.client_pcap);
  ctx.server_input = base_name(a.server_pcap);

  report::BundleOptions opts;
  opts.force = a.force;
  opts.json_only = a.json_only;
  auto written = report::write_bundle(a.out, *corr, verdict, ctx, *client, *server, opts);
  if (!written) return report_error(written.error());
  if (!a.quiet) {
    ctx.client_capture = &*client;
    ctx.server_capture = &*server;
    std::fputs(report::summary_text(*corr, verdict, ctx, a.out, *written).c_str(), stdout);
  }
  return verdict.problem ? kExitProblemFound : 0;
}

}  // namespace

void register_analyze(CLI::App& app, CommandContext& ctx) {
  auto args = std::make_shared<AnalyzeArgs>();
  auto* cmd = app.add_subcommand(
      "analyze",
      "Offline: correlate two captures taken by hand (tcpdump on both ends) and write the evidence bundle.\n"
      "No network, no privileges. Exit 0 clean path, 1 usage, 4 problem found.");
  cmd->add_option("--client-pcap", args->client_pcap, "Capture taken on the client (pcap or pcapng)")
      ->required();
  cmd->add_option("--server-pcap", args->server_pcap, "Capture taken on the server (pcap or pcapng)")
      ->required();
  cmd->add_option("--manifest", args->manifest,
                  "Run manifest (JSON, see docs/analyze.md) or a tandem bundle's report.json");
  cmd->add_option("--out", args->out, "Bundle directory to write (created if missing)")->required();
  cmd->add_flag("--force", args->force, "Overwrite a non-empty --out that is not a previous tandem bundle");
  cmd->add_flag("--json-only", args->json_only, "Write report.json only (no report.md, no pcapng files)");
  cmd->add_option("--target", args->target,
                  "The flow to analyse: ADDR:PORT ([ADDR]:PORT for IPv6; ADDR for ICMP) as the client addressed it\n"
                  "(default: the flow with the most probes in the client capture; the others are listed)");
  cmd->add_option("--client-addr", args->client_addr,
                  "The client's address in the client capture (default: the sender of the flow with the most probes)");
  cmd->add_option("--server-addr", args->server_addr,
                  "The server's address in the server capture (default: where the SYNs arrive)");
  cmd->add_flag("-q,--quiet", args->quiet, "Print nothing on success; the bundle holds the report");
  cmd->callback([args, &ctx] { ctx.exit_code = run_analyze(*args); });
}

}  // namespace tandem::cli
