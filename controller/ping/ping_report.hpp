// Renderers for `tandem ping`: the ping(8)-style lines and summary, and report.json (DESIGN.md §5
// with mode "ping"). Pure functions of the PingResult: unit-tested on hand-made results.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "controller/ping/ping_engine.hpp"

namespace tandem::ping {

// "icmp:3/13" style reply names of DESIGN.md §5 ("syn_ack", "rst", "udp", ...); "" for none.
std::string reply_code(const ProbeOutcome& p, bool v6);
// Human name of an ICMP error: "admin-prohibited", "port-unreachable", "time-exceeded", ...
std::string icmp_name(bool v6, std::uint8_t type, std::uint8_t code);

// The banner names the probe module and every field that differs from the defaults (tos, ttl, df,
// window, flags, sport, payload, interface), so a reader knows what went on the wire.
std::string format_header(const PingOptions& opts, const PingResult& header);
std::string non_default_fields(const PingOptions& opts);

// `-D`: the probe's send time as ping(8) prints it ("[1733515200.123456]") or ISO 8601 UTC with
// microseconds ("2026-12-06T19:55:53.123456Z").
enum class TimeFormat { epoch, iso };
std::string format_timestamp(Nanos realtime_ns, TimeFormat format);
std::string format_probe_line(const ProbeOutcome& p, bool v6);
std::string format_summary(const PingOptions& opts, const PingResult& result);

// The verdict: code "clean" when every probe got the healthy answer (healthy_state: open for a SYN),
// "closed" when every probe got a RST, "no_answer" when none was answered, "loss" otherwise;
// "until_reached" / "until_not_reached" with --until. `problem` (exit 4) unless clean or reached.
struct Verdict {
  std::string code;
  std::string text;
  bool problem = false;  // exit code 4
};
Verdict verdict_of(const PingOptions& opts, const PingResult& result);

// One probe as in report.json's "probes" (also one line of --json-lines).
nlohmann::json probe_json(const ProbeOutcome& p, bool v6);
nlohmann::json to_json(const PingOptions& opts, const PingResult& result);

}  // namespace tandem::ping
