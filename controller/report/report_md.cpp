#include <algorithm>
#include <ctime>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/packet/decode.hpp"
#include "common/packet/tcp_option.hpp"
#include "controller/report/report.hpp"

namespace tandem::report {
namespace {

using correlate::Fate;
using correlate::Finding;
using correlate::ProbeRecord;

constexpr std::size_t kExamplesPerFate = 5;

}  // namespace

std::string fate_meaning(Fate f) {
  switch (f) {
    case Fate::answered: return "reached the server, and the server's reply reached the client";
    case Fate::lost_forward: return "left the client, never seen at the server";
    case Fate::unanswered: return "seen at the server, the server sent nothing back";
    case Fate::reply_lost: return "the server replied, the reply never reached the client";
    case Fate::injected: return "the client got a reply the server never sent";
    case Fate::icmp_error: return "the client got an ICMP error about the probe";
    case Fate::not_sent: return "absent from the client's own capture";
    case Fate::unknown: return "evidence missing: not decided";
  }
  return "";
}

namespace {

// Plain-word values: numbers as numbers, a removed option as "(absent)", arrays joined by commas.
std::string value_text(const nlohmann::json& j) {
  if (j.is_null()) return "(absent)";
  if (j.is_string()) return j.get<std::string>();
  if (j.is_boolean()) return j.get<bool>() ? "set" : "clear";
  if (j.is_array()) {
    std::string s;
    for (const auto& e : j) s += (s.empty() ? "" : ",") + value_text(e);
    return s.empty() ? "(none)" : s;
  }
  return j.dump();
}

std::string field_words(const std::string& field) {
  static const std::pair<const char*, const char*> kNames[] = {
      {"ip.dscp", "DSCP"},
      {"ip.ecn", "ECN bits"},
      {"ip.ttl", "TTL"},
      {"ip.id", "IP ID"},
      {"ip.df", "Don't-Fragment flag"},
      {"ip.src", "source address"},
      {"ip.dst", "destination address"},
      {"tcp.sport", "TCP source port"},
      {"tcp.dport", "TCP destination port"},
      {"tcp.seq", "TCP sequence number"},
      {"tcp.window", "TCP window"},
      {"tcp.option.mss", "MSS option"},
      {"tcp.option.sack_perm", "SACK-permitted option"},
      {"tcp.option.wscale", "window-scale option"},
      {"tcp.option.timestamp", "timestamp option"},
      {"tcp.options.order", "TCP option order"},
  };
  for (const auto& [k, w] : kNames) {
    if (field == k) return w;
  }
  if (field.rfind("tcp.option.", 0) == 0) return "TCP option " + field.substr(11);
  return field;
}

std::string direction_words(correlate::Direction d) {
  return d == correlate::Direction::forward ? "on the way to the server" : "on the way back to the client";
}

std::string fate_list(const std::vector<std::uint64_t>& counts) {
  std::string s;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] == 0) continue;
    s += fmt::format("{}{} {}", s.empty() ? "" : ", ", counts[i], correlate::fate_name(static_cast<Fate>(i)));
  }
  return s.empty() ? "none" : s;
}

std::string target_text(const ReportContext& ctx) {
  std::string addr = ctx.target ? ctx.target->to_string() : std::string("an unknown target");
  if (ctx.l4 == "icmp" || !ctx.dport) return addr + " (" + ctx.l4 + ")";
  return fmt::format("{} port {}/{}", addr, *ctx.dport, ctx.l4);
}

std::string capture_text(const char* side, bool present, std::uint64_t packets, const pcapio::CaptureStats& s) {
  if (!present) return fmt::format("- {} capture: **absent** — probes that depend on it have fate `unknown`.", side);
  if (!s.available) {
    return fmt::format("- {} capture: {} packets; drops **unknown** ({}). A missing packet may be a capture drop.",
                       side, packets, s.unavailable_reason.empty() ? "not reported" : s.unavailable_reason);
  }
  std::uint64_t dropped = s.dropped + s.if_dropped;
  return fmt::format("- {} capture: {} packets, {} dropped by the capture{}.", side, packets, dropped,
                     dropped ? " (**some evidence may be missing**)" : "");
}

