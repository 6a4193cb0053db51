#include "controller/run/pipeline.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "common/base/clock.hpp"
#include "controller/correlate/correlate.hpp"
#include "controller/diagnose/diagnose.hpp"
#include "controller/report/analyze_input.hpp"
#include "controller/report/bundle.hpp"
#include "controller/run/vantage.hpp"

namespace tandem::run {

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
  if (phase == "capture") return "starting the captures on every agent";
  if (phase == "send") return "sending";
  if (phase == "fetch") return "fetching the captures";
  if (phase == "end") return "ending the run on every agent";
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

correlate::CaptureSide with_stats(correlate::CaptureSide side, const proto::CaptureStats& s) {
  side.stats.available = true;
  side.stats.received = s.received;
  side.stats.dropped = s.dropped;
  side.stats.if_dropped = s.if_dropped;
  if (!s.if_dropped_known) side.stats.unavailable_reason = "interface drops unknown";
  return side;
}

// An agent as report.json names it (DESIGN.md §5): its agent_id, else its endpoint.
std::string agent_name(const orchestrate::SideResult& s, const transport::AgentAddress& a) {
  return s.hello.agent_id.empty() ? a.endpoint : s.hello.agent_id;
}

std::string target_text(const packet::IpAddr& a, std::uint16_t port, const std::string& l4) {
  if (l4 == "icmp") return a.to_string();
  return a.is_v4() ? fmt::format("{}:{}", a.to_string(), port) : fmt::format("[{}]:{}", a.to_string(), port);
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

  // Every capture, read once. The agents captured the run's own flows for the whole run: an empty
  // capture means nothing came (vouched).
  std::vector<AgentCapture> clients, servers;
  for (const auto& c : ev->clients) {
    if (c.pcapng_path.empty()) continue;  // took no part in this run
    auto side = report::read_capture_file(c.pcapng_path);
    if (!side) return side.error();
    AgentCapture a{with_stats(std::move(side).value(), c.stats), c.clock.offset_ns, c.clock.error_ns};
    a.side.vouched = true;
    clients.push_back(std::move(a));
  }
  for (const auto& s : ev->servers) {
    if (!s) continue;
    auto side = report::read_capture_file(s->pcapng_path);
    if (!side) return side.error();
    AgentCapture a{with_stats(std::move(side).value(), s->stats), s->clock.offset_ns, s->clock.error_ns};
    a.side.vouched = true;
    servers.push_back(std::move(a));
  }
  // Several agents of a role: their captures are merged on the controller's clock, so every cell's
  // clock offset is 0 with both agents' error bounds.
  const bool common_clock = clients.size() > 1 || servers.size() > 1;
  Nanos clock_error = 0;
  for (const auto& c : clients) clock_error = std::max(clock_error, c.error_ns);
  for (const auto& s : servers) clock_error = std::max(clock_error, s.error_ns);
  auto client_side = merge_captures(std::move(clients), common_clock);
  if (!client_side) return client_side.error();
  correlate::CaptureSide server_side;
  if (!servers.empty()) {
    auto merged = merge_captures(std::move(servers), common_clock);
    if (!merged) return merged.error();
    server_side = std::move(merged).value();
  }
  if (ev->cells.size() == 1) client_side->local = ev->cells.front().source;

  std::vector<CellInput> cells;
  std::vector<report::VantageRow> rows;
  for (const auto& cell : ev->cells) {
    CellInput in;
    in.vantage = rows.size();
    in.manifest = cell.manifest;
    in.variant_map = cell.variant_map;
    // Several servers in one merged server side: each cell's server is its own target (or what a
    // DNAT makes of it).
    if (req.targets.size() > 1) {
      const auto& t = req.targets[cell.target];
      in.manifest.server = t.server_sees_address ? *t.server_sees_address : t.address;
    }
    if (common_clock && in.manifest.clock) in.manifest.clock = correlate::ClockEstimate{0, 2 * clock_error, "clock-probe"};
    cells.push_back(std::move(in));
    report::VantageRow row;
    row.client = agent_name(ev->clients[cell.client], req.clients[cell.client].agent);
    row.src = cell.source ? cell.source->to_string() : "";
    const auto& t = req.targets[cell.target];
    if (ev->servers[cell.target] && t.server) row.server = agent_name(*ev->servers[cell.target], *t.server);
    row.target = target_text(t.address, req.plan.dport, cell.manifest.l4);
    rows.push_back(std::move(row));
  }

  Combined combined;
  diagnose::Verdict verdict;
  const bool remapped = std::any_of(cells.begin(), cells.end(), [](const CellInput& c) { return !c.variant_map.empty(); });
  if (cells.size() == 1 && !remapped) {
    // One vantage: the correlation as it always was.
    auto corr = correlate::correlate(*client_side, server_side, cells.front().manifest);
    if (!corr) return corr.error();
    combined.correlation = std::move(corr).value();
    combined.probe_vantage.assign(combined.correlation.probes.size(), 0);
    verdict = diagnose::diagnose(combined.correlation);
    combined.cell_verdicts.push_back(verdict);
  } else {
    // The run's own variants, named as the request names them (bisect rounds).
    std::vector<correlate::Variant> variants;
    if (remapped) {
      const auto& p = req.plan;
      for (std::size_t i = 0; i < p.variants.size(); ++i) {
        const auto& v = p.variants[i];
        variants.push_back(correlate::Variant{i < req.variant_names.size() ? req.variant_names[i].name : fmt::format("v{}", i),
                                              v.tcp_options, v.tos, v.sport.empty() ? p.sport : v.sport,
                                              v.ttl != 0 ? v.ttl : p.ttl});
      }
    }
    auto c = correlate_cells(*client_side, server_side, cells, variants);
    if (!c) return c.error();
    combined = std::move(c).value();
  }
  count_vantages(combined, cells, rows);
  if (cells.size() > 1 || remapped) verdict = vantage_verdict(combined, rows);
  const auto& corr = combined.correlation;

  report::ReportContext ctx;
  ctx.mode = mode;
  ctx.target = req.targets.front().address;
  ctx.dport = req.plan.dport;
  ctx.l4 = ev->cells.front().manifest.l4;
  // Who is who as the captures show it (the server's own address differs from the target under NAT).
  ctx.client = ev->cells.front().source;
  if (!ctx.client) ctx.client = corr.client;
  ctx.server = corr.server;
  for (std::size_t c = 0; c < req.clients.size(); ++c) {
    ctx.client_agent += (c ? ", " : "") + req.clients[c].agent.endpoint;
  }
  for (const auto& t : req.targets) {
    if (t.server) ctx.server_agent += (ctx.server_agent.empty() ? "" : ", ") + t.server->endpoint;
  }
  ctx.count = static_cast<std::uint32_t>(std::min<std::uint64_t>(UINT32_MAX, std::uint64_t{req.plan.count} * ev->cells.size()));
  if (req.plan.rate_pps) ctx.rate_pps = req.plan.rate_pps;
  if (ev->cells.size() == 1) ctx.run_key = ev->cells.front().manifest.run_key;
  ctx.probe = fmt::format("{} dport {} options {} tos {} sport {}", ctx.l4, req.plan.dport,
                          req.plan.tcp_options.empty() ? "none" : req.plan.tcp_options, req.plan.tos, req.plan.sport);
  if (ev->cells.size() > 1) ctx.probe += fmt::format(" ({} per vantage, {} vantages)", req.plan.count, ev->cells.size());
  ctx.bisect = bisect_block;
  ctx.client_capture = &*client_side;
  ctx.server_capture = &server_side;
  ctx.vantages = rows;
  ctx.probe_vantage = combined.probe_vantage;
  if (write) {
    report::BundleOptions bo;
    bo.force = true;  // checked above, before the run; our own fetched captures are in there now
    auto written = report::write_bundle(req.out_dir, corr, verdict, ctx, *client_side, server_side, bo);
    if (!written) return written.error();
    std::fputs(report::summary_text(corr, verdict, ctx, req.out_dir, *written).c_str(), stdout);
  }
  Analysis a;
  a.client = std::move(client_side).value();
  a.server = std::move(server_side);
  a.correlation = std::move(combined.correlation);
  a.vantages = std::move(rows);
  a.probe_vantage = std::move(combined.probe_vantage);
  a.verdict_code = verdict.code;
  a.problem = verdict.problem;
  return a;
}

}  // namespace tandem::run
