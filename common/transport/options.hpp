// Socket settings shared by both ends. Defaults follow docs/wire-protocol.md §6 (threats T5, T19, T21, T22).
#pragma once

#include <chrono>
#include <cstdint>

#include "common/proto/wire.hpp"

namespace tandem::transport {

struct Liveness {
  std::chrono::milliseconds heartbeat_ivl{1000};      // ZMTP PING every interval
  std::chrono::milliseconds heartbeat_timeout{5000};  // no traffic this long after a PING: peer gone
  std::chrono::milliseconds heartbeat_ttl{6000};      // asks the remote side to time us out too
  std::chrono::milliseconds handshake_ivl{5000};      // half-open/slow handshakes are cut after this
};

// ZMQ_MAXMSGSIZE on both ends: the largest envelope the protocol allows; a bigger frame disconnects the peer.
inline constexpr std::int64_t kMaxMessageSize = static_cast<std::int64_t>(proto::kMaxEnvelopeSize);

// The ZAP domain every agent socket declares (with ZAP enforcement on, see agent_server.hpp).
inline constexpr const char* kZapDomain = "tandem";

}  // namespace tandem::transport
