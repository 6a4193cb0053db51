// `tandem lab up|down|list|run` (DESIGN.md §4): the three-namespace lab from a scenario file.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "controller/cli/command.hpp"
#include "controller/cli/lab_run.hpp"
#include "controller/lab/lab_agents.hpp"
#include "controller/lab/lab.hpp"

namespace tandem::cli {
namespace {

namespace lab = ::tandem::lab;

struct LabArgs {
  std::string scenario;
  std::string name;
  bool foreground = false;
  std::vector<std::string> down_names;
  bool all = false;
  bool force = false;
  std::string out;
  bool unprivileged_agents = false;
};

std::string self_exe() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("tandem") : p.string();
}

void print_lab(const lab::Lab& l, const lab::Scenario& s) {
  std::string ports;
  for (auto p : s.listen_tcp) ports += " tcp/" + std::to_string(p);
  for (auto p : s.listen_udp) ports += " udp/" + std::to_string(p);
  std::printf("lab %s up (scenario %s)\n", l.prefix().c_str(), s.name.c_str());
  // Every client site (client, and client2 when the scenario has one) with all its addresses.
  std::fputs(lab::client_sites_text(l).c_str(), stdout);
  std::printf("  middlebox  %-16s eth-cli  10.77.1.1  fd77:1::1   eth-srv 10.77.2.1  fd77:2::1\n",
              l.middlebox_ns().c_str());
  std::printf("  server     %-16s eth0     10.77.2.2  fd77:2::2   listening:%s\n", l.server_ns().c_str(),
              ports.empty() ? " none" : ports.c_str());
  std::string target = "10.77.2.2";
  std::string port = s.listen_tcp.empty() ? "" : " -p " + std::to_string(s.listen_tcp.front());
  if (auto t = s.run_target()) {
    if (auto rt = lab::parse_run_target(*t)) {
      target = rt->host;
      if (rt->port) port = " -p " + std::to_string(*rt->port);
    }
  }
  std::printf("use it:\n  ip netns exec %s tandem ping %s%s\n", l.client_ns().c_str(), target.c_str(), port.c_str());
  std::printf("  ip netns exec %s tcpdump -ni eth0\n", l.server_ns().c_str());
  std::printf("  ip netns exec %s nft list ruleset\n", l.middlebox_ns().c_str());
}

int cmd_up(const LabArgs& a) {
  auto scenario = lab::load_scenario(a.scenario);
  if (!scenario) return report_error(scenario.error());
  // Foreground: this process owns the lab and removes it on exit or Ctrl-C. Otherwise the
  // listeners are detached and the lab outlives us until `tandem lab down`.
  auto l = lab::Lab::up(*scenario, lab::LabOptions{a.name, !a.foreground});
  if (!l) return report_error(l.error());
  print_lab(*l, *scenario);
  if (!a.foreground) {
    std::printf("take it down:\n  tandem lab down %s\n", l->prefix().c_str());
    l->release();
    return 0;
  }
  std::printf("running in the foreground; Ctrl-C (or SIGTERM/SIGHUP) takes it down\n");
  std::fflush(stdout);
  // The lab's signal handler tears down and re-raises, which ends this loop and the process.
  for (;;) ::pause();
}

int cmd_down(const LabArgs& a) {
  if (a.all == !a.down_names.empty()) {
    std::fprintf(stderr, "tandem: lab down: give lab NAME(s) or --all\n");
    return 1;
  }
  std::vector<std::string> names = a.down_names;
  if (a.all) {
    for (const auto& s : lab::list_states()) names.push_back(s.prefix);
  }
  int rc = 0;
  for (const auto& name : names) {
    auto st = lab::down_by_name(name, a.force);
    if (!st) {
      // --all skips labs that a live process owns (a test in progress) instead of failing.
      if (a.all && st.error().code == Errc::environment) {
        std::fprintf(stderr, "tandem: skipped: %s\n", st.error().text().c_str());
        continue;
      }
      rc = std::max(rc, report_error(st.error()));
      continue;
    }
    std::printf("lab %s down\n", name.c_str());
  }
  return rc;
}

int cmd_list() {
  const auto labs = lab::list_states();
  if (labs.empty()) {
    std::printf("no labs\n");
    return 0;
  }
  std::printf("%-12s  %-20s  %-20s  %-8s  %s\n", "NAME", "SCENARIO", "CREATED", "OWNER", "NAMESPACES");
  for (const auto& s : labs) {
    std::string owner = s.detached ? "detached" : (lab::process_alive(s.owner) ? std::to_string(s.owner.pid) : "dead");
    std::string nss;
    for (const auto& n : s.namespaces) nss += (nss.empty() ? "" : " ") + n;
    std::printf("%-12s  %-20s  %-20s  %-8s  %s\n", s.prefix.c_str(), s.scenario.c_str(), s.created.c_str(),
                owner.c_str(), nss.c_str());
  }
  return 0;
}

}  // namespace

