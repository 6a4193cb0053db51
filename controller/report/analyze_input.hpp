// Inputs of `tandem analyze` (docs/analyze.md): capture files read into CaptureSides, the optional
// run manifest (its own JSON schema, or a tandem bundle's report.json). Who is who, when nobody
// said so, correlate() infers from its per-packet records (controller/correlate/endpoints.cpp).
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

}  // namespace tandem::report
