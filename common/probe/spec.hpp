// The typed probe spec and its command-line text syntax (docs/probes.md). Parsers take user text
// and return Errc::usage errors (subsystem "probe-spec") whose message names the offending item;
// formatters write the canonical text that parses back to the same value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"
#include "common/packet/addr.hpp"
#include "common/packet/tcp_option.hpp"

namespace tandem::probe {

// --- TCP option lists: "mss=1460,sack,ts,nop,ws=7" ---

// The Linux default SYN option set, in Linux's order (preset "linux").
std::vector<packet::TcpOption> linux_syn_options();
// The TSval/TSecr that a bare "ts" stands for.
inline constexpr std::uint32_t kDefaultTsVal = 1;
inline constexpr std::uint32_t kDefaultTsEcr = 0;

// Parses a comma-separated option list, order preserved. Items: mss=N, sack|sackok|sack_perm,
// sack=L-R[;L-R...], ws=N|wscale=N, ts|timestamp, ts=VAL:ECR|timestamp=VAL:ECR, nop, eol,
// kind=N, kind=N:HEX, the preset linux, and none (alone: the empty list). Whitespace around items
// is ignored. Window scale 15..255 is accepted (a probe may test it) with a logged warning, since
// RFC 7323 receivers clamp it to 14. The serialized list must fit the 40-byte option space.
Result<std::vector<packet::TcpOption>> parse_tcp_options(std::string_view text);

// Canonical text: known options by their short item name (mss=, sack, sack=, ws=, ts / ts=V:E,
// nop, eol), anything else (including known kinds with unusual lengths) as kind=N[:HEX];
// "none" for the empty list.
std::string format_tcp_options(const std::vector<packet::TcpOption>& options);

// --- source port policy: "random" | "N" | "A-B" ---

struct SportPolicy {
  enum class Kind { random, fixed, range };
  Kind kind = Kind::random;  // random: a fresh port in 1024..65535 per probe
  std::uint16_t lo = 0;      // fixed: the port; range: first port
  std::uint16_t hi = 0;      // range: last port (inclusive); fixed: == lo

  static SportPolicy random() { return {}; }
  static SportPolicy fixed(std::uint16_t port) { return {Kind::fixed, port, port}; }
  static SportPolicy range(std::uint16_t first, std::uint16_t last) {
    return {Kind::range, first, last};
  }
  friend bool operator==(const SportPolicy&, const SportPolicy&) = default;
};

// Ports are 1..65535; a range needs A <= B. "A-A" is the fixed port A.
Result<SportPolicy> parse_sport(std::string_view text);
std::string format_sport(const SportPolicy& policy);  // "random", "40000", "40000-40100"

// --- DSCP / TOS ---

// DSCP, 0..63: decimal, 0x-hex, or a name: cs0..cs7, af11..af43, ef, va, le, default/be.
Result<std::uint8_t> parse_dscp(std::string_view text);
// Whole TOS / traffic-class byte, 0..255 (DSCP << 2 | ECN): decimal or 0x-hex; a DSCP name gives
// that DSCP with ECN 0 (ef -> 0xb8).
Result<std::uint8_t> parse_tos(std::string_view text);
// The name of a DSCP value if it has one ("ef", "af41", "cs1"), else its decimal value.
std::string dscp_name(std::uint8_t dscp);

// --- the probe spec ---

struct ProbeSpec {
  enum class L4 { tcp, udp, icmp };
  L4 l4 = L4::tcp;
  packet::IpVersion version = packet::IpVersion::v4;
  std::uint16_t dport = 80;
  std::vector<packet::TcpOption> tcp_options = linux_syn_options();
  std::uint8_t tos = 0;             // DSCP << 2 | ECN
  std::optional<std::uint8_t> ttl;  // nullopt: 64 (the Linux default)
  bool df = false;
  std::uint16_t window = 64240;     // Linux's SYN window for a 1460-byte MSS
  std::uint8_t tcp_flags = 0x02;    // SYN
  std::uint8_t icmp_type = 8;       // echo request; 128 for IPv6 (see default_spec)
  std::uint8_t icmp_code = 0;
  SportPolicy sport;
  std::size_t payload_len = 0;      // bytes after the L4 header (identity tags count here)
};

// The default spec for a protocol and IP version: dport 80 (tcp), 33434 (udp), 0 (icmp);
// icmp_type 8 (v4) or 128 (v6); TCP options = linux preset (tcp only, empty otherwise).
ProbeSpec default_spec(ProbeSpec::L4 l4, packet::IpVersion version);

std::string_view l4_name(ProbeSpec::L4 l4);  // "tcp", "udp", "icmp"
// TCP flags as letters in tcpdump order (FSRPAUEC): 0x12 -> "SA"; 0 -> "none".
std::string format_tcp_flags(std::uint8_t flags);

// One line for logs and reports, e.g. "tcp/ipv4 dport 21 flags S options mss=1460,sack,ts,nop,ws=7
// window 64240 tos 0x00 ttl 64 sport random payload 0".
std::string describe(const ProbeSpec& spec);

}  // namespace tandem::probe
