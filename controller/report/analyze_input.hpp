// Inputs of `tandem analyze` (docs/analyze.md): capture files read into CaptureSides, the optional
// run manifest (its own JSON schema, or a tandem bundle's report.json). Who is who, when nobody
// said so, correlate() infers from its per-packet records (controller/correlate/endpoints.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "common/base/result.hpp"
#include "controller/correlate/model.hpp"

namespace tandem::report {

// Reads a pcap or pcapng file whole. Drops are unknown for a file: stats.available = false with
// reason "offline file: drops unknown". A file that ends inside a record (copied while tcpdump
// still wrote it) is read up to its last complete packet and stats.warnings holds
// cut_short_warning(). Errors name the file: Errc::usage when it is missing, not a capture, cut
// inside its file header, corrupt in a record, or mixes link types.
Result<correlate::CaptureSide> read_capture_file(const std::string& path);
// Reserves `packets` for every packet of the capture file at path (see read_capture_file()).
void reserve_for_file(pcapio::PacketBuffer& packets, const std::string& path);
std::string cut_short_warning(std::uint64_t complete_packets);

// What a manifest gives beyond the RunManifest: values the report shows.
struct AnalyzeManifest {
  correlate::RunManifest run;
  std::optional<double> rate_pps;
  std::string probe;  // probe::describe() text
};

// Bounds on a manifest's size-like values (docs/analyze.md "Bounds"). A manifest's numbers are not
// evidence: every probe the report lists costs memory, so how many there can be is bounded by
// what the captures hold, never by a number in a small file.
// - the probe id space: "count" and the length of "probe_variant" (tandem trace sends at most 10^7
//   probes; run-key probe ids are matched below 2^24 as well);
inline constexpr std::uint64_t kMaxManifestProbes = std::uint64_t{1} << 24;
// - "variants": a bisection has at most 8 features, so 2^8 combinations (each report renders
//   every variant against every probe);
inline constexpr std::size_t kMaxManifestVariants = 256;
// - probes not in the client capture are materialised one record each as `not_sent`, so a probe
//   count needs packets behind it: at most 2 x the client capture's packets + this slack (a run
//   whose client sent nothing at all can still be analysed up to this many probes).
inline constexpr std::uint64_t kManifestProbeSlack = 65536;

// Parses a manifest (docs/analyze.md) or a report.json written by tandem ("tool":"tandem").
// Unknown keys are ignored (forward compatible); wrong types, bad addresses and values above the
// fixed limits above are Errc::usage naming the key. `origin` names the file in messages.
Result<AnalyzeManifest> parse_manifest(const nlohmann::json& j, const std::string& origin);
Result<AnalyzeManifest> read_manifest_file(const std::string& path);

// min(kMaxManifestProbes, 2 x client_packets + kManifestProbeSlack).
std::uint64_t manifest_probe_limit(std::uint64_t client_packets);
// Errc::usage naming the key and the limit when "count" or the length of "probe_variant" is above
// manifest_probe_limit() of the client capture. Call before correlate(), which allocates a record
// per planned probe.
Status check_manifest_bounds(const AnalyzeManifest& m, const correlate::CaptureSide& client,
                             const std::string& origin);

}  // namespace tandem::report
