// Orchestration of a two-ended run (DESIGN.md §3 `tandem trace`, §6 `tandem bisect`): connects to
// the agents over CurveZMQ, estimates each agent's clock offset from the exchange itself, sets up
// the run lease on both, starts both captures (server first), has the client agent send the plan
// while a second connection polls its progress, waits out the tail, stops both captures, fetches
// them in bounded chunks with a SHA-256 check, and ends the run. What comes out is the raw evidence:
// the two capture files and the manifest correlate() needs.
//
// A run with no server agent (bisect --client only) skips everything server-side; correlate then
// has one capture and fates are coarser.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/base/result.hpp"
#include "common/packet/addr.hpp"
#include "common/proto/clock_sync.hpp"
#include "common/proto/messages.hpp"
#include "common/transport/agent_address.hpp"
#include "common/transport/curve.hpp"
#include "controller/correlate/model.hpp"

namespace tandem::orchestrate {

struct TraceRequest {
  transport::AgentAddress client;
  std::optional<transport::AgentAddress> server;
  transport::CurveKeypair controller_key;
  std::string controller_name = "tandem";
  packet::IpAddr target;
  proto::ProbePlan plan;                 // dst/dport/ip_version filled from target; seed chosen here if 0
  std::vector<correlate::Variant> variant_names;  // names for plan.variants (same order), optional
  std::optional<packet::IpAddr> client_source;    // the client's probing address if known (flows, ICMP)
  // The target as the server sees it, behind a DNAT (address and/or port rewritten on the way): the
  // server agent captures that flow. Empty: the server sees plan.dst / plan.dport.
  std::optional<packet::IpAddr> server_sees_address;
  std::optional<std::uint16_t> server_sees_port;
  std::chrono::milliseconds tail{1000};  // wait for late replies after the last probe
  std::string out_dir;                   // client.pcapng / server.pcapng are written here
  std::chrono::milliseconds request_timeout{5000};
  // Every agent of the run gets a STATUS this often from RUN_SETUP to RUN_END (heartbeat.hpp).
  std::chrono::milliseconds heartbeat_period{500};
  // Set (e.g. by a SIGINT handler) to end the run early: sending stops, both captures are stopped
  // and fetched, and the evidence covers the probes sent so far (TraceEvidence::interrupted).
  // Before sending starts it abandons the run (Errc::usage "interrupted"). Must outlive the call.
  const std::atomic<bool>* interrupt = nullptr;
};

struct SideResult {
  std::string pcapng_path;
  proto::CaptureStats stats;
  proto::HelloOk hello;
  proto::ClockEstimate clock;  // agent clock - controller clock
};

struct TraceEvidence {
  SideResult client;
  std::optional<SideResult> server;
  proto::SendReport send;
  correlate::RunManifest manifest;
  Nanos started_ns = 0, ended_ns = 0;
  std::string run_id;
  bool interrupted = false;  // request.interrupt ended the sending early; the manifest covers the probes sent
};

struct Progress {
  std::string phase;         // "connect", "clock", "setup", "capture", "send", "drain", "fetch", "end"
  std::uint32_t sent = 0;    // during "send"
  std::uint32_t total = 0;
  std::string detail;
  // During "send", at least once a second: the measured send rate, what each end has captured so
  // far (packets matching the run's flows: probes, replies, errors), and the time left.
  double rate_pps = 0;
  std::optional<std::uint64_t> client_captured{}, server_captured{};
  std::optional<double> eta_s{};
};
using ProgressFn = std::function<void(const Progress&)>;

// Errors: Errc::peer (agent unreachable, refused, wrong key, lost during the run: no heartbeat
// reply within 3 s), Errc::protocol (bad reply), Errc::environment (out dir not writable). Every
// request has a timeout, and a lost agent abandons the run at once, so the call never hangs. On any
// error after RUN_SETUP, RUN_END is still sent to every agent that accepted the run and was not
// lost, so no agent keeps sending or capturing (a lost one ends its side by its lease).
Result<TraceEvidence> run_trace(const TraceRequest& request, const ProgressFn& progress);

// The manifest of a run: run key = low 32 bits of the seed (as the agent derives it), probe ->
// variant = probe::variant_schedule(seed, count, variants), clock = server minus client offset.
correlate::RunManifest manifest_for(const TraceRequest& request, const proto::ProbePlan& plan,
                                    const std::optional<proto::ClockEstimate>& client_clock,
                                    const std::optional<proto::ClockEstimate>& server_clock);

}  // namespace tandem::orchestrate
