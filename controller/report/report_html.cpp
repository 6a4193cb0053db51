// report.html: the page around the ladders (report_ladder.cpp). Sections in the order a reader
// needs them: verdict, fates, findings, variants, ladders, what to look at next, evidence quality.
#include "controller/report/report_html.hpp"

#include <algorithm>
#include <span>

#include <fmt/format.h>

namespace tandem::report {
namespace {

using correlate::Fate;

// Inline and small: the page must render the same offline, printed, and at 360 px wide.
constexpr const char* kStyle = R"css(
:root{--fg:#1b1f24;--muted:#57606a;--line:#d0d7de;--bad:#b42318;--ok:#1a7f37;--warn:#9a6700;--bg:#fff}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:980px;margin:0 auto;padding:16px}
h1{font-size:1.35em;margin:.2em 0 .6em}h2{font-size:1.15em;margin:1.6em 0 .5em;border-bottom:1px solid var(--line);padding-bottom:.2em}
h3{font-size:1em;margin:1.2em 0 .3em}
.meta{color:var(--muted);font-size:.9em}
#verdict{border:2px solid var(--line);border-left-width:10px;border-radius:6px;padding:10px 14px;margin:10px 0 4px}
#verdict.problem{border-color:var(--bad)}#verdict.warning{border-color:var(--warn)}#verdict.ok{border-color:var(--ok)}
#verdict .badge{font-weight:700;letter-spacing:.04em;font-size:.85em}
#verdict.problem .badge{color:var(--bad)}#verdict.ok .badge{color:var(--ok)}#verdict.warning .badge{color:var(--warn)}
.verdict-text{font-size:1.15em;font-weight:600;margin:.2em 0}
code{font:.9em ui-monospace,"DejaVu Sans Mono",monospace;background:#f6f8fa;padding:0 .25em;border-radius:3px}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:.4em 0;font-size:.92em}
th,td{border:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}
tr.bad td{background:#fff5f5}th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.bar{display:inline-block;height:.7em;background:#8c959f;vertical-align:middle}
tr.zero{color:var(--muted)}
figure{margin:.6em 0 1em;page-break-inside:avoid;break-inside:avoid}
figcaption{font-size:.88em;color:var(--muted)}
svg.ladder{width:100%;max-width:700px;height:auto;display:block;border:1px solid var(--line);border-radius:4px}
svg.ladder text{font:12px system-ui,"DejaVu Sans",sans-serif;fill:var(--fg)}
svg.ladder text.lane{font-weight:700}svg.ladder text.frame,svg.ladder text.time{fill:var(--muted);font-size:11px}
svg.ladder text.change{fill:#8250df;font-weight:600}svg.ladder text.note{fill:var(--bad)}
svg.ladder .lane-line{stroke:#57606a;stroke-width:2}svg.ladder .path-line{stroke:#8c959f;stroke-dasharray:3 5}
svg.ladder .arrow line{stroke:#1b1f24;stroke-width:1.6}svg.ladder .arrow polygon{fill:#1b1f24}
svg.ladder .arrow.reply line{stroke:#0969da}svg.ladder .arrow.reply polygon{fill:#0969da}
svg.ladder .arrow.injected line,svg.ladder .arrow.icmp line{stroke:var(--bad)}
svg.ladder .arrow.injected polygon,svg.ladder .arrow.icmp polygon{fill:var(--bad)}
svg.ladder .loss line{stroke:var(--bad);stroke-width:3}
footer{margin-top:2em;color:var(--muted);font-size:.85em}
@media print{body{font-size:11pt}main{max-width:none;padding:0}.scroll{overflow:visible}a{color:inherit}}
@media (max-width:520px){body{font-size:14px}main{padding:10px}th,td{padding:2px 5px}}
)css";

std::string target_words(const ReportContext& ctx) {
  std::string addr = ctx.target ? ctx.target->to_string() : std::string("an unknown target");
  if (ctx.l4 == "icmp" || !ctx.dport) return addr + " (" + ctx.l4 + ")";
  return fmt::format("{} port {}/{}", addr, *ctx.dport, ctx.l4);
}

std::string pct(std::uint64_t n, std::uint64_t total) {
  return total ? fmt::format("{:.1f} %", 100.0 * static_cast<double>(n) / static_cast<double>(total)) : "—";
}

std::string section_fates(const Correlation& c) {
  auto counts = fate_counts(c);
  const std::uint64_t total = c.probes.size();
  std::string s = "<h2>Fates</h2><div class=\"scroll\"><table id=\"fates\"><thead><tr><th>Fate</th><th>Probes</th>"
                  "<th>Share</th><th>Meaning</th></tr></thead><tbody>";
  for (std::size_t i = 0; i < correlate::kFateCount; ++i) {
    const auto f = static_cast<Fate>(i);
    const double w = total ? 120.0 * static_cast<double>(counts[i]) / static_cast<double>(total) : 0.0;
    s += fmt::format("<tr{}><td><code>{}</code></td><td class=\"n\">{}</td><td class=\"n\"><span class=\"bar\" "
                     "style=\"width:{:.0f}px\"></span> {}</td><td>{}</td></tr>",
                     counts[i] ? "" : " class=\"zero\"", correlate::fate_name(f), counts[i], w, pct(counts[i], total),
                     html_escape(fate_meaning(f)));
  }
  return s + "</tbody></table></div>";
}

std::string section_findings(const Correlation& c) {
  std::string s = "<h2>Changes made in transit</h2>";
  if (c.findings.empty()) {
    return s + "<p>None: every field compared arrived as it was sent (TTL decrements and checksum updates are "
               "normal and not listed).</p>";
  }
  s += "<ul>";
  for (const auto& f : c.findings) s += "<li>" + html_escape(finding_sentence(f, c.probes.size())) + "</li>";
  s += "</ul><div class=\"scroll\"><table id=\"findings\"><thead><tr><th>Direction</th><th>Field</th><th>Sent</th>"
       "<th>Received</th><th>Probes</th></tr></thead><tbody>";
  for (const auto& f : c.findings) {
    s += fmt::format("<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
                     correlate::direction_name(f.direction), html_escape(f.field),
                     html_escape(f.sent.is_null() ? "(absent)" : f.sent.dump()),
                     html_escape(f.received.is_null() ? "(absent)" : f.received.dump()), f.probes);
  }
  return s + "</tbody></table></div>";
}

// Per variant of this correlation (a trace has one: no table).
std::string section_variants(const Correlation& c) {
  if (c.variants.size() < 2) return "";
  std::string s = "<h2>Per variant</h2><div class=\"scroll\"><table id=\"variants\"><thead><tr><th>Variant</th>"
                  "<th>TCP options</th><th>Probes</th><th>Failed</th><th>Failure rate</th><th>Fates</th>"
                  "<th>Failing probes (ids)</th></tr>"
                  "</thead><tbody>";
  for (const auto& vs : diagnose::summarize_variants(c)) {
    const auto& var = c.variants[vs.variant];
    std::string fates;
    for (std::size_t i = 0; i < correlate::kFateCount; ++i) {
      if (vs.fates.n[i] == 0) continue;
      fates += fmt::format("{}{} {}", fates.empty() ? "" : ", ", vs.fates.n[i], correlate::fate_name(static_cast<Fate>(i)));
    }
    std::string ids;
    for (auto id : failing_probe_ids(c, vs.variant, 8)) ids += (ids.empty() ? "" : ", ") + std::to_string(id);
    s += fmt::format("<tr><td>{}</td><td><code>{}</code></td><td class=\"n\">{}</td><td class=\"n\">{}</td>"
                     "<td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
                     html_escape(var.name), html_escape(var.tcp_options.empty() ? "none" : var.tcp_options),
                     vs.fates.total, vs.fates.failed(), pct(vs.fates.failed(), vs.fates.decided()),
                     html_escape(fates.empty() ? "—" : fates), ids.empty() ? "—" : ids);
  }
  return s + "</tbody></table></div>";
}

// Per vantage (DESIGN.md §3/§5): where the path fails and where it does not; one vantage: no table.
std::string section_vantages(const ReportContext& ctx) {
  if (ctx.vantages.size() < 2) return "";
  std::string s = "<h2>Per vantage</h2><div class=\"scroll\"><table id=\"vantages\"><thead><tr><th>Client agent</th>"
                  "<th>Source</th><th>Target</th><th>Server agent</th><th>Probes</th><th>Failed</th><th>Failure rate</th>"
                  "<th>Fates</th><th>Verdict</th></tr></thead><tbody>";
  for (const auto& row : ctx.vantages) {
    auto f = vantage_fates(row);
    std::string fates;
    for (std::size_t i = 0; i < correlate::kFateCount; ++i) {
      if (f.n[i] == 0) continue;
      fates += fmt::format("{}{} {}", fates.empty() ? "" : ", ", f.n[i], correlate::fate_name(static_cast<Fate>(i)));
    }
    s += fmt::format("<tr{}><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td class=\"n\">{}</td>"
                     "<td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td><code>{}</code></td></tr>",
                     f.failed() ? " class=\"bad\"" : "", html_escape(row.client), html_escape(row.src.empty() ? "—" : row.src),
                     html_escape(row.target), html_escape(row.server.empty() ? "—" : row.server), row.probes, f.failed(),
                     pct(f.failed(), f.decided()), html_escape(fates.empty() ? "—" : fates), html_escape(row.verdict));
  }
  return s + "</tbody></table></div>";
}

// The bisection's own table (every round), from the report.json "bisect" block.
std::string section_bisect(const ReportContext& ctx) {
  if (!ctx.bisect.is_object()) return "";
  const auto& b = ctx.bisect;
  std::string s = "<h2>Bisection</h2>";
  if (b.contains("verdict") && b["verdict"].is_string()) s += "<p>" + html_escape(b["verdict"].get<std::string>()) + "</p>";
  s += fmt::format("<p class=\"meta\">{} rounds, {} probes (budget {}), confidence {:.0f} %.</p>", b.value("rounds", 0),
                   b.value("probes_used", 0), b.value("budget", 0), 100.0 * b.value("confidence", 0.0));
  if (!b.contains("variants") || !b["variants"].is_array()) return s;
  s += "<div class=\"scroll\"><table id=\"bisect-variants\"><thead><tr><th>Variant</th><th>TCP options</th>"
       "<th>Sent</th><th>Failed</th><th>Rate</th><th>95 % CI</th></tr></thead><tbody>";
  for (const auto& v : b["variants"]) {
    std::string ci = "—";
    if (v.contains("ci95") && v["ci95"].is_array() && v["ci95"].size() == 2) {
      ci = fmt::format("{:.1f} – {:.1f} %", 100.0 * v["ci95"][0].get<double>(), 100.0 * v["ci95"][1].get<double>());
    }
    const std::string opts = v.value("tcp_options", std::string());
    s += fmt::format("<tr><td>{}</td><td><code>{}</code></td><td class=\"n\">{}</td><td class=\"n\">{}</td>"
                     "<td class=\"n\">{:.1f} %</td><td class=\"n\">{}</td></tr>",
                     html_escape(v.value("name", std::string())), html_escape(opts.empty() ? "none" : opts),
                     v.value("sent", 0), v.value("failed", 0), 100.0 * v.value("rate", 0.0), ci);
  }
  return s + "</tbody></table></div>";
}

std::string section_ladders(const Correlation& c, const ReportContext& ctx) {
  auto counts = fate_counts(c);
  std::string s = "<h2>What happened to the probes</h2><p class=\"meta\">Representative probes of every fate. "
                  "Arrows are in event order, not to time scale; times are relative to the probe leaving the "
                  "client (server times moved to the client's clock when the offset is known). Frame numbers "
                  "are the packets' numbers in this bundle's client.pcapng and server.pcapng (as Wireshark "
                  "counts them). Field changes are written on the arrow of the direction they happened in.</p>";
  s += "<section id=\"ladders\">";
  for (std::size_t i = 0; i < correlate::kFateCount; ++i) {
    if (counts[i] == 0) continue;
    const auto f = static_cast<Fate>(i);
    s += fmt::format("<h3><code>{}</code>: {} probe{}</h3>", correlate::fate_name(f), counts[i], counts[i] == 1 ? "" : "s");
    std::size_t shown = 0;
    for (const auto& p : c.probes) {
      if (p.fate != f) continue;
      if (shown++ == kLaddersPerFate) break;
      std::string caption = fmt::format("Probe {}", p.id);
      if (p.variant < c.variants.size() && c.variants.size() > 1) caption += ", variant " + c.variants[p.variant].name;
      if (p.client_tx_ns) caption += ", sent " + format_utc(p.client_tx_ns);
      if (!p.note.empty()) caption += ". " + p.note;
      s += "<figure>" + ladder_svg(p, c, ctx) + "<figcaption>" + html_escape(caption) + "</figcaption></figure>";
    }
  }
  return s + "</section>";
}

std::string section_next(const Correlation& c) {
  auto counts = fate_counts(c);
  std::string items;
  for (std::size_t i = 0; i < correlate::kFateCount; ++i) {
    const auto f = static_cast<Fate>(i);
    if (counts[i] == 0 || f == Fate::answered) continue;
    items += fmt::format("<li><b><code>{}</code></b> ({} probes): {}</li>", correlate::fate_name(f), counts[i],
                         html_escape(next_step(f, c)));
  }
  return "<h2>What to look at next</h2>" + (items.empty() ? "<p>Nothing: every probe was answered.</p>" : "<ul>" + items + "</ul>");
}

std::string capture_words(const char* side, bool present, std::uint64_t packets, const pcapio::CaptureStats& s) {
  if (!present) return fmt::format("{} capture: absent — probes that depend on it are unknown.", side);
  if (!s.available) return fmt::format("{} capture: {} packets; drops unknown.", side, packets);
  return fmt::format("{} capture: {} packets, {} dropped by the capture.", side, packets, s.dropped + s.if_dropped);
}

std::string section_evidence(const Correlation& c) {
  std::string clock = c.clock.source.empty() || c.clock.source == "none"
                          ? std::string("Clock offset between the two ends: unknown.")
                          : fmt::format("Clock offset: server − client = {:.1f} µs ± {:.1f} µs (from {}).",
                                        static_cast<double>(c.clock.offset_ns) / 1e3,
                                        static_cast<double>(c.clock.error_ns) / 1e3, c.clock.source);
  std::string s = "<h2>Evidence quality</h2><ul><li>" + html_escape(clock) + "</li>";
  s += "<li>" + html_escape(capture_words("Client", c.client_present, c.client_packets, c.client_stats)) + "</li>";
  s += "<li>" + html_escape(capture_words("Server", c.server_present, c.server_packets, c.server_stats)) + "</li>";
  if (c.ambiguous) s += fmt::format("<li>{} packets matched more than one probe and were not used.</li>", c.ambiguous);
  if (c.unmatched_client || c.unmatched_server) {
    s += fmt::format("<li>Packets about no probe: {} in the client capture, {} in the server capture.</li>",
                     c.unmatched_client, c.unmatched_server);
  }
  // What a capture could not prove (docs/correlation.md "Evidence checks"), and how to retake it.
  for (const auto& pr : c.capture_problems) {
    s += fmt::format("<li class=\"capture-problem\"><strong>{} capture: {}</strong> — {}{} <em>To retake:</em> {}</li>",
                     html_escape(pr.side), html_escape(pr.code), html_escape(pr.text),
                     pr.probes ? fmt::format(" ({} probes left unknown.)", pr.probes) : std::string(),
                     html_escape(pr.retake));
  }
  s += "</ul>";
  // Every flow of probes in the client capture: the reader sees what was left out.
  if (c.flows.size() > 1) {
    s += "<h3>Flows in the client capture</h3><div class=\"scroll\"><table id=\"flows\"><thead><tr><th>Client</th>"
         "<th>Target</th><th>Port</th><th>Probes</th><th>Analysed</th></tr></thead><tbody>";
    for (const auto& f : c.flows) {
      s += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", html_escape(f.client.to_string()),
                       html_escape(f.target.to_string()), f.dport ? std::to_string(f.dport) : std::string("—"), f.probes,
                       f.analysed ? "yes" : "");
    }
    s += "</tbody></table></div>";
  }
  return s;
}

}  // namespace

std::vector<std::uint32_t> failing_probe_ids(const Correlation& c, std::uint16_t variant, std::size_t max) {
  std::vector<std::uint32_t> ids;
  for (const auto& p : c.probes) {
    if (ids.size() == max) break;
    if (p.variant != variant) continue;
    diagnose::FateCounts one = diagnose::count_fates(std::span(&p, 1));
    if (one.failed() > 0) ids.push_back(p.id);
  }
  return ids;
}

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += ch;
    }
  }
  return out;
}

std::string report_html(const Correlation& c, const Verdict& v, const ReportContext& ctx) {
  const std::string client = ctx.client ? ctx.client->to_string() : std::string("the client");
  const std::string title = fmt::format("tandem report: {} from {}", target_words(ctx), client);
  const char* sev = v.severity == diagnose::Severity::problem ? "problem"
                    : v.severity == diagnose::Severity::warning ? "warning"
                                                                 : "ok";
  std::string s = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                  "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">";
  s += "<title>" + html_escape(title) + "</title><style>" + kStyle + "</style></head><body><main>";
  s += "<h1>" + html_escape(title) + "</h1>";
  s += fmt::format("<section id=\"verdict\" class=\"{}\"><div class=\"badge\">{}</div><p class=\"verdict-text\">{}</p>"
                   "<p class=\"meta\">verdict code <code>{}</code> · mode {} · {} probes</p>",
                   sev, v.problem ? "PROBLEM FOUND" : "NO PROBLEM FOUND", html_escape(v.text), html_escape(v.code),
                   html_escape(ctx.mode), c.probes.size());
  if (!v.secondary.empty()) {
    s += "<p>Also:</p><ul>";
    for (const auto& item : v.secondary) {
      s += fmt::format("<li>{} (<code>{}</code>)</li>", html_escape(item.text), html_escape(item.code));
    }
    s += "</ul>";
  }
  s += "</section>";
  s += fmt::format("<p class=\"meta\">Client {}{} · server {}{} · probe {}</p>",
                   html_escape(ctx.client ? ctx.client->to_string() : "unknown"),
                   ctx.client_agent.empty() ? "" : " (agent " + html_escape(ctx.client_agent) + ")",
                   html_escape(ctx.server ? ctx.server->to_string() : "unknown"),
                   ctx.server_agent.empty() ? "" : " (agent " + html_escape(ctx.server_agent) + ")",
                   html_escape(ctx.probe.empty() ? "taken from the captures" : ctx.probe));
  s += section_fates(c);
  s += section_findings(c);
  s += section_vantages(ctx);
  s += section_bisect(ctx);
  s += section_variants(c);
  s += section_ladders(c, ctx);
  s += section_next(c);
  s += section_evidence(c);
  s += "<footer>Written by tandem (mode " + html_escape(ctx.mode) +
       "). The per-probe data is in report.json; both captures and a merged, clock-corrected capture with "
       "per-packet comments (\"probe N FATE role\") are in this bundle.</footer>";
  s += "</main></body></html>\n";
  return s;
}

}  // namespace tandem::report