// The capture's warnings (a file cut short), one bullet each after its capture line.
std::string capture_warnings_text(const char* side, const pcapio::CaptureStats& s) {
  std::string out;
  for (const auto& w : s.warnings) out += fmt::format("- {} capture: **warning**: {}.\n", side, w);
  return out;
}

std::string clock_text(const correlate::ClockEstimate& k) {
  if (k.source.empty() || k.source == "none") {
    return "- Clock offset between the two ends: unknown (server timestamps are shown on the server's own clock).";
  }
  // µs, as every text output gives clock offsets and RTTs.
  double us = static_cast<double>(k.offset_ns) / 1e3;
  double err = static_cast<double>(k.error_ns) / 1e3;
  return fmt::format("- Clock offset: the server's clock is {:.1f} µs {} the client's (± {:.1f} µs, from {}). "
                     "Timestamps below are each end's own clock.",
                     us < 0 ? -us : us, us < 0 ? "behind" : "ahead of", err, k.source);
}

// How a probe looks in one capture: "10.0.0.1:40001 → 10.0.0.2:21 seq 12345".
std::string packet_text(const CaptureSide* side, std::uint32_t idx) {
  if (side == nullptr || idx == correlate::kNoPacket || idx >= side->packets.size()) return "";
  auto pv = side->packets[idx];
  auto d = packet::decode(static_cast<std::uint32_t>(side->linktype), pv.data, pv.origlen);
  if (d.l3 != packet::L3::ip) return "";
  auto host = [](const packet::IpAddr& a) { return a.is_v4() ? a.to_string() : "[" + a.to_string() + "]"; };
  switch (d.l4) {
    case packet::L4::tcp:
      return fmt::format("{}:{} → {}:{} seq {}", host(d.ip.src), d.tcp.sport, host(d.ip.dst), d.tcp.dport, d.tcp.seq);
    case packet::L4::udp:
      return fmt::format("{}:{} → {}:{} udp", host(d.ip.src), d.udp.sport, host(d.ip.dst), d.udp.dport);
    case packet::L4::icmp:
      return fmt::format("{} → {} icmp {}/{} id {} seq {}", d.ip.src.to_string(), d.ip.dst.to_string(),
                         d.icmp.type, d.icmp.code, d.icmp.id(), d.icmp.seq());
    default: return fmt::format("{} → {}", d.ip.src.to_string(), d.ip.dst.to_string());
  }
}

std::string ts_or_dash(Nanos ts) { return ts ? format_utc(ts) : std::string("—"); }

std::string md_escape(std::string s) {
  std::string out;
  for (char ch : s) {
    if (ch == '|') out += "\\|";
    else out += ch;
  }
  return out;
}

}  // namespace

