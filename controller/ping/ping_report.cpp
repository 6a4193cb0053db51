#include "controller/ping/ping_report.hpp"

#include <ctime>

#include <fmt/format.h>

#include "common/base/version.hpp"
#include "common/packet/tcp_option.hpp"
#include "controller/ping/ping_source.hpp"

namespace tandem::ping {
namespace {

std::string proto_name(probe::ProbeSpec::L4 l4) {
  switch (l4) {
    case probe::ProbeSpec::L4::tcp: return "tcp";
    case probe::ProbeSpec::L4::udp: return "udp";
    case probe::ProbeSpec::L4::icmp: return "icmp";
  }
  return "tcp";
}

std::string target_text(const PingOptions& o) {
  if (o.spec.l4 == probe::ProbeSpec::L4::icmp) return o.target.to_string() + " (icmp)";
  return o.target.to_string() + " port " + std::to_string(o.spec.dport) + "/" + proto_name(o.spec.l4);
}

}  // namespace

std::string icmp_name(bool v6, std::uint8_t type, std::uint8_t code) {
  if (!v6) {
    if (type == 3) {
      static const char* const kUnreach[] = {"net-unreachable",      "host-unreachable",
                                             "protocol-unreachable", "port-unreachable",
                                             "fragmentation-needed", "source-route-failed",
                                             "net-unknown",          "host-unknown",
                                             "host-isolated",        "net-prohibited",
                                             "host-prohibited",      "net-tos-unreachable",
                                             "host-tos-unreachable", "admin-prohibited",
                                             "host-precedence-violation", "precedence-cutoff"};
      if (code < 16) return kUnreach[code];
      return "unreachable";
    }
    if (type == 11) return code == 0 ? "ttl-exceeded" : "reassembly-time-exceeded";
    if (type == 12) return "parameter-problem";
    if (type == 5) return "redirect";
    if (type == 4) return "source-quench";
    if (type == 0) return "echo-reply";
  } else {
    if (type == 1) {
      static const char* const kUnreach6[] = {"no-route",         "admin-prohibited", "beyond-scope",
                                              "addr-unreachable", "port-unreachable", "policy-fail",
                                              "reject-route"};
      if (code < 7) return kUnreach6[code];
      return "unreachable";
    }
    if (type == 2) return "packet-too-big";
    if (type == 3) return code == 0 ? "hop-limit-exceeded" : "reassembly-time-exceeded";
    if (type == 4) return "parameter-problem";
    if (type == 129) return "echo-reply";
  }
  return "icmp";
}

std::string reply_code(const ProbeOutcome& p, bool v6) {
  switch (p.reply) {
    case probe::ReplyKind::none: return "";
    case probe::ReplyKind::syn_ack: return "syn_ack";
    case probe::ReplyKind::rst: return "rst";
    case probe::ReplyKind::tcp_other: return "tcp";
    case probe::ReplyKind::udp: return "udp";
    case probe::ReplyKind::echo_reply: return fmt::format("icmp:{}/0", v6 ? 129 : 0);
    case probe::ReplyKind::icmp_error: return fmt::format("icmp:{}/{}", p.icmp_type, p.icmp_code);
  }
  return "";
}

std::string non_default_fields(const PingOptions& opts) {
  // Every field that is on the wire but not at its default, so that the banner says what was sent.
  const probe::ProbeSpec& s = opts.spec;
  const probe::ProbeSpec d = probe::default_spec(s.l4, s.version);
  std::string out;
  if (s.tos != d.tos) out += fmt::format(", tos 0x{:02x} (dscp {}, ecn {})", s.tos, s.tos >> 2, s.tos & 3);
  if (s.ttl) out += fmt::format(", {} {}", s.version == packet::IpVersion::v4 ? "ttl" : "hop limit", *s.ttl);
  if (s.df) out += ", df";
  if (s.l4 == probe::ProbeSpec::L4::tcp && s.window != d.window) out += fmt::format(", window {}", s.window);
  if (s.l4 == probe::ProbeSpec::L4::tcp && s.tcp_flags != d.tcp_flags) {
    out += ", flags " + probe::format_tcp_flags(s.tcp_flags);
  }
  if (s.l4 == probe::ProbeSpec::L4::icmp && (s.icmp_type != d.icmp_type || s.icmp_code != d.icmp_code)) {
    out += fmt::format(", icmp type {} code {}", s.icmp_type, s.icmp_code);
  }
  if (probe::format_sport(s.sport) != probe::format_sport(d.sport)) out += ", sport " + probe::format_sport(s.sport);
  if (s.payload_len != d.payload_len) out += fmt::format(", payload {} bytes", s.payload_len);
  if (interface_given(opts.interface)) out += ", interface " + opts.interface;
  return out;
}

std::string format_header(const PingOptions& opts, const PingResult& r) {
  std::string pace = opts.rate_pps ? fmt::format("{} pps", *opts.rate_pps) : fmt::format("every {} s", opts.interval_s);
  std::string what = opts.count ? fmt::format("{} probes", opts.count) : std::string("until stopped");
  if (opts.until) what = fmt::format("until {}", state_name(*opts.until)) + (opts.count ? fmt::format(" (at most {} probes)", opts.count) : "");
  std::string extra;
  if (opts.spec.l4 == probe::ProbeSpec::L4::tcp) {
    extra = ", options " + (opts.spec.tcp_options.empty() ? std::string("none") : probe::format_tcp_options(opts.spec.tcp_options));
  }
  return fmt::format("TANDEM PING {} from {}: {}{}{}, {}, {}, timeout {} s", target_text(opts), r.ends.src.to_string(),
                     r.module, extra, non_default_fields(opts), what, pace, opts.timeout_s);
}

std::string format_timestamp(Nanos ns, TimeFormat format) {
  if (format == TimeFormat::epoch) {
    return fmt::format("[{}.{:06}]", ns / 1'000'000'000, (ns % 1'000'000'000) / 1000);
  }
  std::time_t secs = static_cast<std::time_t>(ns / 1'000'000'000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:06}Z", buf, (ns % 1'000'000'000) / 1000);
}

