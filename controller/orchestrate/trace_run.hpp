// Orchestration of a two-ended run (DESIGN.md §3 `tandem trace`, §6 `tandem bisect`): connects to
// the agents over CurveZMQ, estimates each agent's clock offset from the exchange itself, sets up
// the run lease on both, starts both captures (server first), has the client agent send the plan
// while a second connection polls its progress, waits out the tail, stops both captures, fetches
// them in bounded chunks with a SHA-256 check, and ends the run. What comes out is the raw evidence:
// the two capture files and the manifest correlate() needs.
//
// Several client agents, source addresses and targets make one run (DESIGN.md §3): each client
// agent gets one plan with a stream per (source, target) cell, every agent holds the same run id,
// all captures start before the first probe and stop after the last. A target with no server agent
// (bisect --client only) skips everything server-side; correlate then has one capture and fates
// are coarser.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
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

// One client agent of the run and the source addresses it sends from (DESIGN.md §3 vantage points).
struct ClientEnd {
  transport::AgentAddress agent;
  std::vector<packet::IpAddr> sources;  // empty: one vantage from the agent's routing default
  // Also a vantage from the routing default when sources are given (bisect --bisect-source with an
  // address of the only client agent: the default is the base vantage).
  bool also_default = false;
};

// One target of the run and the server agent capturing at it (none: bisect --client only).
struct TargetEnd {
  packet::IpAddr address;  // as the clients address it
  std::optional<transport::AgentAddress> server;
  // The target as the server sees it, behind a DNAT (address and/or port rewritten on the way): the
  // server agent captures that flow. Empty: the server sees `address` / plan.dport.
  std::optional<packet::IpAddr> server_sees_address;
  std::optional<std::uint16_t> server_sees_port;
};

struct TraceRequest {
  // Every client agent sends `plan.count` probes per vantage (source) per target, at `plan.rate_pps`
  // per vantage per target; the plan's dst is each target's address, its dport every target's.
  std::vector<ClientEnd> clients;  // at least one
  std::vector<TargetEnd> targets;  // at least one
  // --source addresses not tied to an agent: each goes to the one client agent whose HELLO_OK lists
  // it (none or several: Errc::usage naming the address).
  std::vector<packet::IpAddr> sources;
  // Bisection with the source as a feature: which of plan.variants each vantage sends, keyed by its
  // --source address ("" = the vantages sending from their routing default). Empty: every vantage
  // sends every variant. A vantage whose list is empty sends nothing this run; one with k of the
  // plan's n variants sends count * k / n probes (at least k).
  std::map<std::string, std::vector<std::uint16_t>> source_variants;
  transport::CurveKeypair controller_key;
  std::string controller_name = "tandem";
  proto::ProbePlan plan;                 // base fields and count/rate per cell; seed chosen here if 0
  std::vector<correlate::Variant> variant_names;  // names for plan.variants (same order), optional
  std::chrono::milliseconds tail{1000};  // wait for late replies after the last probe
  // client.pcapng / server.pcapng are fetched here; with several agents of a role, client1.pcapng,
  // client2.pcapng, ... (capture_file_name) and the bundle's client.pcapng merges them.
  std::string out_dir;
  std::chrono::milliseconds request_timeout{5000};
  // Every agent of the run gets a STATUS this often from RUN_SETUP to RUN_END (heartbeat.hpp).
  std::chrono::milliseconds heartbeat_period{500};
  // Set (e.g. by a SIGINT handler) to end the run early: sending stops, both captures are stopped
  // and fetched, and the evidence covers the probes sent so far (TraceEvidence::interrupted).
  // Before sending starts it abandons the run (Errc::usage "interrupted"). Must outlive the call.
  const std::atomic<bool>* interrupt = nullptr;
};

struct SideResult {
  std::string pcapng_path;     // "" for a client agent with nothing to send this run (no capture)
  proto::CaptureStats stats;
  proto::HelloOk hello;
  proto::ClockEstimate clock;  // agent clock - controller clock
};

// One vantage (client agent, source address) against one target: a stream of its own seed, so its
// probes have their own run key and correlate on their own (per-cell correlation).
struct Cell {
  std::size_t client = 0;        // index into TraceRequest::clients / TraceEvidence::clients
  std::size_t target = 0;        // index into TraceRequest::targets / TraceEvidence::servers
  std::optional<packet::IpAddr> source;  // the address the probes left from (for a default: the agent's answer)
  bool source_given = false;     // named by --source (else the agent's routing default)
  correlate::RunManifest manifest;
  std::uint64_t seed = 0;
  // The plan variant of each of this cell's variants (TraceRequest::source_variants); empty: the
  // cell sends every plan variant, in order.
  std::vector<std::uint16_t> variant_map;
};

struct TraceEvidence {
  std::vector<SideResult> clients;               // per TraceRequest::clients
  std::vector<std::optional<SideResult>> servers;  // per TraceRequest::targets (none without a server agent)
  std::vector<Cell> cells;                       // client-major, then source, then target
  proto::SendReport send;                        // summed over the client agents
  Nanos started_ns = 0, ended_ns = 0;
  std::string run_id;
  bool interrupted = false;  // request.interrupt ended the sending early; the manifests cover the probes sent
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

// The manifest of one cell: run key = low 32 bits of the stream's seed (as the agent derives it),
// probe -> variant = probe::variant_schedule(seed, count, variants), clock = server minus client
// offset.
correlate::RunManifest manifest_for(const TraceRequest& request, const proto::ProbeStream& stream,
                                    const std::vector<std::uint16_t>& variant_map,
                                    const std::optional<packet::IpAddr>& source,
                                    const std::optional<proto::ClockEstimate>& client_clock,
                                    const std::optional<proto::ClockEstimate>& server_clock);

// Where the index-th of `count` agents of a role has its capture fetched: "client.pcapng" when it is
// the only one, else "client1.pcapng", "client2.pcapng", ...
std::string capture_file_name(const std::string& role, std::size_t index, std::size_t count);

// The seed of cell k of a run whose seed is `seed`: cell 0 keeps `seed` (a one-vantage run is what
// it always was), later cells follow splitmix64 from it, skipping any whose run key (low 32 bits)
// repeats an earlier cell's, so every cell's probes are told apart even behind a shared NAT.
std::vector<std::uint64_t> cell_seeds(std::uint64_t seed, std::size_t cells);

}  // namespace tandem::orchestrate
