// report.html (DESIGN.md §5): one self-contained page a person attaches to a ticket — inline CSS and
// inline SVG, no script, no font, no image or network fetch. The verdict first, then the fates and
// findings, the per-variant table (and the bisection's, every round), a ladder diagram (client |
// path | server) of representative probes of every fate with their times, the field changes drawn
// on the arrow and each packet's frame number in client.pcapng / server.pcapng, then the evidence
// quality. Readable printed (no colour needed to read it) and in a narrow window (tables scroll,
// the SVGs scale).
//
// Pure functions of the same inputs as report_md(): the same bytes for the same inputs. The DOM
// contract the browser test relies on (docs/report-format.md): #verdict .verdict-text holds the
// verdict sentence; every ladder is an <svg class="ladder" data-fate="FATE" data-probe="ID">;
// tables have ids fates, findings, variants and bisect-variants.
#pragma once

#include <string>

#include "controller/report/report.hpp"

namespace tandem::report {

// Representative probes drawn per fate (the first ones of that fate, by id).
inline constexpr std::size_t kLaddersPerFate = 2;

std::string report_html(const Correlation& c, const Verdict& v, const ReportContext& ctx);

// One ladder diagram (exposed for tests): client | path | server, the probe's packets as arrows.
std::string ladder_svg(const correlate::ProbeRecord& p, const Correlation& c, const ReportContext& ctx);

// HTML text escaping (& < > " ').
std::string html_escape(std::string_view text);

}  // namespace tandem::report
