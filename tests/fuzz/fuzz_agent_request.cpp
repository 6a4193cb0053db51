// libFuzzer target for the agent's handling of one request after the transport (issue 10 item 8):
// decode, then what the daemon does with each message without sockets or privileges: the session
// decision for every phase, the policy checks (check_run_setup, check_server_flows, check_plan),
// the BPF the agent would install (flows_filter, which compiles it with libpcap), and the audit
// escaping of the controller's text. Built only with -DTANDEM_FUZZ=ON (clang); see docs/agent.md
// "Fuzzing".
//
// Properties beyond "no crash, no sanitizer report, no leak":
//   * an audit field never contains a raw control byte or an unescaped quote (json_string);
//   * filter text the agent accepts is AND-ed in parentheses after the agent's own filter, which
//     compiles on its own (the text can only narrow).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>

#include "agent/audit.hpp"
#include "agent/capture/run_capture.hpp"
#include "agent/policy/policy.hpp"
#include "agent/session/session.hpp"
#include "common/proto/wire.hpp"

namespace {

using namespace tandem;

[[noreturn]] void property_broken() { std::abort(); }

const agent::Policy& policy() {
  static const agent::Policy p = [] {
    agent::Policy q;
    q.controller_keys = {"k"};
    q.destinations = {*agent::Cidr::parse("0.0.0.0/0"), *agent::Cidr::parse("::/0")};
    q.protocols = {true, true, true};
    q.max_rate_pps = 1'000'000;
    q.max_packets = 1'000'000;
    q.max_duration_s = 86'400;
    q.allow_filter_text = true;
    return q;
  }();
  return p;
}

void check_escaped(const std::string& text) {
  const std::string j = agent::json_string(text);
  if (j.size() < 2 || j.front() != '"' || j.back() != '"') property_broken();
  for (std::size_t i = 1; i + 1 < j.size(); ++i) {
    const auto c = static_cast<unsigned char>(j[i]);
    if (c < 0x20 || c >= 0x7f) property_broken();
    if (c == '"' && j[i - 1] != '\\') property_broken();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> in(data, size);
  const proto::Decoded d = proto::decode(in);
  if (!d.ok()) return 0;
  const proto::Message& m = d.value().message;
  const proto::MsgType type = proto::type_of(m);
  agent::Connection c{"k"};
  for (bool hello : {false, true}) {
    c.hello = hello;
    for (auto phase : {agent::RunPhase::none, agent::RunPhase::armed, agent::RunPhase::capturing, agent::RunPhase::stopped}) {
      (void)agent::decide(c, "k", phase, type, "");
      (void)agent::decide(c, "other", phase, type, "k");
    }
  }
  const Nanos now = 1'700'000'000'000'000'000;
  if (const auto* h = std::get_if<proto::Hello>(&m)) {
    check_escaped(h->controller_name);
  } else if (const auto* s = std::get_if<proto::RunSetup>(&m)) {
    check_escaped(s->run_id);
    check_escaped(s->capture_filter);
    if (!agent::check_run_setup(policy(), *s, now)) return 0;
    (void)agent::check_server_flows(policy(), *s, {*packet::IpAddr::parse("127.0.0.1")});
    const int snaplen = static_cast<int>(s->snaplen ? s->snaplen : 256);
    auto f = agent::flows_filter(s->flows, s->capture_filter, snaplen);
    if (f && !s->capture_filter.empty()) {
      auto base = agent::flows_filter(s->flows, "", snaplen);
      if (!base || *f != "(" + *base + ") and (" + s->capture_filter + ")") property_broken();
    }
  } else if (const auto* p = std::get_if<proto::SendPlan>(&m)) {
    check_escaped(p->plan.tcp_options);
    proto::Flow flow;
    flow.dst = p->plan.dst;
    flow.l4 = p->plan.l4;
    flow.dport = p->plan.dport;
    (void)agent::check_plan(policy(), p->plan, {flow}, 0);
  }
  return 0;
}
