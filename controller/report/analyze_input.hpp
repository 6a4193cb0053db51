// Inputs of `tandem analyze` (docs/analyze.md): capture files read into CaptureSides, the optional
// run manifest (its own JSON schema, or a tandem bundle's report.json), and the inference of which
// host is the client and which the server when nobody said so.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/base/result.hpp"
#include "controller/correlate/model.hpp"

namespace tandem::report {

// Reads a pcap or pcapng file whole. Drops are unknown for a file: stats.available = false with
// reason "offline file: drops unknown". Errors name the file: Errc::usage when it is missing, not a
// capture, truncated in a record, or mixes link types.
Result<correlate::CaptureSide> read_capture_file(const std::string& path);

// What a manifest gives beyond the RunManifest: values the report shows.
struct AnalyzeManifest {
  correlate::RunManifest run;
  std::optional<double> rate_pps;
  std::string probe;  // probe::describe() text
};

// Parses a manifest (docs/analyze.md) or a report.json written by tandem ("tool":"tandem").
// Unknown keys are ignored (forward compatible); wrong types and bad addresses are Errc::usage
// naming the key. `origin` names the file in messages.
Result<AnalyzeManifest> parse_manifest(const nlohmann::json& j, const std::string& origin);
Result<AnalyzeManifest> read_manifest_file(const std::string& path);

// Who is who. Given addresses win; otherwise the client is the host that sends SYNs (without ACK)
// in the client capture — for UDP / ICMP runs, the sender of the first packet — the target is
// where they go, and the server's own address is the destination of the SYNs in the server capture
// (differs from the target under NAT).
struct Endpoints {
  std::optional<packet::IpAddr> client;  // as sent, in the client capture
  std::optional<packet::IpAddr> target;  // destination as the client addressed it
  std::optional<std::uint16_t> dport;
  std::optional<packet::IpAddr> server;  // as seen in the server capture
  std::string l4 = "tcp";
};
// Errc::usage when nothing can be inferred (no IP packet at all) or the client capture holds SYNs
// from several hosts and no client address was given (message says to use --client-addr).
Result<Endpoints> infer_endpoints(const correlate::CaptureSide& client, const correlate::CaptureSide& server,
                                  const std::optional<packet::IpAddr>& client_addr,
                                  const std::optional<packet::IpAddr>& server_addr);

}  // namespace tandem::report
