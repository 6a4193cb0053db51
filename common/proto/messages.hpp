// The wire messages between controller and agent, as plain structs. docs/wire-protocol.md is the
// normative description (type numbers, per-field limits, state machine); this header mirrors it.
// Only value types appear here (T10): no pointers, no polymorphism, no maps. The serialisation
// library (Cereal) is an implementation detail of common/proto/*.cpp and never leaks into a header.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "common/base/clock.hpp"

namespace tandem::proto {

// Message type numbers on the wire (u16). Values are frozen once released; new types get new numbers.
enum class MsgType : std::uint16_t {
  hello = 1,
  hello_ok = 2,
  clock_probe = 3,
  clock_reply = 4,
  run_setup = 5,
  run_ok = 6,
  capture_start = 7,
  capture_stop = 8,
  capture_stats = 9,
  send_plan = 10,
  send_report = 11,
  status = 12,
  status_reply = 13,
  fetch_capture = 14,
  capture_chunk = 15,
  run_end = 16,
  error = 17,
  bye = 18,
};

// Per-field maxima (bytes for text, elements for lists). Checked by the encoder (we never send what
// a peer must refuse) and by the decoder before anything is allocated.
inline constexpr std::size_t kMaxNameLen = 64;          // controller name, agent id, run id
inline constexpr std::size_t kMaxVersionTextLen = 32;   // agent version string
inline constexpr std::size_t kMaxCapabilities = 32;
inline constexpr std::size_t kMaxCapabilityLen = 32;
inline constexpr std::size_t kMaxPolicySummaryLen = 1024;
inline constexpr std::size_t kMaxFilterLen = 512;
inline constexpr std::size_t kMaxAddressLen = 64;       // textual IPv4/IPv6 address
inline constexpr std::size_t kMaxFlows = 64;
inline constexpr std::size_t kMaxTcpOptionsLen = 256;
inline constexpr std::size_t kMaxSportPolicyLen = 32;
inline constexpr std::size_t kMaxVariants = 128;
inline constexpr std::size_t kMaxStreams = 64;
inline constexpr std::size_t kMaxSources = 32;        // HELLO_OK.sources        // vantage x target streams in one plan
inline constexpr std::size_t kMaxDetailLen = 256;       // STATUS_REPLY detail
inline constexpr std::size_t kMaxErrorTextLen = 512;
inline constexpr std::size_t kMaxChunkBytes = 256 * 1024;
inline constexpr std::size_t kSha256Len = 32;

enum class Role : std::uint8_t { client = 1, server = 2 };
enum class L4 : std::uint8_t { tcp = 1, udp = 2, icmp = 3 };
enum class AgentState : std::uint8_t { idle = 1, armed = 2, capturing = 3, sending = 4, stopped = 5, failed = 6 };

// ERROR codes (u16). The text is for humans; programs branch on the code.
enum class ErrorCode : std::uint16_t {
  malformed = 1,           // the request did not decode (named reason in the text)
  unsupported_version = 2, // no common protocol version
  unexpected_message = 3,  // valid message, wrong state (the state machine's INVALID)
  policy_refused = 4,      // the agent operator's policy refuses (destination, rate, duration, ...)
  busy = 5,                // another controller holds a run lease
  lease_expired = 6,       // the run's deadline passed
  not_found = 7,           // no such capture / offset beyond the end
  internal = 8,            // agent-side failure (capture could not start, disk, ...)
};

// One flow of a run: what the agent may capture (its BPF is generated from these, never from text
// sent by the controller alone; threat T13). Addresses are textual and parsed by the agent.
struct Flow {
  std::string src;         // may be empty: any
  std::string dst;
  L4 l4 = L4::tcp;
  std::uint16_t sport_min = 0;  // 0..0 = any
  std::uint16_t sport_max = 0;
  std::uint16_t dport = 0;
  bool operator==(const Flow&) const = default;
};

// One bisection variant: the features that differ from the plan's base probe.
struct ProbeVariant {
  std::string tcp_options;  // canonical text, e.g. "mss=1460,sack,ts,nop,ws=7"; "" = no options
  std::uint8_t tos = 0;
  std::string sport;        // "random", "N" or "A-B"
  std::uint8_t ttl = 0;     // IPv4 TTL / IPv6 hop limit; 0 = the plan's ttl
  bool operator==(const ProbeVariant&) const = default;
};

// One stream of a plan: `count` probes from one source address to one destination, with their own
// seed (run key, variant schedule, source ports). A multi-vantage run (DESIGN.md §3) gives a client
// agent one stream per (source address, target); the streams are interleaved in random order.
struct ProbeStream {
  std::string src;                     // source address text; "" = the routing default for dst
  std::string dst;                     // destination address text
  std::uint16_t dport = 0;
  std::uint64_t seed = 0;
  std::uint32_t count = 0;
  std::vector<ProbeVariant> variants;  // empty = every probe uses the plan's base fields
  bool operator==(const ProbeStream&) const = default;
};

// What the sending agent sends. Plain fields only: the probe library parses the texts and applies
// the agent's policy; the wire layer only bounds them.
//
// Streams: empty = one stream {src "", dst, dport, seed, count, variants} from the plan's own
// fields (a single-vantage run). Otherwise the probes are the streams' (`count` is their sum,
// `seed` drives their interleaving, `dst`/`dport`/`variants` are not used) and `rate_pps` /
// `interval_us` pace the whole plan. Every stream shares the plan's l4, ip_version and base fields.
struct ProbePlan {
  std::uint32_t count = 0;
  std::uint32_t rate_pps = 0;      // 0 = use interval_us
  std::uint32_t interval_us = 0;
  std::uint64_t seed = 0;
  std::uint16_t dport = 0;
  std::string dst;                 // destination address text
  std::uint8_t ip_version = 4;     // 4 or 6
  L4 l4 = L4::tcp;
  std::string tcp_options;         // canonical text
  std::uint8_t tos = 0;
  std::uint8_t ttl = 0;            // 0 = the OS default
  bool df = false;
  std::uint16_t window = 0;        // 0 = the probe library's default
  std::string sport = "random";    // "random", "N" or "A-B"
  std::vector<ProbeVariant> variants;  // empty = every probe uses the base fields
  std::vector<ProbeStream> streams;    // empty = one stream from the fields above (see above)
  bool operator==(const ProbePlan&) const = default;
};

// The plan's streams as the sender runs them: `streams`, or the one stream its own fields describe.
inline std::vector<ProbeStream> streams_of(const ProbePlan& p) {
  if (!p.streams.empty()) return p.streams;
  return {ProbeStream{"", p.dst, p.dport, p.seed, p.count, p.variants}};
}

struct Hello {
  static constexpr MsgType kType = MsgType::hello;
  std::uint16_t min_version = 1;
  std::uint16_t max_version = 1;
  std::string controller_name;
  std::vector<std::string> capabilities;
  bool operator==(const Hello&) const = default;
};
struct HelloOk {
  static constexpr MsgType kType = MsgType::hello_ok;
  std::uint16_t version = 1;       // chosen, within the HELLO's range
  std::string agent_id;
  std::string agent_version;
  std::vector<std::string> capabilities;
  std::string policy_summary;      // human-readable one-paragraph summary of the operator policy
  // The addresses this agent may send probes from (its own, narrowed by the policy's [send]
  // sources; empty for a capture-only agent): where the controller places each --source.
  std::vector<std::string> sources;
  bool operator==(const HelloOk&) const = default;
};
struct ClockProbe {
  static constexpr MsgType kType = MsgType::clock_probe;
  Nanos t1 = 0;  // controller send time (CLOCK_REALTIME ns)
  bool operator==(const ClockProbe&) const = default;
};
struct ClockReply {
  static constexpr MsgType kType = MsgType::clock_reply;
  Nanos t1 = 0;  // echoed
  Nanos t2 = 0;  // agent receive time
  Nanos t3 = 0;  // agent send time
  bool operator==(const ClockReply&) const = default;
};
struct RunSetup {
  static constexpr MsgType kType = MsgType::run_setup;
  std::string run_id;              // [A-Za-z0-9._-], not starting with '.': the agent may use it as a file name
  Nanos lease_deadline_ns = 0;     // absolute CLOCK_REALTIME; the agent ends the run at this time
  Role role = Role::client;
  std::string capture_filter;      // optional extra narrowing; the agent's policy may refuse it (T13)
  std::uint32_t snaplen = 0;       // 0 = the agent's policy default
  std::vector<Flow> flows;
  ProbePlan plan;                  // used by the client role; count 0 for a server
  bool operator==(const RunSetup&) const = default;
};
struct RunOk {
  static constexpr MsgType kType = MsgType::run_ok;
  std::string run_id;
  // Answering RUN_SETUP: the run's flows as the agent captures them; a client agent fills in each
  // empty `src` with its routing default (so the controller knows every vantage's address). Empty
  // in the answer to RUN_END.
  std::vector<Flow> flows;
  bool operator==(const RunOk&) const = default;
};
struct CaptureStart {
  static constexpr MsgType kType = MsgType::capture_start;
  bool operator==(const CaptureStart&) const = default;
};
struct CaptureStop {
  static constexpr MsgType kType = MsgType::capture_stop;
  std::uint32_t drain_ms = 0;  // keep capturing this long for late replies
  bool operator==(const CaptureStop&) const = default;
};
struct CaptureStats {
  static constexpr MsgType kType = MsgType::capture_stats;
  std::uint64_t received = 0;
  std::uint64_t dropped = 0;          // kernel (ps_drop)
  std::uint64_t if_dropped = 0;       // interface (ps_ifdrop); meaningful only if if_dropped_known
  bool if_dropped_known = false;      // T17: "unknown" is not 0
  std::uint64_t available_bytes = 0;  // capture file size ready for FETCH_CAPTURE
  bool operator==(const CaptureStats&) const = default;
};
struct SendPlan {
  static constexpr MsgType kType = MsgType::send_plan;
  ProbePlan plan;
  bool operator==(const SendPlan&) const = default;
};
struct SendReport {
  static constexpr MsgType kType = MsgType::send_report;
  std::uint32_t sent = 0;
  std::uint32_t failed = 0;
  Nanos first_ns = 0;
  Nanos last_ns = 0;
  bool operator==(const SendReport&) const = default;
};
struct StatusRequest {
  static constexpr MsgType kType = MsgType::status;
  bool operator==(const StatusRequest&) const = default;
};
struct StatusReply {
  static constexpr MsgType kType = MsgType::status_reply;
  AgentState state = AgentState::idle;
  std::uint16_t progress_permille = 0;  // 0..1000
  std::string detail;
  bool operator==(const StatusReply&) const = default;
};
struct FetchCapture {
  static constexpr MsgType kType = MsgType::fetch_capture;
  std::uint64_t offset = 0;
  std::uint32_t max_bytes = 0;  // 1..kMaxChunkBytes
  bool operator==(const FetchCapture&) const = default;
};
struct CaptureChunk {
  static constexpr MsgType kType = MsgType::capture_chunk;
  std::uint64_t offset = 0;
  std::uint64_t total = 0;            // whole file size
  std::vector<std::uint8_t> bytes;    // offset + size <= total
  std::vector<std::uint8_t> sha256;   // 32 bytes of the whole file iff this chunk ends the file, else empty
  bool operator==(const CaptureChunk&) const = default;
};
struct RunEnd {
  static constexpr MsgType kType = MsgType::run_end;
  bool operator==(const RunEnd&) const = default;
};
struct ErrorReply {
  static constexpr MsgType kType = MsgType::error;
  ErrorCode code = ErrorCode::internal;
  std::string text;
  bool operator==(const ErrorReply&) const = default;
};
struct Bye {
  static constexpr MsgType kType = MsgType::bye;
  bool operator==(const Bye&) const = default;
};

// Alternatives are in type-number order (index + 1 == type number); wire.cpp checks this.
using Message = std::variant<Hello, HelloOk, ClockProbe, ClockReply, RunSetup, RunOk, CaptureStart,
                             CaptureStop, CaptureStats, SendPlan, SendReport, StatusRequest,
                             StatusReply, FetchCapture, CaptureChunk, RunEnd, ErrorReply, Bye>;

inline MsgType type_of(const Message& m) {
  return std::visit([](const auto& x) { return std::decay_t<decltype(x)>::kType; }, m);
}

}  // namespace tandem::proto
