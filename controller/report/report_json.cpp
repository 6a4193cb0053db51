#include <algorithm>
#include <functional>
#include <string_view>

#include <fmt/format.h>

#include "common/base/version.hpp"
#include "controller/report/report.hpp"

namespace tandem::report {
namespace {

using ojson = nlohmann::ordered_json;
using correlate::Fate;

ojson addr_or_null(const std::optional<packet::IpAddr>& a) { return a ? ojson(a->to_string()) : ojson(nullptr); }
ojson text_or_null(const std::string& s) { return s.empty() ? ojson(nullptr) : ojson(s); }

// Drops are only a number when libpcap reported them; otherwise null plus the reason, so that a
// reader never takes "unknown" for "none lost".
ojson capture_json(bool present, std::uint64_t packets, const pcapio::CaptureStats& s) {
  ojson j;
  j["present"] = present;
  j["received"] = present ? ojson(packets) : ojson(nullptr);
  if (present && s.available) {
    j["dropped"] = s.dropped + s.if_dropped;
  } else {
    j["dropped"] = nullptr;
    j["dropped_unknown"] = present ? (s.unavailable_reason.empty() ? std::string("drops not reported")
                                                                    : s.unavailable_reason)
                                   : std::string("no capture from this end");
  }
  if (!s.warnings.empty()) j["warnings"] = s.warnings;  // only when there are some: a file cut short
  return j;
}

ojson fates_json(const std::vector<std::uint64_t>& counts) {
  ojson j = ojson::object();
  for (std::size_t i = 0; i < correlate::kFateCount; ++i) {
    j[std::string(correlate::fate_name(static_cast<Fate>(i)))] = counts[i];
  }
  return j;
}

std::string variant_name(const Correlation& c, std::uint16_t idx) {
  if (idx < c.variants.size() && !c.variants[idx].name.empty()) return c.variants[idx].name;
  return idx == 0 && c.variants.empty() ? std::string("default") : "variant" + std::to_string(idx);
}

}  // namespace

std::vector<std::uint64_t> fate_counts(const Correlation& c) {
  std::vector<std::uint64_t> counts(correlate::kFateCount, 0);
  for (const auto& p : c.probes) ++counts[static_cast<std::size_t>(p.fate)];
  return counts;
}

namespace {

// Everything report.json holds before "probes", in its key order.
ojson report_head(const Correlation& c, const Verdict& v, const ReportContext& ctx) {
  ojson r;
  r["tool"] = "tandem";
  r["version"] = kVersion;
  r["mode"] = ctx.mode;
  r["target"] = ojson{{"address", addr_or_null(ctx.target)},
                      {"port", ctx.dport ? ojson(*ctx.dport) : ojson(nullptr)},
                      {"protocol", ctx.l4}};
  r["client"] = ojson{{"address", addr_or_null(ctx.client)}, {"agent", text_or_null(ctx.client_agent)}};
  r["server"] = ojson{{"address", addr_or_null(ctx.server)}, {"agent", text_or_null(ctx.server_agent)}};

  ojson run;
  run["probe"] = text_or_null(ctx.probe);
  run["count"] = ctx.count ? ojson(*ctx.count) : ojson(nullptr);
  run["run_key"] = ctx.run_key ? ojson(*ctx.run_key) : ojson(nullptr);
  run["rate_pps"] = ctx.rate_pps ? ojson(*ctx.rate_pps) : ojson(nullptr);
  // The time window comes from the probes themselves (client clock), so it is the same for a live
  // run and for the analysis of its captures.
  Nanos first = 0, last = 0;
  for (const auto& p : c.probes) {
    if (p.client_tx_ns == 0) continue;
    if (first == 0 || p.client_tx_ns < first) first = p.client_tx_ns;
    last = std::max(last, p.client_tx_ns);
  }
  run["first_probe_ns"] = first ? ojson(first) : ojson(nullptr);
  run["last_probe_ns"] = last ? ojson(last) : ojson(nullptr);
  run["inputs"] = ojson{{"client", text_or_null(ctx.client_input)}, {"server", text_or_null(ctx.server_input)}};
  r["run"] = std::move(run);

  r["clock"] = ojson{{"offset_ns", c.clock.offset_ns},
                     {"error_ns", c.clock.error_ns},
                     {"source", c.clock.source.empty() ? std::string("none") : c.clock.source}};
  r["capture"] = ojson{{"client", capture_json(c.client_present, c.client_packets, c.client_stats)},
                       {"server", capture_json(c.server_present, c.server_packets, c.server_stats)},
                       {"unmatched", ojson{{"client", c.unmatched_client}, {"server", c.unmatched_server}}},
                       {"ambiguous", c.ambiguous},
                       {"duplicates", ojson{{"client", c.client_duplicates}, {"server", c.server_duplicates}}}};
  // What the captures could not prove (docs/correlation.md "Evidence checks"): each problem, the
  // probes it left unknown (0 = a warning that changed no fate) and how to retake the capture.
  ojson problems = ojson::array();
  for (const auto& pr : c.capture_problems) {
    problems.push_back(ojson{{"side", pr.side}, {"code", pr.code}, {"probes", pr.probes}, {"text", pr.text},
                             {"retake", pr.retake}});
  }
  r["capture"]["problems"] = std::move(problems);
  // Every flow of probe-shaped packets in the client capture, the analysed one marked, so that a
  // reader sees what was left out.
  ojson flows = ojson::array();
  for (const auto& f : c.flows) {
    flows.push_back(ojson{{"client", f.client.to_string()}, {"target", f.target.to_string()},
                          {"port", f.dport ? ojson(f.dport) : ojson(nullptr)}, {"probes", f.probes},
                          {"analysed", f.analysed}});
  }
  r["flows"] = std::move(flows);

  auto counts = fate_counts(c);
  r["summary"] = ojson{{"probes", c.probes.size()}, {"fates", fates_json(counts)}};
  ojson verdict{{"code", v.code}, {"text", v.text}, {"severity", diagnose::severity_name(v.severity)}};
  ojson secondary = ojson::array();
  for (const auto& item : v.secondary) {
    secondary.push_back(ojson{{"code", item.code}, {"text", item.text}, {"severity", diagnose::severity_name(item.severity)}});
  }
  verdict["secondary"] = std::move(secondary);
  r["verdict"] = std::move(verdict);

  ojson findings = ojson::array();
  for (const auto& f : c.findings) {
    findings.push_back(ojson{{"code", f.code},
                             {"direction", correlate::direction_name(f.direction)},
                             {"field", f.field},
                             {"sent", ojson(f.sent)},
                             {"received", ojson(f.received)},
                             {"probes", f.probes}});
    // Per-probe values (NAT ports, rewritten sequence numbers) are merged into one finding whose
    // sent/received are an example; "distinct" says so, and is omitted when there was one pair.
    if (f.distinct > 1) findings.back()["distinct"] = f.distinct;
  }
  r["findings"] = std::move(findings);

  // The run's vantages (DESIGN.md §3): one row per (client agent, source address, target).
  if (!ctx.vantages.empty()) {
    ojson vantage = ojson::array();
    for (const auto& row : ctx.vantages) {
      std::vector<std::uint64_t> vc = row.fates;
      vc.resize(correlate::kFateCount, 0);
      vantage.push_back(ojson{{"client", row.client},
                              {"src", text_or_null(row.src)},
                              {"server", text_or_null(row.server)},
                              {"target", row.target},
                              {"probes", row.probes},
                              {"fates", fates_json(vc)},
                              {"verdict", row.verdict}});
    }
    r["vantage"] = std::move(vantage);
  }

  // Per-variant counts let bisect and trace share one shape; a trace has a single variant.
  ojson variants = ojson::array();
  std::size_t nvariants = std::max<std::size_t>(c.variants.size(), 1);
  for (std::size_t i = 0; i < nvariants; ++i) {
    std::vector<std::uint64_t> vc(correlate::kFateCount, 0);
    std::uint64_t n = 0;
    for (const auto& p : c.probes) {
      if (p.variant != i) continue;
      ++n;
      ++vc[static_cast<std::size_t>(p.fate)];
    }
    ojson vj;
    vj["name"] = variant_name(c, static_cast<std::uint16_t>(i));
    if (i < c.variants.size()) {
      vj["tcp_options"] = text_or_null(c.variants[i].tcp_options);
      vj["tos"] = c.variants[i].tos;
      vj["sport"] = text_or_null(c.variants[i].sport);
      vj["ttl"] = c.variants[i].ttl == 0 ? ojson(nullptr) : ojson(c.variants[i].ttl);
    } else {
      vj["tcp_options"] = nullptr;
      vj["tos"] = nullptr;
      vj["sport"] = nullptr;
      vj["ttl"] = nullptr;
    }
    vj["probes"] = n;
    vj["fates"] = fates_json(vc);
    variants.push_back(std::move(vj));
  }
  r["variants"] = std::move(variants);
  return r;
}

// Probe i of c.probes.
ojson probe_json(const Correlation& c, const ReportContext& ctx, std::size_t i) {
  const auto& p = c.probes[i];
  ojson pj;
  pj["id"] = p.id;
  if (!ctx.vantages.empty()) {
    const auto& row = ctx.vantages[i < ctx.probe_vantage.size() ? ctx.probe_vantage[i] : 0];
    pj["client"] = row.client;
    pj["src"] = text_or_null(row.src);
  }
  pj["variant"] = variant_name(c, p.variant);
  pj["sport"] = p.sport;
  pj["fate"] = correlate::fate_name(p.fate);
  pj["reply"] = text_or_null(p.reply);
  pj["rtt_us"] = p.rtt_us ? ojson(*p.rtt_us) : ojson(nullptr);
  // Optional keys are omitted rather than null: most probes have none of them.
  if (p.hop) pj["hop"] = p.hop->to_string();
  if (p.forward_hops) pj["forward_hops"] = *p.forward_hops;
  if (p.reverse_hops) pj["reverse_hops"] = *p.reverse_hops;
  if (!p.note.empty()) pj["note"] = p.note;
  if (p.replies_sent > 0 || p.replies_received > 0) {
    pj["replies"] = ojson{{"sent", p.replies_sent}, {"received", p.replies_received}};
  }
  // Where the evidence is: 1-based frame numbers in each side's capture as read (Wireshark's
  // numbering of the input files / client.pcapng and server.pcapng), absent packets omitted.
  ojson frames = ojson::object();
  auto frame = [&](const char* key, std::uint32_t idx) {
    if (idx != correlate::kNoPacket) frames[key] = std::uint64_t{idx} + 1;
  };
  frame("client_probe", p.client_probe);
  frame("server_probe", p.server_probe);
  frame("server_reply", p.server_reply);
  frame("client_reply", p.client_reply);
  if (!frames.empty()) pj["frames"] = std::move(frames);
  return pj;
}

// error_handler replace: a stray invalid UTF-8 byte in a note must not throw at the last step.
std::string dump_text(const ojson& j) { return j.dump(2, ' ', false, ojson::error_handler_t::replace); }

// `text` (a value dumped at indent 0) as it reads nested `extra` spaces deeper: dump() escapes
// every newline inside strings, so each raw newline starts a line of the value.
void emit_nested(std::string text, std::size_t extra, const std::function<void(std::string_view)>& emit) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (char ch : text) {
    out.push_back(ch);
    if (ch == '\n') out.append(extra, ' ');
  }
  emit(out);
}

}  // namespace

