// The run pipeline (docs/architecture.md): orchestrate → correlate → diagnose → bundle, for any
// number of client agents, source addresses and targets with their server agents (DESIGN.md §3
// vantage points). `tandem trace`, `tandem bisect` (per round) and `tandem lab run` call it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/base/result.hpp"
#include "controller/correlate/model.hpp"
#include "controller/orchestrate/trace_run.hpp"
#include "controller/report/report.hpp"

namespace tandem::run {

// What the run's analysis produced, for commands that add to it (bisect).
struct Analysis {
  correlate::Correlation correlation;            // every cell's probes (ids 0..N-1 over the run)
  std::vector<report::VantageRow> vantages;       // one per cell
  std::vector<std::uint16_t> probe_vantage;       // per probe: its row
  std::string verdict_code;
  bool problem = false;
  // The captures the correlation's packet indices point into (several agents of a role merged).
  correlate::CaptureSide client, server;
};

// Runs the request and analyses it. `mode` goes into report.json; with `write_bundle` the bundle is
// written to req.out_dir (refused before the run when --out holds foreign files, unless `force`)
// and the summary printed on stdout; `bisect_block` is copied into report.json. Progress goes to
// stderr unless `quiet`.
Result<Analysis> run_and_analyze(const orchestrate::TraceRequest& req, const std::string& mode, bool write_bundle,
                                 bool force, const nlohmann::ordered_json& bisect_block, bool quiet);

// Refuses, before spending a run, an --out that is a non-empty directory holding anything but a
// previous bundle (write_bundle applies the same rule at the end) unless `force`; then creates it
// with its parents. `command` names the subsystem in the one-line error.
Status prepare_out_dir(const std::string& dir, bool force, const std::string& command);

}  // namespace tandem::run
