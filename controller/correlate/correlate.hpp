// correlate(): pairs every probe across the client's and the server's captures and decides its fate
// (DESIGN.md §5). The algorithm, the invariants it matches on and the fate table are in
// docs/correlation.md.
//
// Contract:
//  - Inputs are untrusted captures: malformed packets are skipped (counted), never thrown on.
//  - Each packet is decoded once into a compact record; the call holds O(packets) memory of its own
//    (tens of bytes per packet, see docs/benchmarks.md "Correlation throughput") on top of the
//    captures, and allocates per probe only for the output records and their field changes.
//  - The result refers to packets by index into client.packets / server.packets; the caller keeps
//    the captures if it wants to write them out (merged.pcapng) afterwards.
#pragma once

#include "common/base/result.hpp"
#include "controller/correlate/model.hpp"

namespace tandem::correlate {

// Errors (subsystem "correlate"): Errc::usage when a present capture has a link type decode()
// cannot read, or the manifest is inconsistent (probe_variant longer than count, a variant index out
// of range, l4 not tcp|udp|icmp). A capture with no probes in it is not an error: the fates say so.
Result<Correlation> correlate(const CaptureSide& client, const CaptureSide& server, const RunManifest& m);

// Aggregates per-probe changes into §5 findings: one entry per (direction, field, sent, received),
// sorted by direction, field, most probes first. correlate() already fills Correlation::findings;
// this is exposed for callers that filter probes (bisect per variant).
std::vector<Finding> aggregate_findings(const std::vector<ProbeRecord>& probes);

// The reply kind text of §5: "syn_ack", "rst", "udp", "icmp:<type>/<code>".
std::string reply_kind_text(std::uint8_t l4_proto, std::uint8_t tcp_flags, std::uint8_t icmp_type,
                            std::uint8_t icmp_code);

}  // namespace tandem::correlate