nlohmann::ordered_json report_json(const Correlation& c, const Verdict& v, const ReportContext& ctx) {
  ojson r = report_head(c, v, ctx);
  ojson probes = ojson::array();
  for (std::size_t i = 0; i < c.probes.size(); ++i) probes.push_back(probe_json(c, ctx, i));
  r["probes"] = std::move(probes);
  if (!ctx.bisect.is_null()) r["bisect"] = ctx.bisect;
  return r;
}

std::string clients_words(const ReportContext& ctx) {
  std::vector<std::string> srcs;
  for (const auto& row : ctx.vantages) {
    if (!row.src.empty() && std::find(srcs.begin(), srcs.end(), row.src) == srcs.end()) srcs.push_back(row.src);
  }
  if (srcs.size() > 1) {
    std::string s;
    for (std::size_t i = 0; i < srcs.size(); ++i) s += (i == 0 ? "" : i + 1 == srcs.size() ? " and " : ", ") + srcs[i];
    return s;
  }
  return ctx.client ? ctx.client->to_string() : std::string("the client");
}

std::string failure_rate_text(const diagnose::FateCounts& f) {
  if (f.decided() == 0) return "—";
  return fmt::format("{:.1f} %", 100.0 * static_cast<double>(f.failed()) / static_cast<double>(f.decided()));
}

