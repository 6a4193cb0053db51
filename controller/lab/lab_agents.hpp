// Real tandem-agent daemons in every client namespace of a lab (client, and client2 when the
// scenario has [client2]) and in its server namespace, with fresh CurveZMQ keys for each agent and
// for the controller, and policies that allow exactly that controller and, for the client agents,
// probes into the lab's own prefixes (10.77.0.0/16, fd77::/16). Used by `tandem lab run`
// (trace/bisect modes), `tandem demo` and the trace integration tests.
//
// The agents listen on the sites' primary v4 addresses (10.77.1.2, 10.77.3.2 and 10.77.2.2, port
// 7070); a controller run inside the client namespace reaches the server agent (and client2's)
// through the middlebox, as it would on a real path, so scenarios must not block TCP port 7070
// between the sites.
//
// What `lab run` should pass to a multi-vantage trace/bisect (DESIGN.md §3, §4), once the run
// pipeline takes several clients: for each entry of client_sites(), `--client <agent_address>`, and
// `--source <a>` for every address `a` of that entry's `addresses` in the target's family (v4
// addresses for a v4 target, v6 for a v6 one) — every site's primary and extra addresses, so one
// scenario can show "fails only from 10.77.3.2". client_address() is client_sites()[0]'s agent,
// for the single-client commands of today.
//
// Unprivileged agents (LabAgentsOptions::unprivileged): every agent is started through setpriv as
// uid/gid 65534 with CAP_NET_RAW only, as deploy/agent/tandem-agent.service runs it (ambient
// CAP_NET_RAW, bounding set reduced to it, no_new_privs, no supplementary groups). The files an
// agent opens itself are then its user's and nobody else's, like the unit's directories: its secret
// key and its policy (0600), its audit log in <name>-log/ and its data dir <name>-data/ (both 0700).
// The workdir stays root's (the controller's key in it is root's, 0600) and gets o+x (search, not
// list); every directory above it, and the agent binary, must already be open to that user.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/base/result.hpp"
#include "controller/lab/lab.hpp"

namespace tandem::lab {

inline constexpr std::uint16_t kAgentPort = 7070;
// The user and group unprivileged lab agents run as (nobody/nogroup on Debian).
inline constexpr unsigned kUnprivilegedAgentId = 65534;

// One client site's agent, as a controller needs it.
struct ClientSiteAgent {
  ClientSite site;            // name ("client", "client2"), namespace, every address (Lab::client_sites())
  std::string agent_address;  // one AGENT line, tcp://<site primary v4>:7070#KEY
  std::string agent_id;       // as the agent reports it: "lab-client", "lab-client2"
  pid_t pid = 0;
  std::string audit_log;      // workdir()/<name>-audit.log, or workdir()/<name>-log/audit.log when unprivileged
  std::string policy_file;    // workdir()/<name>-policy.toml
};

struct LabAgentsOptions {
  std::string workdir;       // keys, policies, audit logs and agent data dirs go here (created)
  std::string agent_binary;  // tandem-agent; empty = next to the running executable
  // true: every agent runs as kUnprivilegedAgentId with CAP_NET_RAW only (see the top of this
  // file); needs setpriv (util-linux). false: agents run as the caller (root), as before.
  bool unprivileged = false;
};

class LabAgents {
 public:
  // Generates keys and policies, starts an agent per client site and the server agent and waits
  // (up to 10 s each) until each listens. Errors name the agent and carry the tail of its log.
  // Unprivileged: fails up front, naming what is missing, when setpriv is absent or the binary or
  // the workdir is closed to that user.
  static Result<std::unique_ptr<LabAgents>> start(const Lab& lab, const LabAgentsOptions& options);
  ~LabAgents();  // SIGTERM to every agent, then waits for them
  LabAgents(const LabAgents&) = delete;
  LabAgents& operator=(const LabAgents&) = delete;

  // Every client site with its agent, "client" first (the order of Lab::client_sites()).
  const std::vector<ClientSiteAgent>& client_sites() const { return sites_; }

  // One-line AGENT addresses (tcp://HOST:PORT#KEY) and the controller's secret key file. The
  // client_* accessors are the first site's ("client"), for single-client callers.
  const std::string& client_address() const { return sites_.front().agent_address; }
  const std::string& server_address() const { return server_address_; }
  const std::string& controller_key() const { return controller_key_; }
  const std::string& workdir() const { return workdir_; }
  // For tests that signal an agent (SIGHUP reload, RSS sampling) or read its audit log; its policy
  // file is workdir()/<client|client2|server>-policy.toml.
  pid_t client_pid() const { return sites_.front().pid; }
  pid_t server_pid() const { return server_.pid; }
  const std::string& client_audit_log() const { return sites_.front().audit_log; }
  const std::string& server_audit_log() const { return server_.audit_log; }

 private:
  struct Agent {
    std::thread thread;
    pid_t pid = 0;
    std::string audit_log;
    std::string output;  // stdout+stderr, filled when it exits
  };
  LabAgents() = default;
  Status launch(const Lab& lab, Node node, Agent& agent, const std::string& name, const std::string& listen_host);
  void stop();

  std::string workdir_, binary_;
  std::string setpriv_;  // absolute path when the agents run unprivileged, else empty
  std::string server_address_, controller_key_;
  std::vector<ClientSiteAgent> sites_;            // filled once every agent is up
  std::vector<std::unique_ptr<Agent>> clients_;   // same order as sites_; stable addresses (threads hold them)
  Agent server_;
};

// The directory of the running executable (/proc/self/exe), for finding tandem-agent next to tandem.
std::string own_binary_dir();

}  // namespace tandem::lab
