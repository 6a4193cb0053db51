// The session state machine (docs/wire-protocol.md §5) as the agent applies it, and the run lease.
//
// Sessions are per connection (ROUTER routing id): each connection says HELLO before anything
// else, so a controller may open a second connection (e.g. to poll STATUS while a SEND_PLAN is in
// flight) without disturbing the first. The run, and so the ARMED/CAPTURING/STOPPED states, belongs
// to the controller *key* (the ZAP User-Id) that sent RUN_SETUP: every connection of that key sees
// the run's state; connections of other keys see READY and get ERROR{busy} on RUN_SETUP.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "common/base/clock.hpp"
#include "common/proto/messages.hpp"
#include "common/proto/wire.hpp"

namespace tandem::agent {

enum class RunPhase : std::uint8_t { none, armed, capturing, stopped };

struct Connection {
  std::string key;          // Z85 User-Id
  bool hello = false;       // HELLO_OK sent
  std::uint16_t version = proto::kProtocolVersion;
  Nanos last_seen_mono = 0;
};

// The §5 state of one connection, given who holds the run and its phase.
proto::SessionState connection_state(const Connection& c, const std::string& run_owner, RunPhase phase);

// What to do with one request.
enum class Verdict : std::uint8_t {
  handle,         // allowed; the handler may still answer ERROR (policy, not_found, ...)
  invalid,        // ERROR{unexpected_message}
  busy,           // RUN_SETUP while another key holds the run: ERROR{busy}
  lease_expired,  // a run request from the key whose run the lease just ended: ERROR{lease_expired}
  close,          // BYE: forget the connection, no reply
};
struct Decision {
  Verdict verdict = Verdict::invalid;
  proto::SessionState from = proto::SessionState::start;
  proto::SessionState to = proto::SessionState::invalid;  // valid when verdict == handle
};
// `expired_owner`: the key whose run was ended by the lease (deadline or silence) and that has not
// started a new one since.
Decision decide(const Connection& c, const std::string& run_owner, RunPhase phase, proto::MsgType request,
                const std::string& expired_owner);

// While a plan is being sent, the lease holder's silence ends the run after at most this long,
// whatever the policy's idle_timeout_s: a controller heartbeats every agent of its run at least
// once a second (docs/wire-protocol.md §5), so 3 s of silence is a lost controller and the probes
// must stop (DESIGN.md §7: sending stops within 3 s of losing the controller).
inline constexpr Nanos kSendingSilenceLimitNs = 3'000'000'000;

// The lease of a run (docs/agent.md "Lease"): it ends at the controller's deadline (capped by
// policy at RUN_SETUP) or when the lease holder has sent nothing, on any connection, for
// idle_timeout (at most kSendingSilenceLimitNs while a plan is sending), except while the agent
// itself owes it a reply that takes time (CAPTURE_STOP drain).
class Lease {
 public:
  enum class End : std::uint8_t { none, deadline, silent };
  Lease() = default;
  Lease(Nanos deadline_realtime, Nanos idle_timeout_ns, Nanos now_mono)
      : deadline_(deadline_realtime), idle_ns_(idle_timeout_ns), last_mono_(now_mono) {}
  void touch(Nanos now_mono) { last_mono_ = now_mono; }
  End check(Nanos now_realtime, Nanos now_mono, bool agent_owes_slow_reply, bool sending = false) const {
    if (now_realtime >= deadline_) return End::deadline;
    if (!agent_owes_slow_reply && now_mono - last_mono_ > silence_limit(sending)) return End::silent;
    return End::none;
  }
  // The silence that ends the lease now.
  Nanos silence_limit(bool sending) const { return sending ? std::min(idle_ns_, kSendingSilenceLimitNs) : idle_ns_; }
  Nanos deadline() const { return deadline_; }

 private:
  Nanos deadline_ = 0;
  Nanos idle_ns_ = 0;
  Nanos last_mono_ = 0;
};

}  // namespace tandem::agent
