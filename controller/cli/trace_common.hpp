// What trace and bisect share: the agent/key/target/output flags, the run through
// orchestrate::run_trace(), and the analysis of its evidence (read both captures, correlate,
// diagnose, write the bundle, print the summary).
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/base/result.hpp"
#include "controller/cli/probe_flags.hpp"
#include "controller/correlate/model.hpp"
#include "controller/orchestrate/trace_run.hpp"

namespace tandem::cli {

// `tandem trace` ended early by Ctrl-C (SIGINT): 128 + SIGINT, as shells report it; the bundle of
// what was sent is written when sending had started.
inline constexpr int kExitInterrupted = 130;

struct TraceArgs {
  std::string client, server;            // AGENT lines
  std::string client_key, server_key;    // alternative: .pub files
  std::string key;                       // controller secret key file
  std::string target;                    // HOST:PORT
  std::string server_target;             // HOST:PORT or :PORT as the server sees it (DNAT), "" = target
  ProbeFlags probe;
  std::uint32_t count = 100;
  double tail_s = 1.0;
  std::string out;
  bool force = false;
  bool quiet = false;
};

void add_trace_flags(CLI::App* sub, TraceArgs& a, bool bisect);

// Turns the flags into a TraceRequest (agents parsed, keys loaded, plan filled). Errors are usage
// or config errors with one-line messages.
Result<orchestrate::TraceRequest> trace_request(const TraceArgs& a);

// What the run's analysis produced, for commands that add to it (bisect).
struct Analysis {
  correlate::Correlation correlation;
  std::string verdict_code;
  bool problem = false;
};

// Runs the request and analyses it; `extra_report` may add to report.json (bisect's block) and
// returns the verdict override when it has one. Prints progress on stderr and the summary on stdout.
int run_trace_command(const TraceArgs& a, const std::string& mode);

// The run + analysis as a library call (bisect uses it per round). `mode` goes into report.json.
Result<Analysis> run_and_analyze(const orchestrate::TraceRequest& req, const std::string& mode, bool write_bundle,
                                 bool force, const nlohmann::ordered_json& bisect_block, bool quiet);

// Refuses, before spending a run, an --out that is a non-empty directory holding anything but a
// previous bundle (write_bundle applies the same rule at the end) unless `force`; then creates it
// with its parents. `command` names the subsystem in the one-line error.
Status prepare_out_dir(const std::string& dir, bool force, const std::string& command);

// The controller key file when --key is not given: $TANDEM_KEY, else ~/.config/tandem/controller.key.
std::string default_key_path();

}  // namespace tandem::cli
