#include "controller/lab/lab_agents.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <sstream>

#include <fmt/format.h>

#include "common/transport/curve.hpp"
#include "controller/lab/process.hpp"

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

constexpr uid_t kAgentUid = kUnprivilegedAgentId;
constexpr gid_t kAgentGid = kUnprivilegedAgentId;

// The mode bits (of rwx, as 07) that kAgentUid/kAgentGid gets on st: owner, group or others'.
unsigned agent_bits(const struct stat& st) {
  if (st.st_uid == kAgentUid) return (st.st_mode >> 6) & 07;
  if (st.st_gid == kAgentGid) return (st.st_mode >> 3) & 07;
  return st.st_mode & 07;
}

// Why the agent's user cannot reach `path` with `need` (of rwx, as 07), checking every directory
// above it for search permission; "" when it can. Checked before starting, so that the error names
// the closed directory instead of an agent's "cannot open". ACLs are not consulted.
std::string closed_to_agent(const fs::path& path, unsigned need) {
  const fs::path abs = fs::absolute(path);
  fs::path at = abs.root_path();
  for (auto it = abs.begin(); it != abs.end(); ++it) {
    if (it != abs.begin()) at /= *it;
    struct stat st {};
    if (::stat(at.c_str(), &st) != 0) return at.string() + ": " + std::strerror(errno);
    const bool last = std::next(it) == abs.end();
    const unsigned want = last ? need : 01;
    if ((agent_bits(st) & want) != want)
      return fmt::format("{} (mode {:04o}, owner {}:{}) is closed to uid {}", at.string(), st.st_mode & 07777,
                         st.st_uid, st.st_gid, kAgentUid);
  }
  return {};
}

// Hands `path` to the agent's user with `mode`: the agent refuses a key that is not its own.
Status give_to_agent(const std::string& path, mode_t mode) {
  if (::chown(path.c_str(), kAgentUid, kAgentGid) != 0 || ::chmod(path.c_str(), mode) != 0)
    return make_error(Errc::environment, "lab", "cannot hand " + path + " to uid " + std::to_string(kAgentUid) + ": " +
                                                    std::strerror(errno));
  return ok_status();
}

// A directory of the agent's own (its StateDirectory/LogsDirectory in the unit): created if
// missing, then the agent's with 0700, whoever had it before.
Status agent_dir(const std::string& path) {
  std::error_code ec;
  fs::create_directory(path, ec);
  if (ec) return make_error(Errc::environment, "lab", "cannot create " + path + ": " + ec.message());
  return give_to_agent(path, 0700);
}

}  // namespace

std::string own_binary_dir() {
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

Status LabAgents::launch(const Lab& lab, Node node, Agent& agent, const std::string& name,
                         const std::string& listen_host) {
  const std::string key = workdir_ + "/" + name + ".key";
  const std::string policy = workdir_ + "/" + name + "-policy.toml";
  const std::string data_dir = workdir_ + "/" + name + "-data";
  // Unprivileged, the audit log gets a directory of the agent's own: rotation renames in it.
  agent.audit_log = setpriv_.empty() ? workdir_ + "/" + name + "-audit.log" : workdir_ + "/" + name + "-log/audit.log";
  std::vector<std::string> argv;
  if (!setpriv_.empty()) {
    // What the unit does: User/Group, AmbientCapabilities=CAP_NET_RAW, CapabilityBoundingSet=
    // CAP_NET_RAW, NoNewPrivileges=yes; only the agent's own files are handed over.
    for (const auto& p : {key, policy})
      if (auto st = give_to_agent(p, 0600); !st) return st;
    for (const auto& d : {workdir_ + "/" + name + "-log", data_dir})
      if (auto st = agent_dir(d); !st) return st;
    const std::string id = std::to_string(kAgentUid), gid = std::to_string(kAgentGid);
    argv = {setpriv_,
            "--reuid=" + id,
            "--regid=" + gid,
            "--clear-groups",
            "--inh-caps=-all,+net_raw",
            "--ambient-caps=-all,+net_raw",
            "--bounding-set=-all,+net_raw",
            "--no-new-privs"};
  }
  argv.insert(argv.end(), {binary_,
                           "--listen", fmt::format("tcp://{}:{}", listen_host, kAgentPort),
                           "--key", key,
                           "--policy", policy,
                           "--audit-log", agent.audit_log,
                           "--data-dir", data_dir});
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
  if (options.unprivileged) {
    auto setpriv = find_program("setpriv");
    if (!setpriv)
      return make_error(Errc::environment, "lab",
                        "setpriv not found (Debian package util-linux): it starts the lab agents as uid " +
                            std::to_string(kAgentUid) + " with CAP_NET_RAW only");
    a->setpriv_ = *setpriv;
    // Search, not read: the workdir lists the controller's key files, which stay root's.
    struct stat st {};
    if (::stat(a->workdir_.c_str(), &st) != 0 || ::chmod(a->workdir_.c_str(), (st.st_mode & 07777) | S_IXOTH) != 0)
      return make_error(Errc::environment, "lab", "cannot open " + a->workdir_ + " to uid " +
                                                      std::to_string(kAgentUid) + ": " + std::strerror(errno));
    for (const auto& path : {a->binary_, a->workdir_})
      if (auto why = closed_to_agent(path, 01); !why.empty())
        return make_error(Errc::environment, "lab", "unprivileged agents cannot reach " + path + ": " + why);
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
