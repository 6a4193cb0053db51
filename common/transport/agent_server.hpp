// The agent's listening socket: ZeroMQ ROUTER, CURVE server, fail-closed ZAP allow list.
//
// Why ROUTER (not REP): a REP socket is stuck in "must reply" state when a controller vanishes
// mid-request, and it serves one conversation at a time; ROUTER tags each message with the peer's
// routing id, never blocks on a dead peer (ZMQ_ROUTER_MANDATORY + non-blocking sends report it),
// and lets the agent answer "busy" to a second controller while a lease is held.
//
// Authentication: a ZAP handler (RFC 27) is bound on inproc://zeromq.zap.01 in this server's own
// ZeroMQ context BEFORE the ROUTER binds, and ZMQ_ZAP_ENFORCE_DOMAIN is set, so a missing or dead
// handler refuses everyone instead of admitting everyone (threats T1, T2). The handler admits only
// CURVE clients whose public key is in the allow list, answers User-Id = the client's Z85 key, and
// reports every decision to the audit sink. Authorise by Incoming::user_id, never by routing id (T4).
//
// Threading: one AgentServer is used from one thread (its owner). The audit sink is called from the
// ZAP thread; set_allowed_keys() may be called from any thread. ZAP runs once per connection:
// removing a key does not drop a session that is already up (T3); the owner must check user_id
// against its current list on every request.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/base/result.hpp"
#include "common/proto/wire.hpp"
#include "common/transport/connection_guard.hpp"
#include "common/transport/curve.hpp"
#include "common/transport/options.hpp"

namespace tandem::transport {

// One authentication decision (ZAP request).
struct AuthDecision {
  bool accepted = false;
  std::string client_key;    // Z85; empty if the mechanism carried none
  std::string peer_address;  // IP address of the TCP peer
  std::string reason;        // "allowed", "key not in allow list", "mechanism NULL refused", ...
};
using AuditSink = std::function<void(const AuthDecision&)>;

struct ServerOptions {
  std::string bind_endpoint;              // e.g. "tcp://0.0.0.0:7070", "tcp://127.0.0.1:*" (ephemeral)
  CurveKeypair keypair;                   // the agent's long-term key pair
  std::vector<std::string> allowed_keys;  // Z85 controller public keys
  AuditSink audit;                        // optional; every decision is also logged ("transport" logger)
  Liveness liveness;
  // The connection guard (connection_guard.hpp): memory bound on undelivered bytes, and handshake
  // failures before ZAP. Its events go to guard_events (optional; also logged).
  GuardLimits guard;
  GuardSink guard_events;
};

// One received request. Protocol rule: exactly one payload frame per message (T6); messages with
// more are drained and reported with frames > 1 (reply ERROR{malformed}) and only the first is kept.
struct Incoming {
  std::string routing_id;    // opaque, for reply(); peer-chosen, never used for authorisation
  std::string user_id;       // the ZAP User-Id = the authenticated client's Z85 public key
  std::string peer_address;  // "Peer-Address" message property
  std::vector<std::uint8_t> bytes;
  std::size_t frames = 1;
};

class AgentServer {
 public:
  // Checks CURVE support, starts the ZAP handler, binds. Errc::config for bad keys,
  // Errc::environment for bind failures or missing CURVE, Errc::internal if ZAP enforcement
  // cannot be turned on (we refuse to run fail-open).
  static Result<std::unique_ptr<AgentServer>> start(ServerOptions options);
  ~AgentServer();
  AgentServer(const AgentServer&) = delete;
  AgentServer& operator=(const AgentServer&) = delete;

  // The bound endpoint with the real port (useful with ":*").
  const std::string& endpoint() const;

  // Waits up to `timeout` for one request; nullopt on timeout. Errc::environment on socket failure.
  Result<std::optional<Incoming>> receive(std::chrono::milliseconds timeout);

  // Sends one encoded message to `to`. Never blocks: Errc::peer if the controller is gone
  // (EHOSTUNREACH) or not reading (EAGAIN, its queue is full: T16).
  Status send(const std::string& routing_id, std::span<const std::uint8_t> bytes);
  // Encodes and sends a reply carrying `request_id`.
  Status reply(const Incoming& to, std::uint32_t request_id, const proto::Message& message);

  void set_allowed_keys(std::vector<std::string> keys);

  // False once the ZAP thread has died: the socket then refuses every new connection (fail-closed);
  // the agent should treat this as fatal.
  bool zap_healthy() const;

 private:
  struct Impl;
  explicit AgentServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::transport