std::string format_utc(Nanos ts_ns) {
  std::time_t secs = static_cast<std::time_t>(ts_ns / 1'000'000'000);
  long long frac_us = (ts_ns % 1'000'000'000) / 1000;
  if (frac_us < 0) {
    secs -= 1;
    frac_us += 1'000'000;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return fmt::format("{}.{:06d} UTC", buf, frac_us);
}

std::string finding_sentence(const Finding& f, std::uint64_t total) {
  std::string what = field_words(f.field);
  std::string change;
  if (f.received.is_null() && !f.sent.is_null()) {
    change = f.sent.is_boolean() || f.field == "tcp.option.sack_perm" ? what + " removed"
                                                                       : fmt::format("{} removed (was {})", what, value_text(f.sent));
  } else if (f.sent.is_null() && !f.received.is_null()) {
    change = fmt::format("{} added ({})", what, value_text(f.received));
  } else if (f.distinct > 1) {
    change = fmt::format("{} rewritten (e.g. {} → {}; {} different values)", what, value_text(f.sent),
                         value_text(f.received), f.distinct);
  } else {
    change = fmt::format("{} rewritten {} → {}", what, value_text(f.sent), value_text(f.received));
  }
  std::string count = f.probes == total ? fmt::format("all {} probes", total)
                                        : fmt::format("{} of {} probes", f.probes, total);
  return fmt::format("{} {} ({})", change, direction_words(f.direction), count);
}

std::string next_step(Fate fate, const Correlation& c) {
  std::vector<std::string> hops;
  std::vector<std::string> notes;
  for (const auto& p : c.probes) {
    if (p.fate != fate) continue;
    if (p.hop) {
      std::string h = p.hop->to_string();
      if (std::find(hops.begin(), hops.end(), h) == hops.end()) hops.push_back(h);
    }
    if (!p.note.empty() && std::find(notes.begin(), notes.end(), p.note) == notes.end()) notes.push_back(p.note);
  }
  auto joined = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& e : v) s += (s.empty() ? "" : ", ") + e;
    return s;
  };
  switch (fate) {
    case Fate::answered: return "";
    case Fate::lost_forward:
      return "The path before the server: these probes left the client but never reached the server's capture. "
             "Look at the firewalls, IPS, load balancers and routers between the two ends (the server side's "
             "perimeter first), and at any rule matching on TCP options, DSCP or source ports.";
    case Fate::reply_lost:
      return "The way back: the server answered but its reply never reached the client. Look at the return "
             "path (asymmetric routing, stateful firewalls that did not see the SYN, reverse-path filtering).";
    case Fate::unanswered: {
      std::uint64_t corrupted = 0, n = 0;
      for (const auto& p : c.probes) {
        if (p.fate != fate) continue;
        ++n;
        corrupted += !correlate::bad_checksum_field(p).empty();
      }
      std::string s;
      if (corrupted > 0) {
        s = fmt::format("The path first: {} of these {} probes arrived with a bad checksum, so the server's kernel "
                        "discarded them after its capture saw them; a device on the way changes packets without "
                        "fixing the checksum (see the changes in transit). ",
                        corrupted, n);
      }
      if (corrupted < n) {
        s += "The server host itself: the probes reached its capture and it sent nothing back. Look at the "
             "host firewall (nftables/iptables), whether the service listens, SYN backlog / SYN cookies, "
             "and rp_filter.";
      }
      return s;
    }
    case Fate::injected:
      return fmt::format("The device at {}: the client received replies the server never sent, so a device on "
                         "the path answered in the server's name (a firewall resetting connections, a proxy).",
                         hops.empty() ? std::string("an unknown address") : joined(hops));
    case Fate::icmp_error:
      return fmt::format("The router or firewall at {}: it answered the probes with an ICMP error instead of "
                         "forwarding them.",
                         hops.empty() ? std::string("an unknown address") : joined(hops));
    case Fate::not_sent:
      return "The client host: these probes are absent from its own capture (local firewall, send errors, "
             "capture started late).";
    case Fate::unknown:
      return "Nothing can be concluded for these probes: " +
             (notes.empty() ? std::string("evidence is missing") : joined(notes)) +
             ". Capture on both ends, without drops, and run again.";
  }
  return "";
}

std::string report_md(const Correlation& c, const Verdict& v, const ReportContext& ctx) {
  auto counts = fate_counts(c);
  std::uint64_t total = c.probes.size();
  Nanos first = 0, last = 0;
  for (const auto& p : c.probes) {
    if (p.client_tx_ns == 0) continue;
    if (first == 0 || p.client_tx_ns < first) first = p.client_tx_ns;
    last = std::max(last, p.client_tx_ns);
  }
  std::string client = ctx.client ? ctx.client->to_string() : std::string("the client");
  std::string out;

  out += fmt::format("# tandem report: {} from {}\n\n", target_text(ctx), client);
  out += "## Verdict\n\n";
  out += fmt::format("{} (`{}`)\n\n", v.text, v.code);
  if (!v.secondary.empty()) {
    out += "Also:\n\n";
    for (const auto& item : v.secondary) out += fmt::format("- {} (`{}`)\n", item.text, item.code);
    out += "\n";
  }
  out += fmt::format("{} probes were sent from {} to {}{}, and each was looked for in the client's and the "
                     "server's captures. Outcome: {}.",
                     total, client, target_text(ctx),
                     first ? fmt::format(" between {} and {}", format_utc(first), format_utc(last)) : std::string(),
                     fate_list(counts));
  if (!c.findings.empty()) out += fmt::format(" {} change(s) were made to the packets in transit (below).", c.findings.size());
  out += "\n\n";

  out += "## What was tested\n\n| | |\n|---|---|\n";
  out += fmt::format("| Target | {} |\n", target_text(ctx));
  out += fmt::format("| Client | {}{} |\n", ctx.client ? ctx.client->to_string() : "unknown",
                     ctx.client_agent.empty() ? "" : " (agent " + ctx.client_agent + ")");
  out += fmt::format("| Server | {}{} |\n", ctx.server ? ctx.server->to_string() : "unknown",
                     ctx.server_agent.empty() ? "" : " (agent " + ctx.server_agent + ")");
  out += fmt::format("| Probe | {} |\n", ctx.probe.empty() ? std::string("unknown (taken from the captures)") : md_escape(ctx.probe));
  if (c.variants.size() > 1) {
    std::string vs;
    for (const auto& var : c.variants) vs += (vs.empty() ? "" : "; ") + var.name + ": " + var.tcp_options;
    out += fmt::format("| Variants | {} |\n", md_escape(vs));
  }
  out += fmt::format("| Probes | {} seen{} |\n", total, ctx.count ? fmt::format(" ({} planned)", *ctx.count) : std::string());
  out += fmt::format("| Rate | {} |\n", ctx.rate_pps ? fmt::format("{} probes/s", *ctx.rate_pps) : std::string("unknown"));
  out += fmt::format("| Time window (UTC, client clock) | {} |\n",
                     first ? format_utc(first) + " – " + format_utc(last) : std::string("unknown"));
  out += fmt::format("| Mode | {} |\n\n", ctx.mode);

  out += "## Fates\n\n| Fate | Probes | Share | Meaning |\n|---|---:|---:|---|\n";
  for (std::size_t i = 0; i < correlate::kFateCount; ++i) {
    double share = total ? 100.0 * static_cast<double>(counts[i]) / static_cast<double>(total) : 0.0;
    out += fmt::format("| `{}` | {} | {:.1f} % | {} |\n", correlate::fate_name(static_cast<Fate>(i)), counts[i], share,
                       fate_meaning(static_cast<Fate>(i)));
  }
  out += "\n";

  if (c.variants.size() > 1) {
    // Per variant (bisect: every round's probes): where the failures are, and probes to look up.
    out += "## Per variant\n\n| Variant | TCP options | Probes | Failed | Failure rate | Failing probes (ids) |\n"
           "|---|---|---:|---:|---:|---|\n";
    for (const auto& vs : diagnose::summarize_variants(c)) {
      std::string ids;
      for (auto id : failing_probe_ids(c, vs.variant, 8)) ids += (ids.empty() ? "" : ", ") + std::to_string(id);
      const auto& var = c.variants[vs.variant];
      out += fmt::format("| {} | {} | {} | {} | {} | {} |\n", md_escape(var.name),
                         md_escape(var.tcp_options.empty() ? "none" : var.tcp_options), vs.fates.total,
                         vs.fates.failed(),
                         vs.fates.decided() ? fmt::format("{:.1f} %", 100.0 * static_cast<double>(vs.fates.failed()) /
                                                                          static_cast<double>(vs.fates.decided()))
                                            : std::string("—"),
                         ids.empty() ? "—" : ids);
    }
    out += "\n";
  }

  if (ctx.vantages.size() > 1) {
    // Per vantage (DESIGN.md §3): where the path fails and where it does not.
    out += "## Per vantage\n\n| Client agent | Source | Target | Server agent | Probes | Answered | Failed | Failure rate | Verdict |\n"
           "|---|---|---|---|---:|---:|---:|---:|---|\n";
    for (const auto& row : ctx.vantages) {
      auto f = vantage_fates(row);
      out += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | `{}` |\n", md_escape(row.client),
                         row.src.empty() ? "—" : md_escape(row.src), md_escape(row.target),
                         row.server.empty() ? "—" : md_escape(row.server), row.probes, f[Fate::answered], f.failed(),
                         failure_rate_text(f), md_escape(row.verdict));
    }
    out += "\n";
  }

  out += "## Changes made in transit\n\n";
  if (c.findings.empty()) {
    out += "None: every field compared arrived as it was sent (TTL decrements and checksum updates are normal "
           "and not listed).\n\n";
  } else {
    for (const auto& f : c.findings) out += "- " + finding_sentence(f, total) + "\n";
    out += "\n| Direction | Field | Sent | Received | Probes |\n|---|---|---|---|---:|\n";
    for (const auto& f : c.findings) {
      out += fmt::format("| {} | `{}` | {} | {} | {} |\n", correlate::direction_name(f.direction), f.field,
                         md_escape(value_text(f.sent)), md_escape(value_text(f.received)), f.probes);
    }
    out += "\n";
  }

  out += "## Evidence quality\n\n";
  out += clock_text(c.clock) + "\n";
  out += capture_text("Client", c.client_present, c.client_packets, c.client_stats) + "\n";
  out += capture_warnings_text("Client", c.client_stats);
  out += capture_text("Server", c.server_present, c.server_packets, c.server_stats) + "\n";
  out += capture_warnings_text("Server", c.server_stats);
  if (c.ambiguous) out += fmt::format("- {} packets matched more than one probe and were not used.\n", c.ambiguous);
  if (c.unmatched_client || c.unmatched_server) {
    out += fmt::format("- Packets about no probe: {} in the client capture, {} in the server capture.\n",
                       c.unmatched_client, c.unmatched_server);
  }
  for (const auto& pr : c.capture_problems) {
    out += fmt::format("- **{} capture: {}** — {}{} To retake: {}\n", pr.side, pr.code, md_escape(pr.text),
                       pr.probes ? fmt::format(" ({} probes left unknown.)", pr.probes) : std::string(),
                       md_escape(pr.retake));
  }
  out += "\n";
  if (c.flows.size() > 1) {
    out += "## Flows in the client capture\n\nOnly the analysed flow's probes are counted above; pass `--target "
           "HOST:PORT` to analyse another.\n\n| Client | Target | Port | Probes | Analysed |\n|---|---|---:|---:|---|\n";
    for (const auto& f : c.flows) {
      out += fmt::format("| {} | {} | {} | {} | {} |\n", f.client.to_string(), f.target.to_string(),
                         f.dport ? std::to_string(f.dport) : std::string("—"), f.probes, f.analysed ? "yes" : "");
    }
    out += "\n";
  }

  out += "## What to look at next\n\n";
  bool any = false;
  for (std::size_t i = 0; i < correlate::kFateCount; ++i) {
    auto f = static_cast<Fate>(i);
    if (counts[i] == 0 || f == Fate::answered) continue;
    any = true;
    out += fmt::format("- **{}** ({} probes): {}\n", correlate::fate_name(f), counts[i], next_step(f, c));
  }
  if (!any) out += "Nothing: every probe was answered.\n";
  out += "\n";

  out += "## Example probes\n\n";
  out += "To find a probe in your own capture, search for its addresses, ports and sequence number as your end "
         "saw them (NAT may change them between the two ends).\n\n";
  for (std::size_t i = 0; i < correlate::kFateCount; ++i) {
    if (counts[i] == 0) continue;
    auto f = static_cast<Fate>(i);
    out += fmt::format("### `{}`\n\n", correlate::fate_name(f));
    out += "| Probe | Sport | Client sent | As sent by the client | Server saw | As seen at the server | Reply |\n";
    out += "|---:|---:|---|---|---|---|---|\n";
    std::size_t shown = 0;
    for (const auto& p : c.probes) {
      if (p.fate != f) continue;
      if (shown++ == kExamplesPerFate) break;
      std::string at_client = packet_text(ctx.client_capture, p.client_probe);
      std::string at_server = packet_text(ctx.server_capture, p.server_probe);
      out += fmt::format("| {} | {} | {} | {} | {} | {} | {} |\n", p.id, p.sport, ts_or_dash(p.client_tx_ns),
                         at_client.empty() ? "—" : at_client, ts_or_dash(p.server_rx_ns),
                         at_server.empty() ? "—" : at_server, p.reply.empty() ? "none" : p.reply);
    }
    out += "\n";
  }
  out += "---\nWritten by tandem (mode " + ctx.mode + "). The full per-probe data is in report.json; both captures "
         "and a merged, clock-corrected capture with per-packet comments are in this bundle.\n";
  return out;
}

