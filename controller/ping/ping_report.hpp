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

std::string format_header(const PingOptions& opts, const PingResult& header);
std::string format_probe_line(const ProbeOutcome& p, bool v6);
std::string format_summary(const PingOptions& opts, const PingResult& result);

// The verdict: code "clean" when every probe was answered by the target, "loss" when some were
// not, "no_answer" when none were, "until_reached" / "until_not_reached" with --until.
struct Verdict {
  std::string code;
  std::string text;
  bool problem = false;  // exit code 4
};
Verdict verdict_of(const PingOptions& opts, const PingResult& result);

nlohmann::json to_json(const PingOptions& opts, const PingResult& result);

}  // namespace tandem::ping
