// Report renderers: report.json (DESIGN.md §5, docs/report-format.md), report.md (a report a person
// can mail to the remote admin) and the short terminal summary printed by trace, lab run and
// analyze. Pure functions of a Correlation, its Verdict and a ReportContext: no I/O, no clock, so the
// same inputs always give the same bytes (the golden scenario tests rely on it).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base/clock.hpp"
#include "controller/correlate/model.hpp"
#include "controller/diagnose/diagnose.hpp"

namespace tandem::report {

using correlate::CaptureSide;
using correlate::Correlation;
using diagnose::Verdict;

// What the report says about the run beyond the correlation. Every field may be unknown (analyze
// of two hand-made captures): unknown values are rendered as null / "unknown", never invented.
// One vantage of a run (DESIGN.md §3/§5 "vantage"): a client agent sending from one source
// address to one target (and its server agent), with its own probe and fate counts.
struct VantageRow {
  std::string client;  // the client agent's id (HELLO_OK agent_id), else its endpoint
  std::string src;     // source address of its probes
  std::string server;  // the server agent's id, else its endpoint; "" without a server agent
  std::string target;  // "ADDR:PORT" ("[v6]:PORT"; ADDR for ICMP)
  std::uint64_t probes = 0;
  std::vector<std::uint64_t> fates;  // by correlate::Fate, kFateCount entries
  std::string verdict;               // that cell's own verdict code
};

struct ReportContext {
  std::string mode = "analyze";  // trace | bisect | ping | analyze
  std::optional<packet::IpAddr> target;
  std::optional<std::uint16_t> dport;
  std::string l4 = "tcp";        // tcp | udp | icmp
  std::optional<packet::IpAddr> client;  // the client's address as it sent
  std::optional<packet::IpAddr> server;  // the server's address as it saw itself (differs under NAT)
  std::string client_agent;      // trace/bisect: the agent endpoint; "" otherwise
  std::string server_agent;
  std::string probe;             // probe::describe() of the spec, "" when unknown
  std::optional<std::uint32_t> count;  // probes planned
  std::optional<double> rate_pps;
  std::optional<std::uint32_t> run_key;  // probe identity key: lets analyze re-run on the bundle exactly
  std::string client_input, server_input;  // analyze: base names of the input files
  // Optional "bisect" object (DESIGN.md §5), copied verbatim after "probes" when not null.
  nlohmann::ordered_json bisect;
  // When given, report.md prints each example probe's sequence number and addresses as both
  // captures show them (what the remote admin searches for). Borrowed; may be null.
  const CaptureSide* client_capture = nullptr;
  const CaptureSide* server_capture = nullptr;
  // trace/bisect/lab: the run's vantages (report.json "vantage", per-probe "client"/"src"; the
  // per-vantage tables of report.md, report.html and the summary when there are several), and the
  // row of each probe (empty: every probe is row 0's).
  std::vector<VantageRow> vantages;
  std::vector<std::uint16_t> probe_vantage;
};

// report.json as an ordered object: keys in the order of DESIGN.md §5 (documented in
// docs/report-format.md). Serialize with dump_report().
nlohmann::ordered_json report_json(const Correlation& c, const Verdict& v, const ReportContext& ctx);

// The JSON text written to report.json: 2-space indent, UTF-8 as is, trailing newline.
std::string dump_report(const nlohmann::ordered_json& report);

// dump_report(report_json(c, v, ctx)), the same bytes, handed to `emit` piece by piece: the probes
// are rendered one at a time, so the document never exists whole in memory (a million probes are
// ~400 MB of text and several GB as JSON objects). What write_bundle() writes.
void write_report_json(const Correlation& c, const Verdict& v, const ReportContext& ctx,
                       const std::function<void(std::string_view)>& emit);

// report.md (GitHub-flavoured Markdown).
std::string report_md(const Correlation& c, const Verdict& v, const ReportContext& ctx);

// The terminal summary (a dozen lines): verdict, fate counts, findings in plain words, capture and
// clock caveats, and the bundle path with the files written there (write_bundle's result; "" = no
// bundle written).
std::string summary_text(const Correlation& c, const Verdict& v, const ReportContext& ctx,
                         const std::string& bundle_dir, const std::vector<std::string>& bundle_files);

// --- helpers shared by the renderers (exposed for tests) ---

// A vantage row's fates as FateCounts (failed(), decided()).
inline diagnose::FateCounts vantage_fates(const VantageRow& row) {
  diagnose::FateCounts f;
  for (std::size_t i = 0; i < row.fates.size() && i < f.n.size(); ++i) f.n[i] = row.fates[i];
  f.total = row.probes;
  return f;
}
// Who sent the probes, for titles and sentences: the client's address, or with several vantages
// their source addresses ("10.77.1.2 and 10.77.3.2"), or "the client".
std::string clients_words(const ReportContext& ctx);
// "31.0 %" of the decided probes that failed on the path, "—" when none was decided.
std::string failure_rate_text(const diagnose::FateCounts& f);

// "2024-05-01 12:00:00.123456 UTC" (microseconds; ns since the Unix epoch in).
std::string format_utc(Nanos ts_ns);
// A finding in plain words: "MSS option rewritten 1460 → 1200 on the way to the server (all 30
// probes)". `total` is the number of probes of the run.
std::string finding_sentence(const correlate::Finding& f, std::uint64_t total);
// What a fate means, in one phrase ("left the client, never seen at the server").
std::string fate_meaning(correlate::Fate fate);
// Ids of up to `max` probes of `variant` whose fate is a failure on the path (diagnose's failed()).
std::vector<std::uint32_t> failing_probe_ids(const Correlation& c, std::uint16_t variant, std::size_t max);
// Number of probes per fate, indexed by Fate.
std::vector<std::uint64_t> fate_counts(const Correlation& c);
// "probe 7 lost_forward probe" style merged.pcapng comments are in bundle.hpp; this is the fate
// advice of report.md: where to look next for probes with that fate ("" for answered).
std::string next_step(correlate::Fate fate, const Correlation& c);

}  // namespace tandem::report