std::string summary_text(const Correlation& c, const Verdict& v, const ReportContext& ctx, const std::string& bundle_dir,
                         const std::vector<std::string>& bundle_files) {
  auto counts = fate_counts(c);
  std::uint64_t total = c.probes.size();
  std::string out = fmt::format("verdict: {} [{}]\n", v.text, v.code);
  out += fmt::format("probes:  {} to {}: {}\n", total, target_text(ctx), fate_list(counts));
  if (ctx.vantages.size() > 1) {
    // One line per vantage: where it fails and where it does not.
    for (const auto& row : ctx.vantages) {
      auto f = vantage_fates(row);
      std::vector<std::uint64_t> vc(f.n.begin(), f.n.end());
      out += fmt::format("vantage: {} ({}) → {}: {} probes, failed {} ({}): {}\n", row.src.empty() ? "?" : row.src,
                         row.client, row.target, row.probes, f.failed(), failure_rate_text(f), fate_list(vc));
    }
  }
  for (const auto& f : c.findings) out += "finding: " + finding_sentence(f, total) + "\n";
  auto drops = [](const char* side, bool present, const pcapio::CaptureStats& s) {
    if (!present) return fmt::format("{} absent", side);
    if (!s.available) return fmt::format("{} drops unknown", side);
    return fmt::format("{} {} dropped", side, s.dropped + s.if_dropped);
  };
  out += fmt::format("capture: {}, {}\n", drops("client", c.client_present, c.client_stats),
                     drops("server", c.server_present, c.server_stats));
  if (!c.clock.source.empty() && c.clock.source != "none") {
    out += fmt::format("clock:   server offset {:.1f} µs ± {:.1f} µs ({})\n", static_cast<double>(c.clock.offset_ns) / 1e3,
                       static_cast<double>(c.clock.error_ns) / 1e3, c.clock.source);
  }
  for (const auto& pr : c.capture_problems) {
    out += fmt::format("warning: {} capture: {}\n         retake: {}\n", pr.side, pr.text, pr.retake);
  }
  std::size_t others = 0;
  std::uint64_t other_probes = 0;
  for (const auto& f : c.flows) {
    if (!f.analysed) {
      ++others;
      other_probes += f.probes;
    }
  }
  if (others > 0) {
    out += fmt::format("flows:   {} other flow(s) with {} probe(s) in the client capture were left out (report.json "
                       "\"flows\"; --target HOST:PORT picks one)\n",
                       others, other_probes);
  }
  if (!bundle_dir.empty()) out += fmt::format("bundle:  {} ({})\n", bundle_dir, fmt::join(bundle_files, ", "));
  return out;
}

}  // namespace tandem::report
