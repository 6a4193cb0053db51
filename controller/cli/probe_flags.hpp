// The probe flags shared by ping, trace and bisect (DESIGN.md §3 "probe flags as in ping"): one
// definition of the options, their help text and their translation into a probe::ProbeSpec.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "common/base/result.hpp"
#include "common/packet/addr.hpp"
#include "common/probe/spec.hpp"

namespace tandem::cli {

struct ProbeFlags {
  std::optional<std::uint16_t> port;
  bool tcp = false, udp = false, icmp = false, want_v6 = false, want_v4 = false;
  std::optional<double> rate;
  std::optional<double> interval;
  std::string sport = "random";
  std::string tcp_options;  // default set by the command: "none" for ping, "linux" for bisect
  std::optional<std::string> tos, dscp;
  std::optional<int> ttl;
  bool df = false;
  std::optional<int> window;
  std::optional<std::string> flags;
  std::optional<int> icmp_type, icmp_code;
  std::size_t data_len = 0;
};

// Adds --tcp/--udp/--icmp, -4/-6, -p, --rate/-i, --sport, --tcp-options, --tos/--dscp, --ttl, --df,
// --window, --flags, --icmp-type/--icmp-code, --data-len to `sub`. `with_port` = false for
// commands that take HOST:PORT instead of -p.
// Which command the flags are for: trace and bisect accept the ping-only flags (--flags,
// --icmp-type, --icmp-code, --data-len; bisect also --udp/--icmp) only to refuse them with a clear
// message, so their --help does not list them.
enum class ProbeScope { ping, trace, bisect };
void add_probe_flags(CLI::App* sub, ProbeFlags& f, bool with_port = true, ProbeScope scope = ProbeScope::ping);

// Resolves a target: a literal address (brackets allowed for IPv6) is taken as is and its family
// must agree with -4/-6; a name is looked up with getaddrinfo (IPv4 unless -6).
Result<packet::IpAddr> resolve_target(const std::string& text, bool want_v6, bool want_v4);

// Splits "HOST:PORT" / "[V6]:PORT" (trace, bisect --target). Errc::usage on a bad form.
Result<std::pair<std::string, std::uint16_t>> split_host_port(const std::string& text);

// The probe spec the flags describe, for a target of the given IP version.
Result<probe::ProbeSpec> probe_spec_from(const ProbeFlags& f, packet::IpVersion version);

// "S", "SA", "FPU": tcpdump's letters (FSRPAUEC).
Result<std::uint8_t> parse_tcp_flags(const std::string& text);

}  // namespace tandem::cli