int run_scenario(const lab::Scenario& scenario, const std::string& out, const std::string& name,
                 bool unprivileged_agents) {
  const auto mode = scenario.run_mode();
  if (!mode) {
    return report_error(make_error(Errc::config, "lab", scenario.source + ": [run] has no mode (ping, trace or bisect)"));
  }
  if (*mode != "ping" && *mode != "trace" && *mode != "bisect") {
    return report_error(make_error(Errc::config, "lab", scenario.source + ": [run] mode \"" + *mode +
                                                            "\" is not one of ping, trace, bisect"));
  }
  if (unprivileged_agents && *mode == "ping") {
    return report_error(make_error(Errc::usage, "lab", "--unprivileged-agents: " + scenario.source +
                                                           " runs ping, which starts no agent"));
  }
  const auto target_text = scenario.run_target();
  if (!target_text) return report_error(make_error(Errc::config, "lab", scenario.source + ": [run] has no target"));
  auto target = lab::parse_run_target(*target_text);
  if (!target) return report_error(target.error());
  if (*mode != "ping" && !target->port) {
    return report_error(make_error(Errc::config, "lab", scenario.source + ": [run] target needs a port for " + *mode));
  }

  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (ec) return report_error(make_error(Errc::environment, "lab", "create " + out + ": " + ec.message()));
  const auto out_abs = std::filesystem::absolute(out).string();

  auto l = lab::Lab::up(scenario, lab::LabOptions{name, false});
  if (!l) return report_error(l.error());
  std::fprintf(stderr, "tandem: lab %s up (scenario %s); running %s in %s\n", l->prefix().c_str(), scenario.name.c_str(),
               mode->c_str(), l->client_ns().c_str());

  std::vector<std::string> argv = {self_exe(), *mode};
  std::unique_ptr<lab::LabAgents> agents;
  if (*mode == "ping") {
    argv.push_back(target->host);
    if (target->port) {
      argv.push_back("-p");
      argv.push_back(std::to_string(*target->port));
    }
  } else {
    // Real agents in both end namespaces, fresh keys; the controller runs in the client namespace.
    const std::string workdir = "/run/tandem/lab-agents/" + l->prefix();
    auto started = lab::LabAgents::start(*l, lab::LabAgentsOptions{workdir, "", unprivileged_agents});
    if (!started) {
      report_error(started.error());
      std::filesystem::remove_all(workdir, ec);  // the keys of agents that never ran
      static_cast<void>(l->down());
      return exit_code(started.error().code);
    }
    agents = std::move(started).value();
    bool v6 = target->host.find(':') != std::string::npos;
    std::string host = v6 ? "[" + target->host + "]" : target->host;
    argv.insert(argv.end(), {"--key", agents->controller_key(), "--target", host + ":" + std::to_string(*target->port),
                             "--out", out_abs, "--force"});
    // Every client site's agent, and with more than one address in the lab every address of the
    // target's family as a vantage (DESIGN.md §4): one scenario can show "fails only from
    // 10.77.3.2". A one-address lab runs as before (the agent's routing default).
    const auto& sites = agents->client_sites();
    std::vector<std::string> sources;
    for (const auto& site : sites) {
      for (const auto& addr : site.site.addresses) {
        if ((addr.find(':') != std::string::npos) == v6) sources.push_back(addr);
      }
    }
    const bool many = sites.size() > 1 || sources.size() > 1;
    // bisect compares the base vantage with one --bisect-source: it gets the first site only,
    // unless the scenario names bisect_source itself.
    for (std::size_t i = 0; i < sites.size(); ++i) {
      if (*mode == "bisect" && i > 0 && scenario.run_value("bisect_source") == nullptr) break;
      argv.insert(argv.end(), {"--client", sites[i].agent_address});
    }
    if (many && *mode == "trace") {
      for (const auto& src : sources) argv.insert(argv.end(), {"--source", src});
    }
    if (*mode == "trace") argv.insert(argv.end(), {"--server", agents->server_address()});
    if (*mode == "bisect" && scenario.run_value("client_only") == nullptr) {
      argv.insert(argv.end(), {"--server", agents->server_address()});
    }
  }
  for (auto& f : lab::run_flags(scenario)) argv.push_back(std::move(f));
  if (*mode == "ping") {
    argv.push_back("--json");
    argv.push_back(out_abs + "/report.json");
  }
  lab::ExecOptions opts;
  opts.capture = false;  // the command prints its own report
  std::fflush(stdout);
  auto r = l->exec_in(lab::Node::client, argv, opts);
  agents.reset();
  std::filesystem::remove_all("/run/tandem/lab-agents/" + l->prefix(), ec);
  if (!r) return report_error(r.error());
  if (auto st = l->down(); !st) {
    report_error(st.error());
    return r->exit_code != 0 ? r->exit_code : 2;
  }
  return r->exit_code;
}