std::string dump_report(const nlohmann::ordered_json& report) { return dump_text(report) + "\n"; }

void write_report_json(const Correlation& c, const Verdict& v, const ReportContext& ctx,
                       const std::function<void(std::string_view)>& emit) {
  // The layout of dump(2) for the top-level object: one "key": value per line at indent 2, the
  // values nested 2 deeper; "probes" one element at a time at indent 4.
  const ojson head = report_head(c, v, ctx);
  emit("{\n");
  auto member = [&](const std::string& key) { emit("  " + dump_text(ojson(key)) + ": "); };
  for (const auto& [key, value] : head.items()) {
    member(key);
    emit_nested(dump_text(value), 2, emit);
    emit(",\n");
  }
  member("probes");
  if (c.probes.empty()) {
    emit("[]");
  } else {
    emit("[\n");
    for (std::size_t i = 0; i < c.probes.size(); ++i) {
      emit("    ");
      emit_nested(dump_text(probe_json(c, ctx, i)), 4, emit);
      emit(i + 1 < c.probes.size() ? ",\n" : "\n");
    }
    emit("  ]");
  }
  if (!ctx.bisect.is_null()) {
    emit(",\n");
    member("bisect");
    emit_nested(dump_text(ctx.bisect), 2, emit);
  }
  emit("\n}\n");
}

}  // namespace tandem::report
