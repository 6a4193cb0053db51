// Real tandem-agent daemons in a lab's client and server namespaces, with fresh CurveZMQ keys for
// the agents and for the controller, and policies that allow exactly that controller and, for the
// client agent, probes into the lab's own prefixes (10.77.0.0/16, fd77::/16). Used by `tandem lab
// run` (trace/bisect modes), `tandem demo` and the trace integration tests.
//
// The agents listen on the lab addresses (10.77.1.2 and 10.77.2.2, port 7070); a controller run
// inside the client namespace reaches the server agent through the middlebox, as it would on a
// real path, so scenarios must not block TCP port 7070 between client and server.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <thread>

#include "common/base/result.hpp"
#include "controller/lab/lab.hpp"

namespace tandem::lab {

inline constexpr std::uint16_t kAgentPort = 7070;

struct LabAgentsOptions {
  std::string workdir;       // keys, policies, audit logs and agent data dirs go here (created)
  std::string agent_binary;  // tandem-agent; empty = next to the running executable
};

class LabAgents {
 public:
  // Generates keys and policies, starts both agents and waits (up to 10 s) until both listen.
  // Errors name the agent and carry the tail of its log.
  static Result<std::unique_ptr<LabAgents>> start(const Lab& lab, const LabAgentsOptions& options);
  ~LabAgents();  // SIGTERM to both agents, then waits for them
  LabAgents(const LabAgents&) = delete;
  LabAgents& operator=(const LabAgents&) = delete;

  // One-line AGENT addresses (tcp://HOST:PORT#KEY) and the controller's secret key file.
  const std::string& client_address() const { return client_address_; }
  const std::string& server_address() const { return server_address_; }
  const std::string& controller_key() const { return controller_key_; }
  const std::string& workdir() const { return workdir_; }
  // For tests that signal an agent (SIGHUP reload, RSS sampling) or read its audit log; its policy
  // file is workdir()/<client|server>-policy.toml.
  pid_t client_pid() const { return client_.pid; }
  pid_t server_pid() const { return server_.pid; }
  const std::string& client_audit_log() const { return client_.audit_log; }
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
  std::string client_address_, server_address_, controller_key_;
  Agent client_, server_;
};

// The directory of the running executable (/proc/self/exe), for finding tandem-agent next to tandem.
std::string own_binary_dir();

}  // namespace tandem::lab
