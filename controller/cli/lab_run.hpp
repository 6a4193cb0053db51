// Running a scenario's [run] section in a fresh lab (`tandem lab run`, `tandem demo`): lab up, real
// agents for trace/bisect, the mode's command inside the client namespace, everything torn down.
#pragma once

#include <string>

#include "controller/lab/scenario.hpp"

namespace tandem::cli {

// Returns the command's exit code (DESIGN.md §3); errors before the run are printed and mapped.
// `name` = lab prefix ("" = random). unprivileged_agents: trace/bisect agents run as uid 65534 with
// CAP_NET_RAW only (lab::LabAgentsOptions::unprivileged).
int run_scenario(const lab::Scenario& scenario, const std::string& out, const std::string& name,
                 bool unprivileged_agents = false);

}  // namespace tandem::cli