namespace {

int cmd_run(const LabArgs& a) {
  auto scenario = lab::load_scenario(a.scenario);
  if (!scenario) return report_error(scenario.error());
  return run_scenario(*scenario, a.out, a.name, a.unprivileged_agents);
}

}  // namespace

void register_lab(CLI::App& app, CommandContext& ctx) {
  auto args = std::make_shared<LabArgs>();
  auto* lab_cmd = app.add_subcommand("lab", "Three-namespace lab: client, nftables middlebox, server (needs root)");
  lab_cmd->require_subcommand(1);

  auto* up = lab_cmd->add_subcommand("up", "Create a lab from a scenario file and leave it running");
  up->add_option("scenario", args->scenario, "Scenario file (TOML)")->required()->check(CLI::ExistingFile);
  up->add_option("--name", args->name, "Lab name (prefix of its namespaces; 1-12 of a-z 0-9 -); default tdmXXXXXX");
  up->add_flag("--foreground", args->foreground, "Keep the lab only while this command runs (Ctrl-C takes it down)");
  up->callback([&ctx, args] { ctx.exit_code = cmd_up(*args); });

  auto* down = lab_cmd->add_subcommand("down", "Remove labs created by `tandem lab up` (only labs with a tandem state file)");
  down->add_option("name", args->down_names, "Lab name(s) or one of their namespace names");
  down->add_flag("--all", args->all, "All labs with a tandem state file (skips labs owned by a running process)");
  down->add_flag("--force", args->force, "Also remove a lab whose owning process still runs");
  down->callback([&ctx, args] { ctx.exit_code = cmd_down(*args); });

  auto* list = lab_cmd->add_subcommand("list", "List labs created by tandem");
  list->callback([&ctx] { ctx.exit_code = cmd_list(); });

  auto* run = lab_cmd->add_subcommand("run", "Bring a lab up, run the scenario's [run] mode in it, tear it down");
  run->add_option("scenario", args->scenario, "Scenario file (TOML)")->required()->check(CLI::ExistingFile);
  run->add_option("--out", args->out, "Output directory for the bundle (report.json, ...)")->required();
  run->add_option("--name", args->name, "Lab name (default tdmXXXXXX)");
  run->add_flag("--unprivileged-agents", args->unprivileged_agents,
                "Run the lab agents (trace, bisect) as uid 65534 with CAP_NET_RAW only, as the systemd unit "
                "does (needs setpriv)");
  run->callback([&ctx, args] { ctx.exit_code = cmd_run(*args); });
}

}  // namespace tandem::cli
