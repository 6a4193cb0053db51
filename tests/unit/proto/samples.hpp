// One filled-in instance of every wire message (used by the round-trip test and to seed the fuzz corpus).
#pragma once

#include <string>
#include <vector>

#include "common/proto/messages.hpp"

namespace tandem::proto::testing {

inline ProbePlan sample_plan() {
  ProbePlan p;
  p.count = 200;
  p.rate_pps = 50;
  p.interval_us = 0;
  p.seed = 0x1234'5678'9abc'def0ULL;
  p.dport = 21;
  p.dst = "10.77.2.2";
  p.ip_version = 4;
  p.l4 = L4::tcp;
  p.tcp_options = "mss=1460,sack,ts,nop,ws=7";
  p.tos = 0x10;
  p.ttl = 64;
  p.df = true;
  p.window = 64240;
  p.sport = "40000-40100";
  p.variants = {{"", 0, "random"}, {"mss=1460", 0, "random"}, {"mss=1460,sack,ts,nop,ws=7", 0xb8, "40000", 255}};
  return p;
}

inline std::vector<Message> sample_messages() {
  RunSetup setup;
  setup.run_id = "run-20240101.1";
  setup.lease_deadline_ns = 1'700'000'000'000'000'000;
  setup.role = Role::server;
  setup.capture_filter = "";
  setup.snaplen = 128;
  setup.flows = {{"10.77.1.2", "10.77.2.2", L4::tcp, 40000, 40100, 21}, {"", "fd77:2::2", L4::udp, 0, 0, 53}};
  setup.plan = sample_plan();
  CaptureChunk last;
  last.offset = 4;
  last.total = 7;
  last.bytes = {0xa, 0xb, 0xc};
  last.sha256.assign(32, 0x5a);
  return {
      Hello{1, 1, "ctl", {"clock"}},
      HelloOk{1, "agent-a", "0.1.0", {"clock", "capture", "send"}, "destinations: peer only\nrate <= 1000 pps", {"10.77.1.2", "fd77:1::2"}},
      ClockProbe{1'700'000'000'123'456'789},
      ClockReply{1, 2, 3},
      setup,
      RunOk{"run-20240101.1", {}},
      CaptureStart{},
      CaptureStop{250},
      CaptureStats{1000, 2, 0, false, 65536},
      SendPlan{sample_plan()},
      SendReport{200, 1, 10, 20},
      StatusRequest{},
      StatusReply{AgentState::capturing, 500, "sending 100/200"},
      FetchCapture{0, 65536},
      last,
      RunEnd{},
      ErrorReply{ErrorCode::policy_refused, "destination 192.0.2.1 not allowed by policy"},
      Bye{},
  };
}

}  // namespace tandem::proto::testing
