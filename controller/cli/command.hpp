// The seam between the CLI's thin main and each subcommand. Every subcommand lives in its own
// controller/cli/<name>_command.cpp and exposes one register_<name>() that adds its CLI11 subcommand
// to `app` and, when chosen, stores its exit code in ctx.exit_code (DESIGN.md §3 exit codes).
// Bad input is reported by the command itself as one line on stderr plus exit code 1; likely
// environment failures come back as tandem::Error and map through tandem::exit_code().
#pragma once

#include <CLI/CLI.hpp>

#include "common/base/result.hpp"

namespace tandem::cli {

struct CommandContext {
  int exit_code = 0;
  int verbosity = 0;  // -v count from the top-level options
};

// Prints "tandem: <text>" on stderr and returns the exit code for err.code.
int report_error(const ::tandem::Error& err);

void register_ping(CLI::App& app, CommandContext& ctx);
void register_lab(CLI::App& app, CommandContext& ctx);
void register_demo(CLI::App& app, CommandContext& ctx);
void register_keygen(CLI::App& app, CommandContext& ctx);
void register_trace(CLI::App& app, CommandContext& ctx);
void register_analyze(CLI::App& app, CommandContext& ctx);
void register_bisect(CLI::App& app, CommandContext& ctx);
void register_agent_status(CLI::App& app, CommandContext& ctx);

}  // namespace tandem::cli
