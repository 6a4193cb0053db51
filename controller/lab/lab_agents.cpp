#include "controller/lab/lab_agents.hpp"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>

#include <fmt/format.h>

#include "common/transport/curve.hpp"

namespace tandem::lab {
namespace {

namespace fs = std::filesystem;

Status write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::trunc);
  f << text;
  f.close();
  if (!f) return make_error(Errc::environment, "lab", "cannot write " + path);
  return ok_status();
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string tail(const std::string& text, std::size_t lines) {
  std::size_t pos = text.size();
  for (std::size_t n = 0; n <= lines && pos != std::string::npos && pos > 0; ++n) pos = text.rfind('\n', pos - 1);
  return pos == std::string::npos ? text : text.substr(pos + 1);
}

}  // namespace

std::string own_binary_dir() {
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

Status LabAgents::launch(const Lab& lab, Node node, Agent& agent, const std::string& name,
                         const std::string& listen_host) {
  agent.audit_log = workdir_ + "/" + name + "-audit.log";
  std::vector<std::string> argv = {binary_,
                                   "--listen", fmt::format("tcp://{}:{}", listen_host, kAgentPort),
                                   "--key", workdir_ + "/" + name + ".key",
                                   "--policy", workdir_ + "/" + name + "-policy.toml",
                                   "--audit-log", agent.audit_log,
                                   "--data-dir", workdir_ + "/" + name + "-data"};
  std::promise<pid_t> started;
  auto pid_future = started.get_future();
  // exec_in blocks until the agent exits, so it runs on its own thread; its pid is registered with
  // the lab's teardown, so a signal that tears the lab down also kills the agent.
  agent.thread = std::thread([&lab, &agent, node, argv, p = std::move(started)]() mutable {
    ExecOptions opts;
    opts.capture = true;
    bool told = false;
    opts.on_start = [&](pid_t pid) {
      p.set_value(pid);
      told = true;
    };
    auto r = lab.exec_in(node, argv, opts);
    if (!told) p.set_value(0);
    agent.output = r ? r->out + r->err : r.error().text();
  });
  agent.pid = pid_future.get();
  if (agent.pid == 0) {
    agent.thread.join();
    return make_error(Errc::environment, "lab", name + " agent did not start: " + agent.output);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (read_file(agent.audit_log).find("agent_started") != std::string::npos) return ok_status();
    if (::kill(agent.pid, 0) != 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (agent.thread.joinable() && ::kill(agent.pid, 0) != 0) agent.thread.join();
  return make_error(Errc::environment, "lab",
                    name + " agent did not come up: " + tail(agent.output + read_file(agent.audit_log), 5));
}

Result<std::unique_ptr<LabAgents>> LabAgents::start(const Lab& lab, const LabAgentsOptions& options) {
  std::unique_ptr<LabAgents> a(new LabAgents());
  a->workdir_ = options.workdir;
  a->binary_ = options.agent_binary.empty() ? own_binary_dir() + "/tandem-agent" : options.agent_binary;
  std::error_code ec;
  fs::create_directories(a->workdir_, ec);
  if (ec) return make_error(Errc::environment, "lab", "cannot create " + a->workdir_ + ": " + ec.message());
  if (::access(a->binary_.c_str(), X_OK) != 0) {
    return make_error(Errc::environment, "lab", "tandem-agent not found at " + a->binary_);
  }

  // client_address() and friends rely on a first site; every Lab that came up has one.
  if (lab.client_sites().empty()) return make_error(Errc::environment, "lab", "lab " + lab.prefix() + " has no client site");
  // One keypair per agent and one for the controller.
  std::vector<std::string> names = {"controller", "server"};
  for (const auto& site : lab.client_sites()) names.push_back(site.name);
  std::vector<std::string> pubs;
  for (const auto& name : names) {
    auto kp = transport::CurveKeypair::generate();
    if (!kp) return kp.error();
    if (auto st = transport::save_keypair(*kp, a->workdir_ + "/" + name, /*force=*/true); !st) return st.error();
    pubs.push_back(kp->public_z85);
  }
  const std::string& controller_pub = pubs[0];
  a->controller_key_ = a->workdir_ + "/controller.key";
  a->server_address_ = fmt::format("tcp://{}:{}#{}", kServerV4, kAgentPort, pubs[1]);

  // The lab is ours end to end: a client agent may probe anything inside the lab's prefixes at
  // any rate the lab can carry, from any address of its namespace; the server agent only captures
  // (flows of every protocol a trace can probe with, ICMP traces included). Runs up to 2 h (an
  // hour-long soak plus its lease slack).
  std::string server_policy = fmt::format(
      "agent_id = \"lab-server\"\n[controllers]\nkeys = [\"{}\"]\n[send]\nenabled = false\n"
      "protocols = [\"tcp\", \"udp\", \"icmp\"]\n"
      "[lease]\nmax_duration_s = 7200\n[capture]\nquota_bytes = 1073741824\n",
      controller_pub);
  if (auto st = write_file(a->workdir_ + "/server-policy.toml", server_policy); !st) return st.error();
  for (std::size_t i = 0; i < lab.client_sites().size(); ++i) {
    const ClientSite& site = lab.client_sites()[i];
    ClientSiteAgent info;
    info.site = site;
    info.agent_id = "lab-" + site.name;
    info.agent_address = fmt::format("tcp://{}:{}#{}", site.addresses.front(), kAgentPort, pubs[2 + i]);
    info.policy_file = a->workdir_ + "/" + site.name + "-policy.toml";
    std::string policy = fmt::format(
        "agent_id = \"{}\"\n[controllers]\nkeys = [\"{}\"]\n[send]\nenabled = true\n"
        "destinations = [\"10.77.0.0/16\", \"fd77::/16\"]\nprotocols = [\"tcp\", \"udp\", \"icmp\"]\n"
        "max_rate_pps = 200000\nmax_packets = 2000000\n[lease]\nmax_duration_s = 7200\n",
        info.agent_id, controller_pub);
    if (auto st = write_file(info.policy_file, policy); !st) return st.error();
    a->clients_.push_back(std::make_unique<Agent>());
    if (auto st = a->launch(lab, site.node, *a->clients_.back(), site.name, site.addresses.front()); !st) return st.error();
    info.pid = a->clients_.back()->pid;
    info.audit_log = a->clients_.back()->audit_log;
    a->sites_.push_back(std::move(info));
  }
  if (auto st = a->launch(lab, Node::server, a->server_, "server", std::string(kServerV4)); !st) return st.error();
  return a;
}

void LabAgents::stop() {
  std::vector<Agent*> all = {&server_};
  for (auto& c : clients_) all.push_back(c.get());
  for (Agent* ag : all) {
    if (ag->pid > 0) ::kill(ag->pid, SIGTERM);
  }
  for (Agent* ag : all) {
    if (ag->thread.joinable()) ag->thread.join();
    ag->pid = 0;
  }
}

LabAgents::~LabAgents() { stop(); }

}  // namespace tandem::lab
