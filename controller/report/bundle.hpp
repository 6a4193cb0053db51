// The evidence bundle of DESIGN.md §5: report.json, report.md, report.html, client.pcapng,
// server.pcapng and merged.pcapng in one directory. Shared by trace, lab run and analyze.
#pragma once

#include <string>
#include <vector>

#include "common/base/result.hpp"
#include "controller/report/report.hpp"

namespace tandem::report {

struct BundleOptions {
  bool force = false;      // overwrite a non-empty directory that is not a previous tandem bundle
  bool json_only = false;  // write report.json only (no report.md, no pcapng files)
};

// The files of a bundle, in the order they are written (report.json last, so that a bundle whose
// report.json exists is complete).
inline constexpr const char* kBundleFiles[] = {"client.pcapng", "server.pcapng", "merged.pcapng", "report.md",
                                               "report.html", "report.json"};
// Each file is written as <name><kBundleTempSuffix> in the same directory, fsync'd, then renamed to
// its name: a file present under its own name is complete, whatever happened to the run.
inline constexpr const char* kBundleTempSuffix = ".tmp";
// A bundle file or the temporary of one (a run killed while writing leaves one behind; the next
// run into the same directory replaces it).
bool is_bundle_file(const std::string& name);

// Creates `dir` (and its parents) if needed and writes the bundle into it. A directory that exists
// and is not empty is only reused when it looks like a previous bundle (nothing in it but bundle
// files and their temporaries, and its report.json says "tool":"tandem") or when options.force is
// set. A previous report.json is removed before anything is written, so a failed run leaves no
// report.json that belongs to other files; with json_only the previous run's other bundle files
// are removed too.
// Returns the names of the files written, in write order (report.json last; only report.json with
// json_only). Errors: Errc::usage for a refused directory (message says why and mentions --force),
// Errc::environment when a file cannot be created, written, synced or renamed (path and strerror);
// the file being written is then absent, never truncated.
// The captures are the ones given to correlate(); an absent side (present == false) gets an empty
// pcapng with no interface.
Result<std::vector<std::string>> write_bundle(const std::string& dir, const Correlation& c, const Verdict& v,
                                              const ReportContext& ctx, const CaptureSide& client,
                                              const CaptureSide& server, const BundleOptions& options = {});

// The per-packet comment of the bundle's pcapng files: "probe <id> <fate> <role>" with role
// probe | reply | icmp, or "unmatched". `index` is the packet's index in its side's capture.
std::string packet_comment(const Correlation& c, bool server_side, std::uint32_t index, const CaptureSide& side);

// merged.pcapng: both captures in time order, server timestamps moved to the client's clock
// (ts - clock.offset_ns), interface 0 "client" and 1 "server". libpcap cannot read a pcapng whose
// interfaces have different link types (nor, in 1.10, two LINKTYPE_RAW interfaces), so unless both
// sides share a link type whose libpcap DLT number is the same (Ethernet, SLL, SLL2, ...), every
// frame is cut down to its IP packet and given a synthetic Ethernet header (zero MACs);
// frames without an IP layer are then left out (counted in the result).
struct MergeResult {
  std::uint64_t written = 0;
  std::uint64_t skipped_non_ip = 0;
  int linktype = 0;
};
Result<MergeResult> write_merged(const std::string& path, const Correlation& c, const CaptureSide& client,
                                 const CaptureSide& server);

}  // namespace tandem::report