std::string format_probe_line(const ProbeOutcome& p, bool v6) {
  std::string detail;
  switch (p.reply) {
    case probe::ReplyKind::none: detail = "no reply"; break;
    case probe::ReplyKind::icmp_error:
      detail = fmt::format("icmp {}/{} {} from {}", p.icmp_type, p.icmp_code, icmp_name(v6, p.icmp_type, p.icmp_code),
                           p.reply_from.to_string());
      break;
    default: detail = reply_code(p, v6); break;
  }
  std::string line = fmt::format("seq={:<5} sport={:<5} {:<13} {}", p.index, p.sport, state_name(p.state), detail);
  if (auto rtt = p.rtt_us()) line += fmt::format("  rtt={} µs", *rtt);
  if (p.duplicates) line += fmt::format("  (+{} dup)", p.duplicates);
  return line;
}

Verdict verdict_of(const PingOptions& opts, const PingResult& r) {
  const std::uint64_t sent = r.probes.size();
  if (opts.until) {
    if (r.until_reached) return {"until_reached", fmt::format("A probe ended {} after {} probes.", state_name(*opts.until), sent), false};
    return {"until_not_reached", fmt::format("No probe ended {} in {} probes.", state_name(*opts.until), sent), true};
  }
  if (sent == 0) return {"no_probes", "No probe was sent.", true};
  // DESIGN.md §3: exit 0 only when every probe got the healthy answer for its kind (open for a SYN,
  // an echo reply, a UDP reply; see healthy_state); a closed port is an answer, not a healthy one.
  const PortState healthy = healthy_state(opts.spec);
  const std::uint64_t good = r.count(healthy);
  const std::string want(state_name(healthy));
  if (good == sent) return {"clean", fmt::format("All {} probes were answered {} by the target.", sent, want), false};
  std::string others;
  for (PortState st : {PortState::open, PortState::closed, PortState::filtered, PortState::open_filtered, PortState::unfiltered}) {
    if (st == healthy || r.count(st) == 0) continue;
    others += fmt::format("{}{} {}", others.empty() ? "" : ", ", r.count(st), state_name(st));
  }
  std::uint64_t answered = 0;
  for (const auto& p : r.probes) answered += p.answered ? 1 : 0;
  if (good == 0 && answered == 0) return {"no_answer", fmt::format("None of {} probes was answered ({}).", sent, others), true};
  if (good == 0 && r.count(PortState::closed) == sent) {
    return {"closed", fmt::format("All {} probes were answered with RST: the port is closed.", sent), true};
  }
  double pct = 100.0 * static_cast<double>(sent - good) / static_cast<double>(sent);
  return {"loss", fmt::format("{} of {} probes ({:.1f} %) did not end {}: {}.", sent - good, sent, pct, want, others), true};
}

