// The controller's connection to one agent: ZeroMQ DEALER, CURVE client, strict request/reply.
//
// Why DEALER (not REQ): REQ locks up after a lost reply ("must receive before sending again");
// DEALER lets us time out, drop late replies (matched by request id, T20) and carry on.
// ZMQ_IMMEDIATE=1 so nothing is queued for a connection whose CURVE handshake has not completed:
// with a wrong key (or no agent) a request fails with a timeout instead of being delivered minutes
// later. ZMQ_LINGER=0 so the CLI never hangs on exit (T21).
//
// Threading: one client per thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include "common/base/result.hpp"
#include "common/proto/clock_sync.hpp"
#include "common/proto/wire.hpp"
#include "common/transport/agent_address.hpp"
#include "common/transport/curve.hpp"
#include "common/transport/options.hpp"

namespace tandem::transport {

struct ClientOptions {
  AgentAddress agent;
  CurveKeypair keypair;  // this controller's key pair (its public half must be in the agent's allow list)
  std::chrono::milliseconds timeout{5000};  // default per-request timeout
  Liveness liveness;
  // When set and it becomes true, a request() waiting for its reply gives up within 100 ms with
  // Errc::peer "... request abandoned" (a run abandoned because another agent was lost must not
  // wait out a long SEND_PLAN). Owned by the caller; must outlive the client.
  const std::atomic<bool>* abandon = nullptr;
};

class ControllerClient {
 public:
  // Creates the socket and starts connecting (asynchronously: a bad address or key shows up as
  // the first request timing out). Errc::environment without CURVE, Errc::config for bad keys.
  static Result<std::unique_ptr<ControllerClient>> connect(ClientOptions options);
  ~ControllerClient();
  ControllerClient(const ControllerClient&) = delete;
  ControllerClient& operator=(const ControllerClient&) = delete;

  // Sends `message` with a fresh request id and waits for the reply carrying that id (replies with
  // other ids are late answers to timed-out requests and are dropped). Errors:
  //   Errc::peer     "agent tcp://…: no reply within N s (wrong key or agent down?)"
  //   Errc::protocol the reply did not decode (named reason)
  // An ERROR reply is returned as a message, not as an Error; see request_as().
  Result<proto::Envelope> request(const proto::Message& message,
                                  std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  // request() expecting reply type T: an ERROR reply becomes Errc::peer "agent …: refused: <code>: <text>",
  // any other type Errc::protocol.
  template <class T>
  Result<T> request_as(const proto::Message& message, std::optional<std::chrono::milliseconds> timeout = std::nullopt) {
    auto env = request(message, timeout);
    if (!env) return env.error();
    if (auto* reply = std::get_if<T>(&env->message)) return std::move(*reply);
    return unexpected_reply(env->message, T::kType);
  }

  // Sends without waiting for a reply (BYE).
  Status post(const proto::Message& message);

  // `rounds` CLOCK_PROBE exchanges, minimum-RTT estimate (clock_sync.hpp).
  Result<proto::ClockEstimate> sync_clock(int rounds = 8);

  const AgentAddress& agent() const;

 private:
  struct Impl;
  explicit ControllerClient(std::unique_ptr<Impl> impl);
  Error unexpected_reply(const proto::Message& got, proto::MsgType wanted) const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::transport
