// `tandem trace` (DESIGN.md §3): a two-ended run. Both agents capture while the client agent sends
// the probe plan; the controller fetches both captures, correlates them, decides every probe's fate
// and writes the evidence bundle. The pipeline after the run is the one `tandem analyze` uses.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include <fmt/format.h>

#include "controller/cli/command.hpp"
#include "controller/cli/probe_flags.hpp"
#include "controller/cli/trace_common.hpp"

namespace tandem::cli {

void register_trace(CLI::App& app, CommandContext& ctx) {
  auto args = std::make_shared<TraceArgs>();
  auto* sub = app.add_subcommand("trace", "Two-ended run: probes from the client agent, captures on both ends, a fate per probe");
  sub->footer(
      "AGENT is the one line the agent's operator sends you: tcp://HOST:PORT#<public key>\n"
      "(quote it in the shell), or tcp://HOST:PORT with --client-key/--server-key FILE.pub.\n"
      "The controller key (--key) is made with `tandem keygen`; its .pub must be allowed by both agents.\n"
      "Pace: --rate or -i; 100 probes/s when neither is given.\n"
      "Fates: answered, lost_forward, unanswered, reply_lost, injected, icmp_error, not_sent, unknown.\n"
      "Writes report.json, report.md, client/server/merged pcapng to --out DIR.\n"
      "Runs of any length (within the agents' max_duration_s): every agent gets a heartbeat each 500 ms;\n"
      "progress (sent, rate, captured per end, ETA) at least once a second. Ctrl-C stops the sending and\n"
      "still fetches both captures and writes the bundle of the probes sent; a second Ctrl-C kills.\n"
      "Exit: 0 clean path, 1 usage, 2 environment, 3 agent/protocol (also an agent lost mid-run, named),\n"
      "4 problem found, 130 interrupted by Ctrl-C.");
  add_trace_flags(sub, *args, /*bisect=*/false);
  sub->callback([args, &ctx] { ctx.exit_code = run_trace_command(*args, "trace"); });
}

}  // namespace tandem::cli