std::string format_summary(const PingOptions& opts, const PingResult& r) {
  std::string out = fmt::format("--- {} tandem ping statistics ---\n", target_text(opts));
  std::uint64_t sent = r.probes.size();
  std::uint64_t unanswered = 0;
  for (const auto& p : r.probes) unanswered += p.answered ? 0 : 1;
  double loss = sent ? 100.0 * static_cast<double>(unanswered) / static_cast<double>(sent) : 0.0;
  out += fmt::format("{} probes sent, {} open, {} closed, {} filtered", sent, r.count(PortState::open),
                     r.count(PortState::closed), r.count(PortState::filtered));
  if (r.count(PortState::open_filtered)) out += fmt::format(", {} open|filtered", r.count(PortState::open_filtered));
  if (r.count(PortState::unfiltered)) out += fmt::format(", {} unfiltered", r.count(PortState::unfiltered));
  out += fmt::format(", {:.1f}% unanswered, time {} ms\n", loss, (r.ended_ns - r.started_ns) / 1'000'000);
  auto rtt = r.rtt();
  if (rtt.samples) {
    out += fmt::format("rtt min/avg/max/mdev = {:.0f}/{:.0f}/{:.0f}/{:.0f} µs\n", rtt.min_us, rtt.avg_us, rtt.max_us, rtt.mdev_us);
  }
  if (r.send.requested_pps > 0 && r.probes.size() > 1) {
    // max_behind: how late the sender was, at worst, against its absolute schedule (SendLoop's
    // pacer); a run that caught up after a stall still shows the stall here.
    out += fmt::format("rate {:.1f} pps requested, {:.1f} pps achieved, max_behind {:.0f} µs\n", r.send.requested_pps,
                       r.send.achieved_pps, static_cast<double>(r.send.max_behind_ns) / 1e3);
  }
  if (r.send.failed) out += fmt::format("{} probes not sent: {}\n", r.send.failed, r.send.first_error ? r.send.first_error->text() : "send error");
  if (opts.count && r.send.stopped && !r.interrupted && !r.until_reached && r.send.attempted < opts.count) {
    out += fmt::format("sending stopped after {} of {} probes\n", r.send.attempted, opts.count);
  }
  if (r.after_until) {
    out += fmt::format("{} later probe{} in flight when --until was met, not reported\n", r.after_until,
                       r.after_until == 1 ? " was" : "s were");
  }
  if (r.capture.available) {
    std::uint64_t dropped = r.capture.dropped + r.capture.if_dropped;
    out += fmt::format("capture: {} packets, {} dropped by the kernel{}\n", r.capture_seen, dropped,
                       dropped ? " (some answers may be missing: states are a lower bound)" : "");
  } else {
    out += fmt::format("capture: {} packets, drops unknown ({})\n", r.capture_seen, r.capture.unavailable_reason);
  }
  Verdict v = verdict_of(opts, r);
  out += v.text + "\n";
  return out;
}

