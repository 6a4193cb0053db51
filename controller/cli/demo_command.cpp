// `tandem demo [NAME]`: runs a built-in scenario in a fresh lab (DESIGN.md §4). With no name it runs
// the story of DESIGN.md §1: SYNs carrying window scale dropped ~30 % in flight to an FTP port.
#include <cstdio>
#include <iterator>
#include <memory>

#include "controller/cli/builtin_scenarios.hpp"
#include "controller/cli/command.hpp"
#include "controller/cli/lab_run.hpp"
#include "controller/lab/scenario.hpp"

namespace tandem::cli {
namespace {

// The default demo: the story of DESIGN.md §1 in three acts — where the SYNs die (trace), which
// option makes them die (bisect), and "only certain source IPs": two sites traced at once.
constexpr const char* kStory[] = {"ftp-options", "bisect-wscale", "only-one-site"};

struct DemoArgs {
  std::string name;  // empty: the story
  std::string out;
  bool list = false;
};

int run_demo(const DemoArgs& a) {  // NOLINT(misc-no-recursion): the story runs its acts
  if (a.list) {
    for (const auto& s : builtin_scenarios()) {
      auto parsed = lab::parse_scenario(std::string(s.toml), std::string(s.name));
      std::printf("%-18s %s\n", std::string(s.name).c_str(), parsed ? parsed->description.c_str() : "(invalid)");
    }
    return 0;
  }
  if (a.name.empty()) {
    std::string base = a.out.empty() ? "tandem-demo" : a.out;
    for (const char* act : kStory) {
      DemoArgs one;
      one.name = act;
      one.out = base + "/" + act;
      int rc = run_demo(one);
      if (rc != 0) return rc;  // could not run: stop here
      std::printf("\n");
    }
    std::printf("tandem demo: all %zu acts ran as designed (evidence in %s/)\n", std::size(kStory), base.c_str());
    return 0;
  }
  for (const auto& s : builtin_scenarios()) {
    if (s.name != a.name) continue;
    auto scenario = lab::parse_scenario(std::string(s.toml), "builtin:" + std::string(s.name));
    if (!scenario) return report_error(scenario.error());
    std::string out = a.out.empty() ? "tandem-demo-" + a.name : a.out;
    std::printf("tandem demo %s: %s\n\n", a.name.c_str(), scenario->description.c_str());
    std::fflush(stdout);
    int rc = run_scenario(*scenario, out, "");
    // The stories show problems on purpose: a run that completed and found one (exit 4 for a real
    // `tandem trace`) is the demo working. Only a run that could not complete fails the demo.
    if (rc == 0 || rc == kExitProblemFound) {
      std::printf("\ndemo ran as designed: %s (a real run would exit %d); the evidence bundle is in %s/\n",
                  rc == 0 ? "the path came out clean" : "the run found the problem the scenario builds in", rc,
                  out.c_str());
      std::fflush(stdout);
      return 0;
    }
    std::printf("\ndemo FAILED: the run could not complete (exit code %d); see the error above\n", rc);
    return rc;
  }
  return report_error(make_error(Errc::usage, "demo", "no built-in scenario '" + a.name + "' (see tandem demo --list)"));
}

}  // namespace

void register_demo(CLI::App& app, CommandContext& ctx) {
  auto args = std::make_shared<DemoArgs>();
  auto* sub = app.add_subcommand("demo", "Run a built-in lab scenario end to end (needs root); default: the FTP options story");
  sub->add_option("name", args->name, "Scenario name (tandem demo --list); default: the FTP story, traced, bisected, then traced from two sites");
  sub->add_option("--out", args->out, "Bundle directory (default ./tandem-demo-NAME, or ./tandem-demo/ACT for the story)");
  sub->add_flag("--list", args->list, "List the built-in scenarios");
  sub->footer("The scenarios are the files of deploy/scenarios, built into the binary.\n"
              "Exit: 0 when the demo ran as designed (its stories show problems on purpose: a run that finds\n"
              "one is the demo working), 1 usage, 2 environment (not root, no netns), 3 agent/protocol.");
  sub->callback([args, &ctx] { ctx.exit_code = run_demo(*args); });
}

}  // namespace tandem::cli
