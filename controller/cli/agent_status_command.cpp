// `tandem agent-status AGENT... [--agent-key FILE] [--key FILE] [--timeout S] [--json]`: before a
// trace, checks each agent from the controller's side — reachable, our key accepted (CURVE + the
// agent's allow list), who it is (agent id, version, capabilities), what its operator's policy
// allows, whether it is idle or busy, and the clock offset and round trip to it. Sends no probe and
// changes nothing on the agent (HELLO, STATUS, CLOCK_PROBE, BYE).
// Exit codes: 0 every agent answered; 1 usage/config (bad AGENT line, key file); 3 an agent did not
// answer or refused us.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/base/clock.hpp"
#include "common/base/version.hpp"
#include "common/transport/agent_address.hpp"
#include "common/transport/controller_client.hpp"
#include "controller/cli/command.hpp"
#include "controller/cli/trace_common.hpp"

namespace tandem::cli {
namespace {

struct AgentStatusArgs {
  std::vector<std::string> agents;
  std::string agent_key;
  std::string key;
  double timeout_s = 3.0;
  bool json = false;
};

struct Checked {
  std::string address;
  std::optional<Error> error;
  proto::HelloOk hello;
  proto::StatusReply status;
  std::optional<proto::ClockEstimate> clock;
  Nanos hello_ns = 0;
};

Checked check(const transport::AgentAddress& agent, const transport::CurveKeypair& key, std::chrono::milliseconds timeout) {
  Checked c;
  c.address = agent.to_string();
  transport::ClientOptions o;
  o.agent = agent;
  o.keypair = key;
  o.timeout = timeout;
  auto client = transport::ControllerClient::connect(o);
  if (!client) {
    c.error = client.error();
    return c;
  }
  const Nanos t0 = monotonic_ns();
  auto hello = (*client)->request_as<proto::HelloOk>(proto::Hello{1, 1, std::string("tandem ") + kVersion, {}});
  if (!hello) {
    c.error = hello.error();
    return c;
  }
  c.hello_ns = monotonic_ns() - t0;
  c.hello = std::move(hello).value();
  auto status = (*client)->request_as<proto::StatusReply>(proto::StatusRequest{});
  if (!status) {
    c.error = status.error();
    return c;
  }
  c.status = std::move(status).value();
  if (auto clock = (*client)->sync_clock(8); clock) c.clock = *clock;  // optional: status is the point
  static_cast<void>((*client)->post(proto::Bye{}));
  return c;
}

std::string_view state_name(proto::AgentState s) {
  switch (s) {
    case proto::AgentState::idle: return "idle";
    case proto::AgentState::armed: return "armed";
    case proto::AgentState::capturing: return "capturing";
    case proto::AgentState::sending: return "sending";
    case proto::AgentState::stopped: return "stopped";
    case proto::AgentState::failed: return "failed";
  }
  return "unknown";
}

std::string us(Nanos ns) { return fmt::format("{:.1f} µs", static_cast<double>(ns) / 1e3); }

void print_text(const Checked& c) {
  if (c.error) {
    std::printf("%s\n  NOT OK: %s\n", c.address.c_str(), c.error->text().c_str());
    return;
  }
  std::string caps;
  for (const auto& k : c.hello.capabilities) caps += (caps.empty() ? "" : ", ") + k;
  std::printf("%s\n", c.address.c_str());
  std::printf("  ok:       reachable, our key accepted (HELLO answered in %s)\n", us(c.hello_ns).c_str());
  std::printf("  agent:    %s, %s, protocol %u, capabilities: %s\n", c.hello.agent_id.c_str(),
              c.hello.agent_version.c_str(), static_cast<unsigned>(c.hello.version), caps.empty() ? "none" : caps.c_str());
  std::printf("  state:    %s (%s)\n", std::string(state_name(c.status.state)).c_str(), c.status.detail.c_str());
  if (c.clock) {
    // µs like every clock and RTT in text output (the JSON keeps ns).
    std::printf("  clock:    agent %+.1f µs from ours, ± %s (round trip %s)\n",
                static_cast<double>(c.clock->offset_ns) / 1e3, us(c.clock->error_ns).c_str(), us(c.clock->rtt_ns).c_str());
  } else {
    std::printf("  clock:    unknown (no usable CLOCK_PROBE sample)\n");
  }
  std::printf("  policy:   %s\n", c.hello.policy_summary.c_str());
}

nlohmann::ordered_json to_json(const Checked& c) {
  nlohmann::ordered_json j;
  j["agent"] = c.address;
  j["ok"] = !c.error.has_value();
  if (c.error) {
    j["error"] = c.error->text();
    return j;
  }
  j["agent_id"] = c.hello.agent_id;
  j["agent_version"] = c.hello.agent_version;
  j["protocol"] = c.hello.version;
  j["capabilities"] = c.hello.capabilities;
  j["state"] = std::string(state_name(c.status.state));
  j["detail"] = c.status.detail;
  j["hello_rtt_us"] = static_cast<double>(c.hello_ns) / 1e3;
  if (c.clock) {
    j["clock"] = {{"offset_ns", c.clock->offset_ns}, {"error_ns", c.clock->error_ns}, {"rtt_ns", c.clock->rtt_ns}};
  } else {
    j["clock"] = nullptr;
  }
  j["policy"] = c.hello.policy_summary;
  return j;
}

int run_agent_status(const AgentStatusArgs& a) {
  std::vector<transport::AgentAddress> agents;
  for (const auto& text : a.agents) {
    auto addr = a.agent_key.empty() ? transport::parse_agent_address(text)
                                    : transport::parse_agent_address(text, a.agent_key);
    if (!addr) return report_error(addr.error());
    agents.push_back(*addr);
  }
  const std::string key_path = a.key.empty() ? default_key_path() : a.key;
  auto key = transport::CurveKeypair::load_secret_file(key_path);
  if (!key) return report_error(key.error());
  const auto timeout = std::chrono::milliseconds(static_cast<long long>(a.timeout_s * 1000));
  bool all_ok = true;
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& agent : agents) {
    auto c = check(agent, *key, timeout);
    all_ok = all_ok && !c.error;
    if (a.json) {
      out.push_back(to_json(c));
    } else {
      print_text(c);
    }
  }
  if (a.json) std::printf("%s\n", out.dump(2).c_str());
  return all_ok ? 0 : 3;
}

}  // namespace

void register_agent_status(CLI::App& app, CommandContext& ctx) {
  auto args = std::make_shared<AgentStatusArgs>();
  auto* sub = app.add_subcommand("agent-status",
                                 "Check agents before a run: reachable, our key accepted, identity, policy, idle/busy, clock");
  sub->footer(
      "Sends no probe and changes nothing on the agent (HELLO, STATUS, CLOCK_PROBE, BYE).\n"
      "Exit: 0 every agent answered, 1 usage/config, 3 an agent did not answer or refused our key.");
  sub->add_option("agents", args->agents, "AGENT lines: tcp://HOST:PORT/KEY or tcp://HOST:PORT#KEY (or tcp://HOST:PORT with --agent-key)")
      ->required();
  sub->add_option("--agent-key", args->agent_key, "The agent's public key file, for an AGENT without a key");
  sub->add_option("--key", args->key, "This controller's secret key file; default $TANDEM_KEY or "
                                      "~/.config/tandem/controller.key");
  sub->add_option("--timeout", args->timeout_s, "Seconds to wait for each answer")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 120.0));
  sub->add_flag("--json", args->json, "Print a JSON array (one object per agent) instead of text");
  sub->callback([args, &ctx] { ctx.exit_code = run_agent_status(*args); });
}

}  // namespace tandem::cli
