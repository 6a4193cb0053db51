// What trace and bisect share: the agent/source/key/target/output flags and their translation
// into an orchestrate::TraceRequest; the run itself is controller/run's pipeline.
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
#include "controller/run/pipeline.hpp"

namespace tandem::cli {

// `tandem trace` ended early by Ctrl-C (SIGINT): 128 + SIGINT, as shells report it; the bundle of
// what was sent is written when sending had started.
inline constexpr int kExitInterrupted = 130;

struct TraceArgs {
  std::vector<std::string> clients, servers;  // AGENT lines (--client / --server, repeatable)
  std::string client_key, server_key;    // alternative: .pub files (one --client / --server only)
  std::string key;                       // controller secret key file
  std::vector<std::string> targets;      // HOST:PORT: one for every server, or one per --server
  std::vector<std::string> sources;      // --source ADDR (repeatable): vantage addresses
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

// The run pipeline lives in controller/run (orchestrate → correlate → diagnose → bundle).
using run::Analysis;
using run::prepare_out_dir;
using run::run_and_analyze;

// Runs the request and analyses it, prints progress on stderr and the summary on stdout; exit code
// as DESIGN.md §3 (kExitInterrupted after Ctrl-C).
int run_trace_command(const TraceArgs& a, const std::string& mode);

// The controller key file when --key is not given: $TANDEM_KEY, else ~/.config/tandem/controller.key.
std::string default_key_path();

}  // namespace tandem::cli