nlohmann::json probe_json(const ProbeOutcome& p, bool v6) {
  nlohmann::json j{{"id", p.index}, {"src", p.src.to_string()}, {"sport", p.sport}, {"state", state_name(p.state)}};
  std::string reply = reply_code(p, v6);
  j["reply"] = reply.empty() ? nlohmann::json(nullptr) : nlohmann::json(reply);
  if (auto rtt = p.rtt_us()) j["rtt_us"] = *rtt; else j["rtt_us"] = nullptr;
  if (p.answered) j["from"] = p.reply_from.to_string();
  if (p.duplicates) j["duplicates"] = p.duplicates;
  j["sent_at"] = format_timestamp(p.sent_ns, TimeFormat::iso);
  return j;
}

nlohmann::json to_json(const PingOptions& opts, const PingResult& r) {
  using nlohmann::json;
  bool v6 = !opts.target.is_v4();
  json probes = json::array();
  for (const auto& p : r.probes) probes.push_back(probe_json(p, v6));
  std::uint64_t unanswered = 0;
  for (const auto& p : r.probes) unanswered += p.answered ? 0 : 1;
  auto rtt = r.rtt();
  Verdict v = verdict_of(opts, r);
  json capture_client{{"received", r.capture_seen}, {"available", r.capture.available}};
  if (r.capture.available) {
    capture_client["dropped"] = r.capture.dropped + r.capture.if_dropped + r.capture_cap_dropped;
  } else {
    capture_client["dropped"] = nullptr;
    capture_client["unavailable_reason"] = r.capture.unavailable_reason;
  }
  json states{{"open", r.count(PortState::open)}, {"closed", r.count(PortState::closed)},
              {"filtered", r.count(PortState::filtered)}};
  if (opts.spec.l4 != probe::ProbeSpec::L4::icmp && healthy_state(opts.spec) != PortState::open) {
    states["open|filtered"] = r.count(PortState::open_filtered);
    states["unfiltered"] = r.count(PortState::unfiltered);
  } else if (opts.spec.l4 == probe::ProbeSpec::L4::udp) {
    states["open|filtered"] = r.count(PortState::open_filtered);
  }
  return json{
      {"tool", "tandem"},
      {"version", kVersion},
      {"mode", "ping"},
      {"target", {{"address", opts.target.to_string()}, {"port", opts.spec.dport}, {"protocol", proto_name(opts.spec.l4)}}},
      {"source", r.ends.src.to_string()},
      {"interface", interface_given(opts.interface) ? json(opts.interface) : json(nullptr)},
      {"probe",
       {{"module", r.module},
        {"tcp_options", opts.spec.l4 == probe::ProbeSpec::L4::tcp ? json(probe::format_tcp_options(opts.spec.tcp_options)) : json(nullptr)},
        {"describe", probe::describe(opts.spec)},
        {"healthy_state", state_name(healthy_state(opts.spec))}}},
      {"capture", {{"client", capture_client}, {"filter", r.filter}}},
      {"send",
       {{"requested_pps", r.send.requested_pps},
        {"achieved_pps", r.send.achieved_pps},
        {"failed", r.send.failed},
        {"max_behind_ns", r.send.attempted ? json(r.send.max_behind_ns) : json(nullptr)}}},
      {"summary",
       {{"probes", r.probes.size()},
        {"states", states},
        {"unanswered", unanswered},
        {"rtt_us", rtt.samples ? json{{"min", rtt.min_us}, {"avg", rtt.avg_us}, {"max", rtt.max_us}, {"mdev", rtt.mdev_us}} : json(nullptr)}}},
      {"verdict", {{"code", v.code}, {"text", v.text}}},
      {"findings", json::array()},
      {"probes", probes},
  };
}

}  // namespace tandem::ping
