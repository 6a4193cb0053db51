// `tandem analyze`: offline analysis of two captures taken by hand (DESIGN.md §3, docs/analyze.md).
// No network, no privileges: read both files, correlate, diagnose, write the bundle, print the
// summary. Exit 0 clean, 1 usage (a missing or garbage file is named), 4 a problem was found.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "controller/cli/command.hpp"
#include "controller/correlate/correlate.hpp"
#include "controller/diagnose/diagnose.hpp"
#include "controller/report/analyze_input.hpp"
#include "controller/report/bundle.hpp"
#include "controller/report/report.hpp"

namespace tandem::cli {
namespace {

struct AnalyzeArgs {
  std::string client_pcap, server_pcap, manifest, out;
  std::string client_addr, server_addr;
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

int run_analyze(const AnalyzeArgs& a) {
  auto client_addr = parse_addr_flag("--client-addr", a.client_addr);
  if (!client_addr) return report_error(client_addr.error());
  auto server_addr = parse_addr_flag("--server-addr", a.server_addr);
  if (!server_addr) return report_error(server_addr.error());

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
  }
  // The manifest's client address, then --client-addr, decide who the client is; the captures
  // fill in the rest.
  std::optional<packet::IpAddr> want_client = *client_addr ? *client_addr : manifest.run.client;
  auto ends = report::infer_endpoints(*client, *server, want_client, *server_addr);
  if (!ends) return report_error(ends.error());
  auto& run = manifest.run;
  if (!run.client) run.client = ends->client;
  if (!run.target) run.target = ends->target;
  if (!run.dport) run.dport = ends->dport;
  if (a.manifest.empty()) run.l4 = ends->l4;
  client->local = run.client;
  server->local = ends->server;

  auto corr = correlate::correlate(*client, *server, run);
  if (!corr) return report_error(corr.error());
  auto verdict = diagnose::diagnose(*corr);

  report::ReportContext ctx;
  ctx.mode = "analyze";
  ctx.target = run.target;
  ctx.dport = run.dport;
  ctx.l4 = run.l4;
  ctx.client = run.client;
  ctx.server = ends->server;
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
  cmd->add_option("--client-addr", args->client_addr,
                  "The client's address in the client capture (default: the host that sends SYNs)");
  cmd->add_option("--server-addr", args->server_addr,
                  "The server's address in the server capture (default: where the SYNs arrive)");
  cmd->add_flag("-q,--quiet", args->quiet, "Print nothing on success; the bundle holds the report");
  cmd->callback([args, &ctx] { ctx.exit_code = run_analyze(*args); });
}

}  // namespace tandem::cli
