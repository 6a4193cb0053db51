// The agent operator's policy (docs/agent.md "Policy reference"): who may ask, what this agent may
// send and capture, and how much. Loaded once at start from a TOML file owned by the operator; every
// RUN_SETUP and SEND_PLAN is checked against it (threats T11-T13, T18, T26). A refusal is a
// Status whose Error reads "policy: <what> not allowed (<limit>)", ready for ERROR{policy_refused}
// and for the audit line.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.hpp"
#include "common/packet/addr.hpp"
#include "common/proto/messages.hpp"

namespace tandem::agent {

// An address prefix: "192.0.2.0/24", "2001:db8::/32", or one address ("192.0.2.7" = /32).
struct Cidr {
  packet::IpAddr network;  // host bits zero
  unsigned prefix_len = 0;

  static Result<Cidr> parse(std::string_view text);  // Errc::config naming the text
  bool contains(const packet::IpAddr& a) const;
  std::string to_string() const;
};

struct PortRange {
  std::uint16_t lo = 1;
  std::uint16_t hi = 65535;
  bool contains(std::uint16_t p) const { return p >= lo && p <= hi; }
};

struct Policy {
  std::string agent_id;                      // HELLO_OK.agent_id; default: the host name
  std::vector<std::string> controller_keys;  // Z85 public keys allowed to connect

  // [send]
  bool send_enabled = true;                  // false: a capture-only (server-side) agent
  std::vector<Cidr> destinations;            // where probes may go; empty = nowhere
  // Source addresses probes may carry (DESIGN.md §3 vantage points); empty = every address of this
  // host. A source must be this host's own in any case (check_sources).
  std::vector<Cidr> sources;
  std::array<bool, 3> protocols{true, false, false};  // tcp, udp, icmp (index = proto::L4 - 1)
  std::vector<PortRange> ports;              // destination ports of probes and flows; empty = any
  std::uint32_t max_rate_pps = 100;
  std::uint32_t max_packets = 10'000;        // per run, over all SEND_PLANs

  // [lease]
  std::uint32_t max_duration_s = 3600;       // lease_deadline_ns may be at most this far ahead (1 s .. 24 h)
  std::uint32_t idle_timeout_s = 3;          // lease holder silent this long: the run ends (<= 3 s while sending)
  std::uint32_t max_drain_ms = 5000;         // CAPTURE_STOP.drain_ms cap

  // [capture]
  std::uint32_t snaplen = 256;               // default and maximum bytes kept per packet
  bool scrub_payload = true;                 // stored packets are cut after their L4 header
  std::uint64_t quota_bytes = 64ull << 20;   // stored capture bytes across all runs
  bool allow_filter_text = false;            // accept RUN_SETUP.capture_filter (extra narrowing)

  bool protocol_allowed(proto::L4 l4) const;
  bool port_allowed(std::uint16_t port) const;
  bool destination_allowed(const packet::IpAddr& a) const;
  bool source_allowed(const packet::IpAddr& a) const;  // inside `sources` (empty: any)
};

// Parses policy TOML. Unknown tables and keys are errors (a typo in a security policy must not
// silently mean "default"). Relative key_files are resolved against base_dir. Errc::config with
// "policy FILE: ..." naming the key.
Result<Policy> parse_policy(std::string_view toml_text, const std::string& source_name,
                            const std::filesystem::path& base_dir);
Result<Policy> load_policy(const std::string& path);

// One paragraph for HELLO_OK.policy_summary (at most proto::kMaxPolicySummaryLen bytes).
std::string summary(const Policy& p);

// The checks. Each returns the first refusal as Error{Errc::config, "policy", "<what> not allowed (<limit>)"}.
// now_ns: CLOCK_REALTIME.
Status check_run_setup(const Policy& p, const proto::RunSetup& setup, Nanos now_ns);
// A server-role run captures this host's own conversations only (attack-report row P16): every
// flow's dst (the address the server is reached at) must be one of `local` (the host's addresses)
// or inside [send] destinations (where an operator lists a public, NAT-ed address of this host).
// Client-role runs pass unchecked (their dst is checked against destinations by check_run_setup).
Status check_server_flows(const Policy& p, const proto::RunSetup& setup, const std::vector<packet::IpAddr>& local);
// A probe plan for a client-role run with these flows: sending allowed, destination inside
// `destinations` AND declared as a flow's dst (the peer the controller named), protocol, port, rate,
// packets (already_sent counts earlier plans of the same run), duration, option/sport syntax.
// Every stream (proto::streams_of) is checked; a stream's explicit source must be inside `sources`.
Status check_plan(const Policy& p, const proto::ProbePlan& plan, const std::vector<proto::Flow>& flows,
                  std::uint64_t already_sent);
// The sources a plan sends from, once the agent has filled in each stream's routing default
// (`resolved` = one address per stream of proto::streams_of(plan), in order): each must be one of
// this host's addresses (`local`) and allowed by `sources`. The refusal names the address:
// "policy: source 10.9.9.9 not allowed (not an address of this host)".
Status check_sources(const Policy& p, const std::vector<packet::IpAddr>& resolved, const std::vector<packet::IpAddr>& local);

}  // namespace tandem::agent
