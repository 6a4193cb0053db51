// Many vantage points in one run (DESIGN.md §3, issue 11): every (client agent, source address) ×
// target cell of a run has its own stream and run key; each is correlated on its own against the
// captures of every agent merged into one client side and one server side, and the cells are put
// back together into one Correlation (so the bundle, merged.pcapng and the ladder work unchanged),
// a per-vantage table and a verdict that says where the path fails and where it does not.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/base/result.hpp"
#include "controller/correlate/model.hpp"
#include "controller/diagnose/diagnose.hpp"
#include "controller/report/report.hpp"

namespace tandem::run {

// One capture of the run as fetched, with the agent's clock offset (agent minus controller).
struct AgentCapture {
  correlate::CaptureSide side;
  Nanos offset_ns = 0;
  Nanos error_ns = 0;
};

// All captures of one role as one CaptureSide: packets in time order on the controller's clock
// (each agent's offset removed), stats summed, vouched when every input is. Errc::usage when the
// link types differ (the bundle's pcapng has one interface per side). One input is returned as is,
// timestamps untouched.
Result<correlate::CaptureSide> merge_captures(std::vector<AgentCapture> captures, bool to_controller_clock);

// A cell as the analysis sees it.
struct CellInput {
  std::size_t vantage = 0;  // index into the vantage rows (client agent, source, target)
  correlate::RunManifest manifest;
  std::vector<std::uint16_t> variant_map;  // the run's variant of each manifest variant (empty: the same)
};

// The result of correlating every cell: one Correlation whose probes are the cells' in cell order
// (ids renumbered 0..N-1 across cells, per-packet probe ids likewise), findings re-aggregated,
// capture problems and flows of all cells; `probe_vantage` maps each probe to its row.
struct Combined {
  correlate::Correlation correlation;
  std::vector<std::uint16_t> probe_vantage;
  std::vector<diagnose::Verdict> cell_verdicts;  // per cell
};
// `variants`: the run's variants (every cell's probes are labelled with these through its
// variant_map); empty: the first cell's.
Result<Combined> correlate_cells(const correlate::CaptureSide& client, const correlate::CaptureSide& server,
                                 const std::vector<CellInput>& cells, const std::vector<correlate::Variant>& variants = {});

// Fills each row's probe and fate counts from `combined` (rows come from the caller: client, src,
// server, target) and each row's verdict code from its cell.
void count_vantages(const Combined& combined, const std::vector<CellInput>& cells, std::vector<report::VantageRow>& rows);

// The run's verdict: diagnose() on the whole, its text rewritten when failures concentrate on some
// vantages ("… only from 10.77.3.2 (31 % of its probes); from 10.77.1.2 all 50 probes were
// answered.") or hit every one of them (each one's failure rate named). One vantage: diagnose()
// as is.
diagnose::Verdict vantage_verdict(const Combined& combined, const std::vector<report::VantageRow>& rows);

}  // namespace tandem::run
